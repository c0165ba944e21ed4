package sentinel

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// roleChecker asks Redis nodes for their ROLE through the shared node
// clients, and remembers each answer so that the master's re-check every
// PollInterval may reuse a fresh one. Only the decide goroutine uses it.
type roleChecker struct {
	nodes   *nodes
	timeout time.Duration // Config.DialTimeout
	last    map[string]roleAnswer
}

type roleAnswer struct {
	r  roleResult
	at time.Time // when r was obtained
}

func newRoleChecker(n *nodes, timeout time.Duration) *roleChecker {
	return &roleChecker{nodes: n, timeout: timeout, last: map[string]roleAnswer{}}
}

// check returns addr's role, from a result younger than maxAge if there
// is one, otherwise by asking the node (bounded by DialTimeout).
func (rc *roleChecker) check(ctx context.Context, addr string, maxAge time.Duration) roleResult {
	c := rc.nodes.client(addr)
	if a, ok := rc.last[addr]; ok && time.Since(a.at) < maxAge {
		return a.r
	}
	qctx, cancel := context.WithTimeout(ctx, rc.timeout)
	defer cancel()
	r := queryRole(qctx, c)
	rc.last[addr] = roleAnswer{r: r, at: time.Now()}
	return r
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

// prune forgets the answers of nodes not asked about for idle and closes
// the clients nobody used for as long.
func (rc *roleChecker) prune(idle time.Duration) {
	now := time.Now()
	for a, r := range rc.last {
		if now.Sub(r.at) > idle {
			delete(rc.last, a)
		}
	}
	rc.nodes.prune(idle)
}
