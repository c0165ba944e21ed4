package resp

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"
)

// chunkReader returns data in pieces: first the sizes listed, then random
// sizes from 1 to max, or max bytes when rng is nil, or the rest at once when
// max is 0 too; so frames are split at arbitrary boundaries.
type chunkReader struct {
	data  []byte
	sizes []int
	rng   *rand.Rand
	max   int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := len(c.data)
	switch {
	case len(c.sizes) > 0:
		n, c.sizes = c.sizes[0], c.sizes[1:]
	case c.rng != nil:
		n = 1 + c.rng.IntN(c.max)
	case c.max > 0:
		n = c.max
	}
	n = min(n, len(p), len(c.data))
	copy(p, c.data[:n])
	c.data = c.data[n:]
	return n, nil
}

// testRand returns a generator seeded from RESP_SEED, or from the clock,
// and logs the seed so that a failure can be repeated.
func testRand(t *testing.T) *rand.Rand {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("RESP_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("RESP_SEED=%q: %v", s, err)
		}
	}
	t.Logf("seed %d (rerun with RESP_SEED=%d)", seed, seed)
	return rand.New(rand.NewPCG(seed, seed))
}

func randBytes(rng *rand.Rand, n int, alphabet string) []byte {
	b := make([]byte, n)
	for i := range b {
		if alphabet == "" {
			b[i] = byte(rng.UintN(256))
		} else {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
	}
	return b
}

// randLen is mostly short, sometimes a few KiB, rarely large enough to make
// the buffer grow well past its initial size.
func randLen(rng *rand.Rand) int {
	switch p := rng.IntN(100); {
	case p < 80:
		return rng.IntN(16)
	case p < 98:
		return rng.IntN(4096)
	}
	return 100_000 + rng.IntN(200_000)
}

const plain = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789:-_."

// quoteDouble writes a as an inline argument in double quotes, with escapes
// for quotes, backslashes and anything unprintable.
func quoteDouble(a []byte) []byte {
	out := []byte{'"'}
	for _, c := range a {
		switch {
		case c == '"' || c == '\\':
			out = append(out, '\\', c)
		case c == '\n':
			out = append(out, `\n`...)
		case c == '\t':
			out = append(out, `\t`...)
		case c < 0x20 || c >= 0x7f:
			out = fmt.Appendf(out, `\x%02x`, c)
		default:
			out = append(out, c)
		}
	}
	return append(out, '"')
}

type wantCommand struct {
	raw    []byte
	args   [][]byte
	inline bool
}

// genCommands returns a stream of n random requests, with the empty frames
// Redis skips mixed in, and the commands a Reader must find in it.
func genCommands(rng *rand.Rand, n int) ([]byte, []wantCommand) {
	var stream []byte
	var want []wantCommand
	for range n {
		var w wantCommand
		switch rng.IntN(6) {
		case 0:
			skip := []string{"\r\n", "\n", "  \t \r\n", "*0\r\n", "*-1\r\n", "\v\f\n"}
			stream = append(stream, skip[rng.IntN(len(skip))]...)
			continue
		case 1, 2: // multibulk with arbitrary bytes
			for range 1 + rng.IntN(6) {
				w.args = append(w.args, randBytes(rng, randLen(rng), ""))
			}
			w.raw = AppendCommand(nil, w.args)
		case 3: // inline, plain
			for range 1 + rng.IntN(5) {
				w.args = append(w.args, randBytes(rng, 1+rng.IntN(12), plain))
				w.raw = append(w.raw, " \t"[:1+rng.IntN(2)]...)
				w.raw = append(w.raw, w.args[len(w.args)-1]...)
			}
			w.inline = true
		case 4: // inline, quoted arguments of any bytes
			for range 1 + rng.IntN(5) {
				a := randBytes(rng, rng.IntN(20), "")
				if rng.IntN(2) == 0 {
					a = randBytes(rng, rng.IntN(20), plain+" \"'\\\r\n")
				}
				w.args = append(w.args, a)
				w.raw = append(w.raw, ' ')
				w.raw = append(w.raw, quoteDouble(a)...)
			}
			w.inline = true
		case 5: // inline, single quotes
			for range 1 + rng.IntN(5) {
				a := randBytes(rng, rng.IntN(20), plain+" \"'")
				w.args = append(w.args, a)
				w.raw = append(w.raw, " '"...)
				w.raw = append(w.raw, bytes.ReplaceAll(a, []byte("'"), []byte(`\'`))...)
				w.raw = append(w.raw, '\'')
			}
			w.inline = true
		}
		if w.inline {
			w.raw = append(w.raw, []string{"\r\n", "\n"}[rng.IntN(2)]...)
		}
		stream = append(stream, w.raw...)
		want = append(want, w)
	}
	return stream, want
}

func TestReadCommandRandomChunks(t *testing.T) {
	rng := testRand(t)
	for round := range 20 {
		stream, want := genCommands(rng, 300)
		src := &chunkReader{data: stream, rng: rng, max: 1 + rng.IntN(1<<uint(rng.IntN(17)))}
		r := NewReader(src, 1+rng.IntN(256), Limits{})
		got := 0
		check := func(c *Command) {
			t.Helper()
			if got >= len(want) {
				t.Fatalf("round %d: command %d beyond the %d sent: %q", round, got, len(want), c.Raw)
			}
			w := want[got]
			if !bytes.Equal(c.Raw, w.raw) || !equalArgs(c.Args, w.args) || c.Inline != w.inline {
				t.Fatalf("round %d, command %d:\n got raw %.200q args %.200q inline %v\nwant raw %.200q args %.200q inline %v",
					round, got, c.Raw, c.Args, c.Inline, w.raw, w.args, w.inline)
			}
			got++
		}
		batch := make([]Command, 64)
		for {
			if err := r.ReadCommand(&batch[0]); err == io.EOF {
				break
			} else if err != nil {
				t.Fatalf("round %d, command %d: %v", round, got, err)
			}
			first := got
			check(&batch[0])
			// Take the rest of what is buffered, as a proxy does, then
			// check the whole batch again: nothing may have moved.
			n := 1
			for ; n < len(batch); n++ {
				ok, err := r.BufferedCommand(&batch[n])
				if err != nil {
					t.Fatalf("round %d: BufferedCommand: %v", round, err)
				}
				if !ok {
					break
				}
				check(&batch[n])
			}
			got = first
			for i := range n {
				check(&batch[i])
			}
		}
		if got != len(want) {
			t.Fatalf("round %d: read %d commands, want %d", round, got, len(want))
		}
	}
}

type wantReply struct {
	raw []byte
	typ byte
}

// genReply appends one random reply, nested at most depth deep, and returns
// its type byte (after any attribute).
func genReply(rng *rand.Rand, dst []byte, depth int) ([]byte, byte) {
	kinds := 14
	if depth <= 0 {
		kinds = 9 // scalars only
	}
	switch rng.IntN(kinds) {
	case 0:
		return AppendSimpleString(dst, string(randBytes(rng, rng.IntN(20), plain+" "))), TypeSimpleString
	case 1:
		return AppendError(dst, "ERR "+string(randBytes(rng, rng.IntN(20), plain+" "))), TypeError
	case 2:
		return AppendInt(dst, rng.Int64()-rng.Int64()), TypeInteger
	case 3:
		return AppendBulk(dst, randBytes(rng, randLen(rng), "")), TypeBulkString
	case 4:
		nulls := []string{"$-1\r\n", "*-1\r\n", "_\r\n"}
		s := nulls[rng.IntN(len(nulls))]
		return append(dst, s...), s[0]
	case 5:
		s := []string{"#t\r\n", "#f\r\n", ",3.14\r\n", ",-inf\r\n", ",nan\r\n", "(3492890328409238509324850943850943825024385\r\n"}[rng.IntN(6)]
		return append(dst, s...), s[0]
	case 6:
		b := randBytes(rng, rng.IntN(30), "")
		return append(fmt.Appendf(dst, "!%d\r\n", len(b)), append(b, '\r', '\n')...), TypeBulkError
	case 7:
		b := append([]byte("txt:"), randBytes(rng, rng.IntN(30), "")...)
		return append(fmt.Appendf(dst, "=%d\r\n", len(b)), append(b, '\r', '\n')...), TypeVerbatim
	case 8: // streamed string
		dst = append(dst, "$?\r\n"...)
		for range rng.IntN(4) {
			b := randBytes(rng, 1+rng.IntN(10), "")
			dst = append(fmt.Appendf(dst, ";%d\r\n", len(b)), append(b, '\r', '\n')...)
		}
		return append(dst, ";0\r\n"...), TypeBulkString
	case 9, 10: // counted aggregate
		t := "*%~>"[rng.IntN(4)]
		n := rng.IntN(5)
		dst = fmt.Appendf(dst, "%c%d\r\n", t, n)
		if t == TypeMap {
			n *= 2
		}
		for range n {
			dst, _ = genReply(rng, dst, depth-1)
		}
		return dst, t
	case 11: // streamed aggregate
		t := "*%~>"[rng.IntN(4)]
		dst = fmt.Appendf(dst, "%c?\r\n", t)
		n := rng.IntN(4)
		if t == TypeMap {
			n *= 2
		}
		for range n {
			dst, _ = genReply(rng, dst, depth-1)
		}
		return append(dst, ".\r\n"...), t
	case 12: // a big flat array, to span many reads
		n := rng.IntN(2000)
		dst = AppendArrayLen(dst, n)
		for i := range n {
			dst = AppendInt(dst, int64(i))
		}
		return dst, TypeArray
	default: // attribute, then the reply it annotates
		n := rng.IntN(3)
		dst = fmt.Appendf(dst, "|%d\r\n", n)
		for range 2 * n {
			dst, _ = genReply(rng, dst, depth-1)
		}
		return genReply(rng, dst, depth-1)
	}
}

func TestReadReplyRandomChunks(t *testing.T) {
	rng := testRand(t)
	for round := range 20 {
		var stream []byte
		var want []wantReply
		for range 200 {
			start := len(stream)
			var typ byte
			stream, typ = genReply(rng, stream, 1+rng.IntN(6))
			want = append(want, wantReply{raw: stream[start:], typ: typ})
		}
		src := &chunkReader{data: stream, rng: rng, max: 1 + rng.IntN(1<<uint(rng.IntN(17)))}
		r := NewReader(src, 1+rng.IntN(256), Limits{})
		for i, w := range want {
			raw, typ, err := r.ReadReply()
			if err != nil {
				t.Fatalf("round %d, reply %d: %v", round, i, err)
			}
			if !bytes.Equal(raw, w.raw) || typ != w.typ {
				t.Fatalf("round %d, reply %d:\n got %c %.200q\nwant %c %.200q", round, i, typ, raw, w.typ, w.raw)
			}
		}
		if _, _, err := r.ReadReply(); err != io.EOF {
			t.Fatalf("round %d: after the last reply: %v, want io.EOF", round, err)
		}
	}
}
