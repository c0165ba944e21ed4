package sentinel

import (
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// nodes keeps one small go-redis client per Redis node, shared by the ROLE
// checks (the decide goroutine) and the replica health probes (the health
// goroutines), so that neither dials on every poll. Clients of nodes that
// nobody asked about for a while are closed by prune.
type nodes struct {
	cfg Config

	// mu guards m. It is never held during I/O.
	mu sync.Mutex
	m  map[string]*nodeClient
}

type nodeClient struct {
	c        *redis.Client
	lastUsed time.Time
}

func newNodes(cfg Config) *nodes {
	return &nodes{cfg: cfg, m: map[string]*nodeClient{}}
}

// client returns the client for addr, creating it if needed. Every query
// on it must be bounded by a context with a deadline.
func (n *nodes) client(addr string) *redis.Client {
	n.mu.Lock()
	defer n.mu.Unlock()
	c := n.m[addr]
	if c == nil {
		c = &nodeClient{c: redis.NewClient(&redis.Options{
			Addr:                  addr,
			Username:              n.cfg.NodeUsername,
			Password:              n.cfg.NodePassword,
			Protocol:              2,
			DialTimeout:           n.cfg.DialTimeout,
			ReadTimeout:           n.cfg.DialTimeout,
			WriteTimeout:          n.cfg.DialTimeout,
			ContextTimeoutEnabled: true,
			// Two connections: the master's ROLE check and its INFO for
			// the replicas' lag may run at the same moment, and neither
			// should queue behind the other.
			PoolSize:     2,
			MaxIdleConns: 2,
			// One retry, so that a pooled connection that died with a
			// restarted node does not fail the check of the new process.
			MaxRetries:      1,
			DisableIdentity: true,
			Dialer:          dialer(n.cfg.DialTimeout, n.cfg.NodeTLS),
		})}
		n.m[addr] = c
	}
	c.lastUsed = time.Now()
	return c.c
}

// prune closes the clients of nodes not asked about for idle. A query
// still running on a pruned client fails and is retried on a new client
// the next round.
func (n *nodes) prune(idle time.Duration) {
	now := time.Now()
	n.mu.Lock()
	defer n.mu.Unlock()
	for a, c := range n.m {
		if now.Sub(c.lastUsed) > idle {
			_ = c.c.Close()
			delete(n.m, a)
		}
	}
}

// close closes every client. It is called once nothing uses them.
func (n *nodes) close() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for a, c := range n.m {
		_ = c.c.Close()
		delete(n.m, a)
	}
}
