package snapshot

import (
	"bytes"
	"go/format"
	"testing"
)

func entry(name, subs string) string {
	return "*10\r\n$" + string(rune('0'+len(name))) + "\r\n" + name + "\r\n:-2\r\n*0\r\n:0\r\n:0\r\n:0\r\n*0\r\n*0\r\n*0\r\n" + subs
}

// Redis lists commands in hash-table order, which changes from run to run;
// the rendered file must not.
func TestRenderIsCanonical(t *testing.T) {
	a := entry("obj", "*2\r\n"+entry("obj|b", "*0\r\n")+entry("obj|a", "*0\r\n"))
	b := entry("get", "*0\r\n")
	one, err := Render([]byte("*2\r\n"+a+b), "7.0.0")
	if err != nil {
		t.Fatal(err)
	}
	a2 := entry("obj", "*2\r\n"+entry("obj|a", "*0\r\n")+entry("obj|b", "*0\r\n"))
	two, err := Render([]byte("*2\r\n"+b+a2), "7.0.0")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(one, two) {
		t.Fatalf("order of the reply changed the output:\n%s\n%s", one, two)
	}
	if i, j := bytes.Index(one, []byte("// get")), bytes.Index(one, []byte("// obj|a")); i < 0 || j < i {
		t.Errorf("not sorted:\n%s", one)
	}
	if f, err := format.Source(one); err != nil || !bytes.Equal(f, one) {
		t.Errorf("not gofmt'd: %v", err)
	}
}

func TestRenderRefusesNonArray(t *testing.T) {
	if _, err := Render([]byte("-ERR nope\r\n"), "7.0.0"); err == nil {
		t.Error("rendered an error reply")
	}
}
