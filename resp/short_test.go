package resp

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

// readAll reads every frame of data in one piece, with the short paths on
// or off, into one Command, and returns the frames (with their arguments
// or type) and the final error. An argument whose capacity reaches past
// it is reported as such: appending to it would overwrite the next.
func readAll(data []byte, lim Limits, replies, short bool) ([]string, string) {
	r := NewReader(bytes.NewReader(data), len(data)+1, lim)
	r.noShort = !short
	var out []string
	var c Command
	for {
		if replies {
			raw, typ, err := r.ReadReply()
			if err != nil {
				return out, err.Error()
			}
			out = append(out, fmt.Sprintf("%c %q", typ, raw))
			continue
		}
		if err := r.ReadCommand(&c); err != nil {
			return out, err.Error()
		}
		out = append(out, fmt.Sprintf("%q %q %v", c.Raw, c.Args, c.Inline))
		for _, a := range c.Args {
			if cap(a) != len(a) {
				out = append(out, fmt.Sprintf("argument %q has capacity %d", a, cap(a)))
			}
		}
	}
}

// checkShortCommands fails unless data reads the same with and without the
// short paths: the same commands, then the same error.
func checkShortCommands(t *testing.T, data []byte, lim Limits) {
	t.Helper()
	checkShort(t, data, lim, false)
}

// checkShortReplies is checkShortCommands for replies.
func checkShortReplies(t *testing.T, data []byte, lim Limits) {
	t.Helper()
	checkShort(t, data, lim, true)
}

func checkShort(t *testing.T, data []byte, lim Limits, replies bool) {
	t.Helper()
	got, gotErr := readAll(data, lim, replies, true)
	want, wantErr := readAll(data, lim, replies, false)
	if strings.Join(got, "\n") != strings.Join(want, "\n") || gotErr != wantErr {
		t.Fatalf("input %q\nshort paths: %q, %s\ngeneral parser: %q, %s", data, got, gotErr, want, wantErr)
	}
}

// The short paths take the common shapes and leave everything else, at
// their edges included, to the general parser with the same outcome.
func TestShortPathsMatchGeneralParser(t *testing.T) {
	commands := []string{
		"*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n",
		"*1\r\n$123456789\r\nx\r\n",                   // nine digits, payload missing
		"*1\r\n$1234567890\r\n",                       // ten digits: the general parser's limit
		"*01\r\n$4\r\nPING\r\n",                       // leading zero in the count
		"*1\r\n$04\r\nPING\r\n",                       // and in a length
		"*1\r\n$00\r\n\r\n",                           // zero with a leading zero
		"*1\r\n$+4\r\nPING\r\n",                       // a sign
		"*1\r\n$-1\r\n",                               // a negative length
		"*0\r\n*-1\r\n*1\r\n$4\r\nPING\r\n",           // empty multibulks are skipped
		"*1\r\n$4\r\nPINGxx",                          // payload not followed by CRLF
		"*1\r\n$4\r\nPING\r\r",                        // CR CR
		"*1\r\n$4\rxPING\r\n",                         // a length line ended by CR alone
		"*1\r\n$4\r\nPINGx\n",                         // payload ended by LF alone
		"*1\r\n$\r\n\r\n",                             // a length with no digits
		"*\r\n",                                       // a count with no digits
		"*11\r\n" + strings.Repeat("$1\r\nx\r\n", 11), // over the unauthenticated count
		"*2\r\n$4\r\nPING\r\n",                        // a missing argument
		"*1\r\n+PING\r\n",                             // a simple string as an argument
		"*41\r\n",                                     // over MaxMultiBulkLen
		"*1\r\n$301\r\n" + strings.Repeat("v", 301) + "\r\n", // over MaxBulkLen
		"*1\r\n$299\r\n" + strings.Repeat("v", 299) + "\r\n",
		"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\nv", // a partial frame at the end
		"PING\r\n*1\r\n$4\r\nPING\r\n",
	}
	for _, c := range commands {
		checkShortCommands(t, []byte(c), fuzzLimits)
		checkShortCommands(t, []byte(c), Limits{})
		checkShortCommands(t, []byte(c), Limits{MaxInlineLen: 3})
		checkShortCommands(t, []byte(c), Limits{Unauthenticated: true})
	}
	many := AppendCommand(nil, args(strings.Split(strings.Repeat("x ", shortArgs+1), " ")...))
	checkShortCommands(t, many, Limits{})

	replies := []string{
		"+OK\r\n-ERR x\r\n:1\r\n:-12\r\n$3\r\nabc\r\n$0\r\n\r\n",
		"$-1\r\n*-1\r\n*2\r\n$1\r\na\r\n:1\r\n",
		":01\r\n", ":\r\n", ":x\r\n", "+OK\n", "+\r\n", "-\r\n",
		"$3\r\nabcd\r\n", "$3\r\nab", "$01\r\na\r\n", "$1234567890\r\n",
		"$301\r\n" + strings.Repeat("v", 301) + "\r\n",
		"$?\r\n;2\r\nab\r\n;0\r\n",
		"$\r\n\r\n", "$3\r\nabc\n", "$3\r\nabc\rx", "$3\r\nabcx\n", ":1\r\n:01\r\n",
	}
	for _, c := range replies {
		checkShortReplies(t, []byte(c), fuzzLimits)
		checkShortReplies(t, []byte(c), Limits{})
	}
}

// The short paths must actually run: the benchmarks' speed depends on it.
func TestShortPathsTakeCommonFrames(t *testing.T) {
	r := NewReader(nil, 0, Limits{})
	var c Command
	if n, ok := r.shortCommand([]byte("*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n"), &c); !ok || n != 22 || string(c.Args[1]) != "key" {
		t.Fatalf("shortCommand: %d, %v, %q", n, ok, c.Args)
	}
	// A long request may arrive in many reads; the general parser resumes
	// it where it stopped instead of scanning it again from the start.
	many := AppendCommand(nil, args(strings.Split(strings.Repeat("x ", shortArgs), " ")...))
	if _, ok := r.shortCommand(many, &c); ok {
		t.Fatalf("shortCommand took a request of %d arguments", shortArgs+1)
	}
	for _, reply := range []string{"+OK\r\n", "$3\r\nabc\r\n", ":42\r\n", "-ERR x\r\n"} {
		if n := r.shortReply([]byte(reply + "+next\r\n")); n != len(reply) {
			t.Fatalf("shortReply(%q) = %d", reply, n)
		}
	}
}
