package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pnats/switchyard/internal/lab"
	"github.com/pnats/switchyard/internal/lab/labtest"
	"github.com/redis/go-redis/v9"
)

// TestQueueWorkersAcrossFailovers: workers blocked in BLPOP on a queue fed
// through the proxy keep working through graceful failovers. As each
// failover begins, the old master unblocks them (nothing taken) and the
// proxy sends their BLPOPs again to the new master. No worker sees an
// error, and every element a producer had acknowledged is taken by a
// worker or still queued on the final master; a pop the promotion undid
// could be served twice, which is counted, not failed. Before, each
// failover closed the blocked workers' connections with "may or may not
// have run", and an element just popped was lost.
func TestQueueWorkersAcrossFailovers(t *testing.T) {
	skipShort(t)
	g := labtest.Group(t, lab.GroupOptions{Name: "queue", Replicas: 1, Sentinels: 3})
	grp := runGroup(t, g)
	ctx := context.Background()

	var (
		mu         sync.Mutex
		pushed     = map[string]bool{}
		taken      = map[string]int{}
		workerErrs []string
		stop       = make(chan struct{})
		wg         sync.WaitGroup
	)
	wg.Go(func() {
		c := redis.NewClient(&redis.Options{Addr: grp.addr(), MaxRetries: -1, PoolSize: 1})
		defer c.Close()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond): // the workers mostly wait
			}
			v := strconv.Itoa(i)
			if c.LPush(ctx, "jobs", v).Err() == nil {
				mu.Lock()
				pushed[v] = true
				mu.Unlock()
			}
		}
	})
	for range 3 {
		wg.Go(func() {
			c := redis.NewClient(&redis.Options{Addr: grp.addr(), MaxRetries: -1, PoolSize: 1})
			defer c.Close()
			for {
				select {
				case <-stop:
					return
				default:
				}
				kv, err := c.BLPop(ctx, time.Second, "jobs").Result()
				mu.Lock()
				switch {
				case errors.Is(err, redis.Nil):
				case err != nil:
					workerErrs = append(workerErrs, err.Error())
				default:
					taken[kv[1]]++
				}
				mu.Unlock()
				if err != nil && !errors.Is(err, redis.Nil) {
					time.Sleep(10 * time.Millisecond)
				}
			}
		})
	}
	progress := func(n int) {
		t.Helper()
		mu.Lock()
		base := len(taken)
		mu.Unlock()
		labtest.Eventually(t, 20*time.Second, func() error {
			mu.Lock()
			defer mu.Unlock()
			if got := len(taken) - base; got < n {
				return fmt.Errorf("workers took %d elements, want %d", got, n)
			}
			return nil
		})
	}
	progress(200)
	for range 2 {
		old, _, _ := grp.srv.Master()
		if _, err := g.Failover(ctx); err != nil {
			t.Fatal(err)
		}
		switchSeen(t, grp, old)
		progress(200)
	}
	close(stop)
	wg.Wait()

	final, _, _ := grp.srv.Master()
	direct := redis.NewClient(&redis.Options{Addr: final})
	defer direct.Close()
	left, err := direct.LRange(ctx, "jobs", 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	queued := map[string]bool{}
	for _, v := range left {
		queued[v] = true
	}
	var lost []string
	twice := 0
	for v := range pushed {
		if taken[v] == 0 && !queued[v] {
			lost = append(lost, v)
		}
		if taken[v] > 1 {
			twice++
		}
	}
	t.Logf("%d pushes acknowledged, %d elements taken (%d twice), %d left queued", len(pushed), len(taken), twice, len(left))
	if len(workerErrs) > 0 {
		t.Errorf("workers got %d errors across graceful failovers, e.g. %q", len(workerErrs), strings.Join(workerErrs[:min(3, len(workerErrs))], "; "))
	}
	if len(lost) > 0 {
		t.Errorf("%d acknowledged elements neither taken nor queued, e.g. %v", len(lost), lost[:min(5, len(lost))])
	}
}
