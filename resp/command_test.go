package resp

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
)

// args is shorthand for a command's expected arguments.
func args(s ...string) [][]byte {
	out := make([][]byte, len(s))
	for i, a := range s {
		out[i] = []byte(a)
	}
	return out
}

// readAllCommands reads in until the first error, which it returns too.
func readAllCommands(t *testing.T, r *Reader) ([]Command, error) {
	t.Helper()
	var out []Command
	for {
		var c Command
		if err := r.ReadCommand(&c); err != nil {
			return out, err
		}
		out = append(out, Command{
			Raw:    bytes.Clone(c.Raw),
			Args:   cloneArgs(c.Args),
			Inline: c.Inline,
		})
	}
}

func cloneArgs(a [][]byte) [][]byte {
	out := make([][]byte, len(a))
	for i := range a {
		out[i] = bytes.Clone(a[i])
	}
	return out
}

func equalArgs(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

var commandTests = []struct {
	name   string
	in     string
	args   [][]byte
	inline bool
}{
	{"multibulk", "*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n", args("GET", "key"), false},
	{"multibulk binary arg", "*2\r\n$4\r\nECHO\r\n$4\r\na\r\nb\r\n", args("ECHO", "a\r\nb"), false},
	{"multibulk empty arg", "*2\r\n$4\r\nECHO\r\n$0\r\n\r\n", args("ECHO", ""), false},
	{"multibulk lower case name", "*1\r\n$4\r\nping\r\n", args("ping"), false},
	{"inline", "PING\r\n", args("PING"), true},
	{"inline bare newline", "PING\n", args("PING"), true},
	{"inline spaces and tabs", "  SET \t k\t\tv  \r\n", args("SET", "k", "v"), true},
	{"inline only last CR stripped", "GET a\r\r\n", args("GET", "a"), true},
	{"inline CR inside ends arg", "GET a\rb\r\n", args("GET", "a", "b"), true},
	{"inline vertical tab kept inside arg", "GET a\vb\r\n", args("GET", "a\vb"), true},
	{"inline leading form feed skipped", "\fGET a\r\n", args("GET", "a"), true},
	{"inline double quotes", `SET "a b" "c"` + "\r\n", args("SET", "a b", "c"), true},
	{"inline double quote escapes", `ECHO "\n\r\t\b\a\\\"\q"` + "\r\n", args("ECHO", "\n\r\t\b\a\\\"q"), true},
	{"inline hex escapes", `ECHO "\x41\x7a\xff\x00"` + "\r\n", args("ECHO", "Az\xff\x00"), true},
	{"inline short hex is literal x", `ECHO "\x4"` + "\r\n", args("ECHO", "x4"), true},
	{"inline bad hex is literal x", `ECHO "\xg1"` + "\r\n", args("ECHO", "xg1"), true},
	{"inline single quotes", `ECHO 'a "b" \n \' c'` + "\r\n", args("ECHO", `a "b" \n ' c`), true},
	{"inline quote mid arg", `ECHO ab"c d"` + "\r\n", args("ECHO", "abc d"), true},
	{"inline empty quotes", `ECHO "" ''` + "\r\n", args("ECHO", "", ""), true},
	{"inline quote then tab", "ECHO \"a\"\tb\r\n", args("ECHO", "a", "b"), true},
	{"inline quote then vertical tab", "ECHO \"a\"\vb\r\n", args("ECHO", "a", "b"), true},
	{"inline quote at line end", `ECHO "a"` + "\n", args("ECHO", "a"), true},
	{"inline star after space", " *1\r\n", args("*1"), true},
	{"inline dollar", "$3\r\n", args("$3"), true},
}

func TestReadCommand(t *testing.T) {
	for _, tt := range commandTests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewReader(strings.NewReader(tt.in), 0, Limits{})
			var c Command
			if err := r.ReadCommand(&c); err != nil {
				t.Fatalf("ReadCommand: %v", err)
			}
			if !equalArgs(c.Args, tt.args) || c.Inline != tt.inline || string(c.Raw) != tt.in {
				t.Errorf("got args %q inline %v raw %q, want %q %v %q", c.Args, c.Inline, c.Raw, tt.args, tt.inline, tt.in)
			}
			if !bytes.Equal(c.Name(), tt.args[0]) {
				t.Errorf("Name() = %q, want %q", c.Name(), tt.args[0])
			}
			if err := r.ReadCommand(&c); err != io.EOF {
				t.Errorf("after the command: %v, want io.EOF", err)
			}
		})
	}
}

var commandErrorTests = []struct {
	name string
	in   string
	lim  Limits
	msg  string
	// redis marks the cases Redis 7 itself rejects with the same text when
	// the bytes arrive together; TestProtocolErrorsMatchRedis checks them.
	redis bool
}{
	{"too big inline", strings.Repeat("a", 64<<10+1), Limits{}, msgTooBigInline, true},
	{"too big inline small limit", "GET aaaaaa", Limits{MaxInlineLen: 8}, msgTooBigInline, false},
	{"unterminated double quote", "SET \"a\r\n", Limits{}, msgUnbalanced, true},
	{"unterminated single quote", "SET 'a\r\n", Limits{}, msgUnbalanced, true},
	{"escaped closing quote", "GET \"a\\\"\r\n", Limits{}, msgUnbalanced, true},
	{"backslash at end in quotes", "GET \"a\\\r\n", Limits{}, msgUnbalanced, true},
	{"double quote followed by text", "SET \"a\"b c\r\n", Limits{}, msgUnbalanced, true},
	{"single quote followed by text", "SET 'a'b c\r\n", Limits{}, msgUnbalanced, true},
	{"two quoted parts", "SET \"a\"\"b\"\r\n", Limits{}, msgUnbalanced, true},
	{"too big mbulk count", "*" + strings.Repeat("1", 64<<10+1), Limits{}, msgTooBigMbulk, true},
	{"mbulk count not a number", "*x\r\n", Limits{}, msgInvalidMbulkLen, true},
	{"mbulk count empty", "*\r\n", Limits{}, msgInvalidMbulkLen, true},
	{"mbulk count leading zero", "*01\r\n", Limits{}, msgInvalidMbulkLen, true},
	{"mbulk count plus sign", "*+1\r\n", Limits{}, msgInvalidMbulkLen, true},
	{"mbulk count minus zero", "*-0\r\n", Limits{}, msgInvalidMbulkLen, true},
	{"mbulk count space", "* 1\r\n", Limits{}, msgInvalidMbulkLen, true},
	{"mbulk count over INT_MAX", "*2147483648\r\n", Limits{}, msgInvalidMbulkLen, true},
	{"mbulk count over limit", "*3\r\n", Limits{MaxMultiBulkLen: 2}, msgInvalidMbulkLen, false},
	{"mbulk count LF only", "*1\n$4\r\nPING\r\n", Limits{}, msgInvalidMbulkLen, true},
	{"mbulk count CR without LF", "*1\rx$4\r\nPING\r\n", Limits{}, msgInvalidMbulkLen, false},
	{"too big bulk count", "*1\r\n$" + strings.Repeat("1", 64<<10), Limits{}, msgTooBigBulkCount, true},
	{"expected dollar", "*1\r\n+PING\r\n", Limits{}, "Protocol error: expected '$', got '+'", true},
	{"expected dollar got CR", "*1\r\n\r\n", Limits{}, "Protocol error: expected '$', got '\r'", true},
	{"expected dollar second arg", "*2\r\n$3\r\nGET\r\n:1\r\n", Limits{}, "Protocol error: expected '$', got ':'", true},
	{"bulk length negative", "*1\r\n$-1\r\n", Limits{}, msgInvalidBulkLen, true},
	{"bulk length not a number", "*1\r\n$x\r\n", Limits{}, msgInvalidBulkLen, true},
	{"bulk length leading zero", "*1\r\n$04\r\nPING\r\n", Limits{}, msgInvalidBulkLen, true},
	{"bulk length over 512 MiB", "*1\r\n$536870913\r\n", Limits{}, msgInvalidBulkLen, true},
	{"bulk length over limit", "*1\r\n$5\r\n", Limits{MaxBulkLen: 4}, msgInvalidBulkLen, false},
	{"bulk length CR without LF", "*1\r\n$4\rxPING\r\n", Limits{}, msgInvalidBulkLen, false},
	{"bulk not followed by CRLF", "*1\r\n$4\r\nPINGxx", Limits{}, msgBulkNotTerminated, false},
	{"frame over MaxFrameLen", "*2\r\n$3\r\nSET\r\n$20\r\n", Limits{MaxFrameLen: 32}, "Protocol error: request larger than 32 bytes", false},
	{"count cannot fit MaxFrameLen", "*100\r\n", Limits{MaxFrameLen: 64}, "Protocol error: request larger than 64 bytes", false},
	{"inline over MaxFrameLen", "PING aaaaaaaa\r\n", Limits{MaxFrameLen: 8}, "Protocol error: request larger than 8 bytes", false},
	// 3000 arguments fit 64 KiB at 6 bytes each, but not with the index
	// the reader keeps for the 1976 beyond the first 1024.
	{"arguments and their index over MaxFrameLen", "*3000\r\n", Limits{MaxFrameLen: 64 << 10},
		"Protocol error: request larger than 65536 bytes, counting 40 bytes of memory for each argument after the first 1024", false},
}

func TestReadCommandErrors(t *testing.T) {
	for _, tt := range commandErrorTests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewReader(strings.NewReader(tt.in), 0, tt.lim)
			var c Command
			err := r.ReadCommand(&c)
			var pe *ProtocolError
			if !errors.As(err, &pe) {
				t.Fatalf("ReadCommand = %v (args %q), want ProtocolError %q", err, c.Args, tt.msg)
			}
			if pe.Msg != tt.msg {
				t.Errorf("Msg = %q, want %q", pe.Msg, tt.msg)
			}
			if want := "resp: " + tt.msg; err.Error() != want {
				t.Errorf("Error() = %q, want %q", err.Error(), want)
			}
		})
	}
}

func TestReadCommandSkipsEmpty(t *testing.T) {
	in := "\r\n\n   \t\r\n*0\r\n*-1\r\n*-5\r\nPING\r\n\r\n*0\r\n"
	r := NewReader(strings.NewReader(in), 0, Limits{})
	cmds, err := readAllCommands(t, r)
	if err != io.EOF {
		t.Fatalf("err = %v, want io.EOF", err)
	}
	if len(cmds) != 1 || string(cmds[0].Raw) != "PING\r\n" {
		t.Fatalf("got %+v, want just PING", cmds)
	}
}

func TestReadCommandEOF(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want error
	}{
		{"empty", "", io.EOF},
		{"after skipped lines", "\r\n*0\r\n", io.EOF},
		{"inside inline", "PIN", io.ErrUnexpectedEOF},
		{"inside header", "*1\r", io.ErrUnexpectedEOF},
		{"inside payload", "*1\r\n$4\r\nPI", io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewReader(strings.NewReader(tt.in), 0, Limits{})
			var c Command
			if err := r.ReadCommand(&c); err != tt.want {
				t.Errorf("ReadCommand = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestBufferedCommandKeepsEarlierSlices(t *testing.T) {
	var in []byte
	want := []string{"GET", "SET", "MSET", "DEL", "INCR", "ECHO"}
	for i, name := range want {
		if i%2 == 0 {
			in = AppendCommand(in, args(name, "key-"+name, strings.Repeat(name, 10)))
		} else {
			// Quoted inline arguments live in each Command's own scratch.
			in = append(in, name+` "key-`+name+`" '`+strings.Repeat(name, 10)+"'\r\n"...)
		}
	}
	in = append(in, "*2\r\n$3\r\nGET\r\n$2\r\nab"...) // a partial command stays buffered

	r := NewReader(bytes.NewReader(in), 0, Limits{})
	cmds := make([]Command, len(want))
	if err := r.ReadCommand(&cmds[0]); err != nil {
		t.Fatal(err)
	}
	for i := 1; i < len(cmds); i++ {
		ok, err := r.BufferedCommand(&cmds[i])
		if !ok || err != nil {
			t.Fatalf("BufferedCommand %d = %v, %v", i, ok, err)
		}
	}
	if ok, err := r.BufferedCommand(new(Command)); ok || err != nil {
		t.Fatalf("BufferedCommand on a partial frame = %v, %v, want false, nil", ok, err)
	}
	for i, c := range cmds {
		name := want[i]
		if !equalArgs(c.Args, args(name, "key-"+name, strings.Repeat(name, 10))) {
			t.Errorf("command %d changed: %q", i, c.Args)
		}
	}
	// The partial frame is still there for ReadCommand.
	if got := r.Buffered(); got != len("*2\r\n$3\r\nGET\r\n$2\r\nab") {
		t.Errorf("Buffered() = %d after the complete commands", got)
	}
	var c Command
	if err := r.ReadCommand(&c); err != io.ErrUnexpectedEOF {
		t.Errorf("ReadCommand on the partial frame = %v, want io.ErrUnexpectedEOF", err)
	}
}

func TestBufferedCommandError(t *testing.T) {
	r := NewReader(strings.NewReader("PING\r\n*1\r\n+x\r\n"), 0, Limits{})
	var c Command
	if err := r.ReadCommand(&c); err != nil {
		t.Fatal(err)
	}
	ok, err := r.BufferedCommand(&c)
	var pe *ProtocolError
	if ok || !errors.As(err, &pe) {
		t.Fatalf("BufferedCommand = %v, %v, want a ProtocolError", ok, err)
	}
}

// TestBufferedCommandResumes checks that a frame BufferedCommand saw in part
// is finished by ReadCommand without losing what was scanned.
func TestBufferedCommandResumes(t *testing.T) {
	first := "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nvalue\r\n"
	r := NewReader(&chunkReader{data: []byte(first), sizes: []int{20}}, 0, Limits{})
	var c Command
	if ok, err := r.BufferedCommand(&c); ok || err != nil {
		t.Fatalf("BufferedCommand before any read = %v, %v", ok, err)
	}
	if err := r.fill(1); err != nil { // one read of 20 bytes: a partial frame
		t.Fatal(err)
	}
	if ok, err := r.BufferedCommand(&c); ok || err != nil {
		t.Fatalf("BufferedCommand on a partial frame = %v, %v", ok, err)
	}
	if err := r.ReadCommand(&c); err != nil {
		t.Fatal(err)
	}
	if string(c.Raw) != first || !equalArgs(c.Args, args("SET", "k", "value")) {
		t.Errorf("got %q %q", c.Raw, c.Args)
	}
}

func TestUnauthenticatedLimits(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"too many elements", "*11\r\n", "Protocol error: unauthenticated multibulk length"},
		{"bulk too long", "*2\r\n$4\r\nAUTH\r\n$16385\r\n", "Protocol error: unauthenticated bulk length"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewReader(strings.NewReader(tt.in), 0, Limits{Unauthenticated: true})
			var cmd Command
			err := r.ReadCommand(&cmd)
			var pe *ProtocolError
			if !errors.As(err, &pe) || pe.Msg != tt.want {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
	// Within the limits, and after SetLimits lifts them.
	in := "*2\r\n$4\r\nAUTH\r\n$2\r\npw\r\n*1\r\n$16385\r\n" + strings.Repeat("x", 16385) + "\r\n"
	r := NewReader(strings.NewReader(in), 0, Limits{Unauthenticated: true})
	var cmd Command
	if err := r.ReadCommand(&cmd); err != nil || string(cmd.Name()) != "AUTH" {
		t.Fatalf("AUTH: %v", err)
	}
	r.SetLimits(Limits{})
	if err := r.ReadCommand(&cmd); err != nil || len(cmd.Args[0]) != 16385 {
		t.Fatalf("after SetLimits: %v", err)
	}
}

// A command's arguments are dropped when the next one is read: one left
// in the reused backing array past the new length kept the buffer it
// points into alive, so a connection that once sent a 1 MiB value held
// a 1 MiB buffer until it sent a command with as many arguments (a soak
// test found 50 idle clients holding 50 MB). Each parse path (general,
// short, inline, empty multibulk) leaves no argument past Args.
func TestCommandDropsPreviousArguments(t *testing.T) {
	big := strings.Repeat("v", 1<<20)
	in := "*4\r\n$4\r\nMSET\r\n$1\r\nk\r\n$" + fmt.Sprint(len(big)) + "\r\n" + big + "\r\n$1\r\nx\r\n" + // general
		"*2\r\n$3\r\nGET\r\n$1\r\na\r\n" + // short
		"*4\r\n$4\r\nMSET\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n" +
		"PING\r\n" + // inline
		"*3\r\n$3\r\nSET\r\n$1\r\na\r\n$1\r\nb\r\n" +
		"*1\r\n$" + fmt.Sprint(len(big)) + "\r\n" + big + "\r\n" + // general, one argument
		"*0\r\n*1\r\n$4\r\nPING\r\n"
	r := NewReader(strings.NewReader(in), 0, Limits{})
	var cmd Command
	for i := 0; ; i++ {
		if err := r.ReadCommand(&cmd); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		all := cmd.args[:cap(cmd.args)]
		for j := len(cmd.Args); j < len(all); j++ {
			if all[j] != nil {
				t.Fatalf("command %d (%d arguments): the backing array still holds %d bytes at %d", i, len(cmd.Args), len(all[j]), j)
			}
		}
	}
}

// A command given back with Unread comes again, whole, from the same
// place, and the commands after it follow in order; empty lines skipped
// before it stay skipped.
func TestUnread(t *testing.T) {
	in := "*2\r\n$3\r\nGET\r\n$1\r\na\r\n\r\n*0\r\nSET b 1\r\n*1\r\n$4\r\nPING\r\n"
	r := NewReader(strings.NewReader(in), 0, Limits{})
	var c Command
	if err := r.ReadCommand(&c); err != nil || string(c.Args[0]) != "GET" {
		t.Fatalf("first: %q %v", c.Args, err)
	}
	for i := 0; i < 2; i++ {
		if ok, err := r.BufferedCommand(&c); !ok || err != nil || string(c.Raw) != "SET b 1\r\n" {
			t.Fatalf("inline, try %d: %q %v %v", i, c.Raw, ok, err)
		}
		r.Unread(&c)
	}
	if ok, _ := r.BufferedCommand(&c); !ok || string(c.Args[0]) != "SET" {
		t.Fatalf("after Unread: %q", c.Args)
	}
	if ok, _ := r.BufferedCommand(&c); !ok || string(c.Raw) != "*1\r\n$4\r\nPING\r\n" {
		t.Fatalf("next: %q", c.Raw)
	}
	r.Unread(&c)
	if r.Buffered() != len("*1\r\n$4\r\nPING\r\n") {
		t.Fatalf("%d bytes buffered after giving PING back", r.Buffered())
	}
	if err := r.ReadCommand(&c); err != nil || string(c.Raw) != "*1\r\n$4\r\nPING\r\n" {
		t.Fatalf("ReadCommand after Unread: %q %v", c.Raw, err)
	}
	if err := r.ReadCommand(&c); err != io.EOF {
		t.Fatalf("at the end: %v", err)
	}
}
