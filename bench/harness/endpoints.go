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
	// epBaseline is a second Switchyard binary (-baseline), started the
	// way switchyard is, to compare two builds in one run.
	epBaseline = "baseline"
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
	// ca, when set, makes the port a TLS port whose certificate this CA
	// file signs; redis-benchmark then runs with --tls --cacert ca.
	ca string
}

// testbed owns every process of a run: the Redis master and its
// replicas (with Sentinels when Switchyard follows Sentinel) and the
// proxies in front of the master.
type testbed struct {
	dir        string
	gomaxprocs int
	group      *lab.Group // when started with Sentinels
	master     *lab.Server
	replicas   []*lab.Server
	children   []*child
	// endpoints are those of the proxies workloads.
	endpoints []endpoint
	// switchyardMode says how the environment-configured Switchyard
	// found the master.
	switchyardMode     string
	switchyardSentinel bool // it follows Sentinel
	// file is the Switchyard configured by a file for the TLS and reads
	// workloads; nil when neither runs.
	file *fileSwitchyard
	// certs are the TLS workload's certificates; redisTLSPort is direct
	// Redis's TLS port, 0 when this redis-server cannot do TLS.
	certs        certFiles
	redisTLSPort int
	notes        []string // for the report: skipped endpoints, fallbacks
}

// setup is what startTestbed needs to know.
type setup struct {
	dir        string
	switchyard string   // path of the switchyard binary
	baseline   string   // path of the -baseline binary, "" for none
	sentinel   string   // auto, on or off
	endpoints  []string // which endpoints the proxies workloads measure
	idle       int      // idle client connections every endpoint must accept
	proxies    bool     // the proxies workloads run: start their endpoints
	tls        bool     // the TLS workload runs
	reads      bool     // the reads workload runs: two replicas and a read port
	gomaxprocs int      // GOMAXPROCS of the Switchyard processes; 0: Go's default
}

// startTestbed starts Redis and every wanted proxy, each on a free
// loopback port, and waits until each answers PING. On error everything
// started so far is stopped.
func startTestbed(ctx context.Context, s setup, in *installer) (_ *testbed, err error) {
	tb := &testbed{dir: s.dir, gomaxprocs: s.gomaxprocs}
	if s.gomaxprocs > 0 {
		tb.notes = append(tb.notes, fmt.Sprintf("switchyard ran with GOMAXPROCS=%d (-gomaxprocs), as HAProxy runs with nbthread 1 and twemproxy has one thread", s.gomaxprocs))
	} else {
		tb.notes = append(tb.notes, "switchyard ran with Go's default GOMAXPROCS (-gomaxprocs 0): one per CPU")
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, tb.close())
		}
	}()
	want := func(name string) bool { return s.proxies && slices.Contains(s.endpoints, name) }

	// HAProxy opens a Redis connection for each of its clients, so Redis
	// must accept the idle test's count besides its own.
	serverArgs := []string{"--maxclients", strconv.Itoa(max(10000, s.idle+1000))}
	replicas := 1
	if s.reads {
		replicas = 2
	}
	if s.sentinel != "off" && (want(epSwitchyard) || s.tls || s.reads) {
		logf("starting Redis master, %d replicas and 3 Sentinels", replicas)
		g, err := lab.StartGroup(ctx, lab.GroupOptions{
			Dir: filepath.Join(s.dir, "redis"), Name: "bench", Replicas: replicas, Sentinels: 3, ServerArgs: serverArgs,
			// lab's 1 s default suits failover tests; here a master starved
			// of CPU by the load generator must not be failed over mid-run,
			// nor a replica the reads workload stops for a while be flagged.
			DownAfter: 30 * time.Second,
		})
		if err != nil {
			return nil, fmt.Errorf("redis group: %w", err)
		}
		tb.group, tb.master, tb.replicas = g, g.Master, g.Replicas
	} else {
		if s.reads {
			return nil, errors.New("the reads workload needs Sentinel: Switchyard finds replicas through it")
		}
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
		tb.replicas = []*lab.Server{r}
	}
	if want(epRedis) {
		tb.endpoints = append(tb.endpoints, endpoint{name: epRedis, addr: tb.master.Addr, port: tb.master.Port, pid: tb.master.PID()})
	}
	if want(epSwitchyard) {
		if err := tb.startSwitchyard(ctx, epSwitchyard, s.switchyard, s.sentinel); err != nil {
			return nil, err
		}
	}
	if want(epBaseline) {
		// The same mode as switchyard's, or the two would not compare.
		mode := "off"
		if tb.switchyardSentinel {
			mode = "on"
		}
		if err := tb.startSwitchyard(ctx, epBaseline, s.baseline, mode); err != nil {
			return nil, fmt.Errorf("-baseline: %w", err)
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
	if s.tls {
		if tb.certs, err = writeCerts(s.dir, time.Now()); err != nil {
			return nil, err
		}
		if err := tb.enableRedisTLS(); err != nil {
			msg := fmt.Sprintf("direct Redis over TLS skipped: %v", err)
			logf("%s", msg)
			tb.notes = append(tb.notes, msg)
		}
	}
	if s.tls || s.reads {
		if err := tb.startFileSwitchyard(ctx, s.switchyard, s.tls, s.reads); err != nil {
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
		for _, r := range tb.replicas {
			errs = append(errs, r.Stop())
		}
		if tb.master != nil {
			errs = append(errs, tb.master.Stop())
		}
	}
	tb.group, tb.master, tb.replicas = nil, nil, nil
	return errors.Join(errs...)
}
