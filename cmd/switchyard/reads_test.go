package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pnats/switchyard/internal/lab"
	"github.com/pnats/switchyard/internal/lab/labtest"
	"github.com/redis/go-redis/v9"
)

// replicaGauge is the group's gauge switchyard_<name>{replica=addr} as a
// scrape would give it, and whether it is there.
func replicaGauge(t *testing.T, grp *group, name, addr string) (float64, bool) {
	t.Helper()
	for labels, v := range groupSeries(t, grp, name) {
		if strings.Contains(labels, "replica="+addr+" ") {
			return v, true
		}
	}
	return 0, false
}

func errorstat(t *testing.T, node *lab.Server, code string) string {
	c := node.Client()
	defer c.Close()
	info, _ := c.Info(context.Background(), "errorstats").Result()
	for _, l := range strings.Split(info, "\r\n") {
		if strings.HasPrefix(l, "errorstat_"+code+":") {
			return l
		}
	}
	return ""
}

// TestReplicaReadsFollowHealth: the read port reads from healthy replicas
// only; a paused replica leaves the read set and comes back; writes never
// reach a replica; after a failover the promoted node is no longer read
// from as a replica.
func TestReplicaReadsFollowHealth(t *testing.T) {
	skipShort(t)
	g := labtest.Group(t, lab.GroupOptions{Name: "reads", Replicas: 2, Sentinels: 3})
	readAddr := freeAddr(t)
	grp := runGroup(t, g, func(gc *groupConfig) { gc.ReadListen = readAddr })
	ctx := context.Background()
	w := redis.NewClient(&redis.Options{Addr: grp.addr()})
	defer w.Close()
	if err := w.Set(ctx, "rk", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	labtest.Eventually(t, 15*time.Second, func() error {
		if got := grp.srv.Replicas(); len(got) != 2 {
			return fmt.Errorf("read set %v, want both replicas", got)
		}
		return nil
	})
	r := redis.NewClient(&redis.Options{Addr: readAddr, MaxRetries: -1})
	defer r.Close()
	readAll := func(n int) {
		t.Helper()
		for i := 0; i < n; i++ {
			if v, err := r.Get(ctx, "rk").Result(); err != nil || v != "v" {
				t.Fatalf("read %d through the read port: %q %v", i, v, err)
			}
		}
	}
	gets := func(s *lab.Server) int { return labtest.CommandCalls(t, s, "get") }
	masterGets := gets(g.Master)
	readAll(100)
	if gets(g.Master) != masterGets {
		t.Fatal("the master served reads while healthy replicas were there")
	}
	for _, rep := range g.Replicas {
		if gets(rep) == 0 {
			t.Errorf("replica %s served no reads", rep.Addr)
		}
	}
	if err := r.Set(ctx, "rk", "w", 0).Err(); err == nil || !strings.HasPrefix(err.Error(), "READONLY") {
		t.Fatalf("write on the read port: %v", err)
	}
	for _, rep := range g.Replicas {
		if l := errorstat(t, rep, "READONLY"); l != "" {
			t.Fatalf("a write reached replica %s: %s", rep.Addr, l)
		}
	}

	// The metrics say which replicas serve reads, and how far behind.
	for _, rep := range g.Replicas {
		if v, ok := replicaGauge(t, grp, "replica_serving_reads", rep.Addr); !ok || v != 1 {
			t.Errorf("replica_serving_reads{replica=%q} = %v (present %v), want 1", rep.Addr, v, ok)
		}
		if _, ok := replicaGauge(t, grp, "replica_lag_bytes", rep.Addr); !ok {
			t.Errorf("no replica_lag_bytes for %s", rep.Addr)
		}
	}

	// A paused replica is skipped: it leaves the read set and reads keep
	// being answered by the other one.
	paused := g.Replicas[0]
	if err := paused.Pause(); err != nil {
		t.Fatal(err)
	}
	labtest.Eventually(t, 15*time.Second, func() error {
		if got := grp.srv.Replicas(); slices.Contains(got, paused.Addr) {
			return fmt.Errorf("paused replica still in the read set %v", got)
		}
		return nil
	})
	readAll(50)
	if v, _ := replicaGauge(t, grp, "replica_serving_reads", paused.Addr); v != 0 {
		t.Errorf("replica_serving_reads for the paused replica = %v, want 0", v)
	}
	if err := paused.Resume(); err != nil {
		t.Fatal(err)
	}
	labtest.Eventually(t, 15*time.Second, func() error {
		if got := grp.srv.Replicas(); !slices.Contains(got, paused.Addr) {
			return fmt.Errorf("resumed replica not back in the read set %v", got)
		}
		return nil
	})

	// Across a failover: the promoted replica leaves the read set.
	newM, err := g.Failover(ctx)
	if err != nil {
		t.Fatal(err)
	}
	labtest.Eventually(t, 15*time.Second, func() error {
		if a, _, _ := grp.srv.Master(); a != newM.Addr {
			return errors.New("switch not followed yet")
		}
		if slices.Contains(grp.srv.Replicas(), newM.Addr) {
			return fmt.Errorf("the new master %s is still in the read set", newM.Addr)
		}
		return nil
	})
	readAll(20)
}
