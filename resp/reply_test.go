package resp

import (
	"errors"
	"io"
	"strings"
	"testing"
)

var replyTests = []struct {
	name string
	in   string
	typ  byte
}{
	{"simple string", "+OK\r\n", TypeSimpleString},
	{"empty simple string", "+\r\n", TypeSimpleString},
	{"error", "-ERR unknown command\r\n", TypeError},
	{"integer", ":-9223372036854775808\r\n", TypeInteger},
	{"bulk", "$5\r\nhello\r\n", TypeBulkString},
	{"bulk with CRLF inside", "$4\r\n\r\n\r\n\r\n", TypeBulkString},
	{"empty bulk", "$0\r\n\r\n", TypeBulkString},
	{"null bulk", "$-1\r\n", TypeBulkString},
	{"null array", "*-1\r\n", TypeArray},
	{"null", "_\r\n", TypeNull},
	{"boolean true", "#t\r\n", TypeBoolean},
	{"boolean false", "#f\r\n", TypeBoolean},
	{"double", ",1.5e10\r\n", TypeDouble},
	{"double inf", ",-inf\r\n", TypeDouble},
	{"big number", "(3492890328409238509324850943850943825024385\r\n", TypeBigNumber},
	{"bulk error", "!21\r\nSYNTAX invalid syntax\r\n", TypeBulkError},
	{"verbatim", "=15\r\ntxt:Some string\r\n", TypeVerbatim},
	{"empty array", "*0\r\n", TypeArray},
	{"array", "*3\r\n:1\r\n$1\r\na\r\n+b\r\n", TypeArray},
	{"nested arrays", "*2\r\n*2\r\n:1\r\n:2\r\n*1\r\n*0\r\n", TypeArray},
	{"array of nulls", "*3\r\n$-1\r\n*-1\r\n_\r\n", TypeArray},
	{"map", "%2\r\n+a\r\n:1\r\n+b\r\n*1\r\n:2\r\n", TypeMap},
	{"empty map", "%0\r\n", TypeMap},
	{"set", "~2\r\n+a\r\n+b\r\n", TypeSet},
	{"push", ">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n", TypePush},
	{"attribute before a reply", "|1\r\n+ttl\r\n:3600\r\n*2\r\n:1\r\n:2\r\n", TypeArray},
	{"empty attribute", "|0\r\n+OK\r\n", TypeSimpleString},
	{"attribute before a push", "|1\r\n+a\r\n+b\r\n>1\r\n+x\r\n", TypePush},
	{"attribute inside an array", "*2\r\n|1\r\n+key-popularity\r\n%1\r\n$1\r\na\r\n,0.19\r\n:2039\r\n:9543\r\n", TypeArray},
	{"two attributes", "|1\r\n+a\r\n+b\r\n|1\r\n+c\r\n+d\r\n:1\r\n", TypeInteger},
	{"streamed string", "$?\r\n;4\r\nHell\r\n;5\r\no wor\r\n;1\r\nd\r\n;0\r\n", TypeBulkString},
	{"empty streamed string", "$?\r\n;0\r\n", TypeBulkString},
	{"streamed array", "*?\r\n:1\r\n:2\r\n.\r\n", TypeArray},
	{"empty streamed array", "*?\r\n.\r\n", TypeArray},
	{"streamed map", "%?\r\n+a\r\n:1\r\n+b\r\n:2\r\n.\r\n", TypeMap},
	{"streamed set of streamed strings", "~?\r\n$?\r\n;1\r\na\r\n;0\r\n.\r\n", TypeSet},
	{"streamed push", ">?\r\n+x\r\n.\r\n", TypePush},
	{"array holding a streamed array", "*2\r\n*?\r\n:1\r\n.\r\n:2\r\n", TypeArray},
}

func TestReadReply(t *testing.T) {
	for _, tt := range replyTests {
		t.Run(tt.name, func(t *testing.T) {
			// A second reply follows, to show where this one ends.
			r := NewReader(strings.NewReader(tt.in+"+NEXT\r\n"), 0, Limits{})
			raw, typ, err := r.ReadReply()
			if err != nil {
				t.Fatalf("ReadReply: %v", err)
			}
			if string(raw) != tt.in || typ != tt.typ {
				t.Errorf("got %c %q, want %c %q", typ, raw, tt.typ, tt.in)
			}
			raw, typ, err = r.ReadReply()
			if err != nil || string(raw) != "+NEXT\r\n" || typ != TypeSimpleString {
				t.Errorf("next reply = %q %c %v", raw, typ, err)
			}
		})
	}
}

func TestReadReplyErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		lim  Limits
		want error
	}{
		{"unknown type", "?x\r\n", Limits{}, ErrMalformedReply},
		{"empty line", "\r\n", Limits{}, ErrMalformedReply},
		{"LF without CR", "+OK\n", Limits{}, ErrMalformedReply},
		{"bad integer", ":1.5\r\n", Limits{}, ErrMalformedReply},
		{"integer leading zero", ":01\r\n", Limits{}, ErrMalformedReply},
		{"null with content", "_x\r\n", Limits{}, ErrMalformedReply},
		{"bad boolean", "#x\r\n", Limits{}, ErrMalformedReply},
		{"empty double", ",\r\n", Limits{}, ErrMalformedReply},
		{"bad bulk length", "$x\r\n", Limits{}, ErrMalformedReply},
		{"negative bulk length", "$-2\r\n", Limits{}, ErrMalformedReply},
		{"null bulk error", "!-1\r\n", Limits{}, ErrMalformedReply},
		{"bulk without CRLF", "$2\r\nabc\r\n", Limits{}, ErrMalformedReply},
		{"bad count", "*x\r\n", Limits{}, ErrMalformedReply},
		{"null map", "%-1\r\n", Limits{}, ErrMalformedReply},
		{"streamed attribute", "|?\r\n", Limits{}, ErrMalformedReply},
		{"end marker at top", ".\r\n", Limits{}, ErrMalformedReply},
		{"end marker in counted array", "*2\r\n:1\r\n.\r\n", Limits{}, ErrMalformedReply},
		{"end marker with content", "*?\r\n.x\r\n", Limits{}, ErrMalformedReply},
		{"part outside streamed string", ";1\r\na\r\n", Limits{}, ErrMalformedReply},
		{"part in an array", "*1\r\n;1\r\na\r\n", Limits{}, ErrMalformedReply},
		{"bulk inside streamed string", "$?\r\n$1\r\na\r\n", Limits{}, ErrMalformedReply},
		{"end marker ends streamed string", "$?\r\n.\r\n", Limits{}, ErrMalformedReply},
		{"bulk over MaxBulkLen", "$5\r\nhello\r\n", Limits{MaxBulkLen: 4}, ErrReplyTooLarge},
		{"part over MaxBulkLen", "$?\r\n;5\r\nhello\r\n", Limits{MaxBulkLen: 4}, ErrReplyTooLarge},
		{"deeper than MaxDepth", "*1\r\n*1\r\n*1\r\n:1\r\n", Limits{MaxDepth: 2}, ErrReplyTooLarge},
		{"attribute counts toward depth", "*1\r\n|1\r\n+a\r\n+b\r\n:1\r\n", Limits{MaxDepth: 1}, ErrReplyTooLarge},
		{"frame over MaxFrameLen", "*3\r\n$4\r\nabcd\r\n$4\r\nabcd\r\n:1\r\n", Limits{MaxFrameLen: 20}, ErrReplyTooLarge},
		{"line over MaxFrameLen", "+" + strings.Repeat("a", 40), Limits{MaxFrameLen: 20}, ErrReplyTooLarge},
		{"count cannot fit", "*100\r\n", Limits{MaxFrameLen: 64}, ErrReplyTooLarge},
		{"map count cannot fit", "%4611686018427387904\r\n", Limits{}, ErrReplyTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewReader(strings.NewReader(tt.in), 0, tt.lim)
			raw, _, err := r.ReadReply()
			if !errors.Is(err, tt.want) {
				t.Fatalf("ReadReply = %q, %v; want %v", raw, err, tt.want)
			}
			if !strings.HasPrefix(err.Error(), "resp: ") {
				t.Errorf("error %q does not start with \"resp: \"", err)
			}
		})
	}
}

func TestReadReplyEOF(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want error
	}{
		{"empty", "", io.EOF},
		{"inside a line", "+O", io.ErrUnexpectedEOF},
		{"inside a bulk", "$5\r\nhel", io.ErrUnexpectedEOF},
		{"inside an array", "*2\r\n:1\r\n", io.ErrUnexpectedEOF},
		{"after an attribute", "|1\r\n+a\r\n+b\r\n", io.ErrUnexpectedEOF},
		{"inside a streamed string", "$?\r\n;1\r\na\r\n", io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewReader(strings.NewReader(tt.in), 0, Limits{})
			if _, _, err := r.ReadReply(); err != tt.want {
				t.Errorf("ReadReply = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestReadReplyDeepNestingAtLimit(t *testing.T) {
	const depth = 512
	in := strings.Repeat("*1\r\n", depth) + ":1\r\n"
	r := NewReader(strings.NewReader(in), 0, Limits{})
	if raw, _, err := r.ReadReply(); err != nil || string(raw) != in {
		t.Fatalf("%d levels: %v", depth, err)
	}
	r = NewReader(strings.NewReader("*1\r\n"+in), 0, Limits{})
	if _, _, err := r.ReadReply(); !errors.Is(err, ErrReplyTooLarge) {
		t.Fatalf("%d levels: %v, want ErrReplyTooLarge", depth+1, err)
	}
}
