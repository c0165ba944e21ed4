package sentinel

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pnats/switchyard/internal/lab"
	"github.com/pnats/switchyard/internal/lab/labtest"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
)

// Timings for tests against real processes: fast polls, so that the tests
// run in seconds, and the lab's short down-after (1 s).
const (
	testPoll = 100 * time.Millisecond
	testDial = 500 * time.Millisecond
)

// run is a Watcher running for one test, with everything it published.
type run struct {
	w *Watcher

	mu   sync.Mutex
	seen []Topology // every Topology observed through Changes, in order
}

// startWatcher starts a Watcher on the addresses and stops it when the
// test ends, failing the test if Run does not return promptly.
func startWatcher(t *testing.T, cfg Config) *run {
	t.Helper()
	if cfg.MasterName == "" {
		cfg.MasterName = "mymaster"
	}
	if cfg.PollInterval == 0 {
		cfg.PollInterval = testPoll
	}
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = testDial
	}
	if cfg.Logger == nil {
		cfg.Logger = zaptest.NewLogger(t, zaptest.Level(zap.InfoLevel))
	}
	w, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r := &run{w: w}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	recDone := make(chan struct{})
	go func() { done <- w.Run(ctx) }()
	go func() {
		defer close(recDone)
		for {
			select {
			case <-ctx.Done():
				return
			case <-w.Changes():
				r.mu.Lock()
				r.seen = append(r.seen, w.Topology())
				r.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != context.Canceled {
				t.Errorf("Run returned %v, want context.Canceled", err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("Run did not return within 5s of cancel")
		}
		<-recDone
	})
	return r
}

// history returns the topologies observed so far.
func (r *run) history() []Topology {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Topology(nil), r.seen...)
}

// waitTopo polls until cond accepts the current Topology and returns it.
func (r *run) waitTopo(t *testing.T, timeout time.Duration, cond func(Topology) error) Topology {
	t.Helper()
	var got Topology
	labtest.Eventually(t, timeout, func() error {
		got = r.w.Topology()
		if err := cond(got); err != nil {
			return fmt.Errorf("%w\ntopology: %s", err, describe(got))
		}
		return nil
	})
	return got
}

// isReady accepts a ready Topology with the given master and epoch.
func isReady(master string, epoch uint64) func(Topology) error {
	return isState(StateReady, master, epoch)
}

func isState(s State, master string, epoch uint64) func(Topology) error {
	return func(t Topology) error {
		if t.State != s || t.Master != master || t.Epoch != epoch {
			return fmt.Errorf("want %v master %s epoch %d", s, master, epoch)
		}
		return nil
	}
}

func describe(t Topology) string {
	var b strings.Builder
	fmt.Fprintf(&b, "state=%v master=%s epoch=%d reason=%q switch=%v event=%v", t.State, t.Master, t.Epoch, t.Reason,
		t.LastSwitch.Format("15:04:05.000"), t.SwitchEvent.Format("15:04:05.000"))
	for _, s := range t.Sentinels {
		fmt.Fprintf(&b, "\n  sentinel %s reachable=%v master=%s agrees=%v err=%q", s.Addr, s.Reachable, s.Master, s.Agrees, s.LastError)
	}
	for _, r := range t.Replicas {
		fmt.Fprintf(&b, "\n  replica %s flags=%v down=%v link=%s offset=%d own: link_up=%v loading=%v offset=%d lag=%d checked=%s",
			r.Addr, r.Flags, r.Down, r.MasterLinkStatus, r.ReplOffset, r.LinkUp, r.Loading, r.Offset, r.LagBytes, r.Checked.Format("15:04:05.000"))
	}
	return b.String()
}

func sentinelAddrs(ss ...*lab.Sentinel) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = s.Addr
	}
	return out
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
