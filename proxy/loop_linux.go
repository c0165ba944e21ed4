//go:build linux

package proxy

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/pnats/switchyard/resp"
	"go.uber.org/zap"
)

// loop serves plain-TCP clients whose commands all go down the fast path
// (see fast.go) without a goroutine per client: one goroutine waits on an
// epoll set holding every such client socket and the master's shared
// connections, reads and parses what each ready client sent, queues it on
// a shared backend connection, and writes every backend it touched once
// per round, or once the replies to its last write are in; it reads the
// replies and writes them straight to the client sockets (see adopt,
// below). So a command costs a read and a write on the client socket and
// a share of one backend write and read, with no goroutine woken for it,
// and an idle client costs no goroutine stack.
//
// The loop owns each of its client sockets as a raw descriptor (a
// duplicate, the net.Conn it came from is closed), so nothing else can
// close it or reuse its number while the loop or a reader uses it. A
// client that needs anything else (a transaction, a blocking command,
// Pub/Sub, AUTH, a slow reader, an error) is handed to a goroutine with a
// net.Conn made from the descriptor, and comes back when it is simple
// again.
type loop struct {
	srv    *Server
	epfd   int
	ep     *os.File        // epfd, watched by Go's poller
	rc     syscall.RawConn // ep's
	wakefd int             // an eventfd: post writes it to wake a sleeping loop

	// mu guards queue, stopping, backends, bqueue and wakefd's lifetime.
	mu       sync.Mutex
	queue    []*session
	stopping bool
	// backends are the connections whose replies the loop reads (adopt),
	// until it ends them; bqueue holds those adopted or closed since the
	// loop last looked.
	backends map[*backendConn]struct{}
	bqueue   []*backendConn
	sleeping atomic.Bool // the loop is (about to be) in epoll_wait
	done     chan struct{}

	// Owned by the loop goroutine.
	owned     *session // the session process works on, until it hands it over
	fds       map[int32]*session
	bfds      map[int32]*backendConn
	bspare    []*backendConn
	lastCheck time.Time
	touched   []*backendConn // backends this round made the loop flush
	// ring reads and writes many clients in one system call (ringIO);
	// nil where io_uring is unavailable (newRing's error says why), and
	// then each read and each reply is a system call of its own.
	ring      *ring
	replies   []*session // replies the round finished, for ringIO
	ready     []*session // clients the round found readable, for ringIO
	ops       []ringOp
	spare     []*session
	now       time.Time
	lastSweep time.Time
	// reserve is a descriptor held open (/dev/null) so that a hand-off,
	// whose net.Conn needs a descriptor of its own, still finds one when
	// the process has run out: the client then gets the goroutine's clear
	// error instead of a silent close. -1 while none could be opened.
	reserve int
	// pollFn is poll for rc.Read, with its arguments and result here, so
	// that waiting allocates no closure.
	pollFn func(uintptr) bool
	events []syscall.EpollEvent
	n      int
}

// loopEvents: readable and peer-closed, edge-triggered (EPOLLET is 1<<31,
// which the syscall package declares as a negative int).
const loopEvents uint32 = syscall.EPOLLIN | syscall.EPOLLRDHUP | 1<<31

func newLoop(srv *Server) (*loop, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	r, _, e := syscall.Syscall(syscall.SYS_EVENTFD2, 0, syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if e != 0 {
		syscall.Close(epfd)
		return nil, os.NewSyscallError("eventfd2", e)
	}
	wakefd := int(r)
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(wakefd)}
	if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, wakefd, &ev); err != nil {
		syscall.Close(epfd)
		syscall.Close(wakefd)
		return nil, os.NewSyscallError("epoll_ctl", err)
	}
	// Non-blocking, so that os.NewFile puts it in Go's poller (see wait).
	if err := syscall.SetNonblock(epfd, true); err != nil {
		syscall.Close(epfd)
		syscall.Close(wakefd)
		return nil, os.NewSyscallError("fcntl", err)
	}
	ep := os.NewFile(uintptr(epfd), "epoll")
	rc, err := ep.SyscallConn()
	if err != nil {
		ep.Close()
		syscall.Close(wakefd)
		return nil, err
	}
	l := &loop{
		srv:      srv,
		epfd:     epfd,
		ep:       ep,
		rc:       rc,
		wakefd:   wakefd,
		done:     make(chan struct{}),
		fds:      make(map[int32]*session),
		bfds:     make(map[int32]*backendConn),
		backends: make(map[*backendConn]struct{}),
		reserve:  -1,
	}
	l.keepReserve()
	if !srv.cfg.NoIOUring {
		if r, err := newRing(); err != nil {
			l.srv.log.Info("event loop: a system call per client read and write; io_uring is unavailable", zap.Error(err))
		} else {
			l.ring = r
		}
	}
	l.pollFn = func(uintptr) bool {
		l.n = l.poll(l.events)
		return l.n > 0
	}
	go l.run()
	return l, nil
}

// post hands s to the loop goroutine. The caller has set s.lbusy, so
// nothing else works on s until the loop releases it.
func (l *loop) post(s *session) {
	l.mu.Lock()
	l.queue = append(l.queue, s)
	l.wakeLocked()
	l.mu.Unlock()
}

// wakeLocked interrupts the loop's wait, if it waits; l.mu is held, which
// keeps wakefd open (the loop closes it under l.mu when it ends).
func (l *loop) wakeLocked() {
	if l.wakefd >= 0 && l.sleeping.Load() && l.sleeping.CompareAndSwap(true, false) {
		var one = [8]byte{1}
		rawWrite(l.wakefd, one[:])
	}
}

// stop ends the loop goroutine once the server's sessions are gone.
func (l *loop) stop() {
	l.mu.Lock()
	l.stopping = true
	if l.wakefd >= 0 {
		// Whatever the loop is doing, it must look again.
		l.sleeping.Store(false)
		var one = [8]byte{1}
		rawWrite(l.wakefd, one[:])
	}
	l.mu.Unlock()
	<-l.done
}

func (l *loop) run() {
	defer close(l.done)
	defer l.ep.Close() // the epoll descriptor
	defer func() {
		if l.ring != nil {
			l.ring.close()
		}
	}()
	defer func() {
		if l.reserve >= 0 {
			syscall.Close(l.reserve)
		}
	}()
	defer func() {
		l.mu.Lock()
		syscall.Close(l.wakefd)
		l.wakefd = -1
		l.mu.Unlock()
	}()
	events := make([]syscall.EpollEvent, 256)
	var drain [8]byte
	for {
		l.mu.Lock()
		queued, stopping := len(l.queue) > 0 || len(l.bqueue) > 0, l.stopping
		l.mu.Unlock()
		if stopping {
			for _, s := range l.fds {
				l.close(s)
			}
			l.mu.Lock()
			var left []*backendConn
			for c := range l.backends {
				left = append(left, c)
			}
			l.mu.Unlock()
			for _, c := range left {
				l.endBackend(c)
			}
			return
		}
		n := 0
		if queued {
			n = l.poll(events)
		} else {
			n = l.wait(events)
		}
		l.now = time.Now()
		for i := 0; i < n; i++ {
			ev := &events[i]
			if int(ev.Fd) == l.wakefd {
				rawRead(l.wakefd, drain[:])
				continue
			}
			s := l.fds[ev.Fd]
			if s == nil {
				if c := l.bfds[ev.Fd]; c != nil {
					c.lhup = ev.Events&(syscall.EPOLLRDHUP|syscall.EPOLLHUP|syscall.EPOLLERR) != 0
					l.readBackend(c)
				}
				continue
			}
			s.lmu.Lock()
			if ev.Events&(syscall.EPOLLRDHUP|syscall.EPOLLHUP|syscall.EPOLLERR) != 0 {
				s.lhup = true
			}
			if s.lbusy {
				s.lready = true
				s.lmu.Unlock()
				continue
			}
			s.lbusy = true
			s.lmu.Unlock()
			if l.ring != nil {
				l.ready = append(l.ready, s)
				continue
			}
			l.process(s)
		}
		l.ringIO()
		l.mu.Lock()
		q, bq := l.queue, l.bqueue
		l.queue, l.bqueue = l.spare[:0], l.bspare[:0]
		l.mu.Unlock()
		for i, c := range bq {
			l.backendPosted(c)
			bq[i] = nil
		}
		l.bspare = bq[:0]
		for i, s := range q {
			l.process(s)
			q[i] = nil
		}
		l.spare = q[:0]
		l.ringIO()
		l.flushTouched()
		if l.srv.cfg.IdleTimeout > 0 && l.now.Sub(l.lastSweep) >= time.Second {
			l.lastSweep = l.now
			l.sweep()
		}
		if len(l.bfds) > 0 && l.now.Sub(l.lastCheck) >= l.checkEvery() {
			l.lastCheck = l.now
			l.checkBackends()
		}
	}
}

// poll collects the ready events without waiting.
func (l *loop) poll(events []syscall.EpollEvent) int {
	for {
		n, err := epollPoll(l.epfd, events)
		if err == syscall.EINTR {
			continue
		}
		if err != 0 {
			l.srv.log.Error("event loop: epoll_wait failed", zap.Error(err))
			return 0
		}
		return n
	}
}

// wait collects the ready events, waiting for one if there is none. The
// waiting is Go's: the epoll descriptor itself sits in the runtime's
// poller, so the loop parks like any goroutine waiting for a socket
// instead of blocking a thread in epoll_wait (which makes the scheduler
// hand the thread's work to another one each time). With IdleTimeout set
// the wait ends after a second for the idle sweep, and sooner while the
// loop reads backend connections, to check them for stalls.
func (l *loop) wait(events []syscall.EpollEvent) int {
	l.sleeping.Store(true)
	defer l.sleeping.Store(false)
	l.mu.Lock()
	queued := len(l.queue) > 0 || len(l.bqueue) > 0
	l.mu.Unlock()
	if queued {
		return l.poll(events) // posted while going to sleep
	}
	// A deadline stays set until replaced, and one in the past would turn
	// every later wait into a spin: set one each time, or clear it.
	switch {
	case len(l.bfds) > 0:
		l.ep.SetReadDeadline(time.Now().Add(l.checkEvery()))
	case l.srv.cfg.IdleTimeout > 0:
		l.ep.SetReadDeadline(time.Now().Add(time.Second))
	default:
		l.ep.SetReadDeadline(time.Time{})
	}
	l.events, l.n = events, 0
	err := l.rc.Read(l.pollFn)
	n := l.n
	if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
		l.srv.log.Error("event loop: waiting for events failed", zap.Error(err))
		time.Sleep(10 * time.Millisecond)
	}
	return n
}

// process serves a loop-owned session (s.lbusy is set): it carries out
// what a reader goroutine asked for, or reads what the client sent and
// queues every command of it that can take the fast path, up to
// maxSegment; the first that cannot sends the session to a goroutine.
func (l *loop) process(s *session) {
	l.owned = s
	defer func() {
		// A bug must cost this client, not the loop every client shares;
		// unless the session already went to close, a goroutine or a
		// backend reader, which own it now.
		if v := recover(); v != nil {
			l.srv.log.Error("event loop panic; closing the client", zap.Any("panic", v), zap.Stack("stack"))
			if l.owned == s {
				l.close(s)
			}
		}
		l.owned = nil
	}()
	if s.lnew {
		s.lnew = false
		if !l.register(s) {
			l.close(s)
			return
		}
	}
	s.lmu.Lock()
	stop, how := s.lstop, s.lresume
	s.lresume = resumeNone
	s.lmu.Unlock()
	switch {
	case how == resumeClose || stop:
		// Close, or a client whose socket failed: nothing more is answered.
		l.close(s)
		return
	case how != resumeNone:
		// Replies to finish or to write: a goroutine does that, also
		// during Shutdown, which lets the batch in flight be answered.
		l.handoff(s, how, how == resumeWrite)
		return
	case l.srv.draining.Load():
		l.close(s)
		return
	}
	s.lastActive = l.now
	var c *backendConn
	// toReplica: the segment's commands are reads for a replica (or for
	// the master standing in for none), not commands for the master.
	var toReplica bool
	var rerr error
	for s.seg.n < maxSegment {
		var err error
		if s.seg.n == 0 {
			// May read the socket, moving the buffer: only before any
			// command of the segment points into it.
			err = s.rd.ReadCommand(&s.cmd)
		} else {
			var ok bool
			ok, err = s.rd.BufferedCommand(&s.cmd)
			if err == nil && !ok {
				break
			}
		}
		if err == errWouldBlock {
			break
		}
		if err != nil {
			rerr = err
			break
		}
		if s.seg.n == 0 {
			s.busy.Store(true)
			s.batchStart = l.now
			s.shared, s.replica, s.replicaNode = nil, nil, nil
		}
		class, id := s.routeFast(&s.cmd)
		replica, write, ok := s.readPort, false, s.fastOK(class, &s.cmd)
		switch {
		case !ok:
		case s.readPort:
			ok = s.fastRead(&s.cmd)
		case s.readPrefer:
			replica, write, ok = s.preferRead(&s.cmd)
		}
		if !ok {
			l.handoff(s, resumeCommand, true)
			return
		}
		if c != nil && replica != toReplica {
			// It goes elsewhere than the segment: it starts the next
			// one, once this one is answered (loopDone).
			s.rd.Unread(&s.cmd)
			break
		}
		if c == nil {
			toReplica = replica
			if replica {
				c = s.fastReplica()
			} else {
				c = s.fastConn()
			}
			if c == nil {
				// No master, a failover hold, no replica, no connection
				// yet: the client's own state is fine, so this is not
				// counted.
				l.handoff(s, resumeCommand, false)
				return
			}
		}
		s.id = id
		if write {
			s.writing = true // the segment holds a write (read_your_writes)
		}
		s.forward(c, s.cmd.Raw, false)
		s.seg.node = s.replicaNode // set by fastReplica only
	}
	s.in.dry = false // said once, or not at all: it is stale now
	if s.seg.n == 0 {
		s.busy.Store(false)
		if rerr != nil {
			if isProtocolError(rerr) {
				s.lerr = rerr
				l.handoff(s, resumeError, false)
				return
			}
			l.close(s)
			return
		}
		l.release(s)
		return
	}
	if rerr != nil {
		// Serve what came before the error; the next round meets it again.
		s.lmu.Lock()
		s.lready = true
		s.lmu.Unlock()
	}
	l.send(s, c)
}

// send queues the session's segment on c. From then on the backend's
// reader (the loop itself, for an adopted connection) owns the session
// until it finishes the request (s.loopDone).
func (l *loop) send(s *session, c *backendConn) {
	r := s.prepareRequest()
	r.notify = s.onDone
	l.owned = nil // once queued, the backend's reader owns the session
	node := s.seg.node
	if node != nil {
		node.begin(s.key) // before the reader can end it (loopDone)
	}
	flusher, err := c.queue(r, false)
	if err == errQueueFull {
		// Bytes this round queued may be what the full queue waits for:
		// write them, and let a goroutine wait for room, not the loop.
		l.flushTouched()
	}
	if err != nil {
		// Nothing was sent; the goroutine's flush decides where it goes.
		if node != nil {
			node.end(s.key)
		}
		r.notify = nil
		l.handoff(s, resumeBatch, false)
		return
	}
	if flusher {
		l.touched = append(l.touched, c)
	}
}

// release lets a loop-owned session wait for its client again.
func (l *loop) release(s *session) {
	l.owned = nil
	s.lmu.Lock()
	stop := s.lstop
	again := !stop && s.lready
	s.lready = false
	if !stop && !again {
		s.lbusy = false
	}
	s.lmu.Unlock()
	switch {
	case stop:
		l.close(s)
	case again:
		l.post(s)
	}
}

// flushTouched writes every backend connection this round queued bytes
// on as the flusher. Requests from many clients go out in one write. A
// connection the loop does not read is written by a goroutine of its own
// (flushAside): its write could wait for the node.
func (l *loop) flushTouched() {
	for i, c := range l.touched {
		if c.lp == l && c.lfd >= 0 {
			if c.unanswered.Load() > 0 {
				// Replies to the last write are due; this write waits
				// for them (readBackend), and the requests of the
				// clients served meanwhile join it. Redis would only
				// get to them after those anyway, and one batch in
				// flight per connection saves the proxy and Redis a
				// system call per request under load.
				c.ldefer = true
			} else {
				c.flushLoop()
			}
		} else {
			c.flushAside()
		}
		l.touched[i] = nil
	}
	l.touched = l.touched[:0]
}

// sweep closes clients idle for longer than IdleTimeout, as Redis's
// timeout does.
func (l *loop) sweep() {
	limit := l.now.Add(-l.srv.cfg.IdleTimeout)
	for _, s := range l.fds {
		s.lmu.Lock()
		idle := !s.lbusy && s.lastActive.Before(limit)
		if idle {
			s.lbusy = true
		}
		s.lmu.Unlock()
		if idle {
			l.close(s)
		}
	}
}

// register adds a session's socket to the epoll set. If the socket is
// readable already, epoll reports it at once.
func (l *loop) register(s *session) bool {
	fd := s.in.fd
	l.fds[int32(fd)] = s
	ev := syscall.EpollEvent{Events: loopEvents, Fd: int32(fd)}
	if err := syscall.EpollCtl(l.epfd, syscall.EPOLL_CTL_ADD, fd, &ev); err != nil {
		l.srv.log.Error("event loop: cannot watch a client", zap.Error(err))
		return false
	}
	return true
}

// close ends a loop-owned session. Whatever its segment holds is either
// not sent or already answered: it is dropped, never sent from here.
func (l *loop) close(s *session) {
	l.owned = nil
	s.seg = segment{}
	l.forget(s)
	syscall.Close(s.in.fd)
	s.in.fd = -1
	s.lmu.Lock()
	s.inLoop = false
	s.lmu.Unlock()
	s.cleanup()
	l.srv.endSession(s)
}

// forget removes s's socket from the epoll set.
func (l *loop) forget(s *session) {
	fd := int32(s.in.fd)
	if l.fds[fd] == s {
		delete(l.fds, fd)
		syscall.EpollCtl(l.epfd, syscall.EPOLL_CTL_DEL, int(fd), nil)
	}
}

// handoff gives a loop-owned session to a goroutine of its own, which
// carries on with how. counted says whether the client's own behaviour
// (a command, a slow read) caused it, which maxHandoffs limits; moves
// forced by a failover or a backend connection are not held against it.
func (l *loop) handoff(s *session, how resumeKind, counted bool) {
	hook(toGoroutine)
	l.owned = nil
	l.forget(s)
	if l.reserve >= 0 {
		syscall.Close(l.reserve) // for attachConn's duplicate, if no other is free
		l.reserve = -1
	}
	nc, err := attachConn(s.in.fd) // closes s.in.fd, whatever the outcome
	s.in.fd, s.in.dry = -1, false
	l.keepReserve()
	if err == nil {
		// net.FileConn turns Go's default keepalive on again.
		tuneClient(nc, l.srv.cfg.KeepAlive)
	}
	s.lmu.Lock()
	s.inLoop, s.lbusy, s.lready, s.lhup = false, false, false, false
	stop := s.lstop
	if err == nil {
		s.setConn(nc)
	}
	s.lmu.Unlock()
	if err != nil || stop {
		// Close came meanwhile (Shutdown stops only idle clients, and this
		// one is not), or no connection could be made: what the session
		// holds was not sent, or is answered to nobody.
		if err != nil {
			l.srv.log.Error("event loop: cannot hand a client to a goroutine; closing it", zap.Error(err))
		} else {
			nc.Close()
		}
		s.seg = segment{}
		s.cleanup()
		l.srv.endSession(s)
		return
	}
	if counted {
		s.handoffs++
	}
	go s.goroutine(how)
}

// keepReserve opens the reserve descriptor if it is not open and one is
// free.
func (l *loop) keepReserve() {
	if l.reserve >= 0 {
		return
	}
	if fd, err := syscall.Open("/dev/null", syscall.O_RDONLY|syscall.O_CLOEXEC, 0); err == nil {
		l.reserve = fd
	}
}

// detachConn returns a duplicate of a TCP connection's descriptor, still
// non-blocking, and closes the connection, so that the descriptor belongs
// to the caller alone and Go's poller no longer watches it.
func detachConn(nc net.Conn) (int, error) {
	fd, err := dupConn(nc)
	if err != nil {
		return -1, err
	}
	nc.Close()
	return fd, nil
}

// dupConn returns a duplicate of a TCP connection's descriptor.
func dupConn(nc net.Conn) (int, error) {
	if r, ok := nc.(*rawSocket); ok {
		nc = r.TCPConn
	}
	tc, ok := nc.(*net.TCPConn)
	if !ok {
		return -1, errors.New("proxy: not a TCP connection")
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	var derr error
	err = rc.Control(func(f uintptr) {
		r, _, e := syscall.Syscall(syscall.SYS_FCNTL, f, syscall.F_DUPFD_CLOEXEC, 0)
		if e != 0 {
			derr = e
			return
		}
		fd = int(r)
	})
	if err == nil {
		err = derr
	}
	if err != nil {
		return -1, err
	}
	return fd, nil
}

// attachConn makes a net.Conn of a descriptor and closes the descriptor.
func attachConn(fd int) (net.Conn, error) {
	f := os.NewFile(uintptr(fd), "client")
	nc, err := net.FileConn(f)
	f.Close()
	return nc, err
}

// readRaw reads from a loop-owned socket: resp.ErrWouldBlock when it has
// nothing now, io.EOF when the client closed it.
func readRaw(fd int, p []byte) (int, error) {
	for {
		n, err := rawRead(fd, p)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			return 0, errWouldBlock
		case err != 0:
			return 0, err
		case n == 0:
			return 0, errEOF
		}
		return n, nil
	}
}

// writeRaw writes what the socket takes now, without waiting.
func writeRaw(fd int, p []byte) (int, error) {
	for {
		n, err := rawWrite(fd, p)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			return 0, nil
		case err != 0:
			return 0, err
		}
		return n, nil
	}
}

// The loop also reads the replies of the master's shared connections,
// so that a round (replies in, client writes, client reads, one backend
// write) needs no other goroutine. Requests from goroutine sessions on
// those connections are answered from the loop too, through their done
// channel. The loop reads from a duplicate of the socket; writes still go
// through the net.Conn when a goroutine is the flusher, and through the
// duplicate, without waiting, when the loop is (flushLoop).

// adopt makes the loop the reader of c, a freshly dialled connection no
// one else has yet; false if it cannot, and c keeps a reader goroutine.
func (l *loop) adopt(c *backendConn) bool {
	if c.cfg.BackendTLS != nil || c.rd.Buffered() > 0 {
		return false
	}
	fd, err := dupConn(c.nc)
	if err != nil {
		return false
	}
	l.mu.Lock()
	if l.stopping {
		l.mu.Unlock()
		syscall.Close(fd)
		return false
	}
	c.lp, c.lfd = l, fd
	c.rd.Reset(loopSource{c})
	l.backends[c] = struct{}{}
	l.bqueue = append(l.bqueue, c)
	l.wakeLocked()
	l.mu.Unlock()
	return true
}

// postBackend tells the loop that c was adopted or closed. Once the loop
// stops it has ended every connection it adopted, so nothing is lost.
func (l *loop) postBackend(c *backendConn) {
	l.mu.Lock()
	if l.stopping {
		l.mu.Unlock()
		return
	}
	l.bqueue = append(l.bqueue, c)
	l.wakeLocked()
	l.mu.Unlock()
}

// resumeHeld has the loop write what a failover hold held back on its
// connections (backendConn.held), once the hold is released.
func (l *loop) resumeHeld() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopping {
		return
	}
	for c := range l.backends {
		l.bqueue = append(l.bqueue, c)
	}
	l.wakeLocked()
}

// backendPosted watches a newly adopted connection, ends a closed one, or
// writes what a released hold held back on a live one.
func (l *loop) backendPosted(c *backendConn) {
	switch {
	case c.lended:
	case !c.alive():
		l.endBackend(c)
	case l.bfds[int32(c.lfd)] != c:
		l.bfds[int32(c.lfd)] = c
		// Replies that came before this are reported at once.
		ev := syscall.EpollEvent{Events: loopEvents, Fd: int32(c.lfd)}
		if err := syscall.EpollCtl(l.epfd, syscall.EPOLL_CTL_ADD, c.lfd, &ev); err != nil {
			c.close(fmt.Errorf("proxy: event loop cannot watch %s: %w", c.nc.RemoteAddr(), os.NewSyscallError("epoll_ctl", err)))
			l.endBackend(c)
		}
	default:
		c.mu.Lock()
		back := c.heldBack && !c.flushing
		c.mu.Unlock()
		if back {
			hook(resumeHook)
			// Redis may have closed the connection during the hold (a
			// restart, CLIENT KILL) an instant ago, after this round's
			// events were collected: written now, what was held back
			// would fail as "may or may not have run". Read up to the
			// close first; what was held back then ends unsent, and goes
			// out on a new connection.
			if hungUp(uintptr(c.lfd)) {
				c.lhup = true
				l.readBackend(c)
				if c.lended {
					return
				}
			}
		}
		c.mu.Lock()
		resume := c.heldBack && !c.flushing
		c.heldBack = false
		if resume {
			c.flushing = true
		}
		c.mu.Unlock()
		if resume {
			// The loop is the flusher now, as after flushTouched.
			l.touched = append(l.touched, c)
		}
	}
}

// readBackend reads every reply c has for now and hands each to its
// request, as the reader goroutine does (backendConn.readLoop).
func (l *loop) readBackend(c *backendConn) {
	if c.lended {
		return
	}
	defer func() {
		// A bug costs this connection's requests (they get errors), not
		// the loop every client shares.
		if v := recover(); v != nil {
			l.srv.log.Error("event loop panic reading a backend; closing it", zap.Any("panic", v), zap.Stack("stack"))
			c.close(fmt.Errorf("proxy: internal error reading from %s", c.nc.RemoteAddr()))
			l.endBackend(c)
		}
	}()
	c.lcan = true
	c.lastRead.Store(l.now.UnixNano())
	hook(loopReadHook)
	for {
		raw, typ, err := c.rd.ReadReply()
		if err == errWouldBlock {
			if c.ldefer && c.unanswered.Load() == 0 {
				c.ldefer = false
				c.flushLoop()
			}
			return
		}
		if err != nil {
			c.close(fmt.Errorf("proxy: read from %s: %w", c.nc.RemoteAddr(), err))
			l.endBackend(c)
			return
		}
		if c.cur == nil && typ != resp.TypePush { // deliver drops a push
			select {
			case c.cur = <-c.pending:
				c.blockingWait.Store(c.cur.blocking)
			default:
				// Redis answers only what it was sent, and a request is
				// pending before its bytes go out.
				c.close(fmt.Errorf("proxy: reply from %s with no request waiting", c.nc.RemoteAddr()))
				l.endBackend(c)
				return
			}
		}
		// A loop session's replies finished by this read may wait for
		// the round's ringIO (lbatch), which comes before the loop waits
		// again; only here, as the request may be finished elsewhere
		// later (endBackend), where nothing would send them.
		r := c.cur
		if r != nil && r.notify != nil {
			r.lbatch = true
		} else {
			r = nil // a goroutine's request: its own once finished
		}
		err = c.deliver(raw, typ)
		if r != nil {
			r.lbatch = false
		}
		if err != nil {
			c.close(err)
			l.endBackend(c)
			return
		}
	}
}

// ringIO makes the round's client system calls through the ring, in one
// io_uring_enter for up to ringSize of them: the sends of the replies the
// round's reads finished (loopDone), then reads of the clients epoll
// found readable (ready). It finishes each reply as loopDone would have
// after its own write, and then serves the clients read, whose commands
// are now in their buffers.
func (l *loop) ringIO() {
	sends, ready := l.replies, l.ready
	i, j := 0, 0
	for l.ring != nil && (i < len(sends) || j < len(ready)) {
		ops := l.ops[:0]
		for ; i < len(sends) && !l.ring.full(); i++ {
			l.ring.add(uringOpSend, sends[i].in.fd, sends[i].out)
			ops = append(ops, ringOp{s: sends[i], buf: sends[i].out})
		}
		for ; j < len(ready) && !l.ring.full(); j++ {
			s := ready[j]
			if s.lnew || s.in.fd < 0 || len(s.in.peeked) > 0 || s.in.err != nil {
				continue // process reads it, or does not
			}
			p := s.rd.Space()
			if len(p) == 0 {
				continue
			}
			l.ring.add(uringOpRecv, s.in.fd, p)
			ops = append(ops, ringOp{s: s, recv: true, buf: p})
		}
		if len(ops) == 0 {
			break // every client left was one to read as before
		}
		var err error
		if ringHook != nil && !ringHook(len(ops)) {
			err = errRingHook
		} else {
			err = l.ring.submit()
		}
		if err != nil {
			// Some calls may have been made and others not, or not yet.
			// A reply may have gone out in part, and a read may have
			// taken bytes that are lost: each client of the batch is
			// closed, as a failed call closes one, its buffers are kept
			// from reuse, and the loop makes its calls one by one from
			// now on.
			l.srv.log.Error("event loop: io_uring failed; making a system call per client from now on", zap.Error(err))
			l.dropRing()
		}
		for k, op := range ops {
			res := int32(0)
			if err == nil {
				res = l.ring.res[k]
			}
			if err != nil {
				quarantine(op.buf)
			}
			switch {
			case err != nil && op.recv:
				op.s.in.err = err
			case err != nil:
				l.wrote(op.s, 0, err)
			case op.recv:
				op.s.in.received(res, len(op.buf))
				op.s.rd.Filled(int(max(res, 0)))
			case res >= 0:
				l.wrote(op.s, int(res), nil)
			case res == -int32(syscall.EAGAIN), res == -int32(syscall.EINTR):
				l.wrote(op.s, 0, nil) // a goroutine writes the rest
			default:
				l.wrote(op.s, 0, syscall.Errno(-res))
			}
			ops[k] = ringOp{}
		}
		l.ops = ops[:0]
	}
	for ; i < len(sends); i++ {
		n, err := writeRaw(sends[i].in.fd, sends[i].out)
		l.wrote(sends[i], n, err)
	}
	clear(sends)
	l.replies = sends[:0]
	for _, s := range ready {
		l.process(s)
	}
	clear(ready)
	l.ready = ready[:0]
}

// deferReply keeps s's replies for the round's ringIO, which writes them
// with the others and then calls wrote; false if the loop has no ring.
// Only on the loop's goroutine, during its read of a backend (lbatch).
func (l *loop) deferReply(s *session) bool {
	if l.ring == nil {
		return false
	}
	l.replies = append(l.replies, s)
	return true
}

// dropRing closes the ring; the loop makes a system call per client
// from then on.
func (l *loop) dropRing() {
	if l.ring != nil {
		l.ring.close()
		l.ring = nil
	}
}

// wrote is s.wrote for ringIO, which, unlike loopDone, has no recover of
// its own: a bug must cost this client, not the loop every client shares.
func (l *loop) wrote(s *session, n int, err error) {
	defer func() {
		if v := recover(); v != nil {
			l.srv.log.Error("panic answering a client; closing it", zap.Any("panic", v), zap.Stack("stack"))
			s.askLoop(resumeClose)
		}
	}()
	s.wrote(n, err)
}

// ringOp is a call ringIO put in the ring: a send of s's replies (buf),
// or a read into the room in its buffer (buf).
type ringOp struct {
	s    *session
	recv bool
	buf  []byte
}

// endBackend stops reading c, which is closed or being closed, and
// finishes every request still queued on it.
func (l *loop) endBackend(c *backendConn) {
	if c.lended {
		return
	}
	c.lended = true
	l.mu.Lock()
	delete(l.backends, c)
	l.mu.Unlock()
	if c.lfd >= 0 {
		if l.bfds[int32(c.lfd)] == c {
			delete(l.bfds, int32(c.lfd))
			syscall.EpollCtl(l.epfd, syscall.EPOLL_CTL_DEL, c.lfd, nil)
		}
		syscall.Close(c.lfd)
		c.lfd = -1
	}
	c.end()
}

// checkEvery is how often the loop looks for backend connections that
// stopped answering: a quarter of ReadTimeout, at most a second.
func (l *loop) checkEvery() time.Duration {
	return min(time.Second, max(l.srv.cfg.ReadTimeout/4, time.Millisecond))
}

// checkBackends closes connections on which requests have waited longer
// than ReadTimeout with no reply arriving, as a reader goroutine's read
// deadline does.
//
// It also ends the wait of requests held back by a failover hold for
// longer than HoldTimeout, as awaitRelease does for a goroutine's: the
// connection is closed, and they end unsent.
func (l *loop) checkBackends() {
	d, hold := l.srv.cfg.ReadTimeout, l.srv.cfg.HoldTimeout
	for _, c := range l.bfds {
		switch {
		case c.stalled(d, l.now):
			c.close(fmt.Errorf("proxy: read from %s: no reply for %s: %w", c.nc.RemoteAddr(), d, os.ErrDeadlineExceeded))
			l.endBackend(c)
		case c.heldTooLong(hold, l.now):
			c.close(fmt.Errorf("proxy: commands held back for a failover for over %s: %w", hold, errNoMaster))
			l.endBackend(c)
		}
	}
}

// loopSource is what an adopted connection's resp.Reader reads: the
// loop's descriptor, without waiting. After a read that did not fill the
// space it was given the socket is empty, and epoll reports new data, so
// the next read waits for that (lcan) instead of costing an EAGAIN;
// unless the peer closed (lhup), which epoll reports only once.
type loopSource struct{ c *backendConn }

func (s loopSource) Read(p []byte) (int, error) {
	c := s.c
	if !c.lcan {
		return 0, errWouldBlock
	}
	n, err := readRaw(c.lfd, p)
	// Once the peer has closed, epoll says so only once: read on to the
	// end of the stream, or the close would go unnoticed.
	c.lcan = n == len(p) || c.lhup
	return n, err
}

// flushLoop writes a connection the loop reads without waiting (flush).
func (c *backendConn) flushLoop() { c.flush(true, nil) }

// The loop's reads, writes and polls are made as raw system calls, which
// the Go scheduler does not see. They are all on non-blocking descriptors
// and return within microseconds; announced as ordinary calls, each one
// lets the runtime's monitor take the processor away from a loop that is
// only briefly in the kernel and hand it to another thread, which with
// GOMAXPROCS=1 costs a thread switch per hand-over and kept the monitor
// waking about 4,400 times a second (measured: bench/README.md, History).

func rawRead(fd int, p []byte) (int, syscall.Errno) {
	if len(p) == 0 {
		return 0, 0
	}
	n, _, e := syscall.RawSyscall(syscall.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	return int(n), e
}

func rawWrite(fd int, p []byte) (int, syscall.Errno) {
	if len(p) == 0 {
		return 0, 0
	}
	n, _, e := syscall.RawSyscall(syscall.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	return int(n), e
}

// epollPoll collects ready events without waiting.
func epollPoll(epfd int, events []syscall.EpollEvent) (int, syscall.Errno) {
	n, _, e := syscall.RawSyscall6(syscall.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), 0, 0, 0)
	return int(n), e
}
