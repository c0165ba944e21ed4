package sentinel

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// roleChecker asks Redis nodes for their ROLE through the shared node
// clients and remembers each answer, so that the master's re-check every
// PollInterval may reuse a fresh one.
//
// The checks run in the background: the decide goroutine never waits for
// a node. A paused master (SIGSTOP: no RST, no answer) would otherwise hold
// the loop for DialTimeout while failover events queue behind it, and the
// proxy would learn of the promotion that much later. A finished check
// wakes the loop.
type roleChecker struct {
	nodes   *nodes
	timeout time.Duration // Config.DialTimeout
	wake    func()
	ctx     context.Context
	wg      *sync.WaitGroup // Run's: checks end before Run returns

	// mu guards last and inflight.
	mu       sync.Mutex
	last     map[string]roleAnswer
	inflight map[string]bool
}

type roleAnswer struct {
	r  roleResult
	at time.Time // when r was obtained
}

// errRolePending: the node has not answered yet; a check is running.
var errRolePending = errors.New("sentinel: ROLE check in progress")

func newRoleChecker(ctx context.Context, wg *sync.WaitGroup, n *nodes, timeout time.Duration, wake func()) *roleChecker {
	return &roleChecker{nodes: n, timeout: timeout, wake: wake, ctx: ctx, wg: wg,
		last: map[string]roleAnswer{}, inflight: map[string]bool{}}
}

// check returns addr's role from an answer younger than maxAge. If there
// is none it starts a check and returns the newest answer it has meanwhile
// (a node known as master stays so until it says otherwise or stops
// answering), or errRolePending for a node never asked: unverified, so the
// caller fails closed until the answer arrives.
func (rc *roleChecker) check(_ context.Context, addr string, maxAge time.Duration) roleResult {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	a, ok := rc.last[addr]
	if ok && time.Since(a.at) < maxAge {
		return a.r
	}
	if !rc.inflight[addr] && rc.ctx.Err() == nil {
		rc.inflight[addr] = true
		c := rc.nodes.client(addr)
		rc.wg.Add(1)
		go func() {
			defer rc.wg.Done()
			qctx, cancel := context.WithTimeout(rc.ctx, rc.timeout)
			r := queryRole(qctx, c)
			cancel()
			rc.mu.Lock()
			rc.last[addr] = roleAnswer{r: r, at: time.Now()}
			delete(rc.inflight, addr)
			rc.mu.Unlock()
			rc.wake()
		}()
	}
	if ok {
		return a.r
	}
	return roleResult{Err: errRolePending}
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
	rc.mu.Lock()
	for a, r := range rc.last {
		if now.Sub(r.at) > idle && !rc.inflight[a] {
			delete(rc.last, a)
		}
	}
	rc.mu.Unlock()
	rc.nodes.prune(idle)
}
