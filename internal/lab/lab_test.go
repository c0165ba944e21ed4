package lab_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pnats/switchyard/internal/lab"
	"github.com/pnats/switchyard/internal/lab/labtest"
)

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// assertGone fails if any pid still exists (alive or unreaped).
func assertGone(t *testing.T, pids []int) {
	t.Helper()
	for _, pid := range pids {
		if pid <= 0 {
			t.Errorf("bad pid %d", pid)
			continue
		}
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("pid %d still exists after cleanup (kill 0: %v)", pid, err)
		}
	}
}

// withCleanupCheck runs f as a subtest (so labtest's cleanups run when it
// returns) and then checks that every pid f reported is gone.
func withCleanupCheck(t *testing.T, f func(t *testing.T) []int) {
	t.Helper()
	var pids []int
	if !t.Run("run", func(t *testing.T) { pids = f(t) }) {
		return
	}
	assertGone(t, pids)
}

func role(ctx context.Context, s *lab.Server) (string, error) {
	c := s.Client()
	defer c.Close()
	v, err := c.Do(ctx, "ROLE").Slice()
	if err != nil {
		return "", err
	}
	r, _ := v[0].(string)
	return r, nil
}

func TestServerLifecycle(t *testing.T) {
	t.Parallel()
	withCleanupCheck(t, func(t *testing.T) []int {
		s := labtest.Server(t, lab.ServerOptions{Args: []string{"--requirepass", "sekret"}})
		ctx := ctxT(t, 20*time.Second)
		if !strings.HasPrefix(s.Addr, "127.0.0.1:") || s.Port == 0 || s.Addr != "127.0.0.1:"+strconv.Itoa(s.Port) {
			t.Fatalf("bad address %q / port %d", s.Addr, s.Port)
		}
		c := s.Client()
		defer c.Close()
		if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
			t.Fatalf("SET: %v\n%s", err, s.LogTail(20))
		}
		if r, err := role(ctx, s); err != nil || r != "master" {
			t.Fatalf("ROLE = %q, %v", r, err)
		}
		pids := []int{s.PID()}

		// Pause: the port stays open but nothing answers.
		if err := s.Pause(); err != nil {
			t.Fatal(err)
		}
		if !s.Running() {
			t.Fatal("paused server should count as running")
		}
		short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		err := c.Ping(short).Err()
		cancel()
		if err == nil {
			t.Fatal("PING to a paused server succeeded")
		}
		if err := s.Resume(); err != nil {
			t.Fatal(err)
		}
		labtest.Eventually(t, 5*time.Second, func() error { return c.Ping(ctx).Err() })

		// Kill, then Restart on the same port.
		addr := s.Addr
		if err := s.Kill(); err != nil {
			t.Fatal(err)
		}
		if s.Running() {
			t.Fatal("killed server still running")
		}
		if err := s.Stop(); err != nil { // idempotent, safe after Kill
			t.Fatalf("Stop after Kill: %v", err)
		}
		if err := s.Restart(ctx); err != nil {
			t.Fatal(err)
		}
		if s.Addr != addr || !s.Running() {
			t.Fatalf("after restart: addr %s (was %s), running %v", s.Addr, addr, s.Running())
		}
		pids = append(pids, s.PID())
		labtest.Eventually(t, 5*time.Second, func() error { return c.Ping(ctx).Err() })
		if n, err := c.Exists(ctx, "k").Result(); err != nil || n != 0 {
			t.Fatalf("restarted server (no persistence) should be empty: %d, %v", n, err)
		}
		if !strings.Contains(s.LogTail(100), "Ready to accept connections") {
			t.Errorf("log tail lacks the ready line:\n%s", s.LogTail(100))
		}

		// Stop a paused server: must not need the 5 s SIGKILL fallback.
		if err := s.Pause(); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if err := s.Stop(); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("Stop of a paused server took %v", d)
		}
		if err := s.Stop(); err != nil {
			t.Fatalf("second Stop: %v", err)
		}
		return pids
	})
}

func TestReplicaAndFixedPortTaken(t *testing.T) {
	t.Parallel()
	m := labtest.Server(t, lab.ServerOptions{})
	r := labtest.Server(t, lab.ServerOptions{ReplicaOf: m.Addr})
	ctx := ctxT(t, 20*time.Second)
	if got, err := role(ctx, r); err != nil || got != "slave" {
		t.Fatalf("replica ROLE = %q, %v", got, err)
	}
	mc := m.Client()
	defer mc.Close()
	rc := r.Client()
	defer rc.Close()
	if err := mc.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	labtest.Eventually(t, 5*time.Second, func() error {
		v, err := rc.Get(ctx, "k").Result()
		if err != nil {
			return err
		}
		if v != "v" {
			return fmt.Errorf("got %q", v)
		}
		return nil
	})

	// A fixed port that is taken is an error (with the log), not a hang,
	// and not a silent success against the process that owns the port.
	_, err := lab.StartServer(ctx, lab.ServerOptions{Dir: t.TempDir(), Port: m.Port})
	if err == nil || !strings.Contains(err.Error(), "Address already in use") {
		t.Fatalf("start on a taken port: %v", err)
	}
}

func TestNotInstalled(t *testing.T) {
	_, err := lab.StartServer(context.Background(), lab.ServerOptions{Dir: t.TempDir(), Binary: "no-such-redis-server"})
	if !errors.Is(err, lab.ErrNotInstalled) || !strings.Contains(err.Error(), "no-such-redis-server") {
		t.Fatalf("err = %v", err)
	}
}

func TestSentinelStandalone(t *testing.T) {
	t.Parallel()
	withCleanupCheck(t, func(t *testing.T) []int {
		m := labtest.Server(t, lab.ServerOptions{})
		s := labtest.Sentinel(t, lab.SentinelOptions{MasterName: "solo", MasterAddr: m.Addr})
		ctx := ctxT(t, 20*time.Second)
		sc := s.Client()
		defer sc.Close()
		got, err := sc.GetMasterAddrByName(ctx, "solo").Result()
		if err != nil || len(got) != 2 || net.JoinHostPort(got[0], got[1]) != m.Addr {
			t.Fatalf("get-master-addr-by-name = %v, %v", got, err)
		}
		pids := []int{m.PID(), s.PID()}
		if err := s.Kill(); err != nil {
			t.Fatal(err)
		}
		if err := s.Restart(ctx); err != nil {
			t.Fatal(err)
		}
		pids = append(pids, s.PID())
		got, err = sc.GetMasterAddrByName(ctx, "solo").Result()
		if err != nil || net.JoinHostPort(got[0], got[1]) != m.Addr {
			t.Fatalf("after restart: %v, %v", got, err)
		}
		return pids
	})
}

func checkMaster(ctx context.Context, t *testing.T, g *lab.Group, m *lab.Server) {
	t.Helper()
	if r, err := role(ctx, m); err != nil || r != "master" {
		t.Fatalf("new master %s: ROLE = %q, %v", m.Addr, r, err)
	}
	cur, err := g.CurrentMaster(ctx)
	if err != nil || cur != m {
		t.Fatalf("CurrentMaster = %v, %v; want %s", cur, err, m.Addr)
	}
	c := m.Client()
	defer c.Close()
	if err := c.Set(ctx, "after-failover", "1", 0).Err(); err != nil {
		t.Fatalf("write to new master: %v", err)
	}
}

func TestGroupFailover(t *testing.T) {
	t.Parallel()
	withCleanupCheck(t, func(t *testing.T) []int {
		g := labtest.Group(t, lab.GroupOptions{Replicas: 2, Sentinels: 3})
		ctx := ctxT(t, 50*time.Second)
		if len(g.Servers()) != 3 || len(g.Sentinels) != 3 || g.Servers()[0] != g.Master {
			t.Fatalf("group shape: %d servers, %d sentinels", len(g.Servers()), len(g.Sentinels))
		}
		cur, err := g.CurrentMaster(ctx)
		if err != nil || cur != g.Master {
			t.Fatalf("CurrentMaster = %v, %v; want %s", cur, err, g.Master.Addr)
		}
		start := time.Now()
		nm, err := g.Failover(ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("manual failover %s -> %s took %v", g.Master.Addr, nm.Addr, time.Since(start))
		if nm == g.Master {
			t.Fatal("Failover returned the old master")
		}
		checkMaster(ctx, t, g, nm)
		// A second failover right away (Sentinel may answer NOGOODSLAVE or
		// INPROG for a moment; Failover retries).
		start = time.Now()
		nm2, err := g.Failover(ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("second manual failover %s -> %s took %v", nm.Addr, nm2.Addr, time.Since(start))
		if nm2 == nm {
			t.Fatal("second Failover returned the same master")
		}
		checkMaster(ctx, t, g, nm2)
		// Eventually exactly one master: the old masters are demoted by
		// Sentinel's convert-to-slave.
		start = time.Now()
		cm, err := g.WaitConverged(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if cm != nm2 {
			t.Fatalf("converged on %s, want %s", cm.Addr, nm2.Addr)
		}
		t.Logf("converged after %v", time.Since(start))
		return g.PIDs()
	})
}

func TestGroupKillMaster(t *testing.T) {
	t.Parallel()
	withCleanupCheck(t, func(t *testing.T) []int {
		g := labtest.Group(t, lab.GroupOptions{Name: "killme", Replicas: 2, Sentinels: 3, ServerArgs: []string{"--requirepass", "pw"}})
		ctx := ctxT(t, 45*time.Second)
		pids := g.PIDs()
		old := g.Master
		if err := old.Kill(); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		nm, err := g.WaitMaster(ctx, old)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("automatic failover after SIGKILL %s -> %s took %v", old.Addr, nm.Addr, time.Since(start))
		checkMaster(ctx, t, g, nm)

		// The killed master comes back (as a master, its original role) and
		// Sentinel converts it into a replica of the new master.
		if err := old.Restart(ctx); err != nil {
			t.Fatal(err)
		}
		pids = append(pids, old.PID())
		// Do not pin nm here: right after a switch Sentinel resets its
		// failover guard, so a hiccup of >= DownAfter can cause a second
		// failover (see the package docs). Wait for whatever the group
		// converges on.
		start = time.Now()
		cm, err := g.WaitConverged(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if cm == old {
			t.Fatalf("converged on the restarted old master %s", old.Addr)
		}
		if r, err := role(ctx, old); err != nil || r != "slave" {
			t.Fatalf("restarted old master: ROLE %q, %v", r, err)
		}
		t.Logf("restarted old master reconfigured as replica after %v", time.Since(start))
		return pids
	})
}

// Make sure the go-redis client types are what callers expect.
var (
	_ func(*lab.Server) *redis.Client           = (*lab.Server).Client
	_ func(*lab.Sentinel) *redis.SentinelClient = (*lab.Sentinel).Client
)
