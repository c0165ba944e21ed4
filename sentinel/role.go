package sentinel

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// roleChecker asks Redis nodes for their ROLE. It keeps one small client
// per node so that the master's re-check every PollInterval does not dial
// each time, and drops clients of nodes it has not asked for a while.
// Only the decide goroutine uses it.
type roleChecker struct {
	cfg     Config
	clients map[string]*roleClient
}

type roleClient struct {
	c        *redis.Client
	last     roleResult
	lastAt   time.Time // when last was obtained
	lastUsed time.Time
}

func newRoleChecker(cfg Config) *roleChecker {
	return &roleChecker{cfg: cfg, clients: map[string]*roleClient{}}
}

// check returns addr's role, from a result younger than maxAge if there
// is one, otherwise by asking the node (bounded by DialTimeout).
func (rc *roleChecker) check(ctx context.Context, addr string, maxAge time.Duration) roleResult {
	now := time.Now()
	c := rc.clients[addr]
	if c == nil {
		c = &roleClient{c: redis.NewClient(&redis.Options{
			Addr:                  addr,
			Username:              rc.cfg.NodeUsername,
			Password:              rc.cfg.NodePassword,
			Protocol:              2,
			DialTimeout:           rc.cfg.DialTimeout,
			ReadTimeout:           rc.cfg.DialTimeout,
			WriteTimeout:          rc.cfg.DialTimeout,
			ContextTimeoutEnabled: true,
			PoolSize:              1,
			MaxIdleConns:          1,
			// One retry, so that a pooled connection that died with a
			// restarted node does not fail the check of the new process.
			MaxRetries:      1,
			DisableIdentity: true,
			Dialer:          dialer(rc.cfg.DialTimeout, rc.cfg.NodeTLS),
		})}
		rc.clients[addr] = c
	}
	c.lastUsed = now
	if !c.lastAt.IsZero() && now.Sub(c.lastAt) < maxAge {
		return c.last
	}
	qctx, cancel := context.WithTimeout(ctx, rc.cfg.DialTimeout)
	defer cancel()
	c.last = queryRole(qctx, c.c)
	c.lastAt = time.Now()
	return c.last
}

func queryRole(ctx context.Context, c *redis.Client) roleResult {
	v, err := c.Do(ctx, "ROLE").Slice()
	if err != nil {
		return roleResult{Err: fmt.Errorf("sentinel: ROLE: %w", err)}
	}
	if len(v) == 0 {
		return roleResult{Err: fmt.Errorf("sentinel: ROLE: empty reply")}
	}
	r, ok := v[0].(string)
	if !ok {
		return roleResult{Err: fmt.Errorf("sentinel: ROLE: unexpected reply %.100v", v)}
	}
	return roleResult{Role: r}
}

// prune closes the clients of nodes not asked about for idle.
func (rc *roleChecker) prune(idle time.Duration) {
	now := time.Now()
	for a, c := range rc.clients {
		if now.Sub(c.lastUsed) > idle {
			_ = c.c.Close()
			delete(rc.clients, a)
		}
	}
}

func (rc *roleChecker) close() {
	for a, c := range rc.clients {
		_ = c.c.Close()
		delete(rc.clients, a)
	}
}
