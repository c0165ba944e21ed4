package resp

// Tests from a review of session 9's change: nothing a Command keeps may
// point into a buffer the Reader has dropped.

import (
	"fmt"
	"math/rand"
	"strings"
	"testing"
	"unsafe"
)

// within reports whether b points into buf's backing array.
func within(b, buf []byte) bool {
	if cap(b) == 0 || cap(buf) == 0 {
		return true
	}
	p := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	lo := uintptr(unsafe.Pointer(unsafe.SliceData(buf)))
	return p >= lo && p < lo+uintptr(cap(buf))
}

func withinCmd(b []byte, c *Command) bool {
	return within(b, c.buf)
}

// Random commands of every shape, arriving in random pieces with
// ErrWouldBlock between them, read the way the event loop reads (ReadCommand
// first, then BufferedCommand until it has none); the arguments must be right,
// and nothing the Command keeps may point outside the Reader's current buffer
// (or the Command's own scratch).
func TestArgumentsNeverPinAnOldBuffer(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for round := 0; round < 300; round++ {
		var in strings.Builder
		var want [][]string
		for i := 0; i < 20; i++ {
			switch rng.Intn(6) {
			case 0: // general (large)
				n := 1 + rng.Intn(5)
				args := []string{"MSET"}
				for j := 0; j < n; j++ {
					args = append(args, strings.Repeat(string(rune('a'+j)), 1+rng.Intn(400<<10)))
				}
				in.WriteString(cmdString(args))
				want = append(want, args)
			case 1: // short
				args := []string{"GET", fmt.Sprint("k", i)}
				in.WriteString(cmdString(args))
				want = append(want, args)
			case 2: // inline with quotes
				in.WriteString("SET \"q x\" v\r\n")
				want = append(want, []string{"SET", "q x", "v"})
			case 3: // empty multibulk and empty inline line
				in.WriteString("*0\r\n\r\n")
			case 4: // many args (general, over shortArgs)
				args := []string{"DEL"}
				for j := 0; j < 70; j++ {
					args = append(args, "x")
				}
				in.WriteString(cmdString(args))
				want = append(want, args)
			case 5: // inline plain
				in.WriteString("PING\r\n")
				want = append(want, []string{"PING"})
			}
		}
		data := []byte(in.String())
		var chunks [][]byte
		for len(data) > 0 {
			n := min(len(data), 1+rng.Intn(300<<10))
			chunks = append(chunks, data[:n])
			data = data[n:]
		}
		src := &wouldBlock{chunks: chunks}
		r := NewReader(src, 1024, Limits{})
		var cmd Command
		got := 0
		pending := false // a command of this batch points into the buffer
		check := func(where string) {
			t.Helper()
			all := cmd.args[:cap(cmd.args)]
			for j, a := range all {
				if a != nil && !within(a, r.buf) && !withinCmd(a, &cmd) {
					t.Fatalf("round %d %s: args[%d] (len %d, Args %d) points outside the current buffer", round, where, j, len(a), len(cmd.Args))
				}
			}
			if cmd.Raw != nil && !within(cmd.Raw, r.buf) {
				t.Fatalf("round %d %s: Raw points outside the current buffer", round, where)
			}
		}
		for steps := 0; got < len(want); steps++ {
			if steps > 100000 {
				t.Fatalf("round %d: stuck at %d of %d", round, got, len(want))
			}
			var err error
			ok := false
			if !pending {
				src.ready = true
				err = r.ReadCommand(&cmd)
				ok = err == nil
				if err == ErrWouldBlock {
					check("after ReadCommand would block")
					continue
				}
			} else {
				ok, err = r.BufferedCommand(&cmd)
				if err == nil && !ok {
					pending = false // the batch is sent and answered
					if rng.Intn(2) == 0 && r.Release() {
						cmd.Reset()
					}
					check("after a batch")
					continue
				}
			}
			if err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
			if ok {
				check("after a command")
				w := want[got]
				if len(cmd.Args) != len(w) {
					t.Fatalf("round %d command %d: %d args, want %d", round, got, len(cmd.Args), len(w))
				}
				for j := range w {
					if string(cmd.Args[j]) != w[j] {
						t.Fatalf("round %d command %d arg %d differs", round, got, j)
					}
				}
				got++
				pending = true
			}
		}
	}
}

func cmdString(args []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	return b.String()
}

// A large SET, then a GET, then the start of an MSET whose arguments have
// not all arrived: the short parser declined the MSET after writing some
// of its arguments, past the array's length, pointing into the grown
// buffer; ReadCommand then goes back to the small buffer and waits, and
// the Command must not pin the large one meanwhile (a review found it did).
func TestPartialFrameKeepsNoOldBuffer(t *testing.T) {
	big := strings.Repeat("v", 3<<19)
	src := &wouldBlock{chunks: [][]byte{[]byte(cmdString([]string{"SET", "k", big}) + cmdString([]string{"GET", "x"}) + "*5\r\n$4\r\nMSET\r\n$1\r\na\r\n$1\r\n1\r\n$1\r\nb\r\n$1\r\n")}}
	r := NewReader(src, 1024, Limits{})
	var cmd Command
	readCommand(t, r, src, &cmd)
	grown := r.buf
	if ok, err := r.BufferedCommand(&cmd); !ok || err != nil {
		t.Fatalf("GET x: %v %v", ok, err)
	}
	if ok, err := r.BufferedCommand(&cmd); ok || err != nil {
		t.Fatalf("the partial MSET: %v %v", ok, err)
	}
	if err := r.ReadCommand(&cmd); err != ErrWouldBlock {
		t.Fatalf("waiting for the rest: %v", err)
	}
	if len(r.buf) == len(grown) {
		t.Fatal("the reader kept its grown buffer: this test no longer sets up what it checks")
	}
	for j, a := range cmd.args[:cap(cmd.args)] {
		if a != nil && within(a, grown) {
			t.Fatalf("waiting mid-frame, the Command's args[%d] = %q still points into the dropped %d-byte buffer", j, a, len(grown))
		}
	}
}
