package proxy

import (
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pnats/switchyard/router"
	"go.uber.org/zap"
)

// CommandFlags classify a command for replica routing.
type CommandFlags uint8

const (
	// CmdRead: the command only reads; it may be served by a replica.
	CmdRead CommandFlags = 1 << iota
	// CmdWrite: the command may write, or is unknown. It goes to the
	// master, and a read port refuses it.
	CmdWrite
	// CmdMayWrite: flagged neither read nor write, but it may write: a
	// script (EVAL, EVALSHA, FCALL). A read port sends it to a replica,
	// which refuses a write, and never falls back to the master;
	// read_your_writes counts it as a write.
	CmdMayWrite
	// CmdPubSub: Pub/Sub (PUBLISH, PUBSUB). It goes to the master, where
	// subscribers are, also from a read port.
	CmdPubSub
)

// ReadPolicy says where a listener's read commands go.
type ReadPolicy uint8

const (
	// ReadMaster sends everything to the master (the default). A client
	// may still opt in for its connection with READONLY.
	ReadMaster ReadPolicy = iota
	// ReadPreferReplica sends reads to a healthy replica, or to the master
	// when there is none.
	ReadPreferReplica
	// ReadReplica sends reads only to replicas; with none healthy, reads
	// fail with an error instead of loading the master.
	ReadReplica
)

var errNoReplica = errors.New("proxy: no healthy replica")

// replicaNode is one replica in the read set, with its own pools.
type replicaNode struct {
	addr string
	cfg  *Config
	bg   *sync.WaitGroup // the server's, for the reaper
	// loop is the server's event loop, for the node's pools (pool.loop):
	// clients in the loop that read from replicas are answered by it
	// without a goroutine in between.
	loop *atomic.Pointer[loop]
	// outstanding counts segments sent to this replica and not yet
	// answered: the least-loaded replica gets the next one.
	outstanding atomic.Int64

	// mu guards the fields below.
	mu    sync.Mutex
	pools map[poolKey]*pool
	// used is when each pool for other settings than the default was
	// last handed out or answered, inflight how many segments are on it
	// (begin, end); reaping is set while reap runs.
	used     map[poolKey]time.Time
	inflight map[poolKey]int
	reaping  bool
	closed   bool
	done     chan struct{} // closed by close
}

func newReplicaNode(addr string, cfg *Config, bg *sync.WaitGroup, l *atomic.Pointer[loop]) *replicaNode {
	return &replicaNode{addr: addr, cfg: cfg, bg: bg, loop: l, pools: map[poolKey]*pool{},
		used: map[poolKey]time.Time{}, inflight: map[poolKey]int{}, done: make(chan struct{})}
}

// begin and end bracket a segment sent to the node by a session whose
// settings are key: outstanding steers the choice of replica, and a
// segment in flight keeps the reaper off its pool.
func (n *replicaNode) begin(key poolKey) {
	n.outstanding.Add(1)
	if key == defaultKey {
		return
	}
	n.mu.Lock()
	n.inflight[key]++
	n.mu.Unlock()
}

func (n *replicaNode) end(key poolKey) {
	n.outstanding.Add(-1)
	if key == defaultKey {
		return
	}
	n.mu.Lock()
	if n.inflight[key]--; n.inflight[key] <= 0 {
		delete(n.inflight, key)
	}
	n.used[key] = time.Now()
	n.mu.Unlock()
}

// replicaPoolIdle is how long a replica's pool for other session settings
// than the default (another database, RESP3, a user) is kept unused
// before it is closed. The master's such pools close when their last
// session leaves them (generation.release); a replica's are taken for
// each batch by any session with those settings, so they close once
// unused for this long instead, and clients that came and went with many
// settings do not leave a connection per setting behind on every replica.
var replicaPoolIdle = time.Minute

func (n *replicaNode) pool(key poolKey) *pool {
	n.mu.Lock()
	defer n.mu.Unlock()
	p := n.pools[key]
	if p == nil {
		p = newPool(n.addr, key, n.cfg)
		// Every pool, unlike a generation's: a replica's pools are
		// closed by the reaper, SetReplicas or Close, never on the
		// loop, so waiting there for the connections' reader (the
		// loop) cannot wait for itself. The event loop writes only to
		// connections it reads (fastReplica).
		p.loop = n.loop
		if n.closed {
			p.closed, p.why = true, errNoReplica
			return p
		}
		n.pools[key] = p
	}
	if key != defaultKey {
		n.used[key] = time.Now()
		if !n.reaping {
			n.reaping = true
			n.bg.Add(1)
			go n.reap()
		}
	}
	return p
}

// reap closes the node's pools for other settings than the default once
// they have been unused for replicaPoolIdle, with nothing in flight.
// It returns when no such pool is left, or the node is closed.
func (n *replicaNode) reap() {
	defer n.bg.Done()
	t := time.NewTicker(replicaPoolIdle / 4)
	defer t.Stop()
	for {
		select {
		case <-n.done:
			return
		case <-t.C:
		}
		now := time.Now()
		var idle []*pool
		n.mu.Lock()
		for key, p := range n.pools {
			if key != defaultKey && now.Sub(n.used[key]) >= replicaPoolIdle && n.inflight[key] == 0 {
				delete(n.pools, key)
				delete(n.used, key)
				idle = append(idle, p)
			}
		}
		for key := range n.used {
			if n.pools[key] == nil && n.inflight[key] == 0 {
				delete(n.used, key) // a pool taken when the node closed
			}
		}
		more := len(n.used) > 0
		n.reaping = more
		n.mu.Unlock()
		for _, p := range idle {
			p.close(errPoolClosed)
		}
		if !more {
			return
		}
	}
}

func (n *replicaNode) close() {
	n.mu.Lock()
	if !n.closed {
		close(n.done)
	}
	n.closed = true
	pools := n.pools
	n.pools = nil
	n.mu.Unlock()
	for _, p := range pools {
		p.close(errNoReplica)
	}
}

// replicaSet is the published read set; it is replaced, never changed.
type replicaSet struct {
	nodes []*replicaNode
}

// SetReplicas sets the replicas that may serve reads: the owner passes only
// healthy ones (Sentinel does not flag them, their link is up, they are not
// loading, their lag is within bounds). Replicas no longer listed are
// closed at once; reads in flight on them are re-sent to the master.
func (s *Server) SetReplicas(addrs []string) {
	s.replicaMu.Lock()
	defer s.replicaMu.Unlock()
	if s.replicasClosed {
		return // Close has begun: the read set stays empty
	}
	old := s.replicas.Load()
	var keep []*replicaNode
	if old != nil {
		for _, n := range old.nodes {
			if slices.Contains(addrs, n.addr) {
				keep = append(keep, n)
			}
		}
	}
	next := &replicaSet{}
	for _, a := range addrs {
		i := slices.IndexFunc(keep, func(n *replicaNode) bool { return n.addr == a })
		if i >= 0 {
			next.nodes = append(next.nodes, keep[i])
			continue
		}
		next.nodes = append(next.nodes, newReplicaNode(a, &s.cfg, &s.bg, &s.loop))
		s.log.Info("replica joined the read set", zap.String("replica", a))
	}
	s.replicas.Store(next)
	s.departed = slices.DeleteFunc(s.departed, func(a string) bool { return slices.Contains(addrs, a) })
	if old == nil {
		return
	}
	for _, n := range old.nodes {
		if !slices.Contains(next.nodes, n) {
			s.log.Info("replica left the read set", zap.String("replica", n.addr))
			s.departed = append(slices.DeleteFunc(s.departed, func(a string) bool { return a == n.addr }), n.addr)
			if len(s.departed) > maxDeparted {
				s.departed = slices.Delete(s.departed, 0, len(s.departed)-maxDeparted)
			}
			s.bg.Add(1)
			go func() { // its in-flight reads fall back to the master
				defer s.bg.Done()
				n.close()
			}()
		}
	}
}

// maxDeparted bounds Server.departed.
const maxDeparted = 16

// Replicas returns the current read set.
func (s *Server) Replicas() []string {
	set := s.replicas.Load()
	if set == nil {
		return nil
	}
	out := make([]string, len(set.nodes))
	for i, n := range set.nodes {
		out[i] = n.addr
	}
	return out
}

// SetCommandFlags installs the classification used for replica routing.
// Until it is called no command counts as a read, so everything goes to
// the master.
func (s *Server) SetCommandFlags(f func(args [][]byte) CommandFlags) {
	s.cmdFlags.Store(&f)
}

func (s *Server) commandFlags(args [][]byte) CommandFlags {
	if f := s.cmdFlags.Load(); f != nil {
		return (*f)(args)
	}
	t := s.table.Load()
	if t.IsRead(args) {
		return CmdRead
	}
	f, ok := t.Flags(args)
	if !ok || f.Has(router.FlagWrite) {
		return CmdWrite // unknown commands are writes
	}
	var out CommandFlags
	// Redis 6.2 flags scripts and PUBLISH may_replicate; Redis 7 hides
	// that flag, and a script is then a command with key positions
	// (movablekeys) that is flagged neither read nor write: EVAL,
	// EVALSHA, FCALL. PING and INFO take no keys.
	if f.Has(router.FlagMayReplicate) || f.Has(router.FlagMovableKeys) {
		out |= CmdMayWrite
	}
	if f.Has(router.FlagPubSub) {
		out |= CmdPubSub
	}
	return out
}

// refreshCommands replaces the built-in command table with the one the new
// master reports, so its version and modules are covered. On any failure
// the table in use stays.
func (s *Server) refreshCommands(g *generation) {
	p := g.acquire(defaultKey)
	defer g.release(p)
	c, err := p.shared()
	if err != nil {
		return
	}
	r := &request{parts: [][]byte{[]byte("*1\r\n$7\r\nCOMMAND\r\n")}, n: 1, done: make(chan struct{}, 1)}
	var out []byte
	r.out = &out
	if err := c.enqueue(r); err != nil {
		return
	}
	<-r.done
	if r.err != nil {
		return
	}
	t, err := router.ParseCommandReply(out)
	if err != nil {
		s.log.Warn("master's COMMAND reply not usable; keeping the built-in command table", zap.Error(err))
		return
	}
	s.table.Store(t)
	s.log.Debug("command table loaded from the master", zap.String("master", g.addr), zap.Int("commands", len(t.Names())))
}

// pickReplica returns the replica with the fewest outstanding segments,
// breaking ties round-robin, skipping those in skip, or nil when none is
// left.
func (s *Server) pickReplica(skip []*replicaNode) *replicaNode {
	set := s.replicas.Load()
	if set == nil || len(set.nodes) == 0 {
		return nil
	}
	n := len(set.nodes)
	start := int(s.replicaRR.Add(1) % uint32(n))
	var best *replicaNode
	for i := 0; i < n; i++ {
		c := set.nodes[(start+i)%n]
		if slices.Contains(skip, c) {
			continue
		}
		if best == nil || c.outstanding.Load() < best.outstanding.Load() {
			best = c
		}
	}
	return best
}
