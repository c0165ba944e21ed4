package sentinel

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pnats/switchyard/internal/lab"
	"github.com/pnats/switchyard/internal/lab/labtest"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

func TestWatcherGracefulFailover(t *testing.T) {
	t.Parallel()
	g := labtest.Group(t, lab.GroupOptions{Name: "mymaster", Replicas: 2, Sentinels: 3})
	r := startWatcher(t, Config{Sentinels: sentinelAddrs(g.Sentinels...)})

	top := r.waitTopo(t, 5*time.Second, isReady(g.Master.Addr, 1))
	if len(top.Replicas) != 2 || len(top.Sentinels) != 3 {
		t.Fatalf("want 2 replicas and 3 Sentinels: %s", describe(top))
	}
	for _, s := range top.Sentinels {
		if !s.Reachable || !s.Agrees {
			t.Errorf("Sentinel %s: reachable %v agrees %v", s.Addr, s.Reachable, s.Agrees)
		}
	}

	start := time.Now()
	nm, err := g.Failover(ctxT(t, 30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	top = r.waitTopo(t, 5*time.Second, isReady(nm.Addr, 2))
	t.Logf("failover: Sentinels agree after %v; watcher switched %v after SENTINEL FAILOVER", time.Since(start), top.LastSwitch.Sub(start))
	if top.SwitchEvent.IsZero() {
		t.Errorf("SwitchEvent not set: the switch came from polling, not from an event")
	} else {
		t.Logf("failover: switched %v after receiving the event", top.LastSwitch.Sub(top.SwitchEvent))
	}
	if top.LastSwitch.Before(top.SwitchEvent) {
		t.Errorf("LastSwitch %v before SwitchEvent %v", top.LastSwitch, top.SwitchEvent)
	}

	// The proxy must have been told to hold writes before the switch.
	var states []string
	sawFailover := false
	for _, h := range r.history() {
		states = append(states, fmt.Sprintf("%v/%d", h.State, h.Epoch))
		if h.Epoch == 2 {
			break
		}
		if h.State == StateFailover && h.Master == g.Master.Addr && h.Epoch == 1 {
			sawFailover = true
		}
		if h.Epoch == 1 && h.State != StateReady && h.State != StateFailover {
			t.Errorf("unexpected state before the switch: %s", describe(h))
		}
	}
	if !sawFailover {
		t.Errorf("no StateFailover before the switch; sequence %v", states)
	}
	t.Logf("sequence: %v", strings.Join(states, " "))

	// The epoch stays at 2 while the other Sentinels catch up and the old
	// master (still answering ROLE master for ~10 s) is demoted.
	if _, err := g.WaitConverged(ctxT(t, 30*time.Second)); err != nil {
		t.Fatal(err)
	}
	top = r.waitTopo(t, 5*time.Second, isReady(nm.Addr, 2))
	for _, h := range r.history() {
		if h.Epoch > 2 {
			t.Fatalf("epoch went past 2: %s", describe(h))
		}
	}
	found := false
	for _, rep := range top.Replicas {
		if rep.Addr == nm.Addr {
			t.Errorf("new master listed as replica")
		}
		if rep.Addr == g.Master.Addr {
			found = true
		}
	}
	if !found {
		t.Errorf("old master not listed as a replica: %s", describe(top))
	}
}

func TestWatcherMasterKilled(t *testing.T) {
	t.Parallel()
	g := labtest.Group(t, lab.GroupOptions{Name: "mymaster", Replicas: 2, Sentinels: 3})
	r := startWatcher(t, Config{Sentinels: sentinelAddrs(g.Sentinels...)})
	r.waitTopo(t, 5*time.Second, isReady(g.Master.Addr, 1))

	start := time.Now()
	if err := g.Master.Kill(); err != nil {
		t.Fatal(err)
	}
	// With the master gone the watcher must stop sending to it at once,
	// well before Sentinel's down-after (1 s) expires.
	r.waitTopo(t, 2*time.Second, func(top Topology) error {
		if top.State == StateReady {
			return errors.New("still ready with a dead master")
		}
		return nil
	})
	t.Logf("kill: not ready after %v", time.Since(start))
	nm, err := g.WaitMaster(ctxT(t, 30*time.Second), g.Master)
	if err != nil {
		t.Fatal(err)
	}
	top := r.waitTopo(t, 5*time.Second, isReady(nm.Addr, 2))
	t.Logf("kill: switched to %s %v after SIGKILL (event %v after SIGKILL)", nm.Addr, top.LastSwitch.Sub(start), top.SwitchEvent.Sub(start))
	for _, h := range r.history() {
		if h.State == StateReady && h.Master == g.Master.Addr && h.LastSwitch.After(start) {
			t.Errorf("ready on the dead master after the kill: %s", describe(h))
		}
	}
}

// TestWatcherSentinelFaults kills Sentinels one by one and brings one back.
func TestWatcherSentinelFaults(t *testing.T) {
	t.Parallel()
	g := labtest.Group(t, lab.GroupOptions{Name: "mymaster", Replicas: 1, Sentinels: 3})
	r := startWatcher(t, Config{Sentinels: sentinelAddrs(g.Sentinels...)})
	m := g.Master.Addr
	r.waitTopo(t, 5*time.Second, isReady(m, 1))

	t.Run("one Sentinel killed changes nothing", func(t *testing.T) {
		mark := len(r.history())
		if err := g.Sentinels[0].Kill(); err != nil {
			t.Fatal(err)
		}
		r.waitTopo(t, 5*time.Second, func(top Topology) error {
			if top.Sentinels[0].Reachable || top.Sentinels[0].LastError == "" {
				return errors.New("killed Sentinel still reachable")
			}
			return isReady(m, 1)(top)
		})
		for _, h := range r.history()[mark:] {
			if h.State != StateReady || h.Master != m || h.Epoch != 1 {
				t.Errorf("topology changed: %s", describe(h))
			}
		}
	})

	t.Run("all Sentinels killed: degraded on the same master", func(t *testing.T) {
		for _, s := range g.Sentinels[1:] {
			if err := s.Kill(); err != nil {
				t.Fatal(err)
			}
		}
		top := r.waitTopo(t, 5*time.Second, isState(StateDegraded, m, 1))
		if !strings.Contains(top.Reason, "no Sentinel is reachable") {
			t.Errorf("reason %q", top.Reason)
		}
		// The replica the Sentinels last listed stays, judged by its own
		// probes: reads keep going to it.
		if err := replicaIs(g.Replicas[0].Addr, healthy)(top); err != nil {
			t.Errorf("degraded: %v\n%s", err, describe(top))
		}
		r.waitTopo(t, 5*time.Second, replicaIs(g.Replicas[0].Addr, func(rep Replica) error {
			if time.Since(rep.Checked) > testPoll || healthy(rep) != nil {
				return fmt.Errorf("replica not probed lately, or unhealthy: %+v", rep)
			}
			return nil
		}))
	})

	t.Run("degraded master keeps being checked with ROLE", func(t *testing.T) {
		if err := g.Master.Pause(); err != nil {
			t.Fatal(err)
		}
		top := r.waitTopo(t, 5*time.Second, isState(StateNoMaster, m, 1))
		t.Logf("paused master: %s", top.Reason)
		if err := g.Master.Resume(); err != nil {
			t.Fatal(err)
		}
		r.waitTopo(t, 5*time.Second, isState(StateDegraded, m, 1))
	})

	t.Run("one Sentinel restarted: ready again", func(t *testing.T) {
		if err := g.Sentinels[1].Restart(ctxT(t, 20*time.Second)); err != nil {
			t.Fatal(err)
		}
		top := r.waitTopo(t, 5*time.Second, isReady(m, 1))
		if !top.Sentinels[1].Reachable || !top.Sentinels[1].Agrees {
			t.Errorf("restarted Sentinel: %s", describe(top))
		}
	})
}

// TestWatcherRecheck uses a PollInterval long enough that only Recheck can
// explain a prompt reaction.
func TestWatcherRecheck(t *testing.T) {
	t.Parallel()
	g := labtest.Group(t, lab.GroupOptions{Name: "mymaster", Replicas: 1, Sentinels: 1})
	r := startWatcher(t, Config{Sentinels: sentinelAddrs(g.Sentinels...), PollInterval: time.Minute})
	r.waitTopo(t, 5*time.Second, isReady(g.Master.Addr, 1))

	// Demote the master behind Sentinel's back (it will not react for
	// seconds); without Recheck the watcher would notice in a minute.
	c := g.Master.Client()
	defer c.Close()
	ctx := ctxT(t, 10*time.Second)
	if err := c.ReplicaOf(ctx, "127.0.0.1", fmt.Sprint(g.Replicas[0].Port)).Err(); err != nil {
		t.Fatal(err)
	}
	defer c.ReplicaOf(context.Background(), "NO", "ONE")
	start := time.Now()
	r.w.Recheck()
	r.w.Recheck() // merged, never blocks
	top := r.waitTopo(t, 3*time.Second, isState(StateNoMaster, g.Master.Addr, 1))
	t.Logf("recheck: %v to %s", time.Since(start), top.Reason)
	if !strings.Contains(top.Reason, "answers ROLE slave") {
		t.Errorf("reason %q", top.Reason)
	}
}

// TestWatcherRogueSentinels: Sentinels that name other servers under the
// same master name.
func TestWatcherRogueSentinels(t *testing.T) {
	t.Parallel()
	g := labtest.Group(t, lab.GroupOptions{Name: "mymaster", Replicas: 1, Sentinels: 3})
	// A separate pair, unknown to the group: other (a master) and its
	// replica otherReplica, each watched by a rogue Sentinel.
	other := labtest.Server(t, lab.ServerOptions{})
	otherReplica := labtest.Server(t, lab.ServerOptions{ReplicaOf: other.Addr})
	rogue := labtest.Sentinel(t, lab.SentinelOptions{MasterName: "mymaster", MasterAddr: other.Addr, Quorum: 1})
	rogueOnReplica := labtest.Sentinel(t, lab.SentinelOptions{MasterName: "mymaster", MasterAddr: otherReplica.Addr, Quorum: 1})

	t.Run("outvoted", func(t *testing.T) {
		r := startWatcher(t, Config{Sentinels: append(sentinelAddrs(g.Sentinels...), rogue.Addr)})
		top := r.waitTopo(t, 5*time.Second, isReady(g.Master.Addr, 1))
		if s := top.Sentinels[3]; !s.Reachable || s.Agrees || s.Master != other.Addr {
			t.Errorf("rogue status %+v", s)
		}
		if !strings.Contains(top.Reason, "3 of 4") {
			t.Errorf("reason %q", top.Reason)
		}
	})

	t.Run("tie fails closed", func(t *testing.T) {
		r := startWatcher(t, Config{Sentinels: []string{g.Sentinels[0].Addr, rogue.Addr}})
		top := r.waitTopo(t, 5*time.Second, isState(StateNoMaster, "", 0))
		if !strings.Contains(top.Reason, "no majority of 2") {
			t.Errorf("reason %q", top.Reason)
		}
	})

	t.Run("majority names a replica", func(t *testing.T) {
		r := startWatcher(t, Config{Sentinels: []string{rogueOnReplica.Addr}})
		top := r.waitTopo(t, 5*time.Second, isState(StateNoMaster, "", 0))
		want := fmt.Sprintf("1 of 1 reachable Sentinels name %s but it answers ROLE slave", otherReplica.Addr)
		if top.Reason != want {
			t.Errorf("reason %q, want %q", top.Reason, want)
		}
	})

	t.Run("minority names a replica", func(t *testing.T) {
		r := startWatcher(t, Config{Sentinels: append(sentinelAddrs(g.Sentinels...), rogueOnReplica.Addr)})
		r.waitTopo(t, 5*time.Second, isReady(g.Master.Addr, 1))
	})

	t.Run("a Sentinel that refuses MYID gets no vote", func(t *testing.T) {
		// With an ACL user that may not run SENTINEL MYID, the rogue
		// cannot be told apart from itself at a second address; counted
		// by address, it would outvote the group's Sentinel 2 to 1.
		ctx := context.Background()
		for _, acl := range []struct {
			s     *lab.Sentinel
			rules []any
		}{
			{rogue, []any{"+sentinel|get-master-addr-by-name", "+sentinel|master", "+sentinel|replicas", "+ping", "+subscribe", "+psubscribe", "+hello", "+auth", "&*"}},
			{g.Sentinels[1], []any{"+@all", "&*"}},
		} {
			c := acl.s.Client()
			cmd := redis.NewCmd(ctx, append([]any{"ACL", "SETUSER", "sy", "on", ">pw"}, acl.rules...)...)
			c.Process(ctx, cmd)
			c.Close()
			if err := cmd.Err(); err != nil {
				t.Fatal(err)
			}
		}
		_, port, _ := net.SplitHostPort(rogue.Addr)
		r := startWatcher(t, Config{Sentinels: []string{"localhost:" + port, rogue.Addr, g.Sentinels[1].Addr}, Username: "sy", Password: "pw"})
		top := r.waitTopo(t, 5*time.Second, isReady(g.Master.Addr, 1))
		if !strings.Contains(top.Reason, "1 of 1") {
			t.Errorf("reason %q", top.Reason)
		}
		for _, s := range top.Sentinels {
			if s.Addr != g.Sentinels[1].Addr && (s.Reachable || !strings.Contains(s.LastError, "+sentinel|myid")) {
				t.Errorf("the rogue, refusing MYID: %+v", s)
			}
		}
	})

	t.Run("a Sentinel that refuses CKQUORUM still votes", func(t *testing.T) {
		// The documented rules without +sentinel|ckquorum: the answer is
		// unknown, and the Sentinel counts as before.
		ctx := context.Background()
		c := g.Sentinels[2].Client()
		cmd := redis.NewCmd(ctx, "ACL", "SETUSER", "noq", "on", ">pw", "+sentinel|myid", "+sentinel|get-master-addr-by-name",
			"+sentinel|master", "+sentinel|replicas", "+ping", "+subscribe", "+psubscribe", "+hello", "+auth", "&*")
		c.Process(ctx, cmd)
		c.Close()
		if err := cmd.Err(); err != nil {
			t.Fatal(err)
		}
		r := startWatcher(t, Config{Sentinels: []string{g.Sentinels[2].Addr}, Username: "noq", Password: "pw"})
		top := r.waitTopo(t, 5*time.Second, isReady(g.Master.Addr, 1))
		if s := top.Sentinels[0]; !s.Reachable || s.Quorum != "" {
			t.Errorf("a Sentinel refusing CKQUORUM: %+v", s)
		}
		open := startWatcher(t, Config{Sentinels: []string{g.Sentinels[0].Addr}})
		top = open.waitTopo(t, 5*time.Second, isReady(g.Master.Addr, 1))
		if q := top.Sentinels[0].Quorum; !strings.HasPrefix(q, "OK ") {
			t.Errorf("a Sentinel answering CKQUORUM: quorum %q", q)
		}
	})

	t.Run("a refused event subscription is logged", func(t *testing.T) {
		// An ACL without +subscribe: the Sentinel still votes, but the
		// failovers it leads are seen only by polling, which an
		// operator must be told.
		ctx := context.Background()
		c := g.Sentinels[2].Client()
		cmd := redis.NewCmd(ctx, "ACL", "SETUSER", "nosub", "on", ">pw", "+sentinel", "+ping", "+hello", "+auth", "&*")
		c.Process(ctx, cmd)
		c.Close()
		if err := cmd.Err(); err != nil {
			t.Fatal(err)
		}
		readyAndLogsOnce(t, Config{Sentinels: []string{g.Sentinels[2].Addr}, Username: "nosub", Password: "pw"}, g.Master.Addr,
			"sentinel: event subscription refused; failovers are seen only by polling, up to poll_interval late")
	})

	t.Run("a master refusing INFO is logged", func(t *testing.T) {
		// The node user may run ROLE but not INFO on the master: the
		// replicas' lag and any promotion out of the master are unknown,
		// which an operator must be told.
		ctx := context.Background()
		for _, n := range []*lab.Server{g.Master, g.Replicas[0]} {
			c := n.Client()
			rule := "+@all"
			if n == g.Master {
				rule = "-info"
			}
			err := c.Do(ctx, "ACL", "SETUSER", "noinfo", "on", ">pw", "+@all", rule, "~*", "&*").Err()
			c.Close()
			if err != nil {
				t.Fatal(err)
			}
		}
		readyAndLogsOnce(t, Config{Sentinels: []string{g.Sentinels[0].Addr}, NodeUsername: "noinfo", NodePassword: "pw"}, g.Master.Addr,
			"sentinel: the master refuses INFO; the replicas' lag is unknown, so they serve no reads, and a promotion no Sentinel followed has announced is not seen")
	})

	t.Run("a Sentinel refusing from the start is logged", func(t *testing.T) {
		core, logs := observer.New(zap.InfoLevel)
		r := startWatcher(t, Config{Sentinels: []string{rogue.Addr}, Username: "sy", Password: "wrong", Logger: zap.New(core)})
		top := r.waitTopo(t, 5*time.Second, isState(StateNoMaster, "", 0))
		if !strings.Contains(top.Reason, "WRONGPASS") {
			t.Errorf("reason %q does not say why", top.Reason)
		}
		labtest.Eventually(t, 5*time.Second, func() error {
			for _, e := range logs.FilterMessage("sentinel: Sentinel lost").All() {
				if strings.Contains(e.ContextMap()["error"].(string), "WRONGPASS") {
					return nil
				}
			}
			return errors.New("no 'Sentinel lost' log line naming WRONGPASS")
		})
	})

	t.Run("discover from one address", func(t *testing.T) {
		r := startWatcher(t, Config{Sentinels: []string{g.Sentinels[0].Addr}, Discover: true})
		top := r.waitTopo(t, 5*time.Second, func(top Topology) error {
			if len(top.Sentinels) != 3 {
				return fmt.Errorf("%d Sentinels known, want 3", len(top.Sentinels))
			}
			return isReady(g.Master.Addr, 1)(top)
		})
		if !strings.Contains(top.Reason, "3 of 3") {
			t.Errorf("reason %q", top.Reason)
		}
	})
}

// TestWatcherRunEnds checks that Run leaves no goroutine behind. It is not
// parallel, so the goroutine count is this test's alone.
func TestWatcherRunEnds(t *testing.T) {
	g := labtest.Group(t, lab.GroupOptions{Name: "mymaster", Replicas: 1, Sentinels: 3})
	before := runtime.NumGoroutine()
	w, err := New(Config{MasterName: "mymaster", Sentinels: sentinelAddrs(g.Sentinels...), PollInterval: testPoll, DialTimeout: testDial})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	labtest.Eventually(t, 5*time.Second, func() error {
		if top := w.Topology(); top.State != StateReady {
			return fmt.Errorf("state %v", top.State)
		}
		return nil
	})
	if err := w.Run(ctx); !errors.Is(err, ErrRunning) {
		t.Errorf("second Run: %v, want ErrRunning", err)
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return within 5s of cancel")
	}
	labtest.Eventually(t, 2*time.Second, func() error {
		if n := runtime.NumGoroutine(); n > before {
			buf := make([]byte, 1<<16)
			return fmt.Errorf("%d goroutines, %d before Run:\n%s", n, before, buf[:runtime.Stack(buf, true)])
		}
		return nil
	})
	// Topology stays readable after Run.
	if w.Topology().State != StateReady {
		t.Errorf("topology after Run: %s", describe(w.Topology()))
	}
}

// A watcher that starts while a failover is under way, after its
// +try-failover and before the Sentinels name the promoted replica, has
// missed the events that would hold writes. The old master still answers
// ROLE master and every Sentinel but the leader still names it; verified,
// it would acknowledge writes the promotion then discards. The leader's
// failover_in_progress flag must keep it from being verified.
func TestWatcherStartedDuringFailoverWaitsForIt(t *testing.T) {
	g := labtest.Group(t, lab.GroupOptions{Name: "mymaster", Replicas: 1, Sentinels: 3})
	old := g.Master.Addr
	ctx := context.Background()
	sc := g.Sentinels[0].Client()
	defer sc.Close()
	if err := sc.Failover(ctx, "mymaster").Err(); err != nil {
		t.Fatal(err)
	}
	r := startWatcher(t, Config{Sentinels: sentinelAddrs(g.Sentinels...)})
	top := r.waitTopo(t, 30*time.Second, func(top Topology) error {
		if top.State != StateReady || top.Master == old {
			return fmt.Errorf("want ready on the promoted replica")
		}
		return nil
	})
	for _, h := range r.history() {
		if h.Master == old && h.Writable() {
			t.Fatalf("the old master was verified during the failover: %s\nthen: %s", describe(h), describe(top))
		}
	}
}

// TestWatcherPausedMasterWithoutEvents pauses the master while the
// Sentinels' events are lost. A ROLE timeout alone keeps a master (a
// slow command is not a failover), but once the Sentinels flag it s_down,
// which they do before promoting anything, the watcher must stop routing
// to it: otherwise the proxy would not fence the writes waiting on it, and
// a master that wakes up after the promotion would acknowledge them.
func TestWatcherPausedMasterWithoutEvents(t *testing.T) {
	t.Parallel()
	g := labtest.Group(t, lab.GroupOptions{Name: "mymaster", Replicas: 1, Sentinels: 3})
	r := startWatcher(t, Config{Sentinels: sentinelAddrs(g.Sentinels...), DialTimeout: 300 * time.Millisecond})
	r.waitTopo(t, 5*time.Second, isReady(g.Master.Addr, 1))
	r.w.dropEvents.Store(true)
	old := g.Master
	if err := old.Pause(); err != nil {
		t.Fatal(err)
	}
	defer old.Resume()
	top := r.waitTopo(t, 15*time.Second, func(top Topology) error {
		if top.State == StateReady && top.Master == old.Addr {
			return errors.New("still routing to the paused master")
		}
		return nil
	})
	if top.Master != old.Addr || top.Epoch != 1 {
		t.Fatalf("the watcher held only after the switch: %s", describe(top))
	}
	role, err := g.Replicas[0].Client().Do(ctxT(t, 5*time.Second), "ROLE").Slice()
	if err != nil || len(role) == 0 || role[0] != "slave" {
		t.Fatalf("the watcher held only once the replica was promoted (ROLE %v, %v): %s", role, err, describe(top))
	}
}

// TestWatcherForgetsGoneSentinels: a discovered Sentinel that went away is
// no longer followed once the others see it down, and is followed again
// when it comes back. Without this a Sentinel pod's old addresses pile up
// and take the slots new Sentinels need.
func TestWatcherForgetsGoneSentinels(t *testing.T) {
	t.Parallel()
	g := labtest.Group(t, lab.GroupOptions{Name: "mymaster", Replicas: 1, Sentinels: 3})
	r := startWatcher(t, Config{Sentinels: []string{g.Sentinels[0].Addr}, Discover: true})
	gone := g.Sentinels[2]
	known := func(want int, has bool) func(Topology) error {
		return func(top Topology) error {
			found := false
			for _, s := range top.Sentinels {
				found = found || s.Addr == gone.Addr || slices.Contains(s.Also, gone.Addr)
			}
			if len(top.Sentinels) != want || found != has {
				return fmt.Errorf("Sentinels %+v, want %d with %s listed: %v", top.Sentinels, want, gone.Addr, has)
			}
			return isReady(g.Master.Addr, 1)(top)
		}
	}
	r.waitTopo(t, 5*time.Second, known(3, true))
	if err := gone.Stop(); err != nil {
		t.Fatal(err)
	}
	// The others flag it s_down after down-after (1 s); then it is
	// forgotten once unreachable for forgetAfter polls.
	r.waitTopo(t, 15*time.Second, known(2, false))
	if err := gone.Restart(ctxT(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	r.waitTopo(t, 15*time.Second, known(3, true))
}

// TestForgetKeeps: what forget must not end.
func TestForgetKeeps(t *testing.T) {
	now := time.Now()
	long := now.Add(-time.Hour)
	w, err := New(Config{MasterName: "m", Sentinels: []string{"seed:1"}, Discover: true})
	if err != nil {
		t.Fatal(err)
	}
	ended := map[string]bool{}
	add := func(addr string, st linkState) {
		st.cancel = func() { ended[addr] = true }
		w.links[addr] = &st
		w.order = append(w.order, addr)
	}
	// The seed is down and listed by nobody: kept.
	add("seed:1", linkState{seed: true, added: long, attempted: true, err: "refused"})
	// Answering, and lists b and c as up.
	add("a:1", linkState{added: long, lastOK: now, attempted: true, discovered: []string{"a:1", "b:1", "c:1"}})
	// Down but listed as up by a: kept (the proxy may be cut off from it).
	add("b:1", linkState{added: long, lastOK: long, attempted: true, err: "timeout"})
	// Answering but not listed: kept.
	add("c:1", linkState{added: long, lastOK: now, attempted: true})
	// Not listed, down, but added a moment ago: kept.
	add("d:1", linkState{added: now, attempted: true, err: "refused"})
	// Not listed, last answered a moment ago: kept.
	add("e:1", linkState{added: long, lastOK: now.Add(-w.cfg.PollInterval), attempted: true, err: "timeout"})
	// Not listed, down for long: forgotten.
	add("f:1", linkState{added: long, lastOK: long, attempted: true, err: "timeout"})
	add("g:1", linkState{added: long, attempted: true, err: "refused"})

	gone := w.forget(now, w.cfg.reachWindow())
	if want := []string{"f:1", "g:1"}; !slices.Equal(gone, want) {
		t.Errorf("forgot %v, want %v", gone, want)
	}
	if !ended["f:1"] || !ended["g:1"] || len(ended) != 2 {
		t.Errorf("links ended: %v", ended)
	}
	if want := []string{"seed:1", "a:1", "b:1", "c:1", "d:1", "e:1"}; !slices.Equal(w.order, want) {
		t.Errorf("links left %v, want %v", w.order, want)
	}

	// With no Sentinel answering, nothing says which are gone.
	w.links["a:1"].lastOK, w.links["c:1"].lastOK = long, long
	if gone := w.forget(now, w.cfg.reachWindow()); len(gone) != 0 {
		t.Errorf("forgot %v while no Sentinel answers", gone)
	}
}

// TestWatcherKeepsMasterAnsweringBusy: a master running a script past
// busy-reply-threshold answers ROLE with -BUSY. It is still the master the
// Sentinels name, and none flags it down: the watcher keeps it, as it keeps
// one too slow to answer, instead of holding every command.
func TestWatcherKeepsMasterAnsweringBusy(t *testing.T) {
	t.Parallel()
	g := labtest.Group(t, lab.GroupOptions{Name: "mymaster", Replicas: 1, Sentinels: 3, DownAfter: 30 * time.Second, FailoverTimeout: 60 * time.Second,
		ServerArgs: []string{"--busy-reply-threshold", "100"}})
	core, logs := observer.New(zap.InfoLevel)
	r := startWatcher(t, Config{Sentinels: sentinelAddrs(g.Sentinels...), Logger: zap.New(core)})
	r.waitTopo(t, 5*time.Second, isReady(g.Master.Addr, 1))
	seen := len(r.history())

	ctx := ctxT(t, 30*time.Second)
	script := make(chan error, 1)
	go func() { script <- g.Master.Client().Eval(ctx, "while true do end", nil).Err() }()
	defer func() {
		// SCRIPT KILL is one of the commands a busy node still serves.
		labtest.Eventually(t, 5*time.Second, func() error { return g.Master.Client().ScriptKill(ctx).Err() })
		<-script
	}()
	labtest.Eventually(t, 10*time.Second, func() error {
		for _, e := range logs.FilterMessageSnippet("did not answer ROLE").All() {
			if strings.Contains(e.ContextMap()["error"].(string), "BUSY") {
				return nil
			}
		}
		if top := r.w.Topology(); top.State != StateReady {
			return nil // held: shown below
		}
		return errors.New("no ROLE check has met the script yet")
	})
	for _, top := range append(r.history()[seen:], r.w.Topology()) {
		if top.State != StateReady || top.Master != g.Master.Addr {
			t.Fatalf("a master answering BUSY was given up: %s", describe(top))
		}
	}
}

// TestWatcherHoldsForAFailoverLedOutOfSight: the Sentinel leading a
// failover is not one the watcher follows (Discover off, two of three
// listed). Its events never come, and the two followed still name the
// old master, which answers ROLE master, until they hear of the
// promotion a second or so later. The promoted replica's own INFO says it
// left the master's replication stream: the watcher must hold writes from
// then on rather than leave the old master writable until the others
// learn.
func TestWatcherHoldsForAFailoverLedOutOfSight(t *testing.T) {
	t.Parallel()
	g := labtest.Group(t, lab.GroupOptions{Name: "mymaster", Replicas: 1, Sentinels: 3})
	old, promoted := g.Master.Addr, g.Replicas[0].Addr
	r := startWatcher(t, Config{Sentinels: sentinelAddrs(g.Sentinels[:2]...)})
	r.waitTopo(t, 5*time.Second, probedAsReplica(old, promoted))
	leader := g.Sentinels[2].Client()
	defer leader.Close()
	if err := leader.Failover(ctxT(t, 5*time.Second), "mymaster").Err(); err != nil {
		t.Fatal(err)
	}
	top := r.waitTopo(t, 30*time.Second, isReady(promoted, 2))
	held := false
	var seq []string
	for _, h := range r.history() {
		if h.Epoch == 2 {
			break
		}
		seq = append(seq, fmt.Sprintf("%v %q", h.State, h.Reason))
		held = held || (h.Master == old && !h.Writable() && strings.Contains(h.Reason, promoted+" says it was promoted out of it"))
	}
	if !held {
		t.Fatalf("no hold on the replica's word before the switch:\n%s\nthen: %s", strings.Join(seq, "\n"), describe(top))
	}
}

// TestWatcherHoldsWhileAReplicaIsPromotedByHand: REPLICAOF NO ONE on a
// replica looks the same as an unannounced promotion, so writes are held;
// once the replica follows the master again (here by hand; Sentinel would
// convert it 8–18 s later) the hold ends and the master, never
// switched, takes writes again.
func TestWatcherHoldsWhileAReplicaIsPromotedByHand(t *testing.T) {
	t.Parallel()
	master, rep, r := watchedReplica(t)
	rc := rep.Client()
	defer rc.Close()
	if err := rc.Do(ctxT(t, 5*time.Second), "REPLICAOF", "NO", "ONE").Err(); err != nil {
		t.Fatal(err)
	}
	r.waitTopo(t, 5*time.Second, isState(StateFailover, master, 1))
	host, port, _ := net.SplitHostPort(master)
	if err := rc.Do(ctxT(t, 5*time.Second), "REPLICAOF", host, port).Err(); err != nil {
		t.Fatal(err)
	}
	r.waitTopo(t, 5*time.Second, isReady(master, 1))
}

// TestWatcherForgetsAPromotedReplicaThatDied: a replica promoted by hand
// and then stopped says nothing more. Its last word holds writes only
// until the Sentinels flag it down; after that the master, which they
// all still name, takes writes again rather than the group staying fenced
// until the dead node returns.
func TestWatcherForgetsAPromotedReplicaThatDied(t *testing.T) {
	t.Parallel()
	master, rep, r := watchedReplica(t)
	rc := rep.Client()
	defer rc.Close()
	if err := rc.Do(ctxT(t, 5*time.Second), "REPLICAOF", "NO", "ONE").Err(); err != nil {
		t.Fatal(err)
	}
	r.waitTopo(t, 5*time.Second, isState(StateFailover, master, 1))
	if err := rep.Pause(); err != nil {
		t.Fatal(err)
	}
	defer rep.Resume()
	r.waitTopo(t, 10*time.Second, func(top Topology) error {
		if err := isReady(master, 1)(top); err != nil {
			return err
		}
		for _, x := range top.Replicas {
			if x.Addr == rep.Addr && !x.Down {
				return errors.New("the stopped replica is not flagged down yet")
			}
		}
		return nil
	})
}

// readyAndLogsOnce starts a watcher with cfg, which must verify master,
// and requires msg logged exactly once: a standing refusal is told once,
// not on every poll.
func readyAndLogsOnce(t *testing.T, cfg Config, master, msg string) {
	t.Helper()
	core, logs := observer.New(zap.InfoLevel)
	cfg.Logger = zap.New(core)
	r := startWatcher(t, cfg)
	r.waitTopo(t, 5*time.Second, isReady(master, 1))
	labtest.Eventually(t, 5*time.Second, func() error {
		if n := logs.FilterMessage(msg).Len(); n != 1 {
			return fmt.Errorf("%d log lines %q, want 1", n, msg)
		}
		return nil
	})
}

// watchedReplica starts a group of a master, one replica and three
// Sentinels, and a watcher following all of them that has read the
// replica's INFO as a replica's.
func watchedReplica(t *testing.T) (master string, rep *lab.Server, r *run) {
	t.Helper()
	g := labtest.Group(t, lab.GroupOptions{Name: "mymaster", Replicas: 1, Sentinels: 3})
	r = startWatcher(t, Config{Sentinels: sentinelAddrs(g.Sentinels...)})
	r.waitTopo(t, 5*time.Second, probedAsReplica(g.Master.Addr, g.Replicas[0].Addr))
	return g.Master.Addr, g.Replicas[0], r
}

// probedAsReplica accepts a ready Topology on master at epoch 1 whose
// health round has read replica's INFO while it was a replica: only that
// process's promotion counts.
func probedAsReplica(master, replica string) func(Topology) error {
	return func(top Topology) error {
		if err := isReady(master, 1)(top); err != nil {
			return err
		}
		for _, x := range top.Replicas {
			if x.Addr == replica && x.LinkUp {
				return nil
			}
		}
		return fmt.Errorf("%s not yet read as a replica", replica)
	}
}

// TestWatcherIgnoresAReplicaRestartedAsMaster: a replica restarted
// without REPLICAOF in its configuration (Sentinel's is not saved without
// a writable config file) loads the RDB of its last full sync and starts
// as a master, naming the master's stream as its master_replid2, as a
// promoted replica does. It is a new process, not a promotion: a review
// found writes held for 13-15 s, until Sentinel converted it back.
func TestWatcherIgnoresAReplicaRestartedAsMaster(t *testing.T) {
	t.Parallel()
	master, rep, r := watchedReplica(t)
	if err := rep.RestartAsMaster(ctxT(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	restarted := time.Now()
	rc := rep.Client()
	defer rc.Close()
	info, err := rc.Info(ctxT(t, 5*time.Second), "replication").Result()
	if err != nil || !strings.Contains(info, "role:master") {
		t.Fatalf("the restarted replica is not a master (%v):\n%s", err, info)
	}
	// Three health rounds that read it as a master.
	r.waitTopo(t, 10*time.Second, func(top Topology) error {
		for _, x := range top.Replicas {
			if x.Addr == rep.Addr && !x.LinkUp && x.Checked.Sub(restarted) > 3*testPoll {
				return nil
			}
		}
		return errors.New("the restarted replica not yet read as a master for three rounds")
	})
	for _, h := range r.history() {
		if h.Master == master && !h.Writable() {
			t.Fatalf("writes held for a restarted replica: %s", describe(h))
		}
	}
}
