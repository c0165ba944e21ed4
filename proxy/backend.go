package proxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pnats/switchyard/resp"
	"go.uber.org/zap"
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
	// unblock says how a failover's hold may end a blocking request's
	// wait on the old master (unblockHeld): none, resend or count.
	unblock unblockMode
	// err is set when the connection failed before all n replies came.
	err error
	// refused records the refusals among the replies that say a command
	// did not run, and that the proxy may get past by sending it again
	// (refusedReadonly, refusedLoading).
	refused refusal
	// overflow is set when the replies passed ClientOutputLimit: those
	// from then on were dropped, and the client must be disconnected.
	overflow bool
	// done receives one value per enqueue, when the request is finished,
	// unless notify is set: then the reader calls notify instead, on the
	// reader's goroutine (the event loop's, for a connection it adopted),
	// and it must not block.
	done   chan struct{}
	notify func()
	// lbatch is set by the event loop when it reads the request's
	// replies (readBackend): notify then runs on the loop's goroutine,
	// within a read whose end writes every reply it finished in one
	// system call (sendReplies).
	lbatch bool
}

// refusal is a set of the replies by which the node believed to be the
// master refused a command without running it.
type refusal uint8

const (
	// refusedReadonly: a reply was -READONLY; the node is a replica.
	refusedReadonly refusal = 1 << iota
	// refusedLoading: a reply was -LOADING; the node is loading its data
	// set (it restarted).
	refusedLoading
)

func (r *request) finish(err error) {
	r.err = err
	if r.notify != nil {
		r.notify()
		return
	}
	r.done <- struct{}{}
}

// backendConn is one connection to a Redis node. Sessions write to it
// directly: a request's bytes are appended to a shared buffer under mu,
// and the session that finds no write in progress becomes the flusher and
// writes until the buffer is empty, so requests that arrive during a write
// go out together in the next one. A reader reads replies in order and
// hands each to the request at the head of the pending queue: a goroutine
// of the connection's own (run), or the event loop for the master's shared
// connections (loop.adopt). When the connection fails or is closed, every
// request still queued gets an error.
type backendConn struct {
	nc  net.Conn
	cfg *Config
	rd  *resp.Reader
	dr  deadlineReader
	dw  deadlineWriter

	pushLog logEvery // dropped push messages (deliver)
	// tunnelEnd is set before a RESET is written into a tunnel, followed
	// by a command named with a random token, whose error reply the pump
	// swallows (endTunnel), ending the tunnel and setting tunnelReset,
	// which leaves the client to its session.
	tunnelEnd   atomic.Pointer[tunnelEnding]
	tunnelReset atomic.Bool
	// clientEnded is set when the tunnel's client has sent its last bytes
	// (QUIT, or the end of its connection, which closeTunnel passes on to
	// Redis): the pump then copies what Redis still sends, and Redis's
	// close ends the tunnel as the client asked, not as a failure.
	clientEnded atomic.Bool
	// keepClient: the session still writes to the client once the tunnel
	// has ended (a protocol error's reply, after Redis's last replies), so
	// the pump leaves the client's connection open.
	keepClient atomic.Bool

	// mu guards the fields below, and orders sends on pending with the
	// bytes in wbuf, so replies match requests.
	mu       sync.Mutex
	wbuf     []byte // bytes waiting to be written
	wspare   []byte // the flusher's empty buffer, swapped with wbuf
	flushing bool   // a flusher (a session, the loop, its hand-off) owns writing wbuf
	dead     bool

	pending chan *request
	// outstanding counts requests queued and not yet finished, for Stats
	// and the stall checks.
	outstanding atomic.Int64
	// lastRead is when the reader last asked for data (Unix ns): while
	// replies flow it trails the newest one; a stalled node leaves it old.
	// On a connection the loop reads, it is when data last arrived, or
	// when a request was queued on an idle connection.
	lastRead atomic.Int64
	// blockingWait is set while the reader waits for a blocking command's
	// reply, which may legitimately take forever; unblockWait holds how a
	// hold may unblock that command (request.unblock), 0 for not at all.
	blockingWait atomic.Bool
	unblockWait  atomic.Uint32
	// queued counts the requests queued on a connection of one
	// session's: a hold's unblocker tells by it the command it asks
	// about from the next one (blockedCmd).
	queued atomic.Uint64
	// unblocking is set while a hold asks Redis to unblock a command it
	// will send again (unblockResend): the reader then takes Redis's
	// -UNBLOCKED reply as errUnblocked, not as the client's.
	unblocking atomic.Bool
	// redisID is the connection's CLIENT ID on the node, learned in the
	// handshake of a dedicated connection; 0 if unknown.
	redisID int64
	// owner is the pool that dialled it: a control connection to ask
	// Redis about it goes to the same master (answeredPastLimit).
	owner *pool
	// oneUse: a busyOK dial (a kill, an unblock), which may lack its
	// key's SELECT, its name and its CLIENT ID: never kept (pool.put).
	oneUse bool
	// inTunnel is set once the connection is a client's tunnel (pump).
	inTunnel atomic.Bool
	// fence is the generation's fenced flag (nil for replicas): once set,
	// nothing more is written, so a replaced master receives no command
	// after the switch is known, whatever was already queued.
	fence *atomic.Bool
	// held, on a connection the event loop reads, is the server's
	// failover hold: while it is set nothing queued goes out, whoever
	// flushes, and heldBack (guarded by mu, like heldAt, when it was
	// first set) records that bytes wait for its end (loop.resumeHeld,
	// or loop.checkBackends after HoldTimeout). The loop may hold a batch
	// back for a whole round trip; a goroutine checks the hold just
	// before it queues (awaitRelease).
	held     *atomic.Bool
	heldBack bool
	heldAt   time.Time
	tunnel   chan *clientWriter
	// shared says the connection is one of a pool's pipelined ones, which
	// carry no session state: a command not sent on it may go on another.
	shared bool
	// rawc is the socket under nc (under TLS too), for idleClosed; nil if
	// there is none. peekFn is idleClosed's look at it, made once so that
	// looking allocates nothing; it sets peerGone.
	rawc     syscall.RawConn
	peekFn   func(fd uintptr)
	peerGone atomic.Bool

	closeOnce sync.Once
	closing   chan struct{}
	err       error // why it closed; written before closing is closed
	done      chan struct{}
	// wg, the pool's, counts the connection's reader until it ends the
	// connection, and a goroutine that takes over a partial write.
	wg *sync.WaitGroup

	// cur is the request whose replies are being read; owned by the reader.
	cur *request
	// queuedReqs counts the requests queued since the last take, none of
	// whose bytes has been handed to a write (guarded by mu); on a loop's
	// connection unanswered counts those written, or being written, whose
	// replies are not all in.
	queuedReqs int
	unanswered atomic.Int64

	// lp is the event loop that reads this connection's replies instead of
	// a reader goroutine (loop_linux.go), or nil. Set before the
	// connection is shared, never changed.
	lp *loop
	// Owned by lp's goroutine: lfd is the loop's duplicate of the socket
	// (-1 when none), lcan that the socket may hold more than the loop
	// read so far, lended that the loop has finished the connection,
	// ldefer that a write the loop holds waits for the replies due.
	lfd    int
	lcan   bool
	lhup   bool // the last event said the peer closed
	lended bool
	ldefer bool
	// kick wakes the writer goroutine (writeAside) of a connection the
	// loop writes to but does not read; nil until the loop first needs it.
	// Guarded by mu.
	kick chan struct{}
}

// maxPending bounds the requests written but not yet answered on one
// connection; the writer waits when it is reached.
const maxPending = 4096

func newBackendConn(nc net.Conn, cfg *Config) *backendConn {
	c := &backendConn{
		nc:      nc,
		cfg:     cfg,
		pending: make(chan *request, maxPending),
		tunnel:  make(chan *clientWriter, 1),
		closing: make(chan struct{}),
		done:    make(chan struct{}),
		lfd:     -1,
	}
	sock := nc
	tc, overTLS := nc.(*tls.Conn)
	if overTLS {
		sock = tc.NetConn()
	}
	if sc, ok := sock.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			c.rawc = rc
			c.peekFn = func(fd uintptr) {
				// Over TLS, Redis's close_notify comes before its FIN:
				// the socket holds data then, and only a look past it
				// sees the close.
				if _, closed := peek(fd); closed || overTLS && hungUp(fd) {
					c.peerGone.Store(true)
				}
			}
		}
	}
	c.dr = deadlineReader{nc: nc, timeout: cfg.ReadTimeout, last: &c.lastRead}
	c.dw = deadlineWriter{nc: nc, timeout: cfg.WriteTimeout}
	// Backend replies come from a trusted server and may legitimately be
	// larger than anything a client is allowed to send.
	lim := cfg.Limits
	lim.MaxFrameLen = 0
	lim.MaxBulkLen = 0
	c.rd = resp.NewReader(&c.dr, cfg.BackendBufferSize, lim.WithDefaults())
	return c
}

// dialBackend connects to addr and prepares the connection for key's
// session settings.
func dialBackend(ctx context.Context, addr string, key poolKey, cfg *Config, busyOK, wantID bool) (*backendConn, error) {
	d := net.Dialer{Timeout: cfg.DialTimeout, KeepAlive: cfg.KeepAlive}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, &dialError{err}
	}
	// Read by a goroutine unless the loop adopts it, and written by
	// sessions' goroutines: see rawSocket.
	nc = rawSocketOf(nc)
	if cfg.BackendTLS != nil {
		tc := tls.Client(nc, cfg.BackendTLS())
		hctx, cancel := context.WithTimeout(ctx, cfg.DialTimeout)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			nc.Close()
			return nil, &dialError{fmt.Errorf("TLS handshake with %s: %w", addr, err)}
		}
		nc = tc
	}
	c := newBackendConn(nc, cfg)
	if err := c.handshake(ctx, key, busyOK, wantID); err != nil {
		nc.Close()
		return nil, err
	}
	return c, nil
}

// handshake applies the session settings in one round trip. An error
// reply is returned as *ReplyError so the client sees Redis's own words.
// Cancelling ctx (the pool closing) ends it at once: a node that accepted
// the connection but does not answer (stopped, or busy) must not hold up
// the close for DialTimeout, and the close may be on the event loop.
func (c *backendConn) handshake(ctx context.Context, key poolKey, busyOK, wantID bool) error {
	user, pass := c.cfg.credentials(key)
	var buf []byte
	replies := 0
	switch {
	case key.proto == 3 && (pass == "" || user != ""):
		args := [][]byte{[]byte("HELLO"), []byte("3")}
		if pass != "" {
			args = append(args, []byte("AUTH"), []byte(user), []byte(pass))
		}
		buf = resp.AppendCommand(buf, args)
		replies++
	case pass != "":
		// A password without a user is sent as AUTH <password>, never as
		// HELLO's AUTH default <password>: when the default user needs no
		// password, Redis accepts the latter but refuses the former, and
		// the client must get the refusal it would get from Redis.
		args := [][]byte{[]byte("AUTH"), []byte(pass)}
		if user != "" {
			args = [][]byte{[]byte("AUTH"), []byte(user), []byte(pass)}
		}
		buf = resp.AppendCommand(buf, args)
		replies++
		if key.proto == 3 {
			buf = resp.AppendCommand(buf, [][]byte{[]byte("HELLO"), []byte("3")})
			replies++
		}
	}
	// For SCRIPT KILL, FUNCTION KILL or CLIENT UNBLOCK. During a busy
	// script Redis refuses its name and CLIENT ID (-BUSY) and SELECT,
	// which none of them needs; so it is not kept for the key's other
	// commands, on any database.
	c.oneUse = busyOK
	switch {
	case key.db != 0 && busyOK:
	case key.db != 0:
		buf = resp.AppendCommand(buf, [][]byte{[]byte("SELECT"), []byte(strconv.Itoa(key.db))})
		replies++
	}
	// Named so that CLIENT LIST on a node shows which connections are the
	// proxy's, for operators and for the fencing tests.
	buf = resp.AppendCommand(buf, [][]byte{[]byte("CLIENT"), []byte("SETNAME"), []byte(BackendName)})
	replies++
	named := replies
	if wantID {
		// For CLIENT UNBLOCK (unblockHeld). A user whose ACL denies it,
		// or a busy script, leaves the ID unknown: nothing fails.
		buf = resp.AppendCommand(buf, [][]byte{[]byte("CLIENT"), []byte("ID")})
		replies++
	}
	deadline := time.Now().Add(c.cfg.DialTimeout)
	c.nc.SetDeadline(deadline)
	defer c.nc.SetDeadline(time.Time{})
	// Set after the deadline above, which would otherwise undo it.
	stop := context.AfterFunc(ctx, func() { c.nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	c.dr.timeout, c.dw.timeout = 0, 0
	defer func() { c.dr.timeout, c.dw.timeout = c.cfg.ReadTimeout, c.cfg.WriteTimeout }()
	if _, err := c.nc.Write(buf); err != nil {
		return &dialError{handshakeErr(ctx, err)}
	}
	var first error
	for i := 0; i < replies; i++ {
		raw, _, err := c.rd.ReadReply()
		if err != nil {
			if first != nil && i == named {
				// Refused, and closed (maxclients answers the first
				// command and hangs up): the CLIENT ID asked for after
				// the name changes nothing of what the dial reports.
				return first
			}
			return &dialError{handshakeErr(ctx, err)}
		}
		if i == named {
			if len(raw) > 3 && raw[0] == resp.TypeInteger {
				c.redisID, _ = strconv.ParseInt(string(raw[1:len(raw)-2]), 10, 64)
			}
			continue
		}
		if len(raw) > 0 && (raw[0] == resp.TypeError || raw[0] == resp.TypeBulkError) && first == nil {
			if i == named-1 && (bytes.HasPrefix(raw[1:], []byte("NOPERM")) || busyOK && bytes.HasPrefix(raw[1:], []byte("BUSY"))) {
				// The name is the proxy's, for operators: a user whose
				// ACL denies CLIENT SETNAME (least-privilege application
				// users often lack it) can use Redis, and the proxy too.
				// A script past busy-reply-threshold refuses it (-BUSY):
				// a connection for SCRIPT KILL or FUNCTION KILL (busyOK),
				// which Redis answers then, is fine without the name.
				continue
			}
			first = &ReplyError{Msg: errorText(raw)}
		}
	}
	return first
}

// credentials are the user and password a connection with key's settings
// logs in with: the client's own when it passed them through, else the
// proxy's.
func (c *Config) credentials(key poolKey) (user, pass string) {
	if key.clientAuth {
		return key.user, key.pass
	}
	return c.Username, c.Password
}

// handshakeErr says why a handshake failed: the deadline set when ctx
// was cancelled is not a timeout.
func handshakeErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("handshake cancelled: %w", ctx.Err())
	}
	return err
}

// BackendName is the CLIENT SETNAME of every backend connection.
const BackendName = "switchyard"

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

// usable is alive, and for a connection that waits for no reply, not
// closed by Redis meanwhile (idleClosed): what a caller about to write
// to it checks.
func (c *backendConn) usable() bool {
	return c.alive() && !c.idleClosed()
}

// idleClosed reports whether Redis closed c while no reply was due on it
// (its idle-client timeout, CLIENT KILL, a restart), and then closes c.
// A reader goroutine reads only while a reply is due, so without this
// look the next request would be written into the dead socket and fail
// as "may or may not have run", though Redis never saw it. The event
// loop sees such a close itself, within microseconds: the look, a system
// call, is not made on its connections (closedIdle is).
func (c *backendConn) idleClosed() bool {
	return c.lp == nil && c.closedIdle()
}

// closedIdle is idleClosed's look, on any connection. It is for a caller
// that may have waited long enough for a close to come just before it
// (the end of a failover hold), which the event loop may not have read
// yet. Data waiting is not a close: a reply to a request queued since
// outstanding was read may be on its way. The look neither waits nor
// takes the socket's read lock (Control, not Read), so the loop may make
// it, and a reader or the loop may be reading meanwhile.
func (c *backendConn) closedIdle() bool {
	if c.rawc == nil || c.outstanding.Load() != 0 {
		return false
	}
	hook(idleCheckHook)
	// A request queued since outstanding was read may have been answered,
	// its reply read by now, and Redis have closed after it: the look is
	// made with mu held, which queue needs to add one, outstanding read
	// again under it, and the connection marked dead before mu goes.
	c.mu.Lock()
	gone := c.outstanding.Load() == 0 && (c.rawc.Control(c.peekFn) != nil || c.peerGone.Load())
	if gone {
		c.dead = true
	}
	c.mu.Unlock()
	if !gone {
		return false
	}
	c.close(fmt.Errorf("proxy: %s closed the connection while it was idle: %w", c.nc.RemoteAddr(), io.EOF))
	return true
}

// close ends the connection; queued requests fail with err.
func (c *backendConn) close(err error) {
	c.closeOnce.Do(func() {
		c.err = err
		close(c.closing)
		c.nc.Close()
		if c.lp != nil {
			c.lp.postBackend(c) // the loop finishes what is queued
		}
		hook(closeHook)
	})
}

// enqueue writes r's bytes to the connection, joining a write already in
// progress if there is one. It fails at once if the connection is dead;
// otherwise r is finished exactly once. When enqueue returns, r.parts are
// no longer referenced, so the session may reuse its buffer.
func (c *backendConn) enqueue(r *request) error {
	flusher, err := c.queue(r, true)
	if err != nil || !flusher {
		return err
	}
	// Replies usually arrive in bursts that wake many sessions at once;
	// yielding once lets those already runnable add their requests, so
	// they share this write and Redis reads them with one syscall.
	runtime.Gosched()
	c.flushQueued()
	return nil
}

// unusable says why nothing may be queued on c now, or nil; c.mu is held.
func (c *backendConn) unusable() error {
	if c.dead || !c.alive() {
		return notSent(c.closedErr())
	}
	if c.fence != nil && c.fence.Load() {
		return notSent(errFenced)
	}
	return nil
}

// tryPending adds r to the pending replies if there is room.
func (c *backendConn) tryPending(r *request) bool {
	select {
	case c.pending <- r:
		return true
	default:
		return false
	}
}

// pendingPoll is how often a writer waiting for room in a full queue looks
// again. A full queue (maxPending requests unanswered on one connection)
// is an overload, not a steady state.
const pendingPoll = 200 * time.Microsecond

// errQueueFull is queue's answer, without wait, when maxPending requests
// are outstanding.
var errQueueFull = errors.New("proxy: backend queue full")

// queue adds r's bytes to the write buffer and r to the pending replies,
// without writing. If no write is in progress, the caller becomes the
// flusher (flusher is true) and must write the buffer: flushQueued, or
// on the loop flushLoop, or later (flushTouched). When maxPending
// requests are outstanding, queue waits for the reader if wait is set and
// otherwise fails with errQueueFull, changing nothing: a caller holding
// unwritten bytes must write them first, or their replies never come.
func (c *backendConn) queue(r *request, wait bool) (flusher bool, err error) {
	c.mu.Lock()
	if err := c.unusable(); err != nil {
		c.mu.Unlock()
		return false, err
	}
	// Once r is pending, its reader may change it (when the bytes go out
	// with a write already in progress, say).
	replies := r.n > 0
	if !c.shared {
		// A connection of one session's, which has one request at a
		// time: set before the reader takes r, so that a hold coming
		// meanwhile (fenceStalled, stalled) sees what waits now, not the
		// connection's last wait; and before the count rises, so that a
		// hold that sees r outstanding sees which r it is (blockedNow).
		c.queued.Add(1)
		c.blockingWait.Store(r.blocking)
		c.unblockWait.Store(r.unblockable())
		c.unblocking.Store(false) // a hold's, for the one before
	}
	if replies {
		if c.lp != nil && c.outstanding.Load() == 0 {
			// The loop reads whenever replies arrive, not when a request
			// starts waiting: stalled measures from here. Stored before
			// the count rises, or the loop's stall check could see an
			// old time with a request outstanding. (Increments are
			// serialised by mu.)
			c.lastRead.Store(time.Now().UnixNano())
		}
		c.outstanding.Add(1)
		for !c.tryPending(r) {
			if !wait {
				c.outstanding.Add(-1)
				c.mu.Unlock()
				return false, errQueueFull
			}
			// Too many replies outstanding: wait for the reader, without
			// holding mu, which the flusher needs to write the very
			// requests whose replies make room. Nothing of r is queued
			// yet, so letting others go first keeps the order.
			c.mu.Unlock()
			select {
			case <-c.closing:
				c.outstanding.Add(-1)
				return false, notSent(c.closedErr())
			case <-time.After(pendingPoll):
			}
			c.mu.Lock()
			if err := c.unusable(); err != nil {
				c.outstanding.Add(-1)
				c.mu.Unlock()
				return false, err
			}
		}
	}
	for _, p := range r.parts {
		c.wbuf = append(c.wbuf, p...)
	}
	if replies {
		c.queuedReqs++
	} else {
		r.finish(nil) // a tunnel write needs no reply, only the copy
	}
	if c.flushing {
		c.mu.Unlock()
		return false, nil
	}
	c.flushing = true
	c.mu.Unlock()
	return true, nil
}

// flushQueued writes the buffer until it is empty; only the flusher calls
// it. Requests whose bytes fail to go out are finished by the reader's
// drain once the connection is closed.
func (c *backendConn) flushQueued() { c.flush(false, nil) }

// flushAside is flushQueued for the event loop on a connection it does
// not read (TLS, or one dialled before the loop started): such a write
// waits while the node does not read, up to WriteTimeout, and the loop,
// with every client on it, must not. The connection's writer goroutine
// makes it; it starts with the first such write and ends with the
// connection. The caller is the flusher (queue).
func (c *backendConn) flushAside() {
	c.mu.Lock()
	if c.kick == nil {
		if c.dead || !c.alive() {
			// Ended, or ending: what is queued is finished unsent by
			// the reader (end). Checked under mu, before end marks it
			// dead, so the reader's count keeps wg above zero here.
			c.flushing = false
			c.mu.Unlock()
			return
		}
		c.kick = make(chan struct{}, 1)
		if c.wg != nil {
			c.wg.Add(1)
		}
		go c.writeAside(c.kick)
	}
	c.mu.Unlock()
	select {
	case c.kick <- struct{}{}:
	default: // one is due already; it writes everything queued
	}
}

// writeAside is the writer goroutine of flushAside. Only a flusher kicks
// it, and there is one flusher at a time, so no kick is lost and none
// finds another writer at work.
func (c *backendConn) writeAside(kick chan struct{}) {
	if c.wg != nil {
		defer c.wg.Done()
	}
	for {
		select {
		case <-kick:
			c.flushQueued()
		case <-c.closing:
			// Whatever is still queued is finished by the reader (end).
			return
		}
	}
}

// flush is flushQueued, or with raw the event loop's write on a
// connection it reads (flushLoop): then it writes what the socket takes
// now through the loop's descriptor and leaves the rest to a goroutine,
// so that the loop never waits for Redis to read while Redis may be
// waiting for the loop to read its replies. That goroutine is the flusher
// until the buffer is empty or the connection fails.
//
// It starts with rest, if any: what a raw write left unwritten of a
// buffer already taken, whose requests are on their way (they count as
// sent). That goes out even during a failover hold, which holds back only
// what no write has begun on; a fence stops it like anything else.
func (c *backendConn) flush(raw bool, rest []byte) {
	c.mu.Lock()
	for len(rest) > 0 || len(c.wbuf) > 0 {
		if c.fence != nil && c.fence.Load() {
			c.flushing = false
			c.mu.Unlock()
			c.close(errFenced)
			return
		}
		if !c.alive() {
			// Closed: nothing more goes out, even on the loop's
			// descriptor, which outlives the net.Conn until the loop
			// ends it. The requests get the close's error.
			c.flushing = false
			c.mu.Unlock()
			return
		}
		buf, spare := rest, false
		if len(rest) > 0 {
			rest = nil
		} else if c.lp != nil && c.held != nil && c.held.Load() {
			// A failover started after these were queued: they wait for
			// Release (loop.resumeHeld), or end unsent when a new master
			// fences the connection, and then move there.
			if !c.heldBack {
				c.heldBack, c.heldAt = true, time.Now()
			}
			c.flushing = false
			c.mu.Unlock()
			return
		} else {
			buf, spare = c.take(), true
			c.heldBack = false
		}
		c.mu.Unlock()
		var n int
		var err error
		if raw {
			n, err = writeRaw(c.lfd, buf)
		} else {
			n, err = c.dw.Write(buf)
		}
		c.mu.Lock()
		if err != nil {
			c.flushing = false
			c.mu.Unlock()
			c.close(fmt.Errorf("proxy: write to %s: %w", c.nc.RemoteAddr(), err))
			return
		}
		if n < len(buf) {
			// Only a raw write stops short. A goroutine writes the rest,
			// then what was queued meanwhile. buf is not kept as the
			// spare: the rest is part of it.
			c.mu.Unlock()
			// The connection is not ended yet (only the loop ends it, and
			// the loop is here), so its own count keeps wg above zero.
			if c.wg != nil {
				c.wg.Add(1)
			}
			hook(handoffStarted)
			go func() {
				if c.wg != nil {
					defer c.wg.Done()
				}
				c.flush(false, buf[n:])
				hook(handoffEnded)
			}()
			return
		}
		if spare && cap(buf) <= maxWriteBuffer {
			c.wspare = buf[:0]
		}
	}
	c.flushing = false
	c.mu.Unlock()
}

// Test hooks, nil outside tests (export_test.go sets them before a
// Server starts), run where named.
var (
	closeHook      func() // a backend connection is closed
	loopReadHook   func() // the event loop starts reading a backend connection
	handoffStarted func() // a goroutine takes over a partial write
	handoffEnded   func() // that goroutine is done
	replacedHook   func() // a replaced master's connections are about to close
	dialHook       func() // a pool's background dial starts
	idleCheckHook  func() // idleClosed has read outstanding, and looks next
	toGoroutine    func() // the event loop hands a client to a goroutine
	resumeHook     func() // the event loop is about to write what a hold held back
	holdWaitHook   func() // a client's goroutine is about to wait out a hold
)

func hook(f func()) {
	if f != nil {
		f()
	}
}

// take returns the buffered bytes for writing, leaving an empty buffer;
// c.mu is held.
func (c *backendConn) take() []byte {
	buf := c.wbuf
	// The spare is given up, not kept: it becomes the buffer others append
	// to while buf is written, and only buf may be the spare afterwards
	// (it is not when it is too large to keep). Two names for one array
	// would let appends overwrite bytes still being written.
	c.wbuf, c.wspare = c.wspare[:0], nil
	if c.lp != nil {
		c.unanswered.Add(int64(c.queuedReqs))
	}
	c.queuedReqs = 0
	return buf
}

// maxWriteBuffer is the largest write buffer kept for reuse, bytes; one
// large value must not pin its size to the connection.
const maxWriteBuffer = 1 << 20

// closedErr is the error for a request that arrives after the end.
func (c *backendConn) closedErr() error {
	select {
	case <-c.closing:
		return c.err
	default:
		return errPoolClosed
	}
}

// startTunnel turns the connection into a client's own: from now on every
// frame the backend sends is copied to w. Only valid with nothing pending.
func (c *backendConn) startTunnel(w *clientWriter) {
	c.inTunnel.Store(true) // before its reader takes it: Hold must see it
	c.tunnel <- w
}

// run owns the reader goroutine. It returns when the connection has
// ended and every request has been finished.
func (c *backendConn) run() {
	c.readLoop()
	c.end()
}

// end finishes a connection whose reading has stopped: every request
// still queued gets the error it closed with. The reader calls it once.
func (c *backendConn) end() {
	c.close(errPoolClosed) // no-op if already closed, with the real reason
	if !deliberate(c.err) {
		m := c.cfg.Metrics
		m.add(m.BackendErrors, 1)
	}
	c.mu.Lock()
	c.dead = true
	// The last unsent requests queued never had a byte written (a write
	// the loop held back for the batch in flight, say): they are finished
	// as not sent, which a client may safely retry and a loop session
	// moves to the new master. The others may have run.
	unsent := c.queuedReqs
	c.queuedReqs = 0
	c.mu.Unlock()
	if r := c.cur; r != nil {
		c.cur = nil
		c.outstanding.Add(-1)
		r.finish(c.err)
	}
	sent := len(c.pending) - unsent
	for i := 0; ; i++ {
		select {
		case r := <-c.pending:
			c.outstanding.Add(-1)
			if i >= sent {
				r.finish(notSent(c.err))
			} else {
				r.finish(c.err)
			}
		default:
			close(c.done)
			if c.wg != nil {
				c.wg.Done()
			}
			return
		}
	}
}

func (c *backendConn) readLoop() {
	for {
		if c.cur == nil {
			select {
			case c.cur = <-c.pending:
			case w := <-c.tunnel:
				c.pump(w)
				return
			case <-c.closing:
				return
			}
		}
		if c.cur.blocking {
			c.dr.timeout = 0
		} else {
			c.dr.timeout = c.cfg.ReadTimeout
		}
		c.blockingWait.Store(c.cur.blocking)
		c.unblockWait.Store(c.cur.unblockable())
		raw, typ, err := c.rd.ReadReply()
		if err != nil {
			c.close(fmt.Errorf("proxy: read from %s: %w", c.nc.RemoteAddr(), err))
			return
		}
		if err := c.deliver(raw, typ); err != nil {
			c.close(err)
			return
		}
	}
}

// deliver hands one reply to c.cur, finishing it with its last reply.
func (c *backendConn) deliver(raw []byte, typ byte) error {
	if typ == resp.TypePush {
		// A connection outside a tunnel never subscribes or tracks, but
		// any client may name its ID in CLIENT TRACKING … REDIRECT (it
		// is in CLIENT LIST), and Redis then pushes invalidations to it.
		// A push is never a reply: it is dropped, and the replies stay in
		// step. Ending the connection, as the proxy once did, let any
		// client fail the commands of everyone sharing it.
		if c.pushLog.Allow() {
			c.cfg.Logger.Warn("dropped a push message on a connection that is not a client's tunnel (a CLIENT TRACKING REDIRECT to it?)",
				zap.String("backend", c.nc.RemoteAddr().String()), zap.ByteString("message", raw[:min(len(raw), 120)]))
		}
		return nil
	}
	cur := c.cur
	if cur.unblock == unblockResend && raw[0] == resp.TypeError && bytes.HasPrefix(raw, unblockedPrefix) && c.unblocking.Swap(false) {
		// The hold's CLIENT UNBLOCK ended the wait: nothing was taken,
		// even if the switch has come meanwhile, and the session sends
		// the command again (reblock). This is not the client's reply:
		// cur.n stays, the client is still owed one.
		c.finishCur(errUnblocked)
		return nil
	}
	if !c.alive() {
		// Closed (fenced, timed out) while this reply was on its way:
		// it must not reach the client as a success. The loop reads
		// from its own descriptor, which outlives c.nc until it ends c.
		return c.err
	}
	if c.fence != nil && c.fence.Load() {
		// The master changed and the close is on its way: an
		// acknowledgement from the old one, read now, cannot be told
		// from one the promotion will discard.
		return errFenced
	}
	if raw[0] == resp.TypeError {
		switch {
		case bytes.HasPrefix(raw, readonlyPrefix):
			cur.refused |= refusedReadonly
		case isLoading(raw):
			cur.refused |= refusedLoading
		}
	}
	switch {
	case cur.overflow:
	case c.cfg.ClientOutputLimit > 0 && int64(len(*cur.out)) > c.cfg.ClientOutputLimit:
		// The rest of this request's replies are read and dropped: the
		// connection is shared, and must stay in step.
		cur.overflow = true
	default:
		*cur.out = append(*cur.out, raw...)
	}
	cur.n--
	if cur.n == 0 {
		c.finishCur(nil)
	}
	return nil
}

// finishCur finishes c.cur, the request whose replies were being read.
func (c *backendConn) finishCur(err error) {
	cur := c.cur
	c.cur = nil
	c.outstanding.Add(-1)
	if c.lp != nil {
		c.unanswered.Add(-1)
	}
	cur.finish(err)
}

var unblockedPrefix = []byte("-UNBLOCKED ")

// pump copies every frame from the backend to the client of a tunnel until
// either side fails; then it closes both.
func (c *backendConn) pump(w *clientWriter) {
	c.dr.timeout = 0
	for {
		raw, _, err := c.rd.ReadReply()
		if err != nil {
			if c.clientEnded.Load() {
				err = fmt.Errorf("%w: it ended its side, and Redis closed the tunnel after its replies (%w)", errClientGone, err)
			} else {
				err = fmt.Errorf("proxy: tunnel read from %s: %w", c.nc.RemoteAddr(), err)
			}
			c.close(err)
			if c.keepClient.Load() {
				w.flush()
			} else {
				w.closeConn()
			}
			return
		}
		if end := c.tunnelEnd.Load(); end != nil && end.is(raw) {
			// The reply to the command after the client's RESET: Redis
			// has left Pub/Sub, MONITOR and tracking, and every frame
			// before it has been copied.
			if err := w.flush(); err != nil {
				c.close(fmt.Errorf("%w: %w", errClientGone, err))
				w.closeConn()
				return
			}
			c.tunnelReset.Store(true)
			c.close(errTunnelReset)
			return
		}
		if err := w.write(raw, c.rd.Buffered() == 0); err != nil {
			// The client failed, not Redis: not a backend error.
			if isTimeoutErr(err) {
				m := c.cfg.Metrics
				m.add(m.SlowClients, 1)
				resetOnClose(w.nc)
				c.cfg.Logger.Debug("client disconnected: it read nothing for pubsub_write_timeout",
					zap.String("client", addrOf(w.nc)), zap.Duration("pubsub_write_timeout", w.timeout))
			}
			c.close(fmt.Errorf("%w: %w", errClientGone, err))
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
	last    *atomic.Int64 // if set, receives the time of each Read
}

func (d *deadlineReader) Read(p []byte) (int, error) {
	if d.last != nil {
		d.last.Store(time.Now().UnixNano())
	}
	d.set = refreshDeadline(d.nc.SetReadDeadline, d.set, d.timeout)
	return d.nc.Read(p)
}

// heldTooLong reports whether requests have waited on c for the end of a
// failover hold for longer than d, with none written before them still
// unanswered.
func (c *backendConn) heldTooLong(d time.Duration, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.heldBack && now.Sub(c.heldAt) > d && c.unanswered.Load() == 0
}

// stalled reports whether requests have waited on c for longer than d
// without any reply arriving (blocking commands excepted).
func (c *backendConn) stalled(d time.Duration, now time.Time) bool {
	if c.outstanding.Load() == 0 || c.blockingWait.Load() {
		return false
	}
	return now.Sub(time.Unix(0, c.lastRead.Load())) > d
}

type deadlineWriter struct {
	nc      net.Conn
	timeout time.Duration
	set     time.Time
}

// writeChunk is how much of a write one deadline covers. The timeout is
// one of no progress: a peer that reads a large batch of replies slowly
// but steadily is not cut off (Redis would not cut it off either), one
// that reads nothing for the timeout is.
const writeChunk = 256 << 10

func (d *deadlineWriter) Write(p []byte) (int, error) {
	total := 0
	for {
		chunk := p[total:]
		if len(chunk) > writeChunk {
			chunk = chunk[:writeChunk]
		}
		d.set = refreshDeadline(d.nc.SetWriteDeadline, d.set, d.timeout)
		n, err := d.nc.Write(chunk)
		total += n
		if err != nil || total == len(p) {
			return total, err
		}
	}
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
