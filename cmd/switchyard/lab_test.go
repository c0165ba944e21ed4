package main

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pnats/switchyard/internal/lab"
	"github.com/pnats/switchyard/internal/lab/labtest"
	"github.com/pnats/switchyard/proxy"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap/zaptest"
)

// runGroup runs the binary's own wiring (watcher, bridge, proxy) for one
// Sentinel group on a free loopback port and stops it at cleanup.
func runGroup(t *testing.T, g *lab.Group, tweak ...func(*groupConfig)) *group {
	t.Helper()
	return runGroupWith(t, g, nil, tweak...)
}

// runGroupWith is runGroup with metrics recorded into m.
func runGroupWith(t *testing.T, g *lab.Group, m *metrics, tweak ...func(*groupConfig)) *group {
	t.Helper()
	var addrs []string
	for _, s := range g.Sentinels {
		addrs = append(addrs, s.Addr)
	}
	discover := false
	gc := groupConfig{
		Name:   "test",
		Listen: "127.0.0.1:0",
		Sentinel: &sentinelConfig{
			MasterName:   g.Name,
			Addrs:        addrs,
			Discover:     &discover,
			PollInterval: 100 * time.Millisecond,
		},
		HoldTimeout: 10 * time.Second,
		DialTimeout: time.Second,
		ReadTimeout: 3 * time.Second,
	}
	for _, f := range tweak {
		f(&gc)
	}
	grp, err := newGroup(gc, zaptest.NewLogger(t), m, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- grp.run(ctx) }()
	t.Cleanup(func() {
		cancel()
		grp.srv.Close()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("group did not stop")
		}
	})
	labtest.Eventually(t, 15*time.Second, func() error {
		if _, _, ok := grp.srv.Master(); !ok {
			return errors.New("no verified master yet")
		}
		return nil
	})
	return grp
}

func (g *group) addr() string { return g.l.Addr().String() }

// writers is a set of clients that RPUSH increasing numbers to their own
// list through the proxy and remember which pushes were acknowledged, and
// when.
type writers struct {
	t     testing.TB
	stop  chan struct{}
	wg    sync.WaitGroup
	mu    sync.Mutex
	acked map[int][]ack // by writer
	fails int
}

type ack struct {
	n  int
	at time.Time
}

func startWriters(t testing.TB, addr string, n int) *writers {
	w := &writers{t: t, stop: make(chan struct{}), acked: map[int][]ack{}}
	for i := 0; i < n; i++ {
		c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, PoolSize: 1, ReadTimeout: 15 * time.Second})
		w.wg.Add(1)
		go func(i int) {
			defer w.wg.Done()
			defer c.Close()
			key := "wl:" + strconv.Itoa(i)
			for n := 0; ; n++ {
				select {
				case <-w.stop:
					return
				default:
				}
				err := c.RPush(context.Background(), key, n).Err()
				w.mu.Lock()
				if err == nil {
					w.acked[i] = append(w.acked[i], ack{n, time.Now()})
				} else {
					w.fails++
				}
				w.mu.Unlock()
				if err != nil {
					time.Sleep(2 * time.Millisecond)
				}
			}
		}(i)
	}
	return w
}

func (w *writers) total() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, a := range w.acked {
		n += len(a)
	}
	return n
}

// waitProgress waits until at least n more writes are acknowledged.
func (w *writers) waitProgress(t testing.TB, n int, within time.Duration) {
	t.Helper()
	base := w.total()
	labtest.Eventually(t, within, func() error {
		if got := w.total() - base; got < n {
			return fmt.Errorf("only %d writes acknowledged, want %d", got, n)
		}
		return nil
	})
}

func (w *writers) halt() {
	close(w.stop)
	w.wg.Wait()
}

// missing returns the acknowledged pushes absent from node, split into
// those acknowledged before and after the cut-off.
func (w *writers) missing(t testing.TB, node *lab.Server, cut time.Time) (before, after int) {
	t.Helper()
	c := node.Client()
	defer c.Close()
	w.mu.Lock()
	defer w.mu.Unlock()
	for i, acks := range w.acked {
		vals, err := c.LRange(context.Background(), "wl:"+strconv.Itoa(i), 0, -1).Result()
		if err != nil {
			t.Fatalf("LRANGE on %s: %v", node.Addr, err)
		}
		have := make(map[int]bool, len(vals))
		for _, v := range vals {
			n, _ := strconv.Atoi(v)
			have[n] = true
		}
		for _, a := range acks {
			if !have[a.n] {
				if a.at.Before(cut) {
					before++
				} else {
					after++
				}
			}
		}
	}
	return before, after
}

// longestGap is the longest time any writer went without an
// acknowledgement while all were running.
func (w *writers) longestGap() time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	var times []time.Time
	for _, acks := range w.acked {
		for _, a := range acks {
			times = append(times, a.at)
		}
	}
	sort.Slice(times, func(i, j int) bool { return times[i].Before(times[j]) })
	var gap time.Duration
	for i := 1; i < len(times); i++ {
		if d := times[i].Sub(times[i-1]); d > gap {
			gap = d
		}
	}
	return gap
}

// switchSeen polls the proxy until its master differs from old and
// returns the moment it saw the switch.
func switchSeen(t testing.TB, grp *group, old string) time.Time {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if addr, _, ok := grp.srv.Master(); ok && addr != old {
			return time.Now()
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("proxy still on %s after 30s", old)
	return time.Time{}
}

// proxyConns counts the proxy's backend connections on node.
func proxyConns(t testing.TB, node *lab.Server) int {
	t.Helper()
	c := node.Client()
	defer c.Close()
	list, err := c.ClientList(context.Background()).Result()
	if err != nil {
		t.Fatalf("CLIENT LIST on %s: %v", node.Addr, err)
	}
	return strings.Count(list, "name="+proxy.BackendName+" ")
}
