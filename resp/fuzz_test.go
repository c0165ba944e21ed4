package resp

import (
	"bytes"
	"io"
	"testing"
)

// fuzzLimits are small, so that fuzzing reaches every limit quickly.
var fuzzLimits = Limits{MaxBulkLen: 300, MaxMultiBulkLen: 40, MaxInlineLen: 70, MaxDepth: 6, MaxFrameLen: 2000}

type fuzzCommand struct {
	raw  []byte
	args [][]byte
}

// fuzzCommands reads data through r until an error. It checks that every Raw
// is the input just consumed, and that the bytes between two frames are
// frames Redis skips; it returns the commands and the final error's text.
func fuzzCommands(t *testing.T, data []byte, src *chunkReader, r *Reader, buffered bool) ([]fuzzCommand, string) {
	var out []fuzzCommand
	prev := 0
	var c Command
	var err error
	for {
		if buffered && len(out) > 0 {
			var ok bool
			if ok, err = r.BufferedCommand(&c); err == nil && !ok {
				err = r.ReadCommand(&c)
			}
		} else {
			err = r.ReadCommand(&c)
		}
		if err != nil {
			break
		}
		end := len(data) - len(src.data) - r.Buffered()
		start := end - len(c.Raw)
		if start < prev || !bytes.Equal(data[start:end], c.Raw) {
			t.Fatalf("Raw %q is not the input consumed before offset %d", c.Raw, end)
		}
		checkSkippable(t, data[prev:start])
		prev = end
		if len(c.Args) == 0 {
			t.Fatalf("command with no arguments, Raw %q", c.Raw)
		}
		if c.Inline {
			if c.Raw[0] == TypeArray || c.Raw[len(c.Raw)-1] != '\n' {
				t.Fatalf("inline Raw %q", c.Raw)
			}
		} else if re := AppendCommand(nil, c.Args); !bytes.Equal(re, c.Raw) {
			t.Fatalf("Args %q do not encode back to Raw %q", c.Args, c.Raw)
		}
		out = append(out, fuzzCommand{bytes.Clone(c.Raw), cloneArgs(c.Args)})
	}
	if err == io.EOF {
		checkSkippable(t, data[prev:])
	}
	return out, err.Error()
}

// checkSkippable fails unless gap holds only frames Redis skips: empty
// inline lines and multibulk headers with a count <= 0.
func checkSkippable(t *testing.T, gap []byte) {
	t.Helper()
	if len(gap) == 0 {
		return
	}
	if err := NewReader(bytes.NewReader(gap), 0, fuzzLimits).ReadCommand(new(Command)); err != io.EOF {
		t.Fatalf("skipped %q, which is not empty: %v", gap, err)
	}
}

func FuzzReadCommand(f *testing.F) {
	for _, s := range []string{
		"*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n",
		"PING\r\n\r\n*0\r\n*-1\r\nECHO \"a\\x41\\n\" 'b\\'c'\n",
		"*1\r\n$4\r\nPINGxx",
		"*1\r\n+x\r\n",
		"SET \"a\"b\r\n",
		"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$300\r\n",
		"\v\f \t\r\n   x\v y\r\n",
	} {
		f.Add([]byte(s), byte(3))
	}
	f.Fuzz(func(t *testing.T, data []byte, chunk byte) {
		src := &chunkReader{data: data, max: 1 + int(chunk%32)}
		got, gotErr := fuzzCommands(t, data, src, NewReader(src, 1+int(chunk/32), fuzzLimits), false)

		// Read in one piece, and through BufferedCommand, the input must
		// give the same commands and the same error.
		whole := &chunkReader{data: data}
		want, wantErr := fuzzCommands(t, data, whole, NewReader(whole, len(data)+1, fuzzLimits), true)
		if gotErr != wantErr || len(got) != len(want) {
			t.Fatalf("read in pieces: %d commands, %s; in one piece: %d commands, %s", len(got), gotErr, len(want), wantErr)
		}
		for i := range got {
			if !bytes.Equal(got[i].raw, want[i].raw) || !equalArgs(got[i].args, want[i].args) {
				t.Fatalf("command %d: in pieces %q %q, in one piece %q %q", i, got[i].raw, got[i].args, want[i].raw, want[i].args)
			}
		}
		checkShortCommands(t, data, fuzzLimits)
	})
}

// fuzzReplies reads data through r until an error. It checks that the raw
// replies, one after another, are exactly the input consumed, and returns
// them with the final error's text.
func fuzzReplies(t *testing.T, data []byte, src *chunkReader, r *Reader) ([]wantReply, string) {
	var out []wantReply
	prev := 0
	for {
		raw, typ, err := r.ReadReply()
		if err != nil {
			if err == io.EOF && prev != len(data) {
				t.Fatalf("io.EOF with %d bytes unread", len(data)-prev)
			}
			return out, err.Error()
		}
		end := prev + len(raw)
		if consumed := len(data) - len(src.data) - r.Buffered(); consumed != end || !bytes.Equal(data[prev:end], raw) {
			t.Fatalf("reply %q is not the input consumed at offset %d", raw, prev)
		}
		prev = end
		if typ == TypeAttribute || raw[0] != typ && raw[0] != TypeAttribute {
			t.Fatalf("type %q for reply %q", typ, raw)
		}
		out = append(out, wantReply{bytes.Clone(raw), typ})
	}
}

func FuzzReadReply(f *testing.F) {
	for _, s := range []string{
		"+OK\r\n-ERR x\r\n:1\r\n$3\r\nabc\r\n$-1\r\n*-1\r\n_\r\n#t\r\n,1.5\r\n(123\r\n",
		"*2\r\n%1\r\n+a\r\n~1\r\n:1\r\n>2\r\n+msg\r\n!3\r\nerr\r\n",
		"|1\r\n+a\r\n+b\r\n=7\r\ntxt:abc\r\n",
		"$?\r\n;2\r\nab\r\n;0\r\n*?\r\n:1\r\n%?\r\n+k\r\n+v\r\n.\r\n.\r\n",
		"*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n",
		"$5\r\nabc\r\n",
	} {
		f.Add([]byte(s), byte(3))
	}
	f.Fuzz(func(t *testing.T, data []byte, chunk byte) {
		src := &chunkReader{data: data, max: 1 + int(chunk%32)}
		got, gotErr := fuzzReplies(t, data, src, NewReader(src, 1+int(chunk/32), fuzzLimits))

		whole := &chunkReader{data: data}
		want, wantErr := fuzzReplies(t, data, whole, NewReader(whole, len(data)+1, fuzzLimits))
		if gotErr != wantErr || len(got) != len(want) {
			t.Fatalf("read in pieces: %d replies, %s; in one piece: %d replies, %s", len(got), gotErr, len(want), wantErr)
		}
		for i := range got {
			if !bytes.Equal(got[i].raw, want[i].raw) || got[i].typ != want[i].typ {
				t.Fatalf("reply %d: in pieces %q, in one piece %q", i, got[i].raw, want[i].raw)
			}
		}
		checkShortReplies(t, data, fuzzLimits)
	})
}
