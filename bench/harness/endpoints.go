package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/pnats/switchyard/internal/lab"
)

// Endpoint names, in report order.
const (
	epRedis      = "redis"
	epSwitchyard = "switchyard"
	epHAProxy    = "haproxy"
	epTwemproxy  = "twemproxy"
)

// readyTimeout bounds how long a started proxy may take to answer PING.
const readyTimeout = 15 * time.Second

// endpoint is one address redis-benchmark is pointed at.
type endpoint struct {
	name string
	addr string // 127.0.0.1:PORT
	port int
	// pid is the process the clients talk to (redis-server for direct
	// Redis): its CPU time and RSS are what the report measures.
	pid int
}

// testbed owns every process of a run: the Redis master and replica
// (with Sentinels when Switchyard follows Sentinel) and the proxies in
// front of the master.
type testbed struct {
	dir       string
	group     *lab.Group // when started with Sentinels
	master    *lab.Server
	replica   *lab.Server
	children  []*child
	endpoints []endpoint
	// switchyardMode says how Switchyard found the master.
	switchyardMode string
	notes          []string // for the report: skipped endpoints, fallbacks
}

// setup is what startTestbed needs to know.
type setup struct {
	dir        string
	switchyard string   // path of the switchyard binary
	sentinel   string   // auto, on or off
	endpoints  []string // which endpoints to start
	idle       int      // idle client connections every endpoint must accept
}

// startTestbed starts Redis and every wanted proxy, each on a free
// loopback port, and waits until each answers PING. On error everything
// started so far is stopped.
func startTestbed(ctx context.Context, s setup, in *installer) (_ *testbed, err error) {
	tb := &testbed{dir: s.dir}
	defer func() {
		if err != nil {
			err = errors.Join(err, tb.close())
		}
	}()
	want := func(name string) bool { return slices.Contains(s.endpoints, name) }

	// HAProxy opens a Redis connection for each of its clients, so Redis
	// must accept the idle test's count besides its own.
	serverArgs := []string{"--maxclients", strconv.Itoa(max(10000, s.idle+1000))}
	if want(epSwitchyard) && s.sentinel != "off" {
		logf("starting Redis master, replica and 3 Sentinels")
		g, err := lab.StartGroup(ctx, lab.GroupOptions{
			Dir: filepath.Join(s.dir, "redis"), Name: "bench", Replicas: 1, Sentinels: 3, ServerArgs: serverArgs,
			// lab's 1 s default suits failover tests; here a master starved
			// of CPU by the load generator must not be failed over mid-run.
			DownAfter: 30 * time.Second,
		})
		if err != nil {
			return nil, fmt.Errorf("redis group: %w", err)
		}
		tb.group, tb.master, tb.replica = g, g.Master, g.Replicas[0]
	} else {
		logf("starting Redis master and replica")
		m, err := lab.StartServer(ctx, lab.ServerOptions{Dir: filepath.Join(s.dir, "redis", "master"), Args: serverArgs})
		if err != nil {
			return nil, fmt.Errorf("redis master: %w", err)
		}
		tb.master = m
		r, err := lab.StartServer(ctx, lab.ServerOptions{Dir: filepath.Join(s.dir, "redis", "replica"), ReplicaOf: m.Addr, Args: serverArgs})
		if err != nil {
			return nil, fmt.Errorf("redis replica: %w", err)
		}
		tb.replica = r
	}
	if want(epRedis) {
		tb.endpoints = append(tb.endpoints, endpoint{name: epRedis, addr: tb.master.Addr, port: tb.master.Port, pid: tb.master.PID()})
	}
	if want(epSwitchyard) {
		if err := tb.startSwitchyard(ctx, s.switchyard, s.sentinel); err != nil {
			return nil, err
		}
	}
	if want(epHAProxy) {
		startHAProxy := func(ctx context.Context, bin string) error {
			return tb.startHAProxy(ctx, bin, max(2000, s.idle+haproxySpareConns))
		}
		if err := tb.startReference(ctx, in, epHAProxy, "haproxy", "haproxy", startHAProxy); err != nil {
			return nil, err
		}
	}
	if want(epTwemproxy) {
		if err := tb.startReference(ctx, in, epTwemproxy, "nutcracker", "nutcracker", tb.startTwemproxy); err != nil {
			return nil, err
		}
	}
	return tb, nil
}

// close stops the proxies, then Redis (and the Sentinels).
func (tb *testbed) close() error {
	var errs []error
	for i := len(tb.children) - 1; i >= 0; i-- {
		errs = append(errs, tb.children[i].stop())
	}
	tb.children = nil
	switch {
	case tb.group != nil:
		errs = append(errs, tb.group.Stop())
	default:
		if tb.replica != nil {
			errs = append(errs, tb.replica.Stop())
		}
		if tb.master != nil {
			errs = append(errs, tb.master.Stop())
		}
	}
	tb.group, tb.master, tb.replica = nil, nil, nil
	return errors.Join(errs...)
}
