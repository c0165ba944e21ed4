package proxy

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pnats/switchyard/internal/repeat"
	"github.com/pnats/switchyard/router"
	"go.uber.org/zap"
)

// Server is the front end of one Redis group: it accepts clients on any
// number of listeners and forwards their commands to the group's current
// master, which the owner sets with SetMaster.
type Server struct {
	cfg Config
	log *zap.Logger

	gen atomic.Pointer[generation]
	// held is set while a failover is in progress: the current generation
	// stays open for what is already in flight, but nothing new is sent.
	held atomic.Bool
	// draining is set by Shutdown: listeners are closed on purpose and
	// sessions end after their current batch.
	draining atomic.Bool
	// refused logs clients refused at MaxClients: at most one line a
	// second, so that a connection storm at the limit does not flood the
	// log (the metric counts every refusal), each with the number of
	// refusals it stands for.
	refused *repeat.Line

	// replicas is the read set; replicaMu serialises SetReplicas.
	replicas  atomic.Pointer[replicaSet]
	replicaMu sync.Mutex
	// replicasClosed, under replicaMu, is set once Close took the read
	// set away: SetReplicas then installs nothing, or sessions still
	// ending would open connections on nodes nobody closes.
	replicasClosed bool
	// departed are replicas that left the read set lately (the newest
	// last, at most maxDeparted), under replicaMu: a read port's SCRIPT
	// KILL still reaches them, as a replica running a script past
	// busy-reply-threshold answers the health check -BUSY and leaves.
	departed  []string
	replicaRR atomic.Uint32
	cmdFlags  atomic.Pointer[func([][]byte) CommandFlags]
	table     atomic.Pointer[router.Table] // command flags, from the master
	bg        sync.WaitGroup               // background work such as refreshCommands

	// mu guards the fields below.
	mu        sync.Mutex
	published chan struct{} // closed and replaced when a generation is published
	listeners map[net.Listener]struct{}
	sessions  map[*session]struct{}
	closed    bool

	wg sync.WaitGroup // sessions

	// loop serves plain-TCP clients without a goroutine each; nil until
	// the first such client, and when Config.NoEventLoop is set or the
	// platform has none. loopTried is guarded by mu.
	loop      atomic.Pointer[loop]
	loopTried bool
}

// New returns a Server with cfg's defaults applied. It has no master until
// SetMaster is called; until then commands wait and then fail closed.
func New(cfg Config) *Server {
	cfg.setDefaults()
	// Every line the data path logs names the group, also those of the
	// pools and connections, which log through cfg.Logger.
	cfg.Logger = cfg.Logger.With(zap.String("group", cfg.Group))
	s := &Server{
		cfg:       cfg,
		log:       cfg.Logger,
		published: make(chan struct{}),
		listeners: make(map[net.Listener]struct{}),
		sessions:  make(map[*session]struct{}),
	}
	s.table.Store(router.Builtin())
	s.refused = repeat.New(time.Second, func(n int64) {
		s.log.Warn("client refused: max clients reached", zap.Int("max_clients", s.cfg.MaxClients),
			zap.Int64("refused_since_last_line", n))
	})
	return s
}

// SetMaster makes addr, at epoch, the node that receives commands. If it
// differs from the current master, the old generation is closed: every
// connection to the old node ends, and sessions pinned to it are closed.
func (s *Server) SetMaster(epoch uint64, addr string) {
	if cur := s.gen.Load(); cur != nil && cur.addr == addr && cur.epoch == epoch {
		// The same master verified again, e.g. after an aborted failover.
		s.Release()
		return
	}
	s.publish(newGeneration(epoch, addr, &s.cfg, &s.loop, &s.held, &s.bg))
}

// Hold stops new commands from reaching the current master, from the
// moment a failover starts or the master can no longer be verified: they
// wait (up to HoldTimeout) for Release or SetMaster. Commands already
// sent complete normally. why is for the log.
func (s *Server) Hold(why string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.held.Load() {
		return
	}
	s.held.Store(true)
	if g := s.gen.Load(); g != nil {
		n, u := g.fenceStalled(s.cfg.StallTimeout)
		s.log.Info("holding commands", zap.String("reason", why), zap.String("master", g.addr),
			zap.Int("stalled_connections_closed", n), zap.Int("blocked_commands_unblocking", u))
	}
}

// Release ends a Hold without a change of master (an aborted failover):
// held commands go to the current master.
func (s *Server) Release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || !s.held.Load() {
		return
	}
	s.held.Store(false)
	close(s.published)
	s.published = make(chan struct{})
	if l := s.loop.Load(); l != nil {
		// Commands queued before the hold and held back by it go now.
		l.resumeHeld()
	}
	s.log.Info("released held commands to the current master")
}

// ClearMaster withdraws the master: new commands wait for the next
// SetMaster (up to HoldTimeout) and connections to the old one close.
func (s *Server) ClearMaster() {
	s.publish(nil)
}

func (s *Server) publish(g *generation) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	if g != nil {
		// Before the first connection to the master is dialled, so that
		// the loop reads its replies (pool.dial) from the start.
		s.startLoop()
	}
	old := s.gen.Load()
	if old != nil {
		// Before anyone can learn of the new master: from now on no
		// connection of the old one writes a byte, nor hands a reply on
		// as a success (deliver).
		old.fenced.Store(true)
	}
	s.gen.Store(g)
	s.held.Store(false)
	if g != nil {
		close(s.published)
		s.published = make(chan struct{})
		s.bg.Add(1)
		go func() {
			defer s.bg.Done()
			s.refreshCommands(g)
		}()
	}
	s.mu.Unlock()
	if old != nil && g != nil && old.addr != g.addr {
		s.cfg.Metrics.add(s.cfg.Metrics.Failovers, 1)
	}
	if old != nil {
		if g != nil {
			s.log.Info("master changed", zap.String("old", old.addr), zap.String("new", g.addr), zap.Uint64("epoch", g.epoch))
		} else {
			s.log.Warn("master withdrawn", zap.String("old", old.addr))
		}
		// Nothing more is written to it (fenced above); closing its
		// connections may wait for a pump stuck on a slow subscriber, which
		// must not hold up whoever publishes the next topology.
		s.bg.Add(1)
		go func() {
			defer s.bg.Done()
			hook(replacedHook)
			old.close(errFenced)
		}()
	}
}

// Master returns the current master's address and epoch; ok is false when
// there is none.
func (s *Server) Master() (addr string, epoch uint64, ok bool) {
	g := s.gen.Load()
	if g == nil {
		return "", 0, false
	}
	return g.addr, g.epoch, true
}

// current returns the generation commands may be sent to, or nil while
// there is none or a failover holds them.
// recheck asks the owner to verify the master now.
func (s *Server) recheck() {
	if s.cfg.Recheck != nil {
		s.cfg.Recheck()
	}
}

func (s *Server) current() *generation {
	if s.held.Load() {
		return nil
	}
	if g := s.gen.Load(); g != nil && !g.fenced.Load() {
		return g
	}
	// Replaced: publish fences the old generation a moment before it
	// stores the new one (waitMaster then waits for that).
	return nil
}

// waitMaster waits up to d for a generation other than not to become
// current, and returns it, or nil.
// AwaitMaster waits up to d for the server to have a master to send
// commands to, and reports whether it has one.
func (s *Server) AwaitMaster(d time.Duration) bool { return s.waitMaster(nil, d) != nil }

func (s *Server) waitMaster(not *generation, d time.Duration) *generation {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		s.mu.Lock()
		ch, closed := s.published, s.closed
		s.mu.Unlock()
		if closed {
			// No master will come: Close must not wait for this.
			return nil
		}
		if g := s.current(); g != nil && g != not {
			return g
		}
		select {
		case <-ch:
		case <-t.C:
			if g := s.current(); g != nil && g != not {
				return g
			}
			return nil
		}
	}
}

// Serve accepts clients on l until l fails or the server is closed, when
// it returns ErrServerClosed. Temporary accept errors are retried with
// backoff, as net/http does.
func (s *Server) Serve(l net.Listener) error { return s.serve(l, false) }

// ServeRead accepts clients on a read port: their reads go to healthy
// replicas (falling back to the master unless the policy is ReadReplica),
// their writes are refused as a replica refuses them, and ROLE and INFO
// are answered by a replica.
func (s *Server) ServeRead(l net.Listener) error { return s.serve(l, true) }

func (s *Server) serve(l net.Listener, readPort bool) error {
	s.mu.Lock()
	if s.closed || s.draining.Load() {
		s.mu.Unlock()
		l.Close()
		return ErrServerClosed
	}
	s.listeners[l] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, l)
		s.mu.Unlock()
	}()

	var backoff time.Duration
	for {
		nc, err := l.Accept()
		if err != nil {
			if s.isClosed() {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporary(err) {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.log.Warn("accept failed; retrying", zap.Error(err), zap.Duration("backoff", backoff))
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		s.serveConn(nc, readPort)
	}
}

// tuneClient sets up an accepted client's TCP socket, under its TLS if
// it has one: no Nagle delay, and keepalive as configured. A listener
// turns keepalive on by default (Go's 15 s), and a negative period must
// turn it off.
func tuneClient(nc net.Conn, keepAlive time.Duration) {
	tc, ok := tcpConnOf(nc)
	if !ok {
		return
	}
	tc.SetNoDelay(true)
	limitUnsent(tc)
	switch {
	case keepAlive > 0:
		tc.SetKeepAlive(true)
		tc.SetKeepAlivePeriod(keepAlive)
	case keepAlive < 0:
		tc.SetKeepAlive(false)
	}
}

// tcpConnOf returns the TCP connection under nc: under its TLS, if it
// has one, and under a rawSocket.
func tcpConnOf(nc net.Conn) (*net.TCPConn, bool) {
	if tc, ok := nc.(interface{ NetConn() net.Conn }); ok {
		nc = tc.NetConn()
	}
	switch c := nc.(type) {
	case *net.TCPConn:
		return c, true
	case interface{ tcp() *net.TCPConn }:
		return c.tcp(), true
	}
	return nil, false
}

// isTemporary reports accept errors worth retrying, such as running out
// of file descriptors.
func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

func (s *Server) serveConn(nc net.Conn, readPort bool) {
	tuneClient(nc, s.cfg.KeepAlive)
	sess := newSession(s, nc)
	sess.readPort = readPort
	sess.readPrefer = readPort || s.cfg.ReadPolicy != ReadMaster
	_, sess.plain = nc.(*net.TCPConn)
	s.mu.Lock()
	// A connection accepted while Shutdown closes the listeners must not
	// join the sessions Shutdown is already waiting for.
	if s.closed || s.draining.Load() {
		s.mu.Unlock()
		nc.Close()
		return
	}
	if s.cfg.MaxClients > 0 && len(s.sessions) >= s.cfg.MaxClients {
		s.mu.Unlock()
		s.cfg.Metrics.add(s.cfg.Metrics.ClientsRejected, 1)
		s.refused.Hit()
		go refuse(nc, min(s.cfg.ClientWriteTimeout, s.cfg.HandshakeTimeout))
		return
	}
	s.sessions[sess] = struct{}{}
	s.wg.Add(1)
	useLoop := sess.plain && s.startLoop()
	s.mu.Unlock()
	s.cfg.Metrics.add(s.cfg.Metrics.ClientsAccepted, 1)
	if useLoop && sess.toLoop() {
		return
	}
	go sess.serve()
}

// startLoop starts the event loop unless it runs or cannot; s.mu is held.
func (s *Server) startLoop() bool {
	if !s.loopTried && !s.cfg.NoEventLoop {
		s.loopTried = true
		l, err := newLoop(s)
		if err != nil {
			s.log.Warn("no event loop; every client gets a goroutine", zap.Error(err))
		} else {
			s.loop.Store(l)
		}
	}
	return s.loop.Load() != nil
}

// endSession forgets a session that has ended.
func (s *Server) endSession(sess *session) {
	s.mu.Lock()
	delete(s.sessions, sess)
	s.mu.Unlock()
	s.wg.Done()
}

// refuse tells a client why it is turned away, as Redis does, and closes
// it. It runs on its own goroutine so a slow client cannot stall Accept;
// the deadline bounds it, reads included: on a TLS connection the write
// first waits for the client's handshake, and one that never sends it
// would otherwise hold a descriptor and a goroutine for ever.
func refuse(nc net.Conn, timeout time.Duration) {
	nc.SetDeadline(time.Now().Add(timeout))
	nc.Write([]byte("-ERR max number of clients reached\r\n"))
	nc.Close()
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed || s.draining.Load()
}

// Close stops the listeners, closes every client and backend connection
// at once and waits for the sessions to end.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.wg.Wait()
		return nil
	}
	s.closed = true
	close(s.published) // wakes waitMaster
	for l := range s.listeners {
		l.Close()
	}
	for sess := range s.sessions {
		sess.stop()
	}
	g := s.gen.Swap(nil)
	loop := s.loop.Load()
	s.mu.Unlock()
	if g != nil {
		g.fenced.Store(true)
		g.close(ErrServerClosed)
	}
	// The replicas' connections too, before waiting for the sessions: a
	// read on a replica that stopped answering would otherwise hold
	// Close for up to ReadTimeout. The loop is still running, and ends
	// the connections it reads.
	s.replicaMu.Lock()
	s.replicasClosed = true
	if set := s.replicas.Swap(nil); set != nil {
		for _, n := range set.nodes {
			n.close()
		}
	}
	s.replicaMu.Unlock()
	s.wg.Wait()
	if loop != nil {
		loop.stop()
	}
	s.bg.Wait()
	s.refused.Stop()
	return nil
}

// Shutdown drains the server: it stops accepting, closes clients that are
// between commands and sessions pinned to a backend connection (their
// transaction, subscription or blocked command cannot outlive the proxy
// anyway, and closing tells the client to reconnect elsewhere), lets
// commands in flight finish and be answered, and closes whatever is left
// when ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	s.draining.Store(true)
	s.mu.Lock()
	for l := range s.listeners {
		l.Close()
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		s.mu.Lock()
		for sess := range s.sessions {
			sess.stopIdle()
		}
		s.mu.Unlock()
		select {
		case <-done:
			return s.Close()
		case <-ctx.Done():
			return s.Close()
		case <-tick.C:
		}
	}
}

// Clients returns the number of connected clients.
func (s *Server) Clients() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

// logEvery lets a repeated log line through at most once a second.
type logEvery struct{ last atomic.Int64 }

func (l *logEvery) Allow() bool {
	now := time.Now().UnixNano()
	last := l.last.Load()
	return now-last >= int64(time.Second) && l.last.CompareAndSwap(last, now)
}
