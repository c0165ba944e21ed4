package proxy

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// poolKey is the set of session settings a backend connection carries.
// Sessions with equal keys can share connections.
type poolKey struct {
	db    int
	proto int // 2 or 3
	// clientAuth is set once a client authenticated itself; user and pass
	// then replace the configured backend credentials.
	clientAuth bool
	user, pass string
}

var defaultKey = poolKey{proto: 2}

// slot holds one shared connection, or the dial that will produce it.
type slot struct {
	conn    *backendConn
	dialing chan struct{} // non-nil while a dial is in flight; closed when it ends
}

// pool is the set of connections to one node for one poolKey: a few shared
// pipelined connections and a small stack of idle dedicated ones.
type pool struct {
	addr   string
	key    poolKey
	cfg    *Config
	ctx    context.Context // cancelled on close, aborting dials
	cancel context.CancelFunc
	wg     sync.WaitGroup // dials and connection goroutines

	refs int // sessions using the pool; guarded by the generation's mu
	// fence, if set, is the generation's fenced flag, handed to every
	// connection: a fenced connection writes nothing more.
	fence *atomic.Bool
	// loop, if set, is the server's event loop (nil until it starts),
	// which reads the replies of the pool's shared connections.
	loop *atomic.Pointer[loop]
	// held, if set, is the server's failover hold, handed to the
	// connections the loop adopts (backendConn.held).
	held *atomic.Bool
	// dialLog, if set, spaces the warnings about failed dials to the
	// master (one a second for the generation).
	dialLog *logEvery

	// mu guards the fields below.
	mu      sync.Mutex
	slots   []slot
	next    uint32
	idle    []*backendConn
	active  map[*backendConn]struct{} // dedicated connections in use
	dialErr error                     // the last dial's failure
	retryAt time.Time                 // no new dial before this, after a failure
	closed  bool
	why     error
}

func newPool(addr string, key poolKey, cfg *Config) *pool {
	ctx, cancel := context.WithCancel(context.Background())
	return &pool{
		addr:   addr,
		key:    key,
		cfg:    cfg,
		ctx:    ctx,
		cancel: cancel,
		slots:  make([]slot, cfg.PoolSize),
		active: make(map[*backendConn]struct{}),
	}
}

// shared returns a live pipelined connection, dialing one if none is live.
func (p *pool) shared() (*backendConn, error) {
	// A connection Redis closed while idle is replaced here, before
	// anything is written to it.
	for range len(p.slots) {
		c, err := p.pickShared()
		if err != nil || !c.idleClosed() {
			return c, err
		}
	}
	return p.pickShared()
}

// pickShared is shared without the look for an idle close.
func (p *pool) pickShared() (*backendConn, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, p.why
	}
	n := uint32(len(p.slots))
	start := p.next % n
	p.next++
	home := &p.slots[start]
	if home.conn == nil || !home.conn.alive() {
		p.startDial(home)
	}
	for i := uint32(0); i < n; i++ {
		if c := p.slots[(start+i)%n].conn; c != nil && c.alive() {
			p.mu.Unlock()
			return c, nil
		}
	}
	wait := home.dialing
	if wait == nil {
		err := p.dialErr
		p.mu.Unlock()
		if err == nil {
			err = errPoolClosed
		}
		return nil, err
	}
	p.mu.Unlock()

	<-wait
	p.mu.Lock()
	defer p.mu.Unlock()
	if c := home.conn; c != nil && c.alive() {
		return c, nil
	}
	if p.closed {
		return nil, p.why
	}
	if p.dialErr != nil {
		return nil, p.dialErr
	}
	return nil, errPoolClosed
}

// unreachable reports whether the pool's last dial failed: a caller
// that found no live connection (liveShared) then tries elsewhere, as
// shared's callers do on its error, rather than wait for the next dial.
func (p *pool) unreachable() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.dialErr != nil
}

// liveShared returns a live pipelined connection without waiting: nil
// when none is open (or the pool is closed), for callers that must not
// block and will take the slow path through shared instead. It is the
// event loop's, which sends everything down the first live connection:
// the requests of all its clients then go out, and come back, in one
// batch per round instead of one per connection.
func (p *pool) liveShared() *backendConn {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	for i := range p.slots {
		// usable: the loop reads its own connections and sees a close,
		// but the others are read by goroutines, which do not while idle.
		if c := p.slots[i].conn; c != nil && c.usable() {
			return c
		}
	}
	for i := range p.slots {
		p.startDial(&p.slots[i]) // in the background; a later round uses it
	}
	return nil
}

// startDial begins a dial for s unless one is running or the pool is
// backing off after a failure. p.mu is held.
func (p *pool) startDial(s *slot) {
	if s.dialing != nil || p.closed || time.Now().Before(p.retryAt) {
		return
	}
	ch := make(chan struct{})
	s.dialing = ch
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		hook(dialHook)
		c, err := p.dial(true, false)
		p.mu.Lock()
		s.dialing = nil
		switch {
		case err != nil:
		case p.closed:
			c.close(p.why)
		default:
			s.conn = c
		}
		p.mu.Unlock()
		close(ch)
	}()
}

// dial connects, records the outcome for backoff, and starts the
// connection's reader under the pool's WaitGroup: the event loop for a
// shared connection when the pool has one, else a goroutine.
func (p *pool) dial(shared, busyOK bool) (*backendConn, error) {
	c, err := dialBackend(p.ctx, p.addr, p.key, p.cfg, busyOK, !shared)
	m := p.cfg.Metrics
	switch {
	case err == nil:
		c.owner = p
		m.add(m.BackendConnects, 1)
	case p.ctx.Err() != nil:
		// Cancelled by the pool's close: not the node's failure.
		return nil, err
	default:
		m.add(m.BackendErrors, 1)
		// Refused credentials of a client's own AUTH (a pool of its key)
		// are the client's business, and it gets the error.
		var re *ReplyError
		if p.dialLog != nil && (p.key == defaultKey || !errors.As(err, &re)) && p.dialLog.Allow() {
			p.cfg.Logger.Warn("cannot connect to the master", zap.String("addr", p.addr), zap.Error(err))
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		p.dialErr = err
		p.retryAt = time.Now().Add(p.cfg.DialBackoff)
		return nil, err
	}
	if p.closed {
		// close may already be waiting on wg: the connection must not join.
		c.close(p.why)
		return nil, p.why
	}
	p.dialErr = nil
	c.fence, c.held, c.shared = p.fence, p.held, shared
	p.wg.Add(1)
	c.wg = &p.wg
	if shared && p.loop != nil {
		if l := p.loop.Load(); l != nil && l.adopt(c) {
			return c, nil
		}
	}
	go c.run()
	return c, nil
}

// dedicated returns a connection for one session's exclusive use. The
// session gives it back with put.
func (p *pool) dedicated() (*backendConn, error) { return p.takeDedicated(false) }

// dedicatedKill is dedicated for SCRIPT KILL and FUNCTION KILL: a new
// connection is fine though a busy script refuses its CLIENT SETNAME.
func (p *pool) dedicatedKill() (*backendConn, error) { return p.takeDedicated(true) }

func (p *pool) takeDedicated(busyOK bool) (*backendConn, error) {
	p.mu.Lock()
	for len(p.idle) > 0 && !p.closed {
		c := p.idle[len(p.idle)-1]
		p.idle = p.idle[:len(p.idle)-1]
		if !c.alive() {
			continue
		}
		if c.idleClosed() { // perhaps closed by Redis while kept
			continue
		}
		p.active[c] = struct{}{}
		p.mu.Unlock()
		return c, nil
	}
	if p.closed {
		p.mu.Unlock()
		return nil, p.why
	}
	// A kill dials past the -BUSY of the script it is to stop (on the
	// name it may do without), not past a node that refused or dropped
	// the dial: each looping kill would dial it every DialBackoff.
	if time.Now().Before(p.retryAt) && p.dialErr != nil && !(busyOK && replyErrorIs(p.dialErr, "BUSY")) {
		err := p.dialErr
		p.mu.Unlock()
		return nil, err
	}
	p.mu.Unlock()

	c, err := p.dial(false, busyOK)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		c.close(p.why)
		return nil, p.why
	}
	p.active[c] = struct{}{}
	return c, nil
}

// put takes back a dedicated connection. A connection whose state is
// unknown (reuse false) is closed instead of kept.
func (p *pool) put(c *backendConn, reuse bool) {
	p.mu.Lock()
	delete(p.active, c)
	if reuse && !c.oneUse && !p.closed && c.alive() && len(p.idle) < p.cfg.MaxIdleDedicated {
		p.idle = append(p.idle, c)
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	c.close(errPoolClosed)
}

// close ends every connection of the pool, shared, idle and in use, with
// why, and waits for their goroutines.
func (p *pool) close(why error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		p.wg.Wait()
		return
	}
	p.closed = true
	p.why = why
	var conns []*backendConn
	for _, s := range p.slots {
		if s.conn != nil {
			conns = append(conns, s.conn)
		}
	}
	conns = append(conns, p.idle...)
	for c := range p.active {
		conns = append(conns, c)
	}
	p.idle = nil
	p.mu.Unlock()
	p.cancel()
	for _, c := range conns {
		c.close(why)
	}
	p.wg.Wait()
}
