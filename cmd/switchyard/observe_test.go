package main

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pnats/switchyard/internal/lab"
	"github.com/pnats/switchyard/internal/lab/labtest"
	"github.com/pnats/switchyard/sentinel"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// groupSeries is the group's series of switchyard_<name> as a scrape
// would give them, each as its labels' values and its value.
func groupSeries(t *testing.T, grp *group, name string) map[string]float64 {
	t.Helper()
	return series(t, newGroupCollector(func() []*group { return []*group{grp} }, func() []*group { return nil }), name)
}

// series is what c gives for switchyard_<name> in a scrape.
func series(t *testing.T, c prometheus.Collector, name string) map[string]float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "switchyard_"+name {
			continue
		}
		for _, m := range mf.GetMetric() {
			key := ""
			for _, l := range m.GetLabel() {
				key += l.GetName() + "=" + l.GetValue() + " "
			}
			out[key] = m.GetGauge().GetValue()
		}
	}
	return out
}

// When the Sentinels agree on a new master that does not answer as one
// (here its ROLE is denied to the proxy), the group holds commands, then
// fails closed. What an operator and a Sentinel-aware client see then:
// the Sentinels agree among themselves (none counted as disagreeing),
// switchyard_master names no node while commands are held, and the
// Sentinel facade flags the group down once it fails closed. An audit
// found all three reporting the group as healthy, or the Sentinels as
// split.
func TestFailClosedIsReported(t *testing.T) {
	skipShort(t)
	g := labtest.Group(t, lab.GroupOptions{Name: "mymaster", Replicas: 1, Sentinels: 3})
	grp := runGroup(t, g, func(gc *groupConfig) { gc.Sentinel.FailoverHold = 2 * time.Second })
	fac := runFacade(t, grp)
	sc := redis.NewSentinelClient(&redis.Options{Addr: fac.addr})
	defer sc.Close()
	ctx := context.Background()
	state := func() sentinel.Topology { return grp.watcher.Topology() }
	labtest.Eventually(t, 10*time.Second, func() error {
		if t := state(); t.State != sentinel.StateReady {
			return fmt.Errorf("state %v", t.State)
		}
		return nil
	})

	next := g.Replicas[0]
	nc := next.Client()
	defer nc.Close()
	if err := nc.Do(ctx, "ACL", "SETUSER", "default", "-role").Err(); err != nil {
		t.Fatal(err)
	}
	if err := g.Sentinels[0].Client().Failover(ctx, "mymaster").Err(); err != nil {
		t.Fatal(err)
	}
	sawFailover := false
	labtest.Eventually(t, 20*time.Second, func() error {
		top := state()
		if top.State == sentinel.StateFailover {
			if m := groupSeries(t, grp, "master"); len(m) > 0 && state().State == sentinel.StateFailover {
				t.Errorf("switchyard_master during a failover: %v", m)
			}
			sawFailover = true
		}
		if top.State != sentinel.StateNoMaster {
			return fmt.Errorf("state %v", top.State)
		}
		for _, s := range top.Sentinels {
			if s.Reachable && s.Master != next.Addr {
				return fmt.Errorf("Sentinel %s names %s", s.Addr, s.Master)
			}
		}
		return nil
	})
	if !sawFailover {
		t.Log("the failover state passed between two looks")
	}
	top := state()
	for _, s := range top.Sentinels {
		if !s.Agrees {
			t.Errorf("Sentinel %s, naming %s as all do, counted as disagreeing", s.Addr, s.Master)
		}
	}
	if d := groupSeries(t, grp, "sentinels_disagreeing"); d["group=test "] != 0 {
		t.Errorf("sentinels_disagreeing %v", d)
	}
	if m := groupSeries(t, grp, "master"); len(m) > 0 {
		t.Errorf("switchyard_master while failing closed: %v", m)
	}
	m, err := sc.Master(ctx, "mymaster").Result()
	if err != nil || m["flags"] != "s_down,o_down,master" {
		t.Errorf("the facade's flags while failing closed: %v %v", m["flags"], err)
	}
	if _, err := sc.CkQuorum(ctx, "mymaster").Result(); err == nil || !strings.HasPrefix(err.Error(), "NOQUORUM") {
		t.Errorf("CKQUORUM while failing closed: %v", err)
	}
}

// The facade's SENTINEL CKQUORUM passes on the real Sentinels' answer:
// the connection guide's check before trusting a failover to come. With
// two of three Sentinels stopped, the one left can authorise nothing,
// and the facade must not say "OK" because the proxy still has a master.
func TestFacadeQuorumIsTheSentinels(t *testing.T) {
	skipShort(t)
	g := labtest.Group(t, lab.GroupOptions{Name: "mymaster", Replicas: 1, Sentinels: 3})
	grp := runGroup(t, g)
	fac := runFacade(t, grp)
	sc := redis.NewSentinelClient(&redis.Options{Addr: fac.addr})
	defer sc.Close()
	ctx := context.Background()
	want := func(prefix string) func() error {
		return func() error {
			got, err := sc.CkQuorum(ctx, "mymaster").Result()
			if err != nil {
				got = err.Error()
			}
			if !strings.HasPrefix(got, prefix) {
				return fmt.Errorf("CKQUORUM: %q, want %q…", got, prefix)
			}
			return nil
		}
	}
	labtest.Eventually(t, 10*time.Second, want("OK 3 usable Sentinels."))

	for _, s := range g.Sentinels[1:] {
		if err := s.Pause(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Resume() })
	}
	labtest.Eventually(t, 20*time.Second, want("NOQUORUM 1 usable Sentinels."))
	if !grp.up() {
		t.Fatalf("the group is down (%v); the test wants a master kept while quorum is lost", grp.watcher.Topology().Reason)
	}
	for _, s := range g.Sentinels[1:] {
		s.Resume()
	}
	labtest.Eventually(t, 20*time.Second, want("OK 3 usable Sentinels."))
}

// Every metric the binary exports is in the metrics table of
// docs/operations.md, which operators read to build dashboards and
// alerts.
func TestEveryMetricIsDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	descs := make(chan *prometheus.Desc, 256)
	newMetrics().reg.Describe(descs)
	newGroupCollector(func() []*group { return nil }, func() []*group { return nil }).Describe(descs)
	close(descs)
	re := regexp.MustCompile(`fqName: "switchyard_([a-z_]+)"`)
	n := 0
	for d := range descs {
		m := re.FindStringSubmatch(d.String())
		if m == nil {
			continue // the Go runtime's and the process's own
		}
		n++
		if !strings.Contains(string(doc), "| `"+m[1]+"`") && !strings.Contains(string(doc), "| `"+m[1]+"{") && !strings.Contains(string(doc), "`"+m[1]+"`,") && !strings.Contains(string(doc), ", `"+m[1]+"`") {
			t.Errorf("switchyard_%s is not in docs/operations.md's metrics table", m[1])
		}
	}
	if n < 20 {
		t.Fatalf("only %d switchyard metrics described", n)
	}
}
