package proxy

import (
	"sync"
	"sync/atomic"
	"time"
)

// generation is one master of the group, identified by an epoch. Every
// backend connection belongs to exactly one generation, and closing the
// generation closes them all: that is how the old master is fenced.
type generation struct {
	epoch uint64
	addr  string
	cfg   *Config
	// loop is the server's event loop, for its pools (see pool.loop).
	loop *atomic.Pointer[loop]
	// held is the server's failover hold, for its pools (see pool.held).
	held *atomic.Bool
	// bg is the server's WaitGroup for background work, which Close
	// waits for: here, the closing of pools their last session left.
	bg *sync.WaitGroup
	// routed is set once a command has been sent to this generation.
	routed atomic.Bool
	// dialLog spaces the log lines of its pools' failed dials, and
	// loadingLog those of commands sent again to a loading master.
	dialLog, loadingLog logEvery
	// fenced is set, before anyone learns of the new master, when this
	// generation is replaced: its connections then write nothing more.
	fenced atomic.Bool

	// mu guards pools, the pools' refs, and closed.
	mu     sync.Mutex
	pools  map[poolKey]*pool
	closed bool
	why    error
}

func newGeneration(epoch uint64, addr string, cfg *Config, lp *atomic.Pointer[loop], held *atomic.Bool, bg *sync.WaitGroup) *generation {
	return &generation{epoch: epoch, addr: addr, cfg: cfg, loop: lp, held: held, bg: bg, pools: make(map[poolKey]*pool)}
}

// acquire returns the pool for key, creating it, and counts the caller as
// a user until release. On a closed generation it returns a closed pool.
func (g *generation) acquire(key poolKey) *pool {
	g.mu.Lock()
	defer g.mu.Unlock()
	p := g.pools[key]
	if p == nil {
		p = newPool(g.addr, key, g.cfg)
		p.fence = &g.fenced
		p.dialLog = &g.dialLog
		// Every pool, for every set of session settings (RESP3, SELECT,
		// a user): the loop reads its connections and writes them
		// without waiting. One that is not the default is closed when
		// its last session leaves (release), which may be on the loop:
		// in the background, since closing waits for the connections'
		// reader.
		p.loop = g.loop
		p.held = g.held
		if g.closed {
			p.closed, p.why = true, g.why
			return p
		}
		g.pools[key] = p
	}
	p.refs++
	return p
}

// release drops a user of p. A pool nobody uses is closed, except the
// default one, which most sessions return to.
func (g *generation) release(p *pool) {
	g.mu.Lock()
	p.refs--
	drop := p.refs <= 0 && p.key != defaultKey && g.pools[p.key] == p
	if drop {
		delete(g.pools, p.key)
	}
	g.mu.Unlock()
	if drop {
		g.bg.Add(1)
		go func() {
			defer g.bg.Done()
			p.close(errPoolClosed)
		}()
	}
}

// fenceStalled closes the connections on which requests have waited
// longer than d with no reply arriving. Called when a failover starts: a
// master that stopped answering may be the one being replaced, and if it
// wakes up after the promotion (a zombie) it would execute and acknowledge
// those requests on data that is about to be discarded. Closed now, they
// end as errors, never as late acknowledgements.
//
// The dedicated connections that a hold does not hold are dealt with too.
// A blocked pop or stream read (a zombie that wakes would serve it), or a
// WAIT (its count would be of the old master's replicas), is unblocked if
// the master still answers, and otherwise closed (unblockHeld). A tunnel
// (a subscribed, tracking or MONITOR client, whose commands go straight
// through) is closed: it would be at the switch anyway, and if the
// failover aborts its client reconnects. It returns how many connections
// it closed, and how many blocked commands it is unblocking.
func (g *generation) fenceStalled(d time.Duration) (closed, unblocking int) {
	now := time.Now()
	g.mu.Lock()
	var stalled, pinned []*backendConn
	for _, p := range g.pools {
		var blocked []*backendConn
		asked := make(map[*backendConn]blockedCmd)
		p.mu.Lock()
		for _, sl := range p.slots {
			if c := sl.conn; c != nil && c.alive() && c.stalled(d, now) {
				stalled = append(stalled, c)
			}
		}
		for c := range p.active {
			b, unblockable := c.blockedNow()
			switch {
			case !c.alive():
			case c.stalled(d, now):
				stalled = append(stalled, c)
			case unblockable && !p.closed:
				blocked = append(blocked, c)
				asked[c] = b
			case c.blockingWait.Load() || c.inTunnel.Load():
				pinned = append(pinned, c)
			}
		}
		if len(blocked) > 0 {
			p.wg.Add(1) // not closed: its close waits for this
			go p.unblockHeld(blocked, asked, now.Add(d))
			unblocking += len(blocked)
		}
		p.mu.Unlock()
	}
	g.mu.Unlock()
	for _, c := range stalled {
		c.close(errStalled)
	}
	for _, c := range pinned {
		c.close(errHeldPinned)
	}
	return len(stalled) + len(pinned), unblocking
}

// close fences the generation: every connection to its node is closed.
func (g *generation) close(why error) {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return
	}
	g.closed = true
	g.why = why
	pools := g.pools
	g.pools = make(map[poolKey]*pool)
	g.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range pools {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.close(why)
		}()
	}
	wg.Wait()
}
