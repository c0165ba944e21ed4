package proxy

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
)

// clientReader is what a session's resp.Reader reads from. While a
// blocking command waits, a watcher goroutine reads the client socket to
// notice it closing; any bytes it catches are kept here and returned first.
type clientReader struct {
	nc net.Conn
	// fd is the socket's descriptor while the event loop owns the session
	// (-1 otherwise): reads are then made directly, without waiting.
	fd int
	// more is set when the last read on fd filled the space it was
	// given: the socket may hold more, and epoll will not say so again.
	more bool
	// dry is set when the event loop's read found the socket empty
	// (received): the next Read says so without asking again.
	dry    bool
	peeked []byte
	err    error // the watcher saw the client go; returned once peeked is empty

	// idle bounds how long a Read may wait for the client (0: no bound);
	// deadline is the read deadline currently set.
	idle     time.Duration
	deadline time.Time
	// peekLimit bounds what the watcher keeps, bytes (the requests'
	// limit, MaxRequestBytes); peekCap is the size of the array peeked
	// is in, which Read's consuming hides from cap.
	peekLimit int64
	peekCap   int
	bytes     Counter // bytes read, if counted

	gone   chan struct{} // closed by the watcher when the client went away
	exited chan struct{} // closed when the watcher returns
}

func (cr *clientReader) Read(p []byte) (int, error) {
	if len(cr.peeked) > 0 {
		n := copy(p, cr.peeked)
		cr.peeked = cr.peeked[n:]
		switch {
		case len(cr.peeked) == 0:
			cr.peeked, cr.peekCap = nil, 0 // a large one is not kept for the next
		case cr.peekCap > 64<<10 && len(cr.peeked) < cr.peekCap/4:
			// What is left is kept alone, not in the large array: the
			// client may block again before it is read.
			cr.peeked = bytes.Clone(cr.peeked)
			cr.peekCap = cap(cr.peeked)
		}
		return n, nil
	}
	if cr.err != nil {
		return 0, cr.err
	}
	if cr.fd >= 0 {
		if cr.dry {
			cr.dry = false
			return 0, errWouldBlock
		}
		n, err := readRaw(cr.fd, p)
		cr.more = n == len(p)
		if cr.bytes != nil && n > 0 {
			cr.bytes.Add(float64(n))
		}
		return n, err
	}
	cr.deadline = refreshDeadline(cr.nc.SetReadDeadline, cr.deadline, cr.idle)
	n, err := cr.nc.Read(p)
	if cr.bytes != nil && n > 0 {
		cr.bytes.Add(float64(n))
	}
	return n, err
}

// received takes the result of a read the event loop made into the
// reader's buffer for this client (ringIO), of up to space bytes: what a
// Read would have noted of it. An end of stream or an error is left for
// the next Read to meet again.
func (cr *clientReader) received(res int32, space int) {
	switch {
	case res > 0:
		cr.more = int(res) == space
		if cr.bytes != nil {
			cr.bytes.Add(float64(res))
		}
	case res == -int32(syscall.EAGAIN):
		cr.dry = true
	}
}

// pending reports whether the client has sent bytes not read yet: kept
// by the watcher, held by TLS, or waiting in the socket.
func (cr *clientReader) pending() bool {
	if len(cr.peeked) > 0 {
		return true
	}
	if cr.fd >= 0 {
		data, _ := peek(uintptr(cr.fd))
		return data
	}
	nc := cr.nc
	if tc, ok := nc.(*tls.Conn); ok {
		// TLS reads whole records ahead and returns one per Read: what it
		// holds is no longer in the socket. A Read that may not wait
		// (its deadline has passed, so it does not touch the socket)
		// returns it, kept for the next Read; a timeout means none.
		buf := make([]byte, 4096)
		tc.SetReadDeadline(time.Unix(1, 0))
		n, err := tc.Read(buf)
		tc.SetReadDeadline(cr.deadline)
		cr.peeked = append(cr.peeked, buf[:n]...)
		cr.peekCap = max(cr.peekCap, cap(cr.peeked))
		if cr.bytes != nil && n > 0 {
			cr.bytes.Add(float64(n))
		}
		if err != nil && !isTimeoutErr(err) {
			cr.err = err
		}
		if n > 0 {
			return true
		}
	}
	rc, ok := socketOf(nc)
	if !ok {
		return false
	}
	data := false
	rc.Control(func(fd uintptr) { data, _ = peek(fd) })
	return data
}

// watch starts the watcher and returns a channel closed if the client
// goes away, or sends more than peekLimit (cr.err says which: see
// overLimit). stopWatch must follow.
func (cr *clientReader) watch() <-chan struct{} {
	// A blocked client is exempt from the idle timeout, as in Redis.
	cr.nc.SetReadDeadline(time.Time{})
	cr.deadline = time.Time{}
	cr.gone = make(chan struct{})
	cr.exited = make(chan struct{})
	go func() {
		defer close(cr.exited)
		// Keep reading, as Redis reads a blocked client's socket: a
		// client that pipelines more commands and then leaves must still
		// be noticed, or its blocked command would take the next element
		// for nobody, and its end comes only after everything it sent
		// (the kernel holds no more than its buffers, and the rest, with
		// the end, waits in the client's). What it sends is kept for when
		// the blocked command is answered, up to peekLimit; past that it
		// stops reading and says so (overLimit).
		defer func() {
			if len(cr.peeked) == 0 {
				cr.peeked, cr.peekCap = nil, 0 // nothing came: no buffer kept
			}
		}()
		for {
			if int64(len(cr.peeked)) > cr.peekLimit {
				cr.err = errPeekLimit
				close(cr.gone)
				return
			}
			cr.grow()
			n, err := cr.nc.Read(cr.peeked[len(cr.peeked):cap(cr.peeked)])
			cr.peeked = cr.peeked[:len(cr.peeked)+n]
			if cr.bytes != nil && n > 0 {
				cr.bytes.Add(float64(n))
			}
			if err != nil {
				if !errors.Is(err, os.ErrDeadlineExceeded) {
					cr.err = err
					close(cr.gone)
				}
				return
			}
		}
	}()
	return cr.gone
}

// grow makes room in peeked for the watcher's next read: at least
// peekRead bytes, doubling, but never for more than one byte past
// peekLimit (which tells the watcher the client sent more than that).
func (cr *clientReader) grow() {
	if cap(cr.peeked)-len(cr.peeked) >= peekRead {
		return
	}
	n := int64(max(2*cap(cr.peeked), len(cr.peeked)+peekRead))
	n = min(n, cr.peekLimit+1)
	if n <= int64(cap(cr.peeked)) {
		return // room for the byte that tells
	}
	grown := make([]byte, len(cr.peeked), n)
	copy(grown, cr.peeked)
	cr.peeked, cr.peekCap = grown, cap(grown)
}

// overLimit reports whether the watcher stopped because the client sent
// more than peekLimit while its command waited. Redis closes a client
// past client-query-buffer-limit while it has its command blocked; the
// session finds out whether it has (session.answeredPastLimit).
func (cr *clientReader) overLimit() bool { return errors.Is(cr.err, errPeekLimit) }

// peekGrace is how long a command whose client passed peekLimit may still
// be answered before the client is closed, where the proxy cannot ask
// Redis whether it has the command blocked.
const peekGrace = 250 * time.Millisecond

// goneErr is the error a blocked command of a client that left gets: its
// backend connection is closed with it.
func (cr *clientReader) goneErr() error {
	if cr.overLimit() {
		return fmt.Errorf("%w: %w", errClientGone, errPeekLimit)
	}
	return errClientGone
}

// peekRead is the least room the watcher reads into, bytes; what it keeps
// grows by doubling from there.
const peekRead = 512

// stopWatch ends the watcher by expiring its read and waits for it. A
// client that passed peekLimit but is kept (its command was answered in
// time) is read on as any other: the rest of what it sent is in the
// socket.
func (cr *clientReader) stopWatch() {
	cr.nc.SetReadDeadline(time.Now())
	<-cr.exited
	cr.nc.SetReadDeadline(time.Time{})
	cr.deadline = time.Time{}
	if cr.overLimit() {
		cr.err = nil
	}
}

// clientWriter writes to a client from two goroutines in tunnel mode: the
// backend pump and the session. Writes are bounded by a deadline, so a
// client that stops reading is disconnected rather than buffered for.
type clientWriter struct {
	// mu guards buf and serialises writes to nc.
	mu      sync.Mutex
	nc      net.Conn
	buf     []byte
	timeout time.Duration
	err     error
	bytes   Counter // bytes written, if counted
}

// maxClientBuffer is the most a clientWriter holds before writing, bytes.
const maxClientBuffer = 64 << 10

func (w *clientWriter) write(b []byte, flush bool) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return w.err
	}
	w.buf = append(w.buf, b...)
	if flush || len(w.buf) >= maxClientBuffer {
		return w.flushLocked()
	}
	return nil
}

func (w *clientWriter) flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return w.err
	}
	return w.flushLocked()
}

func (w *clientWriter) flushLocked() error {
	if len(w.buf) == 0 {
		return nil
	}
	w.nc.SetWriteDeadline(time.Now().Add(w.timeout))
	n, err := w.nc.Write(w.buf)
	if w.bytes != nil && n > 0 {
		w.bytes.Add(float64(n))
	}
	w.buf = w.buf[:0]
	if err != nil {
		w.err = err
	}
	return err
}

// resetOnClose makes closing nc reset the connection instead of ending it
// in order: for a client that stopped reading, whose unread replies would
// otherwise sit in the kernel until it reads them or TCP gives up, and
// which would read those and only then learn it was cut off. A reset
// frees them at once and tells the client plainly.
func resetOnClose(nc net.Conn) {
	if tc, ok := tcpConnOf(nc); ok {
		tc.SetLinger(0)
	}
}

func (w *clientWriter) closeConn() {
	w.nc.Close()
}

// socketOf returns the raw TCP socket of a client's connection (under
// TLS, the socket's), or false if it has none.
func socketOf(nc net.Conn) (syscall.RawConn, bool) {
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn()
	}
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return nil, false
	}
	rc, err := sc.SyscallConn()
	return rc, err == nil
}

// addrOf is a client's address for the log. A connection the event loop
// hands to a goroutine is made anew from its descriptor (attachConn),
// and net.FileConn leaves RemoteAddr nil when the peer has already gone
// (getpeername fails with ENOTCONN after a reset).
func addrOf(nc net.Conn) string {
	if a := nc.RemoteAddr(); a != nil {
		return a.String()
	}
	return "(gone)"
}
