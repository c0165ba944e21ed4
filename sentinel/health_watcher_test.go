package sentinel

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pnats/switchyard/internal/lab"
	"github.com/pnats/switchyard/internal/lab/labtest"
	"github.com/redis/go-redis/v9"
)

// Bounds used by the tests against real processes.
const (
	testMaxLag = 1 << 20
	testStale  = 2 * time.Second
)

// replicaIn returns the replica addr of t, if listed.
func replicaIn(t Topology, addr string) (Replica, bool) {
	for _, r := range t.Replicas {
		if r.Addr == addr {
			return r, true
		}
	}
	return Replica{}, false
}

// replicaIs accepts a Topology listing addr with cond true of it.
func replicaIs(addr string, cond func(Replica) error) func(Topology) error {
	return func(t Topology) error {
		r, ok := replicaIn(t, addr)
		if !ok {
			return fmt.Errorf("replica %s not listed", addr)
		}
		if err := cond(r); err != nil {
			return fmt.Errorf("replica %s: %w", addr, err)
		}
		return nil
	}
}

func healthy(r Replica) error {
	if !r.Healthy(testMaxLag, testStale, time.Now()) {
		return errors.New("not healthy")
	}
	return nil
}

func unhealthy(r Replica) error {
	if r.Healthy(testMaxLag, testStale, time.Now()) {
		return errors.New("still healthy")
	}
	return nil
}

// allHealthy accepts a Topology whose replicas are exactly addrs, all healthy.
func allHealthy(addrs ...string) func(Topology) error {
	return func(t Topology) error {
		if len(t.Replicas) != len(addrs) {
			return fmt.Errorf("%d replicas, want %d", len(t.Replicas), len(addrs))
		}
		for _, a := range addrs {
			if err := replicaIs(a, healthy)(t); err != nil {
				return err
			}
		}
		return nil
	}
}

// TestWatcherReplicaHealth runs one group through the ways a replica stops
// being fit for reads: paused, link cut, lagging.
func TestWatcherReplicaHealth(t *testing.T) {
	t.Parallel()
	g := labtest.Group(t, lab.GroupOptions{Name: "mymaster", Replicas: 2, Sentinels: 1})
	r := startWatcher(t, Config{Sentinels: sentinelAddrs(g.Sentinels...)})
	r0, r1 := g.Replicas[0], g.Replicas[1]
	mc := g.Master.Client()
	defer mc.Close()

	t.Run("both replicas healthy", func(t *testing.T) {
		top := r.waitTopo(t, 5*time.Second, allHealthy(r0.Addr, r1.Addr))
		for _, rep := range top.Replicas {
			if !rep.LinkUp || rep.Loading || rep.Offset < 0 || rep.LagBytes < 0 || rep.LagBytes > 64<<10 || rep.Down {
				t.Errorf("replica %+v", rep)
			}
			if age := time.Since(rep.Checked); age > time.Second {
				t.Errorf("replica %s checked %v ago", rep.Addr, age)
			}
		}
		if _, ok := replicaIn(top, g.Master.Addr); ok {
			t.Errorf("master listed as a replica")
		}
	})

	t.Run("signals under write load", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				_ = mc.Set(ctx, fmt.Sprint("load", i%100), i, 0).Err()
			}
		})
		mark := len(r.history())
		const window = 2 * time.Second
		time.Sleep(window) // counting what happens in a fixed time
		cancel()
		wg.Wait()
		h := r.history()[mark:]
		moved := 0
		for i := 1; i < len(h); i++ {
			if !h[i].sameShape(&h[i-1]) {
				t.Errorf("shape changed under steady writes:\n%s\n->\n%s", describe(h[i-1]), describe(h[i]))
				continue
			}
			if len(h[i].Replicas) > 0 && h[i].Replicas[0].Offset != h[i-1].Replicas[0].Offset {
				moved++
			}
		}
		rounds := int(window / testPoll)
		t.Logf("%d signals in %v of writes (%d polls), %d with a new offset", len(h), window, rounds, moved)
		if len(h) > rounds+2 {
			t.Errorf("%d signals in %d polls: more than one per poll", len(h), rounds)
		}
		if moved < rounds/4 {
			t.Errorf("offsets moved in only %d of %d signals: offsets are not reported", moved, len(h))
		}
	})

	t.Run("paused replica", func(t *testing.T) {
		r.waitTopo(t, 5*time.Second, allHealthy(r0.Addr, r1.Addr))
		before, _ := replicaIn(r.w.Topology(), r0.Addr)
		if err := r0.Pause(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = r0.Resume() })
		start := time.Now()
		top := r.waitTopo(t, 5*time.Second, replicaIs(r0.Addr, unhealthy))
		rep, _ := replicaIn(top, r0.Addr)
		t.Logf("paused: unhealthy after %v (down %v, checked %v before the pause)", time.Since(start), rep.Down, start.Sub(rep.Checked))
		// The other replica stays healthy: a paused one does not hold up
		// the rounds past DialTimeout.
		if err := replicaIs(r1.Addr, healthy)(top); err != nil {
			t.Errorf("%v\n%s", err, describe(top))
		}
		// It is out at its first unanswered probe, before it is stale.
		top = r.waitTopo(t, 5*time.Second, replicaIs(r0.Addr, func(rep Replica) error {
			if !rep.NoAnswer {
				return errors.New("no failed probe recorded")
			}
			return nil
		}))
		// A replica that stops answering keeps its last values; only
		// Checked ages.
		top = r.waitTopo(t, 5*time.Second, replicaIs(r0.Addr, func(rep Replica) error {
			if age := time.Since(rep.Checked); age <= testStale {
				return fmt.Errorf("checked %v ago", age)
			}
			return nil
		}))
		rep, _ = replicaIn(top, r0.Addr)
		if !rep.LinkUp || rep.Offset < before.Offset || rep.LagBytes < 0 {
			t.Errorf("last values lost: %+v", rep)
		}
		t.Logf("paused: stale after %v", time.Since(start))

		if err := r0.Resume(); err != nil {
			t.Fatal(err)
		}
		start = time.Now()
		r.waitTopo(t, 5*time.Second, allHealthy(r0.Addr, r1.Addr))
		t.Logf("resumed: healthy after %v", time.Since(start))
	})

	t.Run("replication link cut", func(t *testing.T) {
		// The replica's link fails for real and stays down: its connection
		// to the master is killed and it cannot log in again, as after a
		// password rotation that missed it (the master has no password, so
		// AUTH fails). Sentinel flags nothing: only the replica's own INFO
		// tells.
		rc := r1.Client()
		defer rc.Close()
		ctx := ctxT(t, 10*time.Second)
		if err := rc.ConfigSet(ctx, "masterauth", "not-the-password").Err(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = rc.ConfigSet(context.Background(), "masterauth", "").Err() })
		if err := rc.ClientKillByFilter(ctx, "TYPE", "master").Err(); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		top := r.waitTopo(t, 5*time.Second, replicaIs(r1.Addr, func(rep Replica) error {
			if rep.LinkUp || time.Since(rep.Checked) > time.Second {
				return errors.New("link not seen down by a fresh INFO")
			}
			return nil
		}))
		rep, _ := replicaIn(top, r1.Addr)
		t.Logf("link cut: down after %v", time.Since(start))
		if rep.Down || rep.Healthy(testMaxLag, testStale, time.Now()) {
			t.Errorf("want not down by Sentinel but unhealthy: %+v", rep)
		}
		if err := replicaIs(r0.Addr, healthy)(top); err != nil {
			t.Errorf("%v\n%s", err, describe(top))
		}

		if err := rc.ConfigSet(ctx, "masterauth", "").Err(); err != nil {
			t.Fatal(err)
		}
		start = time.Now()
		r.waitTopo(t, 5*time.Second, allHealthy(r0.Addr, r1.Addr))
		t.Logf("link restored: healthy after %v", time.Since(start))
	})

	t.Run("lagging replica", func(t *testing.T) {
		// CLIENT PAUSE WRITE on a replica holds back the replication
		// stream while the replica goes on answering INFO: the lag is
		// seen as it is, not guessed from silence (after SIGSTOP the
		// replica catches up within milliseconds of SIGCONT, before the
		// next INFO could see the lag).
		rc := r0.Client()
		defer rc.Close()
		ctx := ctxT(t, 10*time.Second)
		if err := rc.Do(ctx, "CLIENT", "PAUSE", "10000", "WRITE").Err(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = rc.Do(context.Background(), "CLIENT", "UNPAUSE").Err() })
		const small = 64 << 10
		value := strings.Repeat("x", 16<<10)
		if _, err := mc.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i := range 256 { // 4 MiB
				p.Set(ctx, fmt.Sprint("big", i), value, 0)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		top := r.waitTopo(t, 5*time.Second, replicaIs(r0.Addr, func(rep Replica) error {
			if rep.LagBytes <= 2<<20 || time.Since(rep.Checked) > time.Second {
				return fmt.Errorf("lag %d", rep.LagBytes)
			}
			return nil
		}))
		rep, _ := replicaIn(top, r0.Addr)
		now := time.Now()
		t.Logf("lagging: lag %d bytes seen %v after the writes", rep.LagBytes, time.Since(start))
		if rep.Healthy(small, testStale, now) || rep.Healthy(testMaxLag, testStale, now) {
			t.Errorf("healthy with a lag of %d", rep.LagBytes)
		}
		if !rep.Healthy(1<<30, testStale, now) || !rep.LinkUp {
			t.Errorf("only the lag should count against it: %+v", rep)
		}
		// The other replica got the same writes and catches up; the held
		// one does not.
		r.waitTopo(t, 5*time.Second, func(top Topology) error {
			if err := replicaIs(r1.Addr, func(rep Replica) error {
				if !rep.Healthy(small, testStale, time.Now()) {
					return fmt.Errorf("lag %d", rep.LagBytes)
				}
				return nil
			})(top); err != nil {
				return err
			}
			return replicaIs(r0.Addr, func(rep Replica) error {
				if rep.LagBytes <= 2<<20 || time.Since(rep.Checked) > time.Second {
					return fmt.Errorf("lag %d: caught up while held", rep.LagBytes)
				}
				return nil
			})(top)
		})

		if err := rc.Do(ctx, "CLIENT", "UNPAUSE").Err(); err != nil {
			t.Fatal(err)
		}
		start = time.Now()
		r.waitTopo(t, 5*time.Second, replicaIs(r0.Addr, func(rep Replica) error {
			if !rep.Healthy(small, testStale, time.Now()) {
				return fmt.Errorf("lag %d", rep.LagBytes)
			}
			return nil
		}))
		t.Logf("caught up after %v", time.Since(start))
	})

	t.Run("replica of another master", func(t *testing.T) {
		// A replica that follows another master (a misconfiguration, a
		// zombie old master) serves that master's data, whose offset may
		// be ahead: the lag must not read as 0. Sentinel corrects such a
		// replica only at its next INFO (every 10 s).
		r.waitTopo(t, 5*time.Second, allHealthy(r0.Addr, r1.Addr))
		other := labtest.Server(t, lab.ServerOptions{})
		oc := other.Client()
		defer oc.Close()
		ctx := ctxT(t, 10*time.Second)
		rc := r1.Client()
		defer rc.Close()
		host, port, _ := strings.Cut(other.Addr, ":")
		if err := rc.SlaveOf(ctx, host, port).Err(); err != nil {
			t.Fatal(err)
		}
		mhost, mport, _ := strings.Cut(g.Master.Addr, ":")
		t.Cleanup(func() { _ = rc.SlaveOf(context.Background(), mhost, mport).Err() })
		// Its stream ahead of the group's master's: offsets that compared
		// would give a lag of 0. (A master's offset grows only once a
		// replica has connected: until then these writes do not count.)
		offset := func(c *redis.Client) int64 {
			info, err := c.Info(ctx, "replication").Result()
			if err != nil {
				t.Fatal(err)
			}
			var p probe
			parseInfo(info, &p)
			return p.replOffset
		}
		big := strings.Repeat("y", 1<<20)
		for i := 0; offset(oc) < offset(mc)+2<<20; i++ {
			if err := oc.Set(ctx, fmt.Sprint("foreign", i%8), big, 0).Err(); err != nil {
				t.Fatal(err)
			}
		}
		ahead := offset(mc) + 2<<20
		top := r.waitTopo(t, 5*time.Second, replicaIs(r1.Addr, func(rep Replica) error {
			if !rep.LinkUp || rep.Offset < ahead || time.Since(rep.Checked) > time.Second {
				return fmt.Errorf("offset %d: not yet ahead of the group's master on the other stream", rep.Offset)
			}
			return unhealthy(rep)
		}))
		if err := replicaIs(r0.Addr, healthy)(top); err != nil {
			t.Errorf("%v\n%s", err, describe(top))
		}
		if err := rc.SlaveOf(ctx, mhost, mport).Err(); err != nil {
			t.Fatal(err)
		}
		r.waitTopo(t, 10*time.Second, allHealthy(r0.Addr, r1.Addr))
	})
}

// TestWatcherReplicaHealthFailover: the promoted replica leaves the
// replicas at the switch; the demoted master joins them when Sentinel
// lists it and turns healthy only once it replicates from the new master.
func TestWatcherReplicaHealthFailover(t *testing.T) {
	t.Parallel()
	g := labtest.Group(t, lab.GroupOptions{Name: "mymaster", Replicas: 2, Sentinels: 1})
	r := startWatcher(t, Config{Sentinels: sentinelAddrs(g.Sentinels...)})
	old := g.Master.Addr
	r.waitTopo(t, 5*time.Second, func(top Topology) error {
		if err := isReady(old, 1)(top); err != nil {
			return err
		}
		return allHealthy(g.Replicas[0].Addr, g.Replicas[1].Addr)(top)
	})

	nm, err := g.Failover(ctxT(t, 30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	top := r.waitTopo(t, 5*time.Second, isReady(nm.Addr, 2))
	if _, ok := replicaIn(top, nm.Addr); ok {
		t.Errorf("promoted %s listed as a replica: %s", nm.Addr, describe(top))
	}
	switched := top.LastSwitch
	top = r.waitTopo(t, 40*time.Second, replicaIs(old, healthy))
	t.Logf("failover: demoted master %s healthy %v after the switch", old, time.Since(switched))
	if err := isReady(nm.Addr, 2)(top); err != nil {
		t.Fatal(err)
	}

	// It was listed and read as a replica before it replicated, and held
	// out until then.
	notYet := 0
	for _, h := range r.history() {
		if h.Epoch != 2 {
			continue
		}
		if _, ok := replicaIn(h, nm.Addr); ok {
			t.Errorf("promoted %s listed as a replica: %s", nm.Addr, describe(h))
		}
		rep, ok := replicaIn(h, old)
		if !ok {
			continue
		}
		if rep.LinkUp {
			break
		}
		if rep.Healthy(testMaxLag, testStale, rep.Checked) {
			t.Errorf("healthy without its link up: %+v", rep)
		}
		if !rep.Checked.IsZero() {
			notYet++
		}
	}
	if notYet == 0 {
		t.Errorf("the demoted master was never seen listed with its link down: it was not held out")
	}
	t.Logf("failover: %d topologies listed the demoted master, read and not yet replicating", notYet)
}

// With one replica (cache-kv has one), the two ways a read port lost it
// for no good reason, which an audit found:
//   - the master stops answering (stopped, forking, a long script): the
//     lag could not be computed, so the caught-up replica became
//     unhealthy and the read port had nowhere to read; it is now measured
//     against the master's offset as last read;
//   - the replica itself stops answering: its first unanswered probe was
//     not a change of shape, nor stored while nothing else changed, so it
//     stayed in the read set until it went stale; now it is out at once.
func TestWatcherOneReplica(t *testing.T) {
	t.Parallel()
	g := labtest.Group(t, lab.GroupOptions{Name: "mymaster", Replicas: 1, Sentinels: 1, DownAfter: 30 * time.Second})
	r := startWatcher(t, Config{Sentinels: sentinelAddrs(g.Sentinels...)})
	rep := g.Replicas[0].Addr
	r.waitTopo(t, 5*time.Second, allHealthy(rep))

	if err := g.Master.Pause(); err != nil {
		t.Fatal(err)
	}
	paused := time.Now()
	// Two health rounds after the pause (each waits up to the dial
	// timeout for the master), the replica is still fit for reads.
	top := r.waitTopo(t, 5*time.Second, replicaIs(rep, func(rp Replica) error {
		if rp.Checked.Before(paused.Add(2*testDial + testPoll)) {
			return errors.New("not probed twice since the master stopped")
		}
		return nil
	}))
	if err := replicaIs(rep, healthy)(top); err != nil {
		t.Errorf("master stopped: %v\n%s", err, describe(top))
	}
	if err := g.Master.Resume(); err != nil {
		t.Fatal(err)
	}
	// A master that answers, but with an error (an ACL denying INFO), is
	// alive and may take writes: its old offset says nothing, and the
	// lag is unknown.
	mc := g.Master.Client()
	defer mc.Close()
	ctx := context.Background()
	if err := mc.Do(ctx, "ACL", "SETUSER", "default", "-info").Err(); err != nil {
		t.Fatal(err)
	}
	r.waitTopo(t, 5*time.Second, replicaIs(rep, func(rp Replica) error {
		if rp.LagBytes != -1 {
			return fmt.Errorf("lag %d bytes while the master refuses INFO", rp.LagBytes)
		}
		return nil
	}))
	if err := mc.Do(ctx, "ACL", "SETUSER", "default", "+info").Err(); err != nil {
		t.Fatal(err)
	}
	r.waitTopo(t, 5*time.Second, allHealthy(rep))

	if err := g.Replicas[0].Pause(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Replicas[0].Resume() })
	start := time.Now()
	r.waitTopo(t, testStale, replicaIs(rep, func(rp Replica) error {
		if !rp.NoAnswer {
			return errors.New("no failed probe published")
		}
		return unhealthy(rp)
	}))
	t.Logf("replica out %v after it stopped", time.Since(start))
}
