package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pnats/switchyard/internal/lab"
)

// Scenario names, in report order.
const (
	scGraceful = "graceful" // SENTINEL FAILOVER
	scKill     = "kill"     // SIGKILL the master, restart it empty after the switch
	scZombie   = "zombie"   // SIGSTOP the master, SIGCONT it after the switch
)

const (
	// switchTimeout bounds the wait for the first +switch-master after
	// the fault (Sentinel needs about 1-4 s here).
	switchTimeout = 30 * time.Second
	// convergeTimeout bounds the wait for the old master to be turned into
	// a replica (Sentinel does so 10-20 s after a failover).
	convergeTimeout = 90 * time.Second
)

// result is one scenario × endpoint.
type result struct {
	scenario, endpoint string
	oldMaster          string // the master before the fault
	finalMaster        string // the master after convergence
	tl                 timeline
	m                  measures
	errorKinds         map[string]int
	// Switchyard only: switchyard_switch_to_first_command_seconds.
	metric   firstCommandMetric
	metricOK bool
	// HAProxy only: its server state changes, as offsets from the start.
	haproxy []haproxyChange
	err     error // the run failed; nothing else is meaningful
}

type haproxyChange struct {
	at          time.Duration
	addr, state string
}

// runScenario runs one scenario against one endpoint on a fresh group in
// dir, and stops every process it started before returning, also on error
// and when ctx is cancelled.
func runScenario(ctx context.Context, o options, b binaries, sc, ep, dir string) (res result, err error) {
	res = result{scenario: sc, endpoint: ep, errorKinds: map[string]int{}}
	logf("%s × %s: starting a master, 2 replicas and 3 Sentinels", sc, ep)
	g, err := lab.StartGroup(ctx, lab.GroupOptions{Dir: filepath.Join(dir, "redis"), Name: "bench", Replicas: 2, Sentinels: 3})
	if err != nil {
		return res, fmt.Errorf("start lab group: %w", err)
	}
	defer func() { err = errors.Join(err, g.Stop()) }()
	old := g.Master
	res.oldMaster = old.Addr

	logf("%s × %s: starting %s in front of master %s", sc, ep, ep, old.Addr)
	e, err := startEndpoint(ctx, ep, b, dir, g)
	if err != nil {
		return res, err
	}
	defer func() { err = errors.Join(err, e.stop()) }()
	var hw *haproxyWatch
	if ep == epHAProxy {
		hw = watchHAProxy(e)
		defer hw.close()
	}
	ev, err := watchEvents(ctx, g.Sentinels)
	if err != nil {
		return res, err
	}
	defer ev.close()

	start := time.Now()
	ws := startWriters(ctx, e.addr, o.writers, start)
	defer ws.stop()
	if err := sleep(ctx, o.warmup); err != nil {
		return res, err
	}
	if ws.acked.Load() == 0 {
		return res, fmt.Errorf("no write was acknowledged through %s during the %v warm-up", ep, o.warmup)
	}

	logf("%s × %s: %d writes acknowledged; injecting the fault", sc, ep, ws.acked.Load())
	fault := time.Now()
	recovered, err := inject(ctx, sc, g, old, ev)
	if err != nil {
		return res, err
	}
	tSwitch, _ := ev.first(chSwitchMaster)
	logf("%s × %s: +switch-master %v after the fault; writing for %v more", sc, ep, tSwitch.Sub(fault).Round(time.Millisecond), o.after)
	if err := sleep(ctx, time.Until(tSwitch.Add(o.after))); err != nil {
		return res, err
	}
	end := time.Now()
	logs := ws.stop()
	for _, c := range hw.close() {
		res.haproxy = append(res.haproxy, haproxyChange{at: c.at.Sub(start), addr: c.addr, state: c.state})
	}
	if ep == epSwitchyard {
		if res.metric, res.metricOK, err = fetchFirstCommandMetric(e); err != nil {
			return res, err
		}
	}

	logf("%s × %s: %d writes acknowledged; waiting for the group to converge", sc, ep, ws.acked.Load())
	cctx, cancel := context.WithTimeout(ctx, convergeTimeout)
	final, err := g.WaitConverged(cctx)
	cancel()
	if err != nil {
		return res, err
	}
	res.finalMaster = final.Addr
	present, twice, disorder, err := readLists(ctx, final, logs)
	if err != nil {
		return res, err
	}

	res.tl = buildTimeline(ev.snapshot(), start, fault)
	if !recovered.IsZero() {
		res.tl.recovered = recovered.Sub(start)
	}
	res.tl.end = end.Sub(start)
	res.m = measure(logs, present, res.tl)
	res.m.twice, res.m.disorder = twice, disorder
	if err := writeLost(filepath.Join(dir, "lost-writes.tsv"), res.m.lost, fault, res.tl.fault); err != nil {
		return res, err
	}
	for _, l := range logs {
		mergeCounts(res.errorKinds, l.kinds)
	}
	return res, nil
}

// inject applies the scenario's fault to the master old and returns once
// the first +switch-master has arrived (and, for kill and zombie, the old
// master is back), with the time it came back.
func inject(ctx context.Context, sc string, g *lab.Group, old *lab.Server, ev *eventLog) (recovered time.Time, err error) {
	switch sc {
	case scGraceful:
		// Failover first checks the current master (a few ms), then sends
		// SENTINEL FAILOVER and waits for the new master to answer ROLE.
		if _, err := g.Failover(ctx); err != nil {
			return time.Time{}, err
		}
		return time.Time{}, ev.waitSwitch(ctx, switchTimeout)
	case scKill:
		if err := old.Kill(); err != nil {
			return time.Time{}, fmt.Errorf("kill master %s: %w", old.Addr, err)
		}
		if err := ev.waitSwitch(ctx, switchTimeout); err != nil {
			return time.Time{}, err
		}
		// lab starts servers with --save "", so it comes back empty, and
		// as a master.
		if err := old.Restart(ctx); err != nil {
			return time.Time{}, fmt.Errorf("restart old master %s: %w", old.Addr, err)
		}
		return time.Now(), nil
	case scZombie:
		if err := old.Pause(); err != nil {
			return time.Time{}, fmt.Errorf("pause master %s: %w", old.Addr, err)
		}
		if err := ev.waitSwitch(ctx, switchTimeout); err != nil {
			return time.Time{}, errors.Join(err, old.Resume())
		}
		if err := old.Resume(); err != nil {
			return time.Time{}, fmt.Errorf("resume old master %s: %w", old.Addr, err)
		}
		return time.Now(), nil
	}
	return time.Time{}, fmt.Errorf("unknown scenario %q", sc)
}

// readLists reads every writer's list from the final master, and counts
// the values in them twice and out of order (listPresence).
func readLists(ctx context.Context, final *lab.Server, logs []*writerLog) (p presence, twice, disorder int, err error) {
	c := final.Client()
	defer c.Close()
	p = make(presence, len(logs))
	for i, l := range logs {
		vals, err := c.LRange(ctx, l.key, 0, -1).Result()
		if err != nil {
			return nil, 0, 0, fmt.Errorf("LRANGE %s on the final master %s: %w", l.key, final.Addr, err)
		}
		var tw, dis int
		if p[i], tw, dis, err = listPresence(vals); err != nil {
			return nil, 0, 0, fmt.Errorf("%s on %s: %w", l.key, final.Addr, err)
		}
		twice, disorder = twice+tw, disorder+dis
	}
	return p, twice, disorder, nil
}

// writeLost records every lost acknowledged write, for a closer look;
// the fault's wall-clock time lets it be lined up with the logs.
func writeLost(path string, lost []lostWrite, faultWall time.Time, fault time.Duration) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# fault at %s (unix %.6f)\n", faultWall.UTC().Format(time.RFC3339Nano), float64(faultWall.UnixMicro())/1e6)
	b.WriteString("writer\tvalue\tsent_after_fault_ms\tacked_after_fault_ms\n")
	for _, l := range lost {
		fmt.Fprintf(&b, "%d\t%d\t%.3f\t%.3f\n", l.writer, l.seq, ms(l.sent-fault), ms(l.at-fault))
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("record lost writes: %w", err)
	}
	return nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// mergeCounts adds src into dst.
func mergeCounts(dst, src map[string]int) {
	for k, n := range src {
		dst[k] += n
	}
}
