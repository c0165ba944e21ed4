package proxy

import (
	"bytes"
	"errors"
	"io"
	"net"
	"time"

	"github.com/pnats/switchyard/resp"
	"github.com/pnats/switchyard/router"
	"go.uber.org/zap"
)

// The fast path: what the event loop (loop_linux.go) does for a client
// without a goroutine. A command takes it when it is an ordinary command
// for the master's shared connection and the session holds no state of
// its own: no transaction, WATCH, subscription or dedicated connection,
// authenticated, and not an inline command. Reads that go to replicas (a
// read port's, or a main port's with read_policy or READONLY) take it
// too, to a replica's shared connection; a segment holds commands for one
// connection, and a command for another starts the next segment.
// Anything else, and anything unusual on the way (no master, a failover
// hold, a closed connection, a -READONLY reply, a client that does not
// take its replies at once), hands the session to a goroutine, which
// serves it exactly as a session that never was in the loop.

// resumeKind says where a session handed from the loop to a goroutine
// carries on.
type resumeKind uint8

const (
	resumeNone resumeKind = iota
	// resumeCommand: s.cmd was read and not handled; s.seg may hold fast
	// commands before it, not yet sent.
	resumeCommand
	// resumeBatch: s.seg holds commands that could not be queued.
	resumeBatch
	// resumeError: reading the client failed with s.lerr, a protocol error.
	resumeError
	// resumeFinish: the segment's replies are in and need the goroutine
	// (a -READONLY reply: the master was demoted).
	resumeFinish
	// resumeReread: the segment went to a replica that failed, or left
	// the read set, before answering all of it; a goroutine sends the
	// rest to the master or another replica (readFromMaster).
	resumeReread
	// resumeWrite: s.out holds replies the client has not taken yet.
	resumeWrite
	// resumeClose: the loop closes the session (a failed write).
	resumeClose
)

// maxHandoffs is how often a session may go from the loop to a goroutine;
// a client that keeps needing one (MULTI in a loop, a slow reader) stays
// on its goroutine rather than paying the move each time.
const maxHandoffs = 8

var (
	errWouldBlock = resp.ErrWouldBlock
	errEOF        = io.EOF
)

// routeFast is router.Lookup, through the session's cache of its last
// command name, with the metric ID in the session's type.
func (s *session) routeFast(cmd *resp.Command) (router.Class, uint16) {
	class, id := s.route.Lookup(cmd.Args)
	return class, uint16(id)
}

// fastOK reports whether cmd can take the fast path in the session's
// current state.
func (s *session) fastOK(class router.Class, cmd *resp.Command) bool {
	if class != router.Forward || cmd.Inline || !s.authed || s.sink != nil || s.ded != nil ||
		s.multi || s.watch {
		return false
	}
	// READONLY and READWRITE are answered by the proxy (read.go).
	if len(cmd.Args) == 1 && (bytes.EqualFold(cmd.Args[0], []byte("READONLY")) || bytes.EqualFold(cmd.Args[0], []byte("READWRITE"))) {
		return false
	}
	return true
}

// fastConn returns a live shared connection to the current master without
// waiting, or nil: no master, a failover hold, or no connection open yet.
// A session still on the last master's generation moves to the current
// one here; releasing the old pool of a session with settings of its own
// closes that pool in the background (generation.release), so the loop
// does not wait for it.
func (s *session) fastConn() *backendConn {
	g := s.srv.current()
	if g == nil {
		return nil
	}
	if g != s.gen {
		s.moveTo(g)
	}
	c := s.pool.liveShared()
	s.shared = c
	return c
}

// fastRead reports whether a read port's command can take the fast path:
// routeRead would send it to a replica as it is. Writes (refused),
// scripts, Pub/Sub and SCRIPT LOAD go to a goroutine.
func (s *session) fastRead(cmd *resp.Command) bool {
	if isScriptLoad(cmd.Args) || s.recentWrite() {
		return false
	}
	return s.srv.commandFlags(cmd.Args)&(CmdWrite|CmdMayWrite|CmdPubSub) == 0
}

// preferRead is fastRead for a main port's client that reads from
// replicas (read_policy, or READONLY): whether the command can take the
// fast path, whether it goes to a replica, and whether it writes, as
// routeRead decides. Reads go to a replica unless read_your_writes keeps
// them on the master; writes, scripts, Pub/Sub and commands that neither
// read nor write go to the master. SCRIPT LOAD goes to a goroutine.
func (s *session) preferRead(cmd *resp.Command) (replica, write, ok bool) {
	if isScriptLoad(cmd.Args) {
		return false, false, false
	}
	f := s.srv.commandFlags(cmd.Args)
	switch {
	case f&(CmdWrite|CmdMayWrite) != 0:
		return false, true, true
	case f&CmdPubSub != 0, f&CmdRead == 0:
		return false, false, true
	}
	return !s.recentWrite(), false, true
}

// fastReplica returns a live shared connection to the replica a new
// segment of reads goes to (the least loaded, as replicaConn picks),
// without waiting. A replica whose last dial failed (stopped, not yet out
// of the read set) is passed over for the next, as replicaConn passes
// it over. With none left, reads go to the master's shared connection,
// as routeRead falls back to it, unless read_policy keeps them off the
// master. nil, and a goroutine does what routeRead does: the replica
// picked has no connection open yet, or no replica can serve and the
// policy says so.
func (s *session) fastReplica() *backendConn {
	var tried [4]*replicaNode
	skip := tried[:0]
	for {
		n := s.srv.pickReplica(skip)
		if n == nil {
			break
		}
		p := n.pool(s.key)
		if c := p.liveShared(); c != nil {
			s.replica, s.replicaNode = c, n
			return c
		}
		if !p.unreachable() {
			return nil // its connection is on its way
		}
		skip = append(skip, n)
	}
	if s.srv.cfg.ReadPolicy == ReadReplica {
		return nil
	}
	return s.fastConn()
}

// prepareRequest fills s.req from the current segment.
func (s *session) prepareRequest() *request {
	seg := &s.seg
	r := &s.req
	r.parts, r.n, r.out, r.blocking, r.unblock, r.err, r.refused, r.overflow, r.notify, r.lbatch = seg.parts, seg.n, &s.out, seg.blocking, seg.unblock, nil, 0, false, nil, false
	s.segStart = len(s.out)
	return r
}

// loopDone runs where the backend's replies are read (the event loop, for
// a connection it adopted, else the connection's reader goroutine) when
// a loop session's segment is finished: it writes the replies to the
// client without waiting, and gives the session back to the loop if the
// client has more to say. Anything that could wait goes to a goroutine
// instead.
func (s *session) loopDone() {
	defer func() {
		// A bug must cost this client, not the reader (the loop, for
		// every client) nor leave the session half-finished, which would
		// hold up Close. Below, posting it is always the last step.
		if v := recover(); v != nil {
			s.srv.log.Error("panic answering a client; closing it", zap.Any("panic", v), zap.Stack("stack"))
			s.askLoop(resumeClose)
		}
	}()
	r := &s.req
	r.notify = nil
	if n := s.seg.node; n != nil {
		n.end(s.key)
		if r.err != nil {
			s.askLoop(resumeReread)
			return
		}
	} else if s.retryUnsent(r) {
		// Nothing was written, and a second try may succeed: a goroutine
		// makes it, as for a segment that could not be queued (flush).
		s.askLoop(resumeBatch)
		return
	}
	if r.refused != 0 && r.err == nil && s.seg.node == nil {
		// A refusal the master made, which finishSeg gets past.
		s.askLoop(resumeFinish)
		return
	}
	s.finishSeg()
	if s.refusing != nil || s.closing {
		// Held past HoldTimeout: what the client sent after these must
		// be refused too (see refusing). Or the client is to be
		// disconnected after these replies. A goroutine does either.
		s.askLoop(resumeWrite)
		return
	}
	if r.lbatch && s.srv.loop.Load().deferReply(s) {
		return // the loop writes it with the others of its round
	}
	s.wrote(writeRaw(s.in.fd, s.out))
}

// wrote finishes loopDone once n bytes of the replies went to the client
// (a write, or the loop's send through its ring), or err ended it.
func (s *session) wrote(n int, err error) {
	m := s.srv.cfg.Metrics
	if n > 0 {
		m.add(m.BytesOut, float64(n))
	}
	if err != nil {
		s.askLoop(resumeClose)
		return
	}
	if n < len(s.out) {
		s.out = s.out[:copy(s.out, s.out[n:])]
		s.askLoop(resumeWrite)
		return
	}
	s.resetOut()
	s.busy.Store(false)
	more := s.in.more || s.rd.Buffered() > 0
	if !more {
		s.rd.Release()
		s.cmd.Reset() // it may point into the buffer released, or be sized for a large command
	}
	s.lmu.Lock()
	again := s.lready || s.lstop || s.lhup || more
	s.lready = false
	if !again {
		s.lbusy = false
	}
	s.lmu.Unlock()
	if again {
		s.srv.loop.Load().post(s)
	}
}

// askLoop asks the loop to do how with a session it owns.
func (s *session) askLoop(how resumeKind) {
	s.lmu.Lock()
	s.lresume = how
	s.lmu.Unlock()
	s.srv.loop.Load().post(s)
}

// loopable reports whether a goroutine session could go back to the loop.
func (s *session) loopable() bool {
	return s.plain && s.srv.loop.Load() != nil && s.handoffs < maxHandoffs &&
		s.sink == nil && s.ded == nil && !s.multi && !s.watch &&
		s.authed && !s.closing && len(s.in.peeked) == 0 && s.in.err == nil && len(s.out) == 0 && s.refusing == nil
}

// toLoop moves an idle goroutine session into the loop: its goroutine
// returns at once if this succeeds.
func (s *session) toLoop() bool {
	s.lmu.Lock()
	if s.lstop {
		s.lmu.Unlock()
		return false
	}
	fd, err := detachConn(s.nc)
	if err != nil {
		s.lmu.Unlock()
		return false
	}
	s.in.fd = fd
	s.inLoop, s.lbusy, s.lnew = true, true, true
	s.lmu.Unlock()
	s.srv.loop.Load().post(s)
	return true
}

// stop closes the session: at once if it waits for its client, after the
// batch in flight otherwise (the loop's sessions), or by closing its
// connection (a goroutine's, which then sees its read fail).
func (s *session) stop() {
	s.lmu.Lock()
	s.lstop = true
	if !s.inLoop {
		nc := s.nc
		s.lmu.Unlock()
		nc.Close()
		return
	}
	post := !s.lbusy
	if post {
		s.lbusy = true
	}
	s.lmu.Unlock()
	if post {
		s.srv.loop.Load().post(s)
	}
}

// stopIdle is Shutdown's stop: it closes the session only if it is
// between batches, deciding under lmu so that a batch being read, in
// flight or handed to a goroutine at that moment is answered first.
// Shutdown calls it again until the session is gone.
func (s *session) stopIdle() {
	s.lmu.Lock()
	if s.inLoop {
		if s.lbusy {
			s.lmu.Unlock()
			return
		}
		s.lstop, s.lbusy = true, true
		s.lmu.Unlock()
		s.srv.loop.Load().post(s)
		return
	}
	if s.busy.Load() && !s.pinned.Load() {
		s.lmu.Unlock()
		return
	}
	s.lstop = true
	nc := s.nc
	s.lmu.Unlock()
	nc.Close()
}

// inLoopNow reports whether the loop serves the session.
func (s *session) inLoopNow() bool {
	s.lmu.Lock()
	defer s.lmu.Unlock()
	return s.inLoop
}

// setConn makes nc the session's connection; s.lmu is held.
func (s *session) setConn(nc net.Conn) {
	nc = rawSocketOf(nc)
	s.nc = nc
	s.in.nc = nc
	s.in.fd = -1
	s.in.deadline = time.Time{}
	s.cw = deadlineWriter{nc: nc, timeout: s.srv.cfg.ClientWriteTimeout}
}

func isNotSent(err error) bool {
	if err == nil {
		return false // before ns, which escapes: no allocation per command
	}
	var ns *notSentError
	return errors.As(err, &ns)
}

func isProtocolError(err error) bool {
	var pe *resp.ProtocolError
	return errors.As(err, &pe)
}
