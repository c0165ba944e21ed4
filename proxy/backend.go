package proxy

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/pnats/switchyard/resp"
)

// request is one segment a session hands a backend connection: the raw
// bytes of n commands, and where their n replies go. A session owns one
// request and reuses it; it never has two outstanding at once.
type request struct {
	parts [][]byte
	// n is the number of replies still expected. Zero means the bytes need
	// no reply accounting (a tunnel); done then signals that they were
	// copied out of the session's buffer.
	n int
	// out receives the raw replies, appended in order.
	out *[]byte
	// blocking requests wait for their reply without a read timeout.
	blocking bool
	// err is set when the connection failed before all n replies came.
	err error
	// readonly is set when a reply was -READONLY: the node is a replica.
	readonly bool
	// done receives one value per enqueue, when the request is finished.
	done chan struct{}
}

func (r *request) finish(err error) {
	r.err = err
	r.done <- struct{}{}
}

// backendConn is one connection to a Redis node. A writer goroutine copies
// queued requests into a buffered writer and flushes when the queue is
// empty; a reader goroutine reads replies in order and hands each to the
// request at the head of the pending queue. Both end when the connection
// fails or is closed, and every request still queued then gets an error.
type backendConn struct {
	nc  net.Conn
	cfg *Config
	rd  *resp.Reader
	bw  *bufio.Writer
	dr  deadlineReader
	dw  deadlineWriter

	// mu guards queue and dead.
	mu    sync.Mutex
	queue []*request
	dead  bool

	spare   []*request // the writer's empty queue, swapped with queue
	wake    chan struct{}
	pending chan *request
	tunnel  chan *clientWriter

	closeOnce sync.Once
	closing   chan struct{}
	err       error // why it closed; written before closing is closed
	done      chan struct{}
	onExit    func()
}

// maxPending bounds the requests written but not yet answered on one
// connection; the writer waits when it is reached.
const maxPending = 4096

func newBackendConn(nc net.Conn, cfg *Config) *backendConn {
	c := &backendConn{
		nc:      nc,
		cfg:     cfg,
		wake:    make(chan struct{}, 1),
		pending: make(chan *request, maxPending),
		tunnel:  make(chan *clientWriter, 1),
		closing: make(chan struct{}),
		done:    make(chan struct{}),
	}
	c.dr = deadlineReader{nc: nc, timeout: cfg.ReadTimeout}
	c.dw = deadlineWriter{nc: nc, timeout: cfg.WriteTimeout}
	// Backend replies come from a trusted server and may legitimately be
	// larger than anything a client is allowed to send.
	lim := cfg.Limits
	lim.MaxFrameLen = 0
	lim.MaxBulkLen = 0
	c.rd = resp.NewReader(&c.dr, cfg.BackendBufferSize, lim.WithDefaults())
	c.bw = bufio.NewWriterSize(&c.dw, cfg.BackendBufferSize)
	return c
}

// dialBackend connects to addr and prepares the connection for key's
// session settings.
func dialBackend(ctx context.Context, addr string, key poolKey, cfg *Config) (*backendConn, error) {
	d := net.Dialer{Timeout: cfg.DialTimeout, KeepAlive: cfg.KeepAlive}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, &dialError{err}
	}
	c := newBackendConn(nc, cfg)
	if err := c.handshake(key); err != nil {
		nc.Close()
		return nil, err
	}
	return c, nil
}

// handshake applies the session settings in one round trip. An error
// reply is returned as *ReplyError so the client sees Redis's own words.
func (c *backendConn) handshake(key poolKey) error {
	user, pass := key.user, key.pass
	if !key.clientAuth {
		user, pass = c.cfg.Username, c.cfg.Password
	}
	var buf []byte
	replies := 0
	switch {
	case key.proto == 3:
		args := [][]byte{[]byte("HELLO"), []byte("3")}
		if pass != "" {
			if user == "" {
				user = "default"
			}
			args = append(args, []byte("AUTH"), []byte(user), []byte(pass))
		}
		buf = resp.AppendCommand(buf, args)
		replies++
	case pass != "":
		args := [][]byte{[]byte("AUTH"), []byte(pass)}
		if user != "" {
			args = [][]byte{[]byte("AUTH"), []byte(user), []byte(pass)}
		}
		buf = resp.AppendCommand(buf, args)
		replies++
	}
	if key.db != 0 {
		buf = resp.AppendCommand(buf, [][]byte{[]byte("SELECT"), []byte(strconv.Itoa(key.db))})
		replies++
	}
	if replies == 0 {
		return nil
	}
	deadline := time.Now().Add(c.cfg.DialTimeout)
	c.nc.SetDeadline(deadline)
	defer c.nc.SetDeadline(time.Time{})
	c.dr.timeout, c.dw.timeout = 0, 0
	defer func() { c.dr.timeout, c.dw.timeout = c.cfg.ReadTimeout, c.cfg.WriteTimeout }()
	if _, err := c.nc.Write(buf); err != nil {
		return &dialError{err}
	}
	var first error
	for i := 0; i < replies; i++ {
		raw, _, err := c.rd.ReadReply()
		if err != nil {
			return &dialError{err}
		}
		if len(raw) > 0 && (raw[0] == resp.TypeError || raw[0] == resp.TypeBulkError) && first == nil {
			first = &ReplyError{Msg: errorText(raw)}
		}
	}
	return first
}

// errorText extracts the message of a raw error reply (-ERR … or !len …).
func errorText(raw []byte) string {
	if len(raw) == 0 {
		return ""
	}
	if raw[0] == resp.TypeBulkError {
		// !<len>\r\n<msg>\r\n
		for i := 1; i+1 < len(raw); i++ {
			if raw[i] == '\r' {
				raw = raw[i+2:]
				break
			}
		}
	} else {
		raw = raw[1:]
	}
	for len(raw) > 0 && (raw[len(raw)-1] == '\n' || raw[len(raw)-1] == '\r') {
		raw = raw[:len(raw)-1]
	}
	return string(raw)
}

func (c *backendConn) alive() bool {
	select {
	case <-c.closing:
		return false
	default:
		return true
	}
}

// close ends the connection; queued requests fail with err.
func (c *backendConn) close(err error) {
	c.closeOnce.Do(func() {
		c.err = err
		close(c.closing)
		c.nc.Close()
	})
}

// enqueue hands r to the writer. It fails at once if the connection is
// already dead; otherwise r is guaranteed to be finished exactly once.
func (c *backendConn) enqueue(r *request) error {
	c.mu.Lock()
	if c.dead {
		c.mu.Unlock()
		return c.err
	}
	c.queue = append(c.queue, r)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	return nil
}

// startTunnel turns the connection into a client's own: from now on every
// frame the backend sends is copied to w. Only valid with nothing pending.
func (c *backendConn) startTunnel(w *clientWriter) {
	c.tunnel <- w
}

// run owns the connection's goroutines. It returns when both have ended
// and every request has been finished.
func (c *backendConn) run() {
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		c.readLoop()
	}()
	c.writeLoop()
	<-readerDone

	c.mu.Lock()
	c.dead = true
	queued := c.queue
	c.queue = nil
	c.mu.Unlock()
	for _, r := range queued {
		r.finish(c.err)
	}
	for {
		select {
		case r := <-c.pending:
			r.finish(c.err)
		default:
			close(c.done)
			if c.onExit != nil {
				c.onExit()
			}
			return
		}
	}
}

func (c *backendConn) writeLoop() {
	for {
		select {
		case <-c.wake:
		case <-c.closing:
			return
		}
		for {
			c.mu.Lock()
			batch := c.queue
			c.queue = c.spare[:0]
			c.mu.Unlock()
			if len(batch) == 0 {
				c.spare = batch
				break
			}
			if !c.writeBatch(batch) {
				return
			}
			clear(batch)
			c.spare = batch[:0]
		}
		if err := c.bw.Flush(); err != nil {
			c.close(fmt.Errorf("proxy: write to %s: %w", c.nc.RemoteAddr(), err))
			return
		}
	}
}

// writeBatch copies batch into the write buffer. On failure it finishes
// the requests the reader will never see and reports false.
func (c *backendConn) writeBatch(batch []*request) bool {
	for i, r := range batch {
		// Once r is pending the reader owns its counters and may finish
		// it at any moment, so decide everything about r before that.
		replied := r.n > 0
		if replied {
			select {
			case c.pending <- r:
			case <-c.closing:
				for _, r := range batch[i:] {
					r.finish(c.err)
				}
				return false
			}
		}
		for _, p := range r.parts {
			c.bw.Write(p) // the error is sticky and checked at Flush
		}
		if !replied {
			r.finish(nil)
		}
	}
	return true
}

func (c *backendConn) readLoop() {
	var cur *request
	defer func() {
		if cur != nil {
			cur.finish(c.err)
		}
	}()
	for {
		if cur == nil {
			select {
			case cur = <-c.pending:
			case w := <-c.tunnel:
				c.pump(w)
				return
			case <-c.closing:
				return
			}
		}
		if cur.blocking {
			c.dr.timeout = 0
		} else {
			c.dr.timeout = c.cfg.ReadTimeout
		}
		raw, typ, err := c.rd.ReadReply()
		if err != nil {
			c.close(fmt.Errorf("proxy: read from %s: %w", c.nc.RemoteAddr(), err))
			return
		}
		if typ == resp.TypePush {
			// A shared connection never subscribes, so a push here cannot
			// belong to cur; handing it out would shift every later reply
			// onto the wrong command.
			continue
		}
		if raw[0] == resp.TypeError && bytes.HasPrefix(raw, readonlyPrefix) {
			cur.readonly = true
		}
		*cur.out = append(*cur.out, raw...)
		cur.n--
		if cur.n == 0 {
			r := cur
			cur = nil
			r.finish(nil)
		}
	}
}

// pump copies every frame from the backend to the client of a tunnel until
// either side fails; then it closes both.
func (c *backendConn) pump(w *clientWriter) {
	c.dr.timeout = 0
	for {
		raw, _, err := c.rd.ReadReply()
		if err != nil {
			c.close(fmt.Errorf("proxy: tunnel read from %s: %w", c.nc.RemoteAddr(), err))
			w.closeConn()
			return
		}
		if err := w.write(raw, c.rd.Buffered() == 0); err != nil {
			c.close(err)
			w.closeConn()
			return
		}
	}
}

// deadlineReader keeps a read deadline of at least 3/4 of timeout ahead of
// every Read, resetting it only when it has run low so that a busy
// connection does not touch its timer on every syscall.
type deadlineReader struct {
	nc      net.Conn
	timeout time.Duration
	set     time.Time
}

func (d *deadlineReader) Read(p []byte) (int, error) {
	d.set = refreshDeadline(d.nc.SetReadDeadline, d.set, d.timeout)
	return d.nc.Read(p)
}

type deadlineWriter struct {
	nc      net.Conn
	timeout time.Duration
	set     time.Time
}

func (d *deadlineWriter) Write(p []byte) (int, error) {
	d.set = refreshDeadline(d.nc.SetWriteDeadline, d.set, d.timeout)
	return d.nc.Write(p)
}

func refreshDeadline(set func(time.Time) error, cur time.Time, timeout time.Duration) time.Time {
	if timeout <= 0 {
		if !cur.IsZero() {
			set(time.Time{})
		}
		return time.Time{}
	}
	now := time.Now()
	if cur.Sub(now) < timeout*3/4 {
		cur = now.Add(timeout)
		set(cur)
	}
	return cur
}
