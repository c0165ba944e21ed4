package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/pnats/switchyard/internal/lab"
)

// Configurations of the reads workload, as endpoint names. Direct Redis
// (the master) is the baseline of × direct; the main port, where reads go
// to the master, is the baseline the read port is scaled against.
const (
	epMainPort  = "main port"
	epRead1     = "read port, 1 replica"
	epRead2     = "read port, 2 replicas"
	probeGets   = 20               // GETs per read-set probe
	readSetWait = 30 * time.Second // how long the read set may take to follow a stop or a restart
)

// readConfig is one configuration of the reads workload.
type readConfig struct {
	ep endpoint
	// replicas is how many replicas must be running and in Switchyard's
	// read set before the configuration runs; 0: whatever is running
	// (the reads go to the master anyway).
	replicas int
}

// readsBench runs the reads workload: it stops and restarts the second
// replica between configurations and counts the GETs each node serves.
type readsBench struct {
	readAddr string
	logPath  string // Switchyard's log, for "replica left the read set"
	// nodes are the master and the two replicas, in the order of
	// sample.nodeGets; the second replica is the one stopped.
	nodes   []*lab.Server
	configs []readConfig
	res     *results
	// leave and join are how long the stopped replica took to leave the
	// read set, and the restarted one to rejoin it (from its restart).
	leave, join []time.Duration
}

func newReadsBench(tb *testbed) (*readsBench, error) {
	if tb.file == nil || tb.file.read.port == 0 {
		return nil, errors.New("the reads workload needs the file-configured Switchyard with a read port")
	}
	if len(tb.replicas) < 2 {
		return nil, fmt.Errorf("the reads workload needs two replicas, the testbed has %d", len(tb.replicas))
	}
	main, read1, read2 := tb.file.plain, tb.file.read, tb.file.read
	main.name, read1.name, read2.name = epMainPort, epRead1, epRead2
	rb := &readsBench{
		readAddr: tb.file.read.addr,
		logPath:  tb.file.logPath,
		nodes:    []*lab.Server{tb.master, tb.replicas[0], tb.replicas[1]},
		configs: []readConfig{
			{ep: endpoint{name: epRedis, addr: tb.master.Addr, port: tb.master.Port, pid: tb.master.PID()}},
			{ep: main},
			{ep: read1, replicas: 1},
			{ep: read2, replicas: 2},
		},
	}
	var names []string
	for _, c := range rb.configs {
		names = append(names, c.ep.name)
	}
	rb.res = newResults(readWorkloads, names)
	return rb, nil
}

// round runs every reads test in every configuration once, the
// configurations in an order that rotates from round to round, and
// leaves both replicas running and serving reads.
func (rb *readsBench) round(ctx context.Context, o options, bin string, round int, tck int64) error {
	if err := rb.seed(); err != nil {
		return err
	}
	for _, c := range rotate(rb.configs, round) {
		if c.replicas > 0 {
			if err := rb.ensure(ctx, c.replicas); err != nil {
				return err
			}
		}
		for _, w := range readWorkloads {
			for _, t := range w.tests {
				before, err := rb.gets()
				if err != nil {
					return err
				}
				s, err := runTest(ctx, bin, c.ep, w, t, o.n, tck)
				if err != nil {
					return fmt.Errorf("round %d, reads, %s: %w", round+1, w.title, err)
				}
				after, err := rb.gets()
				if err != nil {
					return err
				}
				s.nodeGets = make([]int64, len(after))
				for i := range after {
					s.nodeGets[i] = after[i] - before[i]
				}
				rb.res.add(caseKey{w.id, t}, c.ep.name, s)
				logf("round %d/%d  reads %-16s %-22s %8.0f rps  p50 %.3f ms  p99 %.3f ms  GETs per node %v",
					round+1, o.rounds, w.title, c.ep.name, s.rps, s.p50, s.p99, s.nodeGets)
			}
		}
	}
	return rb.ensure(ctx, 2)
}

// seed writes the 3-byte value redis-benchmark's GETs read (its SET with
// -d 3 writes "xxx") and waits until every running replica has it.
func (rb *readsBench) seed() error {
	rc, err := dialRedis(rb.nodes[0].Addr, nil)
	if err != nil {
		return fmt.Errorf("reads: seed: %w", err)
	}
	defer rc.close()
	if _, err := rc.do("SET", "key:__rand_int__", "xxx"); err != nil {
		return fmt.Errorf("reads: seed: %w", err)
	}
	want := 0
	for _, n := range rb.nodes[1:] {
		if n.Running() {
			want++
		}
	}
	got, err := rc.do("WAIT", fmt.Sprint(want), "1000")
	if err != nil {
		return fmt.Errorf("reads: seed: %w", err)
	}
	if got != fmt.Sprint(want) {
		return fmt.Errorf("reads: seed: WAIT: %s of %d replicas acknowledged the write", got, want)
	}
	return nil
}

// ensure brings the second replica up (replicas 2) or down (replicas 1)
// and waits until Switchyard's read set is exactly the running replicas.
func (rb *readsBench) ensure(ctx context.Context, replicas int) error {
	second := rb.nodes[2]
	start := time.Now()
	var record *[]time.Duration
	left := -1 // "left the read set" events to wait for; -1: none
	switch {
	case replicas == 1 && second.Running():
		n, err := rb.leftEvents(second.Addr)
		if err != nil {
			return err
		}
		left = n + 1
		logf("reads: stopping replica 2 (%s)", second.Addr)
		if err := second.Stop(); err != nil {
			return fmt.Errorf("reads: stop replica 2: %w", err)
		}
		record = &rb.leave
	case replicas == 2 && !second.Running():
		logf("reads: restarting replica 2 (%s)", second.Addr)
		if err := second.Restart(ctx); err != nil {
			return fmt.Errorf("reads: restart replica 2: %w", err)
		}
		record = &rb.join
	}
	if err := rb.waitReadSet(ctx, second.Addr, left, rb.nodes[1:1+replicas]); err != nil {
		return err
	}
	if record != nil {
		d := time.Since(start)
		*record = append(*record, d)
		logf("reads: the read set is %v after %v", rb.nodes[1:1+replicas], d.Round(time.Millisecond))
	}
	return nil
}

// waitReadSet polls until Switchyard's read set is want. A replica that
// was stopped must have left it by Switchyard's own account (its log
// line "replica left the read set", which must appear left times for
// that address; left -1 skips this): until then Switchyard may still pick
// it and, failing to connect, send the read to the master. Then
// probeGets GETs sent one after the other on one connection to the read
// port must all succeed and be served by every node of want and by no
// other node. Switchyard sends each read to the replica with the fewest
// outstanding requests, round-robin between equals, so one-at-a-time
// GETs visit every replica of the read set; this is what shows that a
// restarted replica has joined it.
func (rb *readsBench) waitReadSet(ctx context.Context, stopped string, left int, want []*lab.Server) error {
	err := poll(ctx, readSetWait, func() (bool, error) {
		if left >= 0 {
			n, err := rb.leftEvents(stopped)
			if err != nil {
				return true, err
			}
			if n < left {
				return false, fmt.Errorf("switchyard has not logged that %s left the read set", stopped)
			}
		}
		before, err := rb.gets()
		if err != nil {
			return false, err
		}
		perr := probeReads(rb.readAddr, probeGets)
		after, err := rb.gets()
		if err != nil {
			return false, err
		}
		if perr != nil {
			return false, perr
		}
		delta := make([]int64, len(after))
		for i := range after {
			delta[i] = after[i] - before[i]
		}
		if !readSetIs(delta, rb.nodes, want, probeGets) {
			return false, fmt.Errorf("probe GETs per node (master, replica 1, replica 2): %v", delta)
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("reads: waiting for Switchyard's read set to be %v: %w", want, err)
	}
	return nil
}

// leftEvents counts Switchyard's "replica left the read set" log lines
// for addr so far.
func (rb *readsBench) leftEvents(addr string) (int, error) {
	f, err := os.Open(rb.logPath)
	if err != nil {
		return 0, fmt.Errorf("reads: %w", err)
	}
	defer f.Close()
	return countLogEvents(f, "replica left the read set", "replica", addr)
}

// countLogEvents counts the JSON log lines in r whose msg is msg and
// whose field key is value. Lines that are not JSON objects (a panic, a
// line from before logging was set up) are skipped.
func countLogEvents(r io.Reader, msg, key, value string) (int, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	n := 0
	for sc.Scan() {
		var line map[string]any
		if json.Unmarshal(sc.Bytes(), &line) != nil {
			continue
		}
		if line["msg"] == msg && line[key] == value {
			n++
		}
	}
	if err := sc.Err(); err != nil {
		return n, fmt.Errorf("switchyard log: %w", err)
	}
	return n, nil
}

// readSetIs reports whether delta, the GETs each of nodes served during
// a probe of total GETs, shows exactly want serving reads.
func readSetIs(delta []int64, nodes, want []*lab.Server, total int64) bool {
	var sum int64
	for i, n := range nodes {
		if slices.Contains(want, n) != (delta[i] > 0) {
			return false
		}
		sum += delta[i]
	}
	return sum == total
}

// probeReads sends n GETs of the seeded key one after the other on one
// connection to addr and expects the seeded value each time.
func probeReads(addr string, n int) error {
	rc, err := dialRedis(addr, nil)
	if err != nil {
		return err
	}
	defer rc.close()
	for range n {
		got, err := rc.do("GET", "key:__rand_int__")
		if err != nil {
			return err
		}
		if got != "xxx" {
			return fmt.Errorf("GET key:__rand_int__: %.20q, want \"xxx\"", got)
		}
	}
	return nil
}

// gets reads cmdstat_get's calls from every running node; a stopped
// node counts 0 (a restarted one starts again from 0).
func (rb *readsBench) gets() ([]int64, error) {
	out := make([]int64, len(rb.nodes))
	for i, n := range rb.nodes {
		if !n.Running() {
			continue
		}
		v, err := nodeGets(n.Addr)
		if err != nil {
			return nil, fmt.Errorf("reads: GETs served by %s: %w", n.Addr, err)
		}
		out[i] = v
	}
	return out, nil
}

func nodeGets(addr string) (int64, error) {
	rc, err := dialRedis(addr, nil)
	if err != nil {
		return 0, err
	}
	defer rc.close()
	info, err := rc.do("INFO", "commandstats")
	if err != nil {
		return 0, err
	}
	return cmdstatCalls(info, "get")
}

// rotate returns xs starting at index round mod len(xs).
func rotate[T any](xs []T, round int) []T {
	i := round % len(xs)
	return append(append([]T(nil), xs[i:]...), xs[:i]...)
}

// shares are the medians over the rounds of each node's share of the
// GETs of one configuration, in per cent.
func shares(ss []sample) []float64 {
	if len(ss) == 0 {
		return nil
	}
	nodes := 0
	for _, s := range ss {
		nodes = max(nodes, len(s.nodeGets))
	}
	out := make([]float64, nodes)
	for i := range nodes {
		var xs []float64
		for _, s := range ss {
			var sum int64
			for _, g := range s.nodeGets {
				sum += g
			}
			if sum == 0 || i >= len(s.nodeGets) {
				continue
			}
			xs = append(xs, 100*float64(s.nodeGets[i])/float64(sum))
		}
		out[i] = median(xs)
	}
	return out
}

// writeReads writes the reads table: throughput against direct Redis and
// against the main port (the master alone serving), and where the GETs
// went.
func (r *results) writeReads(w io.Writer) {
	fmt.Fprintln(w, "| Workload | Configuration | Throughput (rps) | × direct | × main port | × main port, rounds' range | p50 (ms) | p99 (ms) | GETs on master | on replica 1 | on replica 2 | CPU s / 100k cmds |")
	fmt.Fprintln(w, "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
	for _, k := range r.cases() {
		title := workloadByID(k.workload).title
		for _, ep := range r.endpoints {
			s := r.summarize(k, ep)
			if !s.haveSamples {
				continue
			}
			ratio, vsMain, spread := "—", "—", "—"
			if s.haveDirect {
				ratio = fmt.Sprintf("%.2f×", s.ratio)
			}
			if ep == epRead1 || ep == epRead2 {
				if c := r.compare(k, ep, epMainPort); c.ok {
					vsMain = fmt.Sprintf("%.2f×", c.ratio)
					spread = fmt.Sprintf("%.2f–%.2f", c.ratioLo, c.ratioHi)
				}
			}
			cells := make([]string, 3)
			for i, sh := range shares(r.samples[k][ep]) {
				if i < len(cells) {
					cells[i] = fmt.Sprintf("%.0f %%", sh)
				}
			}
			fmt.Fprintf(w, "| %s | %s | %.0f | %s | %s | %s | %.3f | %.3f | %s | %.2f |\n",
				title, readsLabel(ep), s.rps, ratio, vsMain, spread, s.p50, s.p99, strings.Join(cells, " | "), s.cpuPer100k)
		}
	}
}

// readsLabel names a configuration in the table.
func readsLabel(ep string) string {
	switch ep {
	case epRedis:
		return "redis (direct to the master)"
	case epMainPort:
		return "switchyard main port (master only)"
	default:
		return "switchyard " + ep
	}
}

// writeReadSetTimes says how long the read set took to follow the
// stopped and restarted replica.
func (rb *readsBench) writeReadSetTimes(w io.Writer) {
	span := func(ds []time.Duration) string {
		xs := make([]float64, len(ds))
		for i, d := range ds {
			xs[i] = d.Seconds()
		}
		return fmt.Sprintf("%.2f s (median of %d; %.2f–%.2f s)", median(xs), len(xs), slices.Min(xs), slices.Max(xs))
	}
	if len(rb.leave) > 0 {
		fmt.Fprintf(w, "- A stopped replica stopped receiving reads (all %d probe GETs on the other one, none failed) after %s.\n", probeGets, span(rb.leave))
	}
	if len(rb.join) > 0 {
		fmt.Fprintf(w, "- A restarted replica served reads again after %s, counted from the restart (which includes its full resynchronisation).\n", span(rb.join))
	}
}
