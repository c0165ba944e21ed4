package resp

import (
	"errors"
	"io"
)

// ErrWouldBlock is what a Reader's underlying reader returns when it has no
// data now but may have later, as a non-blocking socket does. The Reader
// passes it to its caller without keeping it, so the next call reads
// again, resuming a partly read frame where it stopped.
var ErrWouldBlock = errors.New("resp: no data available now")

const defaultBufSize = 4096

// maxEmptyReads is how many (0, nil) reads in a row fill accepts before it
// gives up with io.ErrNoProgress, so a broken io.Reader cannot spin a
// goroutine forever (bufio uses the same guard).
const maxEmptyReads = 100

// A buffer grown for large frames goes back to the initial one at once when
// it is over keepMax bytes, so one 64 MiB value does not pin 64 MiB for the
// life of the connection. One of up to keepMax bytes is kept until keepReads
// reads in a row have left no more buffered than the initial buffer holds,
// so that a stream of, say, 64 KiB values reuses one buffer instead of
// allocating one per value; an idle connection then pins at most keepMax
// bytes.
const (
	keepMax   = 256 << 10
	keepReads = 16
)

// growAhead bounds how far the buffer grows past the bytes it holds for
// a frame whose declared length is not in yet (fill).
const growAhead = 1 << 20

// Reader reads RESP frames from an io.Reader into a buffer of its own. It
// reads either requests (ReadCommand, BufferedCommand) or replies
// (ReadReply): one connection carries one or the other, and a Reader must
// not switch between them in the middle of a frame.
//
// A Reader is not safe for concurrent use.
type Reader struct {
	rd  io.Reader
	err error // the error rd returned; reported once the buffered frames run out

	// buf[r:w] is read but not yet returned; the frame being parsed starts
	// at r, and every offset in cmd and reply is relative to r, so moving
	// the data to another buffer leaves them valid.
	buf  []byte
	r, w int
	// small is the initial buffer. Once large frames are consumed the Reader
	// returns to it (see keepMax), and going back costs no allocation.
	small []byte
	// smallReads counts the reads in a row after which the buffered data
	// would have fit in small.
	smallReads int

	lim      Limits
	maxFrame int // lim.MaxFrameLen as an int

	cmd   cmdState
	reply replyState

	// noShort turns the short paths off (short.go), so that tests can
	// hold them to the general parser's results.
	noShort bool
}

// NewReader returns a Reader that reads from rd with an initial buffer of size
// bytes (4096 when size <= 0). The buffer grows to hold one whole frame and
// goes back to its initial size once large frames have been consumed: at
// once for a buffer over 256 KiB, after 16 reads that did not need it for a
// smaller one.
func NewReader(rd io.Reader, size int, lim Limits) *Reader {
	if size <= 0 {
		size = defaultBufSize
	}
	lim = lim.WithDefaults()
	b := make([]byte, size)
	return &Reader{
		rd:       rd,
		buf:      b,
		small:    b,
		lim:      lim,
		maxFrame: int(lim.MaxFrameLen),
	}
}

// SetLimits replaces the reader's limits, for example once a client has
// authenticated. Frames already buffered are not re-checked.
func (r *Reader) SetLimits(lim Limits) {
	r.lim = lim.WithDefaults()
	r.maxFrame = int(r.lim.MaxFrameLen)
}

// Reset makes r read from rd, dropping buffered data and any partly read
// frame. It keeps the buffer, so a pooled Reader is reused without
// allocating.
func (r *Reader) Reset(rd io.Reader) {
	r.rd = rd
	r.err = nil
	r.r, r.w = 0, 0
	r.cmd.reset()
	r.reply.reset()
}

// Release goes back to the initial buffer now if the current one was grown
// past keepMax and nothing is buffered, rather than on the next read, so
// that a connection that goes quiet after a large frame does not keep its
// buffer meanwhile (an event loop reads only once the client sends more).
// It reports whether it did; the frames returned before then point into
// the dropped buffer (drop them too: Command.Reset).
func (r *Reader) Release() bool {
	if r.r != r.w || len(r.buf) <= keepMax || len(r.buf) <= len(r.small) {
		return false
	}
	r.buf, r.r, r.w, r.smallReads = r.small, 0, 0, 0
	return true
}

// Buffered returns the number of bytes read from the underlying reader but
// not yet returned as frames.
func (r *Reader) Buffered() int { return r.w - r.r }

// Space returns the room the buffer has after what it holds, for a caller
// that reads for r: an event loop that reads many sockets in one system
// call. Filled then hands r the bytes read into it. Space moves what is
// buffered to the front, which leaves every offset valid (they are
// relative to r) but not the slices returned before, as a Read method
// would. It returns nil when the buffer is full or rd has failed; the
// Read methods then do what they would have.
func (r *Reader) Space() []byte {
	if r.err != nil {
		return nil
	}
	n := r.w - r.r
	switch {
	case len(r.buf) > len(r.small) && n < len(r.small) && (len(r.buf) > keepMax || r.smallReads >= keepReads):
		// As fill does: the large frames that grew the buffer are
		// consumed, and a connection goes back to its small buffer.
		copy(r.small, r.buf[r.r:r.w])
		r.buf = r.small
	case r.r > 0:
		copy(r.buf, r.buf[r.r:r.w])
	}
	r.r, r.w = 0, n
	return r.buf[r.w:]
}

// Filled adds the n bytes the caller read into Space's slice to what r
// holds, as if rd had returned them.
func (r *Reader) Filled(n int) {
	r.w += n
	if r.w > len(r.small) {
		r.smallReads = 0
	} else if n > 0 {
		r.smallReads++
	}
}

// fill reads from rd once, first making room for the frame at r to reach
// need bytes (need is more than is buffered). It moves the data, so it
// invalidates every slice returned before; only the Read methods call it.
func (r *Reader) fill(need int) error {
	if r.err != nil {
		return r.readErr()
	}
	n := r.w - r.r
	switch {
	case len(r.buf) > len(r.small) && need <= len(r.small) && (len(r.buf) > keepMax || r.smallReads >= keepReads):
		// The large frames that grew the buffer are consumed.
		copy(r.small, r.buf[r.r:r.w])
		r.buf = r.small
	case need > len(r.buf) && (len(r.buf) < growAhead || n == len(r.buf)):
		// Grow toward what is known to be needed (a whole bulk payload,
		// say), doubling at least so that a large frame costs amortised
		// constant copying per byte; but never past twice the bytes
		// buffered, or growAhead past them, and a buffer of growAhead or
		// more only once it is full. A length is only declared until its
		// bytes arrive: a client that announces a 512 MB value and
		// trickles it must cost neither 512 MB (zeroed, so resident), nor
		// a doubling per read, nor a new buffer per read.
		size := max(need, min(2*len(r.buf), r.maxFrame))
		size = min(size, max(2*n, n+growAhead))
		b := make([]byte, size)
		copy(b, r.buf[r.r:r.w])
		r.buf = b
	case r.r > 0:
		copy(r.buf, r.buf[r.r:r.w])
	}
	r.r, r.w = 0, n

	for range maxEmptyReads {
		m, err := r.rd.Read(r.buf[r.w:])
		r.w += m
		if r.w > len(r.small) {
			r.smallReads = 0
		} else if m > 0 {
			r.smallReads++
		}
		if err == ErrWouldBlock && m == 0 {
			return err
		}
		if err != nil {
			r.err = err
			if m > 0 {
				return nil
			}
			return r.readErr()
		}
		if m > 0 {
			return nil
		}
	}
	return io.ErrNoProgress
}

// readErr is the error to report once rd has failed and the buffered data
// holds no complete frame: EOF in the middle of a frame is unexpected.
func (r *Reader) readErr() error {
	if r.err == io.EOF && r.w > r.r {
		return io.ErrUnexpectedEOF
	}
	return r.err
}
