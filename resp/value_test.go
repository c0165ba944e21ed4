package resp

import (
	"bytes"
	"errors"
	"io"
	"math"
	"reflect"
	"testing"
)

func str(t byte, s string) Value { return Value{Type: t, Str: []byte(s)} }

func TestParseValue(t *testing.T) {
	tests := []struct {
		name string
		raw  string
		want Value
		// roundTrip is false for input AppendValue writes differently
		// (streamed parts are written whole).
		roundTrip bool
	}{
		{"simple string", "+OK\r\n", str('+', "OK"), true},
		{"empty simple string", "+\r\n", str('+', ""), true},
		{"error", "-ERR bad\r\n", str('-', "ERR bad"), true},
		{"integer", ":-42\r\n", Value{Type: ':', Int: -42}, true},
		{"bulk", "$5\r\nhel\rl\r\n", str('$', "hel\rl"), true},
		{"empty bulk", "$0\r\n\r\n", str('$', ""), true},
		{"resp2 null bulk", "$-1\r\n", Value{Type: '$', Null: true}, true},
		{"resp2 null array", "*-1\r\n", Value{Type: '*', Null: true}, true},
		{"resp3 null", "_\r\n", Value{Type: '_', Null: true}, true},
		{"true", "#t\r\n", Value{Type: '#', Int: 1}, true},
		{"false", "#f\r\n", Value{Type: '#'}, true},
		{"double", ",1.5e3\r\n", Value{Type: ',', Str: []byte("1.5e3"), Float: 1500}, true},
		{"inf", ",-inf\r\n", Value{Type: ',', Str: []byte("-inf"), Float: math.Inf(-1)}, true},
		{"big number", "(3492890328409238509324850943850943825024385\r\n",
			str('(', "3492890328409238509324850943850943825024385"), true},
		{"bulk error", "!21\r\nSYNTAX invalid syntax\r\n", str('!', "SYNTAX invalid syntax"), true},
		{"verbatim", "=15\r\ntxt:Some string\r\n", Value{Type: '=', Format: "txt", Str: []byte("Some string")}, true},
		{"empty array", "*0\r\n", Value{Type: '*', Elems: []Value{}}, true},
		{"nested array", "*2\r\n*1\r\n:1\r\n$1\r\nx\r\n", Value{Type: '*', Elems: []Value{
			{Type: '*', Elems: []Value{{Type: ':', Int: 1}}}, str('$', "x"),
		}}, true},
		{"map", "%2\r\n+a\r\n:1\r\n+b\r\n~1\r\n+c\r\n", Value{Type: '%', Elems: []Value{
			str('+', "a"), {Type: ':', Int: 1}, str('+', "b"), {Type: '~', Elems: []Value{str('+', "c")}},
		}}, true},
		{"push", ">2\r\n+message\r\n$1\r\nm\r\n", Value{Type: '>', Elems: []Value{str('+', "message"), str('$', "m")}}, true},
		{"attribute", "|1\r\n+ttl\r\n:3\r\n$1\r\nv\r\n", Value{Type: '$', Str: []byte("v"),
			Attrs: []Value{str('+', "ttl"), {Type: ':', Int: 3}}}, true},
		{"attribute inside array", "*2\r\n:1\r\n|1\r\n+a\r\n+b\r\n:2\r\n", Value{Type: '*', Elems: []Value{
			{Type: ':', Int: 1}, {Type: ':', Int: 2, Attrs: []Value{str('+', "a"), str('+', "b")}},
		}}, true},
		{"streamed string", "$?\r\n;2\r\nab\r\n;1\r\nc\r\n;0\r\n", str('$', "abc"), false},
		{"empty streamed string", "$?\r\n;0\r\n", str('$', ""), false},
		{"streamed array", "*?\r\n:1\r\n*?\r\n.\r\n.\r\n", Value{Type: '*', Elems: []Value{
			{Type: ':', Int: 1}, {Type: '*', Elems: []Value{}},
		}}, false},
		{"streamed map", "%?\r\n+k\r\n+v\r\n.\r\n", Value{Type: '%', Elems: []Value{str('+', "k"), str('+', "v")}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := []byte(tt.raw)
			got, err := ParseValue(raw)
			if err != nil {
				t.Fatalf("ParseValue(%q): %v", tt.raw, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("ParseValue(%q)\n got %+v\nwant %+v", tt.raw, got, tt.want)
			}
			enc := AppendValue(nil, got)
			if tt.roundTrip && string(enc) != tt.raw {
				t.Errorf("AppendValue = %q, want %q", enc, tt.raw)
			}
			if again, err := ParseValue(enc); err != nil || !reflect.DeepEqual(again, got) {
				t.Errorf("ParseValue(AppendValue) = %+v, %v; want %+v", again, err, got)
			}
			// The Value owns its memory.
			for i := range raw {
				raw[i] = 'X'
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Value changed with its input: %+v", got)
			}
		})
	}
}

func TestParseValueErrors(t *testing.T) {
	tests := []struct {
		name string
		raw  string
		want error // errors.Is target
	}{
		{"empty", "", io.EOF},
		{"truncated bulk", "$5\r\nab", io.ErrUnexpectedEOF},
		{"truncated array", "*2\r\n:1\r\n", io.ErrUnexpectedEOF},
		{"trailing bytes", "+OK\r\n+OK\r\n", ErrMalformedReply},
		{"bad integer", ":01\r\n", ErrMalformedReply},
		{"bad double", ",abc\r\n", ErrMalformedReply},
		{"verbatim without format", "=2\r\nab\r\n", ErrMalformedReply},
		{"unknown type", "?x\r\n", ErrMalformedReply},
		{"missing crlf", "+OK\n", ErrMalformedReply},
		{"lone attribute", "|1\r\n+a\r\n+b\r\n", io.ErrUnexpectedEOF},
		{"too deep", string(bytes.Repeat([]byte("*1\r\n"), 600)) + ":1\r\n", ErrReplyTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := ParseValue([]byte(tt.raw))
			if !errors.Is(err, tt.want) {
				t.Fatalf("ParseValue(%.40q) = %+v, %v; want %v", tt.raw, v, err, tt.want)
			}
		})
	}
}

func TestValueHelpers(t *testing.T) {
	if !str('-', "ERR x").IsError() || !str('!', "x").IsError() || str('+', "OK").IsError() {
		t.Error("IsError")
	}
	if got := (Value{Type: ':', Int: -7}).Text(); got != "-7" {
		t.Errorf("Text of integer = %q", got)
	}
	if got := str('$', "abc").Text(); got != "abc" {
		t.Errorf("Text of bulk = %q", got)
	}
}

func FuzzParseValue(f *testing.F) {
	for _, s := range []string{
		"+OK\r\n", "*2\r\n$1\r\na\r\n%1\r\n+k\r\n_\r\n", "|1\r\n+a\r\n+b\r\n,1.5\r\n",
		"$?\r\n;1\r\na\r\n;0\r\n", "~?\r\n#t\r\n.\r\n", "=7\r\nmkd:abc\r\n", "(-12\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		v, err := ParseValue(raw)
		if err != nil {
			return
		}
		enc := AppendValue(nil, v)
		v2, err := ParseValue(enc)
		if err != nil {
			t.Fatalf("ParseValue(AppendValue(ParseValue(%q))) = %v", raw, err)
		}
		if enc2 := AppendValue(nil, v2); !bytes.Equal(enc, enc2) {
			t.Fatalf("round trip of %q: %q then %q", raw, enc, enc2)
		}
	})
}

func BenchmarkParseValue(b *testing.B) {
	raw := []byte("*3\r\n$3\r\nget\r\n:2\r\n*2\r\n+readonly\r\n+fast\r\n")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseValue(raw); err != nil {
			b.Fatal(err)
		}
	}
}
