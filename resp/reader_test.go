package resp

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
)

// readSizes records how much room each Read was given.
type readSizes struct {
	rd    io.Reader
	sizes []int
}

func (s *readSizes) Read(p []byte) (int, error) {
	s.sizes = append(s.sizes, len(p))
	return s.rd.Read(p)
}

func TestBufferShrinksAfterLargeFrame(t *testing.T) {
	const size = 64
	big := AppendBulk(nil, bytes.Repeat([]byte("x"), 1<<20))
	t.Run("reply", func(t *testing.T) {
		in := append(append([]byte("+a\r\n"), big...), "+b\r\n+c\r\n"...)
		r := NewReader(bytes.NewReader(in), size, Limits{})
		for i := range 4 {
			if _, _, err := r.ReadReply(); err != nil {
				t.Fatal(err)
			}
			if i == 1 && len(r.buf) < len(big) {
				t.Fatalf("buffer %d bytes holds a %d-byte reply", len(r.buf), len(big))
			}
		}
		if len(r.buf) != size {
			t.Errorf("buffer %d bytes after the large reply was consumed, want %d", len(r.buf), size)
		}
	})
	t.Run("command", func(t *testing.T) {
		in := append(AppendCommand(nil, [][]byte{[]byte("SET"), []byte("k"), bytes.Repeat([]byte("x"), 1<<20)}), "PING\r\n"...)
		r := NewReader(bytes.NewReader(in), size, Limits{})
		var c Command
		if err := r.ReadCommand(&c); err != nil {
			t.Fatal(err)
		}
		if len(r.buf) < 1<<20 {
			t.Fatalf("buffer %d bytes holds a 1 MiB command", len(r.buf))
		}
		if err := r.ReadCommand(&c); err != nil || string(c.Raw) != "PING\r\n" {
			t.Fatalf("ReadCommand = %q, %v", c.Raw, err)
		}
		if len(r.buf) != size {
			t.Errorf("buffer %d bytes after the large command was consumed, want %d", len(r.buf), size)
		}
	})
}

// TestBufferKeptForLargeFrames checks that a stream of large (but not huge)
// frames reuses one grown buffer, which still goes back to the initial size
// once small frames have followed for a while.
func TestBufferKeptForLargeFrames(t *testing.T) {
	const size = 64
	big := AppendBulk(nil, bytes.Repeat([]byte("x"), 100<<10))
	var in []byte
	for range 5 {
		in = append(in, big...)
	}
	for range keepReads + 1 {
		in = append(in, "+a\r\n"...)
	}
	// Reads of up to 64 KiB for the large replies, then one read per
	// small reply.
	src := &chunkReader{data: in, max: 4}
	for left := 5 * len(big); left > 0; left -= 64 << 10 {
		src.sizes = append(src.sizes, min(left, 64<<10))
	}
	r := NewReader(src, size, Limits{})
	var first *byte
	for i := range 5 {
		if _, _, err := r.ReadReply(); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = &r.buf[0]
		} else if &r.buf[0] != first {
			t.Fatalf("large reply %d was read into a new buffer", i)
		}
	}
	for range keepReads + 1 {
		if _, _, err := r.ReadReply(); err != nil {
			t.Fatal(err)
		}
	}
	if len(r.buf) != size {
		t.Errorf("buffer %d bytes after %d small reads, want %d", len(r.buf), keepReads, size)
	}
}

// TestReadAllocs checks that reading frames allocates nothing in steady
// state, buffers and scratch having reached their size.
func TestReadAllocs(t *testing.T) {
	get := pipeline(AppendCommand(nil, args("GET", "key")), 50)
	inline := pipeline([]byte("SET k \"a b\" 'c'\r\n"), 50)
	replies := []byte("+OK\r\n$3\r\nabc\r\n*2\r\n:1\r\n%1\r\n+a\r\n_\r\n|1\r\n+a\r\n+b\r\n>1\r\n$?\r\n;1\r\na\r\n;0\r\n")
	var c Command
	tests := []struct {
		name string
		src  []byte
		read func(r *Reader) error
	}{
		{"ReadCommand", get, func(r *Reader) error { return r.ReadCommand(&c) }},
		{"ReadCommand inline", inline, func(r *Reader) error { return r.ReadCommand(&c) }},
		{"BufferedCommand", get, func(r *Reader) error {
			ok, err := r.BufferedCommand(&c)
			if err == nil && !ok {
				err = r.ReadCommand(&c)
			}
			return err
		}},
		{"ReadReply", replies, func(r *Reader) error { _, _, err := r.ReadReply(); return err }},
		{"ReadReply 100 KiB bulk", AppendBulk(nil, make([]byte, 100<<10)), func(r *Reader) error { _, _, err := r.ReadReply(); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewReader(&loopReader{data: tt.src}, 0, Limits{})
			for range 100 { // warm up: grow the buffer and the scratch
				if err := tt.read(r); err != nil {
					t.Fatal(err)
				}
			}
			allocs := testing.AllocsPerRun(1000, func() {
				if err := tt.read(r); err != nil {
					t.Fatal(err)
				}
			})
			if allocs != 0 {
				t.Errorf("%v allocations per frame, want 0", allocs)
			}
		})
	}
}

// TestLargeFrameCopiesLinearly: a bulk far larger than growAhead, read
// in 64 KiB pieces, costs buffers adding up to a small multiple of its
// size. A growth rule that reallocated on every read once the buffer was
// half full allocated 4 GiB for a 32 MiB value (a review caught it).
func TestLargeFrameCopiesLinearly(t *testing.T) {
	const size = 32 << 20
	frame := AppendBulk(nil, bytes.Repeat([]byte("x"), size))
	for _, tt := range []struct {
		name string
		read func(r *Reader) (int, error)
	}{
		{"reply", func(r *Reader) (int, error) { raw, _, err := r.ReadReply(); return len(raw), err }},
		{"command", func(r *Reader) (int, error) {
			var cmd Command
			err := r.ReadCommand(&cmd)
			return len(cmd.Raw), err
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			in := frame
			if tt.name == "command" {
				in = AppendCommand(nil, [][]byte{[]byte("SET"), []byte("k"), bytes.Repeat([]byte("x"), size)})
			}
			r := NewReader(&chunkReader{data: in, max: 64 << 10}, 1024, Limits{MaxFrameLen: 1 << 30, MaxBulkLen: 1 << 30})
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			n, err := tt.read(r)
			runtime.ReadMemStats(&after)
			if err != nil || n != len(in) {
				t.Fatalf("read %d of %d bytes: %v", n, len(in), err)
			}
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 5*uint64(len(in)) {
				t.Fatalf("%d MiB allocated to read a %d MiB frame", alloc>>20, len(in)>>20)
			}
		})
	}
}

// TestBulkGrowsInOneStep checks that a bulk of known length, up to
// growAhead, gets room for all of it with the next read, instead of the
// buffer doubling its way there.
func TestBulkGrowsInOneStep(t *testing.T) {
	payload := bytes.Repeat([]byte("v"), 1<<20)
	for _, tt := range []struct {
		name string
		in   []byte
	}{
		{"reply", AppendBulk(nil, payload)},
		{"command", AppendCommand(nil, [][]byte{[]byte("SET"), payload})},
	} {
		t.Run(tt.name, func(t *testing.T) {
			src := &readSizes{rd: &chunkReader{data: tt.in, sizes: []int{32}}}
			r := NewReader(src, 32, Limits{})
			var err error
			if tt.name == "reply" {
				_, _, err = r.ReadReply()
			} else {
				err = r.ReadCommand(new(Command))
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(src.sizes) != 2 || src.sizes[1] < len(tt.in)-32 {
				t.Errorf("reads were given %v bytes of room; want the second to take the rest (%d)", src.sizes, len(tt.in)-32)
			}
		})
	}
}

// hookReader calls before ahead of every Read.
type hookReader struct {
	rd     io.Reader
	before func()
}

func (h *hookReader) Read(p []byte) (int, error) {
	h.before()
	return h.rd.Read(p)
}

// TestScanResumes checks that a frame arriving in many reads is scanned once:
// whenever the Reader reads more, its scan position is within a line (8
// bytes here) of the end of the data, not back at the frame start.
func TestScanResumes(t *testing.T) {
	const n = 20000
	check := func(t *testing.T, r *Reader, pos *int) func() {
		return func() {
			if buffered := r.w - r.r; *pos+8 < buffered {
				t.Fatalf("reading more with the scan at %d of %d buffered bytes", *pos, buffered)
			}
		}
	}
	t.Run("reply", func(t *testing.T) {
		in := AppendArrayLen(nil, n)
		for i := range n {
			in = AppendInt(in, int64(i%10))
		}
		h := &hookReader{rd: &chunkReader{data: in, max: 7}}
		r := NewReader(h, 16, Limits{})
		h.before = check(t, r, &r.reply.pos)
		if raw, _, err := r.ReadReply(); err != nil || len(raw) != len(in) {
			t.Fatalf("ReadReply = %d bytes, %v", len(raw), err)
		}
	})
	t.Run("command", func(t *testing.T) {
		a := make([][]byte, n)
		for i := range a {
			a[i] = []byte{'a' + byte(i%26)}
		}
		in := AppendCommand(nil, a)
		h := &hookReader{rd: &chunkReader{data: in, max: 7}}
		r := NewReader(h, 16, Limits{})
		h.before = check(t, r, &r.cmd.pos)
		var c Command
		if err := r.ReadCommand(&c); err != nil || !equalArgs(c.Args, a) {
			t.Fatalf("ReadCommand = %d args, %v", len(c.Args), err)
		}
	})
}

func TestLargeArrayInSmallReads(t *testing.T) {
	const n = 1_000_000
	in := AppendArrayLen(nil, n)
	for range n {
		in = AppendBulkString(in, "v")
	}
	r := NewReader(iotest.HalfReader(bytes.NewReader(in)), 0, Limits{})
	raw, typ, err := r.ReadReply()
	if err != nil || typ != TypeArray || len(raw) != len(in) {
		t.Fatalf("ReadReply = %d bytes, %c, %v", len(raw), typ, err)
	}
}

func TestReaderSources(t *testing.T) {
	in := "*1\r\n$4\r\nPING\r\nECHO a\r\n"
	tests := []struct {
		name string
		rd   io.Reader
	}{
		{"one byte at a time", iotest.OneByteReader(strings.NewReader(in))},
		{"EOF with the last data", iotest.DataErrReader(strings.NewReader(in))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmds, err := readAllCommands(t, NewReader(tt.rd, 1, Limits{}))
			if err != io.EOF || len(cmds) != 2 || string(cmds[1].Raw) != "ECHO a\r\n" {
				t.Fatalf("got %d commands, %v", len(cmds), err)
			}
		})
	}
}

func TestReadErrorInsideFrame(t *testing.T) {
	r := NewReader(iotest.TimeoutReader(strings.NewReader("*1\r\n$4\r\nPI")), 4, Limits{})
	var c Command
	if err := r.ReadCommand(&c); err != iotest.ErrTimeout {
		t.Fatalf("ReadCommand = %v, want %v", err, iotest.ErrTimeout)
	}
	if err := r.ReadCommand(&c); err != iotest.ErrTimeout {
		t.Fatalf("ReadCommand again = %v, want the same error", err)
	}
}

type emptyReader struct{}

func (emptyReader) Read([]byte) (int, error) { return 0, nil }

func TestNoProgress(t *testing.T) {
	r := NewReader(emptyReader{}, 0, Limits{})
	if _, _, err := r.ReadReply(); !errors.Is(err, io.ErrNoProgress) {
		t.Fatalf("ReadReply = %v, want io.ErrNoProgress", err)
	}
}

func TestReset(t *testing.T) {
	r := NewReader(strings.NewReader("*2\r\n$3\r\nGET\r\n$3\r\nke"), 0, Limits{})
	var c Command
	if err := r.ReadCommand(&c); err != io.ErrUnexpectedEOF {
		t.Fatalf("ReadCommand = %v", err)
	}
	r.Reset(strings.NewReader("PING\r\n"))
	if r.Buffered() != 0 {
		t.Fatalf("Buffered() = %d after Reset", r.Buffered())
	}
	if err := r.ReadCommand(&c); err != nil || string(c.Raw) != "PING\r\n" {
		t.Fatalf("after Reset: %q, %v", c.Raw, err)
	}
}

func TestBuffered(t *testing.T) {
	r := NewReader(strings.NewReader("+a\r\n+b\r\n+c"), 0, Limits{})
	for _, want := range []int{6, 2} {
		if _, _, err := r.ReadReply(); err != nil {
			t.Fatal(err)
		}
		if got := r.Buffered(); got != want {
			t.Errorf("Buffered() = %d, want %d", got, want)
		}
	}
}

func TestLimitsWithDefaults(t *testing.T) {
	got := Limits{MaxDepth: 7, MaxBulkLen: -1}.WithDefaults()
	want := Limits{
		MaxBulkLen:      512 << 20,
		MaxMultiBulkLen: 2147483647,
		MaxInlineLen:    64 << 10,
		MaxDepth:        7,
		MaxFrameLen:     1 << 30,
	}
	if got != want {
		t.Errorf("WithDefaults() = %+v, want %+v", got, want)
	}
}

// wouldBlock hands out one chunk per Read and says ErrWouldBlock between
// chunks, as a non-blocking socket does between packets.
type wouldBlock struct {
	chunks [][]byte
	ready  bool
}

func (w *wouldBlock) Read(p []byte) (int, error) {
	if !w.ready {
		return 0, ErrWouldBlock
	}
	w.ready = false
	if len(w.chunks) == 0 {
		return 0, io.EOF
	}
	n := copy(p, w.chunks[0])
	w.chunks[0] = w.chunks[0][n:]
	if len(w.chunks[0]) == 0 {
		w.chunks = w.chunks[1:]
	}
	return n, nil
}

// A non-blocking source: ErrWouldBlock reaches the caller each time there
// is no data, is not kept, and the frame split across the gaps is read
// whole once the rest arrives.
func TestWouldBlockIsNotKept(t *testing.T) {
	in := "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nvalue\r\n*1\r\n$4\r\nPING\r\n"
	var chunks [][]byte
	for i := 0; i < len(in); i += 7 {
		chunks = append(chunks, []byte(in[i:min(i+7, len(in))]))
	}
	src := &wouldBlock{chunks: chunks}
	r := NewReader(src, 16, Limits{})
	var cmd Command
	var got []string
	blocked := 0
	for len(got) < 2 {
		if blocked > 10*len(chunks) {
			t.Fatalf("no progress: %d ErrWouldBlock for %d chunks", blocked, len(chunks))
		}
		err := r.ReadCommand(&cmd)
		if err == ErrWouldBlock {
			blocked++
			src.ready = true
			continue
		}
		if err != nil {
			t.Fatalf("after %d commands: %v", len(got), err)
		}
		got = append(got, string(bytes.Join(cmd.Args, []byte(" "))))
	}
	if got[0] != "SET k value" || got[1] != "PING" {
		t.Fatalf("commands = %q", got)
	}
	if blocked < len(chunks) {
		t.Fatalf("ErrWouldBlock returned %d times for %d chunks", blocked, len(chunks))
	}
	src.ready = true
	if err := r.ReadCommand(&cmd); err != io.EOF {
		t.Fatalf("at the end: %v, want EOF", err)
	}
}

// TestDeclaredLengthIsNotAllocated: a frame that declares a huge bulk
// and sends a few bytes of it costs about growAhead of buffer, not the
// declared length; the buffer grows as the bytes arrive, and a real large
// bulk still reads whole.
func TestDeclaredLengthIsNotAllocated(t *testing.T) {
	head := []byte("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$536870000\r\n12345678")
	r := NewReader(&wouldBlock{chunks: [][]byte{head}, ready: true}, 1024, Limits{})
	if err := r.ReadCommand(new(Command)); err != ErrWouldBlock {
		t.Fatalf("ReadCommand: %v, want ErrWouldBlock", err)
	}
	if c := cap(r.buf); c > 2*growAhead {
		t.Fatalf("buffer of %d bytes for %d received", c, len(head))
	}
	// Trickled, a byte per read: the buffer grows with what arrives,
	// not by a doubling per read.
	src := &wouldBlock{}
	r = NewReader(src, 1024, Limits{})
	bufs := 0
	var last *byte
	for i := range 40 {
		b := []byte("v")
		if i < len(head) {
			b = head[i : i+1]
		}
		src.chunks, src.ready = [][]byte{b}, true
		if err := r.ReadCommand(new(Command)); err != ErrWouldBlock {
			t.Fatalf("ReadCommand after %d bytes: %v, want ErrWouldBlock", i+1, err)
		}
		if c := cap(r.buf); c > 2*growAhead {
			t.Fatalf("buffer of %d bytes for %d received a byte at a time", c, i+1)
		}
		if &r.buf[0] != last {
			last = &r.buf[0]
			bufs++
		}
	}
	if bufs > 2 {
		t.Fatalf("%d buffers for 40 bytes received a byte at a time", bufs)
	}

	payload := bytes.Repeat([]byte("v"), 5*growAhead+7)
	in := AppendCommand(nil, [][]byte{[]byte("SET"), []byte("k"), payload})
	r = NewReader(&chunkReader{data: in, sizes: []int{64 << 10}}, 1024, Limits{})
	var cmd Command
	if err := r.ReadCommand(&cmd); err != nil {
		t.Fatal(err)
	}
	if len(cmd.Args) != 3 || !bytes.Equal(cmd.Args[2], payload) {
		t.Fatalf("a %d-byte value read back as %d bytes", len(payload), len(cmd.Args[2]))
	}
}

// After a large frame, a connection that goes quiet keeps neither the
// grown buffer nor the command that points into it: ReadCommand drops the
// command before it waits, and Release drops the buffer when nothing is
// buffered (an event loop calls it, as it reads only once more arrives).
func TestQuietConnectionReleasesLargeBuffer(t *testing.T) {
	big := strings.Repeat("v", 1<<20)
	frame := "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$" + strconv.Itoa(len(big)) + "\r\n" + big + "\r\n"
	src := &wouldBlock{chunks: [][]byte{[]byte(frame)}}
	r := NewReader(src, 1024, Limits{})
	var cmd Command
	readCommand(t, r, src, &cmd)
	if len(cmd.Args) != 3 || len(cmd.Args[2]) != len(big) || len(r.buf) <= keepMax {
		t.Fatalf("read %d arguments into a buffer of %d bytes", len(cmd.Args), len(r.buf))
	}

	// Nothing more has arrived: the reader is asked again and would block.
	if err := r.ReadCommand(&cmd); err != ErrWouldBlock {
		t.Fatalf("ReadCommand with nothing sent: %v", err)
	}
	all := cmd.args[:cap(cmd.args)]
	for i, a := range all {
		if a != nil {
			t.Fatalf("waiting, the command still holds %d bytes at argument %d", len(a), i)
		}
	}
	if cmd.Raw != nil || cmd.Args != nil {
		t.Fatal("waiting, the command still holds its frame")
	}
	if len(r.buf) != 1024 {
		t.Fatalf("waiting, the reader holds a buffer of %d bytes", len(r.buf))
	}

	// The same without a read: Release. With a 200 KiB initial buffer,
	// the one grown for a 300 KiB frame has room for the PING after it.
	mid := strings.Repeat("v", 300<<10)
	frame = "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$" + strconv.Itoa(len(mid)) + "\r\n" + mid + "\r\n"
	src.chunks = [][]byte{[]byte(frame + "*1\r\n$4\r\nPING\r\n")}
	r = NewReader(src, 200<<10, Limits{})
	readCommand(t, r, src, &cmd)
	if r.Release() {
		t.Fatal("Release dropped a buffer holding an unread command")
	}
	if ok, err := r.BufferedCommand(&cmd); !ok || err != nil || string(cmd.Args[0]) != "PING" {
		t.Fatalf("the buffered PING: %v %v", ok, err)
	}
	if !r.Release() || len(r.buf) != 200<<10 || r.Buffered() != 0 {
		t.Fatalf("Release with nothing buffered left a buffer of %d bytes", len(r.buf))
	}
	if r.Release() {
		t.Fatal("Release reported a second release")
	}
}

// readCommand reads one command from src, a chunk each time it would
// block, as an event loop would once told the socket is readable.
func readCommand(t *testing.T, r *Reader, src *wouldBlock, cmd *Command) {
	t.Helper()
	for {
		src.ready = true
		err := r.ReadCommand(cmd)
		if err == nil {
			return
		}
		if err != ErrWouldBlock {
			t.Fatal(err)
		}
	}
}

// TestSpaceAndFilledReadAsRead: bytes a caller reads into Space and hands
// over with Filled parse as if rd had returned them, a frame split
// between such reads included, after a frame already taken (so Space must
// move the rest to the front), and the Reader goes on to rd when the
// buffer runs out.
func TestSpaceAndFilledReadAsRead(t *testing.T) {
	w := &wouldBlock{}
	r := NewReader(w, 32, Limits{})
	put := func(s string) {
		t.Helper()
		p := r.Space()
		if len(p) < len(s) {
			t.Fatalf("Space has %d bytes of room, want %d", len(p), len(s))
		}
		r.Filled(copy(p, s))
	}
	var cmd Command
	put("*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nGET\r\n$1")
	if err := r.ReadCommand(&cmd); err != nil || string(cmd.Args[0]) != "PING" {
		t.Fatalf("first: %q %v", cmd.Args, err)
	}
	if ok, err := r.BufferedCommand(&cmd); ok || err != nil {
		t.Fatalf("a partial GET parsed: %v %v", ok, err)
	}
	put("\r\nk\r\n") // Space moves the partial GET to the front first
	if err := r.ReadCommand(&cmd); err != nil || len(cmd.Args) != 2 || string(cmd.Args[1]) != "k" {
		t.Fatalf("split GET: %q %v", cmd.Args, err)
	}
	w.chunks, w.ready = [][]byte{[]byte("*1\r\n$4\r\nQUIT\r\n")}, true
	if err := r.ReadCommand(&cmd); err != nil || string(cmd.Args[0]) != "QUIT" {
		t.Fatalf("from rd after Filled: %q %v", cmd.Args, err)
	}
	if err := r.ReadCommand(&cmd); err != ErrWouldBlock {
		t.Fatalf("with nothing left: %v, want ErrWouldBlock", err)
	}
	if p := r.Space(); len(p) == 0 {
		t.Fatal("no room in an empty buffer")
	}
}

// TestSpaceGoesBackToTheSmallBuffer: a Reader fed through Space and
// Filled gives up a buffer grown for a large frame as one that reads
// does, after keepReads small reads; an event loop that reads for its
// clients would otherwise keep up to keepMax bytes per connection that
// once sent a large command.
func TestSpaceGoesBackToTheSmallBuffer(t *testing.T) {
	w := &wouldBlock{}
	r := NewReader(w, 64, Limits{})
	big := "*2\r\n$3\r\nSET\r\n$100000\r\n" + strings.Repeat("v", 100000) + "\r\n"
	var cmd Command
	for off := 0; off < len(big); {
		p := r.Space()
		if len(p) == 0 {
			// Full: the Reader grows its buffer on a read of its own.
			w.chunks, w.ready = [][]byte{[]byte(big[off : off+1])}, true
			if err := r.ReadCommand(&cmd); err != nil && err != ErrWouldBlock {
				t.Fatal(err)
			}
			off++
			continue
		}
		n := copy(p, big[off:])
		r.Filled(n)
		off += n
	}
	if err := r.ReadCommand(&cmd); err != nil || len(cmd.Args) != 2 || len(cmd.Args[1]) != 100000 {
		t.Fatalf("the large SET: %v", err)
	}
	if len(r.buf) <= 64 {
		t.Fatalf("the buffer never grew (%d bytes)", len(r.buf))
	}
	for range keepReads + 1 {
		p := r.Space()
		r.Filled(copy(p, "*1\r\n$4\r\nPING\r\n"))
		if err := r.ReadCommand(&cmd); err != nil || string(cmd.Args[0]) != "PING" {
			t.Fatalf("PING: %q %v", cmd.Args, err)
		}
	}
	if len(r.Space()) > 64 {
		t.Fatalf("after %d small reads the buffer is still %d bytes, want the initial 64", keepReads+1, len(r.buf))
	}
}
