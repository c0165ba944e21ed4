package proxy

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pnats/switchyard/resp"
	"github.com/pnats/switchyard/router"
	"go.uber.org/zap"
)

// session serves one client connection. Its goroutine reads every command
// the client has buffered, forwards runs of them as segments, waits for the
// replies, and writes them back in one syscall: a batch.
type session struct {
	srv *Server
	nc  net.Conn
	in  clientReader
	cw  deadlineWriter // bounds each write by ClientWriteTimeout
	rd  *resp.Reader
	cmd resp.Command
	out []byte // replies of the current batch
	// route remembers the class of the last command name the event loop
	// looked up for the client (routeFast).
	route router.Cache

	gen  *generation
	pool *pool
	key  poolKey
	name string

	// shared is the pipelined connection used by the current batch.
	shared *backendConn
	// replica and replicaNode are the replica connection of the batch.
	replica     *backendConn
	replicaNode *replicaNode
	// readPort is set for a read port's client; readPrefer when reads go
	// to replicas (the listener's policy, or READONLY on the connection).
	readPort   bool
	readPrefer bool
	// lastWrite is when a write of the client's was last acknowledged,
	// and writing is set from when one is routed to the master until its
	// segment holds it (segment.wrote), for ReadYourWrites (read.go).
	lastWrite time.Time
	writing   bool
	// retryUntil, once a segment that was not sent is tried again
	// (retryUnsent), bounds all its waits for a master together to
	// HoldTimeout from the first failure; zero otherwise.
	retryUntil time.Time
	// ded is the session's own connection while it holds state there.
	ded          *backendConn
	multi, watch bool
	// masterChanged: the session's commands went to a master that has
	// since been replaced, and no WAIT has said so yet (markWrites).
	masterChanged bool
	// refusing is set once a command found no master within HoldTimeout
	// (errNoMaster, or a master that could not be reached), or Redis
	// refused a connection of the client's own (dedicated). Every later
	// command the client had sent by then gets the same error at once,
	// without waiting again: a pipeline is refused from that command on,
	// and never split into refused and run parts by a master that came
	// back meanwhile, which would make retrying the refused ones reorder
	// the client's writes. settle ends it once the client has sent
	// nothing more.
	refusing error
	// poisoned: the proxy refused a command inside MULTI that Redis never
	// saw, so EXEC must fail as Redis fails a transaction with a bad
	// command in it.
	poisoned bool
	// sink is set in tunnel mode (Pub/Sub, MONITOR, tracking): the backend
	// writes to the client directly and the session only forwards.
	sink *clientWriter
	// ownID: the tunnel's client has been told its connection's ID (CLIENT
	// ID), which other clients may name in CLIENT UNBLOCK or TRACKING
	// REDIRECT; RESET keeps the connection then (handleTunnel).
	ownID   bool
	closing bool
	// pinned mirrors ded != nil for Stats, which runs on another goroutine.
	pinned atomic.Bool
	// busy is set while a batch is being served; Shutdown closes sessions
	// that are not busy and lets busy ones finish their batch.
	busy atomic.Bool

	// batchStart is when the current batch was read; command durations
	// are measured from it.
	batchStart time.Time

	seg segment
	req request
	id  uint16 // the current command's metric ID

	// authed is false until a client of a proxy that authenticates its
	// clients (Config.Authenticate) has done so.
	authed       bool
	authFailures int

	// plain is set for a TCP client without TLS: the event loop can serve it.
	plain bool
	// lmu guards inLoop, lbusy, lready, lhup, lstop and lresume: the event
	// loop's ownership of the session (loop_linux.go, fast.go).
	lmu sync.Mutex
	// inLoop: the loop serves the session, no goroutine does.
	inLoop bool
	// lbusy: the loop works on the session, or its segment is in flight,
	// or it is queued for the loop; nothing else may touch it.
	lbusy bool
	// lready: the client became readable while lbusy; lhup: it hung up.
	lready, lhup bool
	// lstop: Close or Shutdown asked for the session to end.
	lstop bool
	// lresume: what a backend reader asks the loop to do with the session.
	lresume resumeKind
	// Owned by whoever serves the session (the loop or its goroutine):
	lnew       bool      // not yet in the loop's epoll set
	lerr       error     // the read error a goroutine is to answer
	handoffs   int       // moves from the loop to a goroutine
	lastActive time.Time // when the loop last served it, for IdleTimeout
	segStart   int       // len(s.out) when the current segment was sent
	onDone     func()    // s.loopDone, made once
}

// segment is a run of commands bound for one backend connection.
type segment struct {
	conn     *backendConn
	node     *replicaNode // set when conn is a replica's
	parts    [][]byte
	ids      []uint16 // command IDs, for metrics
	n        int
	blocking bool
	// unblock: how a failover may unblock the segment's one blocking
	// command on the old master (request.unblock): a pop or stream read
	// the session then sends again (reblock), or a WAIT, which answers
	// its count so far. fromNow: an XREAD … $, which does not go again
	// (readsFromNow).
	unblock unblockMode
	fromNow bool
	wrote   bool // it holds a write: its replies set lastWrite
}

var (
	replyOK    = []byte("+OK\r\n")
	replyReset = []byte("+RESET\r\n")
)

func newSession(srv *Server, nc net.Conn) *session {
	s := &session{srv: srv, nc: nc, key: defaultKey}
	s.in.nc = nc
	s.in.fd = -1
	s.in.bytes = srv.cfg.Metrics.BytesIn
	s.in.idle = srv.cfg.IdleTimeout
	s.in.peekLimit = srv.cfg.Limits.MaxFrameLen
	s.cw = deadlineWriter{nc: nc, timeout: srv.cfg.ClientWriteTimeout}
	lim := srv.cfg.Limits
	s.authed = srv.cfg.Authenticate == nil
	lim.Unauthenticated = !s.authed
	s.rd = resp.NewReader(&s.in, srv.cfg.ClientBufferSize, lim)
	s.req.done = make(chan struct{}, 1)
	s.onDone = s.loopDone
	return s
}

// serve is the goroutine of a session accepted outside the event loop.
func (s *session) serve() {
	// Its reads and writes become a rawSocket's (setConn). Not in
	// newSession: a client the loop serves would carry one unused, which
	// cost 0.2 KiB per idle connection.
	s.lmu.Lock()
	s.setConn(s.nc)
	s.lmu.Unlock()
	if tc, ok := s.nc.(*tls.Conn); ok {
		// Bound the handshake: a peer that never sends a ClientHello must
		// not hold the session forever.
		tc.SetDeadline(time.Now().Add(s.srv.cfg.HandshakeTimeout))
		if err := tc.Handshake(); err != nil {
			s.srv.log.Debug("client TLS handshake failed", zap.String("client", addrOf(s.nc)), zap.Error(err))
			s.cleanup()
			s.srv.endSession(s)
			return
		}
		tc.SetDeadline(time.Time{})
	}
	s.goroutine(resumeNone)
}

// goroutine serves the session on the calling goroutine until it ends
// (then it cleans up) or goes back to the event loop.
func (s *session) goroutine(how resumeKind) {
	looped := false
	defer func() {
		if !looped {
			s.cleanup()
			s.srv.endSession(s)
		}
	}()
	defer func() {
		// A bug in one session must not take every client down with it.
		if v := recover(); v != nil {
			s.srv.log.Error("session panic; closing the client", zap.Any("panic", v), zap.Stack("stack"))
			s.seg = segment{}
			s.closing = true
		}
	}()
	looped = s.run(how)
}

// run reads batches of commands and serves them: it forwards runs of
// them as segments, waits for the replies, and writes them back in one
// syscall. how says where a session coming from the event loop carries
// on. It returns true when the session went back to the loop.
func (s *session) run(how resumeKind) bool {
	switch how {
	case resumeError:
		s.readFailed(s.lerr)
		return false
	case resumeReread, resumeFinish:
		if how == resumeReread {
			s.readFromMaster(s.seg.parts[len(s.seg.parts)-s.req.n:])
		}
		s.finishSeg()
		fallthrough
	case resumeWrite:
		s.settle()
		if err := s.writeOut(); err != nil {
			return false
		}
		s.busy.Store(false)
	}
	pending := how == resumeCommand || how == resumeBatch
	for !s.closing {
		if pending {
			if how == resumeCommand {
				s.handle(&s.cmd)
			}
			pending = false
		} else {
			if s.srv.draining.Load() {
				return false // the batch is answered; Shutdown wants the client gone
			}
			if s.loopable() && s.toLoop() {
				return true
			}
			if err := s.rd.ReadCommand(&s.cmd); err != nil {
				s.readFailed(err)
				return false
			}
			s.busy.Store(true)
			s.shared, s.replica, s.replicaNode = nil, nil, nil
			s.batchStart = time.Now()
			s.handle(&s.cmd)
		}
		for !s.closing {
			ok, err := s.rd.BufferedCommand(&s.cmd)
			if err != nil {
				s.readFailed(err)
				return false
			}
			if !ok {
				break
			}
			s.handle(&s.cmd)
			if err := s.bound(); err != nil {
				return false
			}
		}
		s.flush()
		s.settle()
		if err := s.writeOut(); err != nil {
			return false
		}
		s.busy.Store(false)
	}
	return false
}

// settle ends a refusal (see refusing) when a batch's replies are about to
// be written and the client has sent nothing more: whatever it sends next
// may follow the refusals it is about to read. What it sent before
// reading them is refused too.
func (s *session) settle() {
	if s.refusing != nil && s.rd.Buffered() == 0 && !s.in.pending() {
		s.refusing = nil
	}
}

// maxSegment is the most commands forwarded before their replies are
// collected; with the 64 KiB write threshold it bounds what one client's
// pipeline can make the proxy hold in memory.
const maxSegment = 64

// bound collects replies and writes them out mid-batch once a client has
// pipelined enough that holding more would grow memory without limit. The
// write blocks on a client that does not read: that is the backpressure.
func (s *session) bound() error {
	if s.seg.n >= maxSegment {
		s.flush()
	}
	if len(s.out) >= maxClientBuffer && len(s.seg.parts) == 0 {
		return s.writeOut()
	}
	return nil
}

// readFailed ends the session after a read error. A protocol error is
// answered the way Redis answers it, after the replies of every command
// before it, and the connection is then closed.
func (s *session) readFailed(err error) {
	var pe *resp.ProtocolError
	if !errors.As(err, &pe) {
		if s.sink != nil && (err == io.EOF || err == io.ErrUnexpectedEOF) {
			s.closeTunnel()
		}
		return
	}
	if c := s.ded; s.sink != nil && c != nil && c.alive() {
		// In a tunnel the replies to the commands before the bad one come
		// from Redis through the pump: the end is passed on as for a
		// half-close, the pump copies them, and the error comes after.
		c.keepClient.Store(true)
		s.closeTunnel()
	}
	s.flush()
	s.reply(resp.AppendError(nil, "ERR "+pe.Msg))
	s.writeOut()
	s.srv.log.Debug("client protocol error", zap.String("client", addrOf(s.nc)), zap.String("error", pe.Msg))
}

func (s *session) writeOut() error {
	if s.sink != nil {
		return s.sink.flush()
	}
	if len(s.out) == 0 {
		return nil
	}
	n, err := s.cw.Write(s.out)
	m := s.srv.cfg.Metrics
	m.add(m.BytesOut, float64(n))
	s.resetOut()
	if err != nil && isTimeoutErr(err) {
		m.add(m.SlowClients, 1)
		resetOnClose(s.nc)
		s.srv.log.Debug("client disconnected: it read nothing for client_write_timeout",
			zap.String("client", addrOf(s.nc)), zap.Duration("client_write_timeout", s.cw.timeout))
	}
	return err
}

// resetOut empties s.out once written, dropping a large reply's buffer
// rather than pinning it to an idle client.
func (s *session) resetOut() {
	if cap(s.out) > maxClientBuffer {
		s.out = nil
	} else {
		s.out = s.out[:0]
	}
}

// reply adds a locally produced reply after everything forwarded so far.
func (s *session) reply(b []byte) {
	s.flush()
	if s.sink != nil {
		s.sink.write(b, false)
		return
	}
	s.out = append(s.out, b...)
}

func (s *session) replyError(msg string) {
	s.reply(resp.AppendError(nil, msg))
}

func (s *session) handle(cmd *resp.Command) {
	raw := cmd.Raw
	if cmd.Inline {
		// Redis would parse the inline line itself, but it ignores empty
		// lines and would count replies differently; a multibulk copy is
		// unambiguous. Inline commands are for humans, so the copy is fine.
		raw = resp.AppendCommand(nil, cmd.Args)
	}
	class, id := router.Lookup(cmd.Args)
	s.id = uint16(id)
	if s.authRequired(class) {
		s.replyError(replyNoAuth)
		return
	}
	if s.sink != nil {
		s.handleTunnel(class, cmd.Args, raw)
		return
	}
	if s.ded != nil && (s.multi || s.watch) {
		s.handlePinned(class, cmd.Args, raw)
		return
	}
	switch class {
	case router.Forward:
		if readWriteToggle(s, cmd.Args) {
			return
		}
		if s.readPort || s.readPrefer {
			if s.routeRead(cmd.Args, raw) {
				return
			}
		}
		c, err := s.sharedConn()
		if err != nil {
			s.writing = false // nothing was sent
			s.replyError(clientError(err))
			return
		}
		s.forward(c, raw, false)
	case router.Blocking:
		if s.readPort && isKill(cmd.Args) {
			s.killOnReplicas(raw)
			return
		}
		if s.readPortRefuses(cmd.Args) {
			s.replyError(replyReadonlyPort) // BLPOP and friends pop
			return
		}
		// The commands before it go first: their segment may end with
		// the client's connection given back to the pool (finishSeg),
		// after an EXEC, DISCARD or UNWATCH in the same batch, and the
		// command must not follow it there, where another client may
		// take it.
		s.flush()
		get := (*pool).dedicated
		if isKill(cmd.Args) {
			get = (*pool).dedicatedKill
		}
		c, err := s.dedicatedFrom(get)
		if err != nil {
			s.replyError(clientError(err))
			return
		}
		if isWait(cmd.Args) && !s.markWrites(c) {
			s.dropDedicated(s.ded != nil && s.ded.alive())
			return
		}
		// The replies before it go out now, as Redis sends them, not
		// when the blocked command returns.
		s.flush()
		if err := s.writeOut(); err != nil {
			s.closing = true
			return
		}
		s.writing = true // BLMOVE and the pops write
		s.forward(c, raw, true)
		s.seg.unblock = unblockModeOf(cmd.Args)
		s.seg.fromNow = readsFromNow(cmd.Args)
		s.flush()
	case router.Multi, router.Watch:
		if txArity(class, cmd.Args) {
			c, err := s.dedicated()
			if err != nil {
				s.replyError(clientError(err))
				return
			}
			s.forward(c, raw, false)
			s.multi = class == router.Multi
			s.watch = class == router.Watch
			break
		}
		fallthrough
	case router.Exec, router.Discard, router.Unwatch:
		// Outside a transaction Redis answers these itself (an error, or
		// OK for UNWATCH), as it answers a MULTI or WATCH of the wrong
		// arity, and no state changes: any shared connection will do.
		c, err := s.sharedConn()
		if err != nil {
			s.replyError(clientError(err))
			return
		}
		s.forward(c, raw, false)
	case router.Subscribe, router.Monitor, router.Tracking, router.ClientID:
		s.enterTunnel(class, cmd.Args, raw)
	default:
		s.handleLocal(class, cmd.Args, raw)
	}
}

// handlePinned routes a command while the session holds a transaction or
// WATCH on its dedicated connection.
func (s *session) handlePinned(class router.Class, args [][]byte, raw []byte) {
	switch class {
	case router.Select, router.Hello, router.Auth, router.Reset, router.Quit,
		router.ClientSetName, router.ClientGetName, router.Unsupported:
		switch {
		case class == router.Select || class == router.Hello || class == router.Auth:
			if s.multi {
				s.poisoned = true
			}
			s.replyError("ERR switchyard: " + string(upperName(args)) + " inside MULTI or after WATCH is not supported; send it before")
			return
		case class == router.Reset && len(args) != 1:
			if s.multi {
				s.poisoned = true // refused when queued, as Redis refuses a wrong arity
			}
			s.replyError(arityError("reset"))
			return
		case s.multi && class != router.Reset && class != router.Quit:
			// Redis would queue these and run them in EXEC, but the proxy
			// keeps the name itself, and refuses what it does not
			// support. Refused when queued, as Redis refuses a command it
			// cannot queue, so EXEC fails with EXECABORT.
			s.poisoned = true
			s.replyError("ERR switchyard: " + string(upperName(args)) + " inside MULTI is not supported; send it before or after the transaction")
			return
		}
		s.handleLocal(class, args, raw)
		return
	case router.Subscribe, router.Monitor, router.Tracking, router.ClientID:
		if !s.multi {
			s.enterTunnel(class, args, raw)
			return
		}
		// Executed by EXEC, it would leave a subscribed connection that
		// looks clean when the transaction ends.
		s.poisoned = true
		s.replyError("ERR switchyard: " + string(upperName(args)) + " inside MULTI is not supported")
		return
	case router.Exec:
		// An EXEC of the wrong arity goes to Redis, which aborts the
		// transaction for that reason, as it would after any error.
		if s.multi && s.poisoned && len(args) == 1 {
			s.abortPoisoned()
			return
		}
		s.writing = true // for read_your_writes
	case router.Forward, router.Blocking:
		if s.readPortRefuses(args) {
			// The transaction runs on the master, but a read port takes
			// no writes: refused as a replica refuses them, which in
			// MULTI makes EXEC fail with EXECABORT, as on a replica.
			if s.multi {
				s.poisoned = true
			}
			s.replyError(replyReadonlyPort)
			return
		}
		if class == router.Blocking || s.srv.commandFlags(args)&(CmdWrite|CmdMayWrite) != 0 {
			s.writing = true // after WATCH, outside MULTI: read_your_writes counts it
		}
	}
	if class == router.Blocking && !s.multi {
		if isWait(args) {
			// A DISCARD or EXEC before it in the batch ends the
			// transaction, and flushing it gives the connection back to
			// the pool (finishSeg), where another client may take it:
			// WAIT runs on the client's connection as it is after them.
			s.flush()
			c, err := s.dedicated()
			if err != nil {
				s.replyError(clientError(err))
				return
			}
			if !s.markWrites(c) {
				return
			}
		}
		// The replies before it go out now, as Redis sends them, not
		// when the blocked command returns.
		s.flush()
		if err := s.writeOut(); err != nil {
			s.closing = true
			return
		}
	}
	// After WATCH (not inside MULTI) a blocking command blocks for real.
	s.forward(s.ded, raw, class == router.Blocking && !s.multi)
	switch class {
	case router.Multi:
		if txArity(class, args) {
			s.multi = true
		}
	case router.Exec, router.Discard:
		// EXEC ends the transaction even when Redis refuses its arity
		// (EXECABORT); a DISCARD it refuses leaves the transaction open,
		// and the connection, still in MULTI, must stay the client's.
		if s.multi && (class == router.Exec || len(args) == 1) {
			s.multi, s.watch, s.poisoned = false, false, false
		}
	case router.Watch:
		if !s.multi && txArity(class, args) {
			s.watch = true
		}
	case router.Unwatch:
		if !s.multi {
			s.watch = false
		}
	}
}

// readPortRefuses reports whether a command that would run on the master
// on the client's own connection (in a transaction, or blocking) is one a
// read port refuses: a write, or a script, which may write (EVAL_RO and
// FCALL_RO are reads). PUBLISH, which Redis 6.2 flags may_replicate, goes
// to the master as it does outside a transaction.
func (s *session) readPortRefuses(args [][]byte) bool {
	if !s.readPort {
		return false
	}
	f := s.srv.commandFlags(args)
	return f&CmdWrite != 0 || f&CmdMayWrite != 0 && f&CmdPubSub == 0
}

// txArity reports whether a MULTI or WATCH has the arity Redis accepts
// (MULTI alone, WATCH with keys): one it refuses changes no state.
func txArity(class router.Class, args [][]byte) bool {
	if class == router.Multi {
		return len(args) == 1
	}
	return len(args) >= 2
}

// abortPoisoned ends a transaction in which the proxy refused a command:
// Redis discards the transaction and the client gets EXECABORT, exactly as
// if Redis had refused the command itself.
func (s *session) abortPoisoned() {
	s.flush()
	var scratch []byte
	err := s.roundTrip(s.ded, resp.AppendCommand(nil, [][]byte{[]byte("DISCARD")}), &scratch)
	s.multi, s.watch, s.poisoned = false, false, false
	if err != nil {
		s.replyError(clientError(err))
		s.closing = true
		return
	}
	// DISCARD left the connection clean. It goes back now: kept, it
	// would serve the client's next WATCH or MULTI after a HELLO or
	// SELECT had moved the client to other settings.
	s.dropDedicated(true)
	s.replyError("EXECABORT Transaction discarded because of previous errors.")
}

// forward appends raw to the current segment, first finishing the
// segment if it is bound for another connection.
func (s *session) forward(c *backendConn, raw []byte, blocking bool) {
	if s.seg.conn != c || blocking {
		s.flush()
		s.seg.conn = c
	}
	s.seg.parts = append(s.seg.parts, raw)
	s.seg.ids = append(s.seg.ids, s.id)
	if s.writing {
		s.seg.wrote, s.writing = true, false
	}
	if s.sink == nil {
		s.seg.n++
	}
	s.seg.blocking = blocking
}

// flush sends the current segment and waits until its replies are in
// s.out (or, in a tunnel, until its bytes are handed to the backend).
func (s *session) flush() {
	seg := &s.seg
	if len(seg.parts) == 0 {
		return
	}
	r := s.prepareRequest()
	if seg.node != nil {
		seg.node.begin(s.key)
		if err := seg.conn.enqueue(r); err != nil {
			r.err = err
		} else {
			<-r.done
		}
		seg.node.end(s.key)
		if r.err != nil {
			s.readFromMaster(seg.parts[len(seg.parts)-r.n:])
		}
	} else {
		// A blocking command is alone in its segment (handle); a failover
		// may make the proxy send it again (reblock).
		var sent time.Time
		if seg.blocking {
			sent = time.Now()
		}
		for moved := false; ; moved = true {
			if err := s.awaitRelease(); err != nil {
				r.err = err
			} else if err := seg.conn.enqueue(r); err != nil {
				r.err = err
			} else if seg.blocking {
				s.waitBlocking(r, seg.conn)
			} else {
				<-r.done
			}
			if s.reblock(r) {
				// As often as holds unblock it: each is a new failover.
				// Its wait so far counts against its timeout.
				if seg.blocking {
					seg.parts[0] = timeoutLeft(seg.parts[0], time.Since(sent))
					sent = time.Now()
				}
				r = s.prepareRequest()
				continue
			}
			if moved || !s.retryUnsent(r) {
				break
			}
			// Nothing was written: refused because the fence went up
			// after awaitRelease, queued behind a write the event loop
			// held back for the batch in flight, or queued on a connection
			// that was lost (the master died, or stopped answering as a
			// failover began). It goes where the failover's outcome sends
			// it, or to a fresh connection (awaitRelease).
			r = s.prepareRequest()
		}
	}
	s.finishSeg()
}

// retryUnsent reports whether r failed without a byte written on a shared
// connection, for a reason a second try can get past: the master has been
// replaced, is being replaced (a hold: the failover decides where it goes,
// even after a timeout), or the connection was lost. A new connection to a
// master that is down waits for one, as a new command does (connect).
// Not retried: commands that already waited HoldTimeout (errNoMaster), a
// closing server (errPoolClosed), and, outside a failover, a connection
// that timed out (read_timeout, or the kernel's ETIMEDOUT): that master
// is slow or unreachable rather than gone, a second try would most likely
// wait as long again, and TRYAGAIN says at once that nothing was sent.
// When it reports true, the retry's waits end HoldTimeout from now.
func (s *session) retryUnsent(r *request) bool {
	if !isNotSent(r.err) || s.seg.conn == nil || !s.seg.conn.shared || s.gen == nil {
		return false
	}
	retry := false
	switch {
	case s.gen.fenced.Load():
		retry = true
	case errors.Is(r.err, errNoMaster), errors.Is(r.err, errPoolClosed):
	case s.srv.held.Load():
		retry = true
	default:
		var ne net.Error
		retry = !errors.As(r.err, &ne) || !ne.Timeout()
	}
	if retry && s.retryUntil.IsZero() {
		s.retryUntil = time.Now().Add(s.srv.cfg.HoldTimeout)
	}
	return retry
}

// reblock reports whether r is a pop or stream read that did not run on
// the old master and now has a connection to go to again: to the new
// master, or to the old one if the failover aborted. Either a failover's
// hold unblocked it there before it took anything (errUnblocked), or the
// switch fenced its connection before it was written (a WAIT, whose count
// would be of the new master's replicas, does not follow: TRYAGAIN). Its
// connection, clean, is given up. A new one waits for the hold's end as
// a new command does, up to HoldTimeout; if none comes, r gets that
// error, and the client TRYAGAIN.
func (s *session) reblock(r *request) bool {
	unblocked := errors.Is(r.err, errUnblocked) || r.unblock == unblockResend && isNotSent(r.err) && errors.Is(r.err, errFenced)
	// An XREAD … $ the hold unblocked had started from the stream's end
	// then: sent again, it would skip what was added meanwhile, so it
	// gets TRYAGAIN. One never written may go, as any held command.
	if !unblocked || s.seg.conn != s.ded || s.ded == nil || s.seg.fromNow && errors.Is(r.err, errUnblocked) {
		return false
	}
	old := s.ded
	s.ded, s.seg.conn = nil, nil
	s.pinned.Store(false)
	s.pool.put(old, false)
	s.retryUntil = time.Now().Add(s.srv.cfg.HoldTimeout) // a new hold's wait
	if s.closing {
		// The client left as the reply came (waitBlocking): sent again,
		// the pop would take an element for nobody.
		r.err = errClientGone
		return false
	}
	// The client is watched meanwhile: the command of one that left must
	// not go again, to take an element for nobody.
	gone := s.in.watch()
	// Not s.dedicated: its refusal would flush, and this is a flush.
	c, err := s.connect((*pool).dedicated)
	var left error
	select {
	case <-gone:
		// Left, or sent more than max_request_bytes while its command
		// waited: either way it is not sent again.
		s.clientGone()
		left = s.in.goneErr()
	default:
	}
	s.in.stopWatch()
	if left != nil {
		if err == nil {
			s.pool.put(c, true) // nothing was sent on it
		}
		r.err = left
		s.closing = true
		return false
	}
	if err != nil {
		// Sent nowhere yet: TRYAGAIN, and the client keeps its
		// connection (finishSeg), as with a new pop.
		r.err = notSent(err)
		return false
	}
	s.ded, s.seg.conn = c, c
	s.pinned.Store(true)
	m := s.srv.cfg.Metrics
	m.add(m.BlockedResent, 1)
	return true
}

// holdWait is how long to wait for a master now: HoldTimeout, or what is
// left of it for a segment being tried again.
func (s *session) holdWait() time.Duration {
	if s.retryUntil.IsZero() {
		return s.srv.cfg.HoldTimeout
	}
	return max(time.Until(s.retryUntil), 0)
}

// finishSeg completes the segment whose request is finished: it retries
// what a demoted master refused, records metrics, turns a failure into
// error replies, and gives back a dedicated connection left stateless.
func (s *session) finishSeg() {
	seg := &s.seg
	r := &s.req
	if r.refused != 0 && r.err == nil && !r.overflow && seg.conn != s.ded && seg.node == nil {
		if r.refused&refusedReadonly != 0 {
			s.retryReadonly(s.segStart, seg.parts)
		} else {
			s.retryLoading(s.segStart, seg.parts, seg.ids)
		}
	}
	conn, blocking := seg.conn, seg.blocking
	m := s.srv.cfg.Metrics
	m.observe(seg.ids, time.Since(s.batchStart), seg.node != nil)
	if g := s.gen; g != nil && !g.routed.Load() && g.routed.CompareAndSwap(false, true) && m.FirstCommand != nil {
		m.FirstCommand(g.epoch)
	}
	if seg.wrote {
		// From the acknowledgement, not from when the write was read:
		// one held by a failover or a write pause counts from when it
		// was done.
		s.lastWrite = time.Now()
		seg.wrote = false
	}
	clear(seg.parts)
	seg.parts = seg.parts[:0]
	seg.ids = seg.ids[:0]
	seg.n = 0
	seg.blocking, seg.unblock, seg.fromNow = false, noUnblock, false
	seg.conn = nil
	seg.node = nil
	s.retryUntil = time.Time{}
	if r.overflow {
		// The replies held before the limit go out; then the client is
		// disconnected, as Redis disconnects one past its output limit.
		s.closing = true
		m.add(m.OutputLimitClients, 1)
		s.srv.log.Warn("client disconnected: its replies passed client_output_limit",
			zap.String("client", addrOf(s.nc)), zap.Int64("client_output_limit", s.srv.cfg.ClientOutputLimit))
	}
	if r.err != nil {
		if errors.Is(r.err, errNoMaster) {
			s.refusing = r.err // held for HoldTimeout, by awaitRelease or the event loop
		}
		msg := clientError(r.err)
		for i := 0; i < r.n; i++ {
			s.out = resp.AppendError(s.out, msg)
		}
		if conn == s.ded {
			// The client's transaction, blocked command or subscription
			// is gone with the connection; it must see that, not carry on
			// as if its state were still there. A blocking command (WAIT,
			// BLPOP) that was never sent left no state anywhere: its
			// TRYAGAIN says so, and the client keeps its connection, as
			// after any command not sent (a failover fenced the connection
			// first); what it pipelined after it is refused with it (see
			// refusing), so that a retry keeps its order.
			stateless := blocking && (isNotSent(r.err) || errors.Is(r.err, errNoMaster) || errors.Is(r.err, errUnblocked)) && !s.multi && !s.watch && s.sink == nil
			s.dropDedicated(false)
			if stateless {
				s.refusing = r.err
			} else {
				s.closing = true
			}
		}
	}
	// A dedicated connection whose segment finished with no state left on
	// it goes back to the pool. Only that one: a segment flushed because a
	// MULTI or SUBSCRIBE is about to use a just-taken connection must not
	// give that connection away.
	if conn != nil && conn == s.ded && !s.multi && !s.watch && s.sink == nil {
		s.dropDedicated(true)
	}
}

// waitBlocking waits for a blocking command's reply while watching the
// client: if it disconnects, the backend connection is closed, which is
// how Redis itself learns that nobody waits for the reply any more.
func (s *session) waitBlocking(r *request, c *backendConn) {
	gone := s.in.watch()
	select {
	case <-r.done:
	case <-gone:
		if s.in.overLimit() {
			answered, done := s.answeredPastLimit(r, c)
			if answered {
				break
			}
			if done {
				// Unblocked on Redis, where it took nothing: it goes
				// no further (not sent again: reblock), and the client
				// gets why.
				s.clientGone()
				r.err = s.in.goneErr()
				c.close(r.err)
				s.closing = true
				break
			}
		}
		s.clientGone()
		c.close(s.in.goneErr())
		<-r.done
		s.closing = true
	}
	s.in.stopWatch()
}

// answeredPastLimit decides about a client that sent more than
// max_request_bytes while its command r waited on c. Redis closes a
// client past client-query-buffer-limit while it has the client's command
// blocked; a command it answers at once (a BLPOP on a list that has an
// element) never lets a client's input pile up there. So a pop or stream
// read is unblocked on Redis with CLIENT UNBLOCK … ERROR, which takes
// nothing, and asked again while Redis has not read it yet: answered
// reports that Redis answered it instead, and the client is served as
// Redis would serve it; done, with answered false, that it was
// unblocked and r is finished (r.done taken). If it cannot be asked (a
// WAIT, no CLIENT ID, a user without CLIENT UNBLOCK, a pool closed by a
// failover), a reply within peekGrace counts as answered. The question
// goes to the master c is on, through the pool that dialled it.
func (s *session) answeredPastLimit(r *request, c *backendConn) (answered, done bool) {
	b, ok := c.blockedNow()
	if !ok || b.mode != unblockResend || c.redisID <= 0 || c.owner == nil {
		return received(r.done, peekGrace), false
	}
	c.unblocking.Store(true) // its reader turns -UNBLOCKED into errUnblocked
	left := c.owner.askUnblock([]*backendConn{c}, map[*backendConn]blockedCmd{c: b}, time.Now().Add(s.srv.cfg.ReadTimeout))
	if len(left) > 0 {
		c.unblocking.Store(false) // not unblocked: asking was refused, or timed out
		return received(r.done, peekGrace), false
	}
	<-r.done
	if errors.Is(r.err, errUnblocked) {
		return false, true
	}
	return true, true
}

// clientGone logs a client the watcher gave up on for what it sent.
func (s *session) clientGone() {
	if s.in.overLimit() {
		s.srv.log.Warn("closing a client that sent more than max_request_bytes while its command was blocked, as Redis closes one past client-query-buffer-limit",
			zap.String("client", addrOf(s.nc)), zap.Int64("max_request_bytes", s.in.peekLimit))
	}
}

// received reports whether done delivers within d.
func received(done <-chan struct{}, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}

// roundTrip sends one command on c outside the client's reply stream and
// puts its reply in *out.
//
// It uses a request of its own: s.req's parts may alias the segment being
// built, which must not be overwritten.
func (s *session) roundTrip(c *backendConn, raw []byte, out *[]byte) error {
	r := &request{parts: [][]byte{raw}, n: 1, out: out, done: make(chan struct{}, 1)}
	if err := c.enqueue(r); err != nil {
		return notSent(err)
	}
	<-r.done
	return r.err
}

// sharedConn returns the pipelined connection for this batch.
func (s *session) sharedConn() (*backendConn, error) {
	// usable: the connection kept from the last batch may have been
	// closed by Redis while idle (its timeout, CLIENT KILL), which its
	// reader, not reading then, has not seen. Looking costs a system
	// call only when nothing is outstanding on it.
	if s.shared != nil && s.shared.usable() {
		return s.shared, nil
	}
	c, err := s.connect((*pool).shared)
	if err != nil {
		return nil, err
	}
	s.shared = c
	return c, nil
}

// dedicated returns the session's own connection, taking one from the
// pool if it holds none.
func (s *session) dedicated() (*backendConn, error) {
	return s.dedicatedFrom((*pool).dedicated)
}

func (s *session) dedicatedFrom(get func(*pool) (*backendConn, error)) (*backendConn, error) {
	if s.ded != nil && s.ded.alive() {
		return s.ded, nil
	}
	c, err := s.connect(get)
	if err != nil {
		var re *ReplyError
		if errors.As(err, &re) {
			// Redis refused the new connection (maxclients, a password
			// the proxy lacks, LOADING): what the client pipelined after
			// this command, the rest of a MULTI … EXEC say, is refused
			// with it, not run one by one on a shared connection. What
			// it sent before goes out first, on the connection it was
			// meant for: the refusal is from this command on.
			s.flush()
			s.refusing = err
		}
		return nil, err
	}
	s.ded = c
	s.pinned.Store(true)
	return c, nil
}

// connect gets a connection from the current pool. A master that cannot be
// reached has received nothing, so instead of failing at once the session
// asks for a re-check and keeps trying, on a new master as soon as one is
// published, until HoldTimeout; then it fails closed with TRYAGAIN.
func (s *session) connect(get func(*pool) (*backendConn, error)) (*backendConn, error) {
	return s.connectFrom(get, false)
}

// connectAfterHold is connect for a command that has waited out a
// failover hold already (awaitRelease).
func (s *session) connectAfterHold(get func(*pool) (*backendConn, error)) (*backendConn, error) {
	return s.connectFrom(get, true)
}

func (s *session) connectFrom(get func(*pool) (*backendConn, error), held bool) (*backendConn, error) {
	var deadline time.Time
	looks := 0
	for {
		p, waited, err := s.poolAfterHold()
		if err != nil {
			return nil, err
		}
		if waited || held {
			looks, held = len(p.slots)+1, false
		}
		c, err := get(p)
		// After a failover hold Redis may have closed the connection (a
		// restart, CLIENT KILL) an instant before the release, and the
		// event loop, which reads it, not have read the close yet: a
		// command written to it would fail as "may or may not have
		// run", though Redis never saw it. (Outside a hold the loop reads
		// such a close within microseconds, and the look, a system call,
		// is not made.) A look per shared connection and one more: each
		// closes what it finds closed, and the next get takes another
		// connection, or dials. (A dedicated one taken from the pool is
		// looked at there, and must go back to it.)
		if err == nil && looks > 0 && c.shared {
			looks--
			if c.closedIdle() {
				continue
			}
		}
		if err == nil || !isDialError(err) {
			return c, err
		}
		now := time.Now()
		if deadline.IsZero() {
			deadline = now.Add(s.srv.cfg.HoldTimeout)
			if !s.retryUntil.IsZero() {
				deadline = s.retryUntil
			}
			s.srv.recheck()
		}
		if !now.Before(deadline) {
			s.refusing = err
			return nil, err
		}
		s.srv.waitMaster(s.gen, min(deadline.Sub(now), s.srv.cfg.DialBackoff))
	}
}

// dropDedicated gives the dedicated connection back; reuse says its state
// is clean enough for another session.
func (s *session) dropDedicated(reuse bool) {
	if s.ded == nil {
		return
	}
	s.flushIfOn(s.ded)
	s.pool.put(s.ded, reuse && s.sink == nil)
	s.ded = nil
	s.pinned.Store(false)
	s.multi, s.watch, s.poisoned = false, false, false
}

func (s *session) flushIfOn(c *backendConn) {
	if s.seg.conn == c && len(s.seg.parts) > 0 {
		s.flush()
	}
}

// currentPool returns the pool for the session's settings in the current
// generation, waiting up to HoldTimeout for a master if none is known.
func (s *session) currentPool() (*pool, error) {
	p, _, err := s.poolAfterHold()
	return p, err
}

// poolAfterHold is currentPool, which also reports whether it waited for
// a master (a failover hold, or none verified).
func (s *session) poolAfterHold() (p *pool, waited bool, err error) {
	if s.refusing != nil {
		return nil, false, s.refusing
	}
	g := s.srv.current()
	if g == nil {
		hook(holdWaitHook)
		g = s.srv.waitMaster(nil, s.holdWait())
		if g == nil {
			s.refusing = errNoMaster
			return nil, true, errNoMaster
		}
		waited = true
	}
	if g != s.gen {
		s.moveTo(g)
	}
	return s.pool, waited, nil
}

// moveTo switches the session to generation g. Dedicated state from the old
// generation cannot follow: such a session is ended.
func (s *session) moveTo(g *generation) {
	if s.gen != nil {
		s.masterChanged = true // for WAIT (markWrites)
	}
	if s.ded != nil {
		s.flushIfOn(s.ded)
		s.dropDedicated(false)
		s.closing = true
	}
	if s.pool != nil {
		s.gen.release(s.pool)
	}
	s.gen = g
	s.pool = g.acquire(s.key)
	s.shared = nil
}

// setKey switches the session to other settings, verifying them by getting
// a connection with them first. On error nothing changes.
func (s *session) setKey(key poolKey) (*backendConn, error) {
	// Commands before this one go out on the connections they were meant
	// for, before the old pool can be released under them.
	s.flush()
	var p *pool
	var c *backendConn
	var err error
	start := time.Now()
	for {
		if _, err := s.currentPool(); err != nil {
			return nil, err
		}
		p = s.gen.acquire(key)
		c, err = p.shared()
		if err == nil {
			break
		}
		s.gen.release(p)
		if s.movedOn(err, start) {
			// The master changed while the connection was on its way,
			// and its pool closed under it: nothing was sent with the
			// new settings, so they are tried on the new master.
			continue
		}
		break
	}
	if err != nil {
		var re *ReplyError
		if !errors.As(err, &re) {
			// No connection with the new settings (Redis unreachable, or
			// closing on the proxy at its maxclients): the rest of the
			// pipeline is refused with this command, or it would run
			// under the old settings, a SET meant for database 3 landing
			// in 0. Redis refusing the settings themselves (WRONGPASS, a
			// database it does not have) leaves the old ones in force,
			// as on a direct connection.
			s.refusing = err
		}
		return nil, err
	}
	s.gen.release(s.pool)
	s.pool = p
	s.key = key
	s.shared = c
	s.replica, s.replicaNode = nil, nil // they were for the old settings
	return c, nil
}

// movedOn reports whether err is the session's master being replaced
// under a request that changes no data (settings, HELLO), which may then
// be made again on the new master: for as long after start as a dial may
// take, so that a master switching back and forth cannot keep it going.
func (s *session) movedOn(err error, start time.Time) bool {
	return s.srv.current() != s.gen && (errors.Is(err, errFenced) || errors.Is(err, errPoolClosed)) &&
		time.Since(start) < s.srv.cfg.DialTimeout
}

func (s *session) cleanup() {
	s.flush()
	if s.ded != nil {
		s.dropDedicated(false)
	}
	if s.pool != nil {
		s.gen.release(s.pool)
		s.pool = nil
	}
	s.nc.Close()
}

// isTimeoutErr reports whether err is a timeout. Kept out of line, and
// called only with an error, for the reason isDialError is.
func isTimeoutErr(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// isDialError is kept out of line: the pointer errors.As needs escapes,
// and in connect it would cost an allocation per batch even without error.
func isDialError(err error) bool {
	var de *dialError
	return errors.As(err, &de)
}
