// Command harness benchmarks Switchyard on loopback against a direct
// Redis connection and against two reference proxies, HAProxy (TCP mode,
// one thread) and twemproxy, all started by the same run. It reports
// throughput and latency as ratios to direct Redis measured in that run,
// the CPU time each endpoint process spends per 100,000 commands and the
// memory it needs per idle client connection. Two more suites measure
// TLS against plain ports, and reads from replicas through a read port
// with none, one and two replicas serving.
//
// `make bench` runs it; bench/README.md explains the numbers. It must
// never leave a process running: everything it starts is stopped on
// return, on error and on Ctrl-C, and dies with it if it is killed.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"
)

// options are the command-line flags.
type options struct {
	switchyard string
	baseline   string // a second binary, measured as epBaseline; "" for none
	sentinel   string
	rounds     int
	n          int
	idle       int
	idleSettle time.Duration
	endpoints  []string
	suites     []string // -workloads: suiteProxies, suiteTLS, suiteReads
	write      bool
	readme     string
	dir        string
	gomaxprocs int
}

func main() {
	o, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("interrupted: %w", err)
		}
		fmt.Fprintln(os.Stderr, "bench:", err)
		stop()
		os.Exit(1)
	}
}

func parseFlags(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("harness", flag.ContinueOnError)
	fs.StringVar(&o.switchyard, "switchyard", "bin/switchyard", "path of the switchyard binary")
	fs.StringVar(&o.baseline, "baseline", "", "a second switchyard binary, measured beside -switchyard in the proxies suite as the endpoint baseline: before and after a change, in one run")
	fs.StringVar(&o.sentinel, "sentinel", "auto", "how Switchyard finds the master: on (Sentinel), off (fixed upstream) or auto (Sentinel when the binary supports it)")
	fs.IntVar(&o.rounds, "rounds", 3, "interleaved rounds; the report shows the median")
	fs.IntVar(&o.n, "n", 100000, "requests per test at pipeline 1 (pipeline 16 runs 8×n)")
	fs.IntVar(&o.idle, "idle", 10000, "idle client connections for the memory measurement (0 skips it)")
	fs.DurationVar(&o.idleSettle, "idle-settle", 5*time.Second, "how long the idle connections sit before RSS is read")
	eps := fs.String("endpoints", strings.Join([]string{epRedis, epSwitchyard, epHAProxy, epTwemproxy}, ","), "endpoints the proxies workloads measure, comma-separated")
	suites := fs.String("workloads", strings.Join(allSuites, ","), "workload suites to run, comma-separated: proxies (against direct Redis, HAProxy, twemproxy; with the idle test), tls, reads")
	quick := fs.Bool("quick", false, "smoke run: -rounds 1 -n 10000 -idle 1000 unless given")
	fs.BoolVar(&o.write, "write", false, "also write the results into -readme between the results markers")
	fs.StringVar(&o.readme, "readme", "bench/README.md", "README updated by -write")
	fs.IntVar(&o.gomaxprocs, "gomaxprocs", 1, "GOMAXPROCS for Switchyard (0: Go's default, one per CPU); 1 matches the single-threaded references")
	fs.StringVar(&o.dir, "dir", "", "directory for logs and configuration (default: a temporary directory, removed at the end)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *quick {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		if !set["rounds"] {
			o.rounds = 1
		}
		if !set["n"] {
			o.n = 10000
		}
		if !set["idle"] {
			o.idle = 1000
		}
	}
	switch o.sentinel {
	case "auto", "on", "off":
	default:
		return o, fmt.Errorf("-sentinel=%q: want auto, on or off", o.sentinel)
	}
	if o.gomaxprocs < 0 {
		return o, fmt.Errorf("-gomaxprocs=%d: want 0 (Go's default) or more", o.gomaxprocs)
	}
	if o.rounds < 1 || o.n < 1 || o.idle < 0 {
		return o, fmt.Errorf("-rounds and -n must be at least 1 and -idle at least 0")
	}
	for _, e := range strings.Split(*eps, ",") {
		switch e = strings.TrimSpace(e); e {
		case epRedis, epSwitchyard, epHAProxy, epTwemproxy:
			o.endpoints = append(o.endpoints, e)
		case "":
		default:
			return o, fmt.Errorf("-endpoints: unknown endpoint %q (want %s, %s, %s or %s)", e, epRedis, epSwitchyard, epHAProxy, epTwemproxy)
		}
	}
	for _, x := range strings.Split(*suites, ",") {
		switch x = strings.TrimSpace(x); {
		case slices.Contains(allSuites, x):
			if !slices.Contains(o.suites, x) {
				o.suites = append(o.suites, x)
			}
		case x == "":
		default:
			return o, fmt.Errorf("-workloads: unknown suite %q (want %s)", x, strings.Join(allSuites, ", "))
		}
	}
	if len(o.suites) == 0 {
		return o, errors.New("-workloads: name at least one suite")
	}
	if o.has(suiteProxies) && !slices.Contains(o.endpoints, epRedis) {
		return o, errors.New("-endpoints must include redis: every number is a ratio to direct Redis")
	}
	if o.baseline != "" {
		switch {
		case !o.has(suiteProxies) || !slices.Contains(o.endpoints, epSwitchyard):
			return o, errors.New("-baseline is compared with switchyard in the proxies suite: keep both in -workloads and -endpoints")
		case o.write:
			return o, errors.New("-baseline with -write: the recorded results are of one binary; compare without -write")
		}
		o.endpoints = append(o.endpoints, epBaseline)
	}
	if o.has(suiteReads) && o.sentinel == "off" {
		return o, errors.New("-workloads reads needs Sentinel (Switchyard finds the replicas through it); drop -sentinel off")
	}
	return o, nil
}

// Workload suites (-workloads), in the order a round runs them.
const (
	suiteProxies = "proxies" // the workloads table and the idle test
	suiteTLS     = "tls"
	suiteReads   = "reads"
)

var allSuites = []string{suiteProxies, suiteTLS, suiteReads}

func (o options) has(suite string) bool { return slices.Contains(o.suites, suite) }

func run(ctx context.Context, o options) (err error) {
	start, loadStart, meter := time.Now(), loadAverage(), startCPUMeter()
	for _, bin := range []string{"redis-server", "redis-benchmark"} {
		if _, err := exec.LookPath(bin); err != nil {
			return fmt.Errorf("%s is needed (make redis-deps installs it): %w", bin, err)
		}
	}
	benchBin, _ := exec.LookPath("redis-benchmark")
	if (o.has(suiteProxies) && slices.Contains(o.endpoints, epSwitchyard)) || o.has(suiteTLS) || o.has(suiteReads) {
		if _, err := os.Stat(o.switchyard); err != nil {
			return fmt.Errorf("switchyard binary: %w (run make build)", err)
		}
	}
	if o.baseline != "" {
		if _, err := os.Stat(o.baseline); err != nil {
			return fmt.Errorf("-baseline binary: %w", err)
		}
	}
	var notes []string
	if !o.has(suiteProxies) {
		o.idle = 0 // the idle test belongs to the proxies suite
	}
	if o.idle > 0 {
		note, err := fitIdle(&o)
		if err != nil {
			return err
		}
		if note != "" {
			logf("%s", note)
			notes = append(notes, note)
		}
	}

	dir := o.dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "switchyard-bench-"); err != nil {
			return err
		}
		defer func() {
			if err == nil {
				os.RemoveAll(dir)
			} else {
				logf("logs kept in %s", dir)
			}
		}()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}

	var in installer
	tb, err := startTestbed(ctx, setup{
		dir:        dir,
		switchyard: o.switchyard,
		baseline:   o.baseline,
		sentinel:   o.sentinel,
		endpoints:  o.endpoints,
		idle:       o.idle,
		proxies:    o.has(suiteProxies),
		tls:        o.has(suiteTLS),
		reads:      o.has(suiteReads),
		gomaxprocs: o.gomaxprocs,
	}, &in)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, tb.close()) }()
	notes = append(notes, tb.notes...)
	if o.baseline != "" {
		notes = append(notes, fmt.Sprintf("baseline (-baseline %s): %s, started as switchyard is", o.baseline, switchyardVersion(o.baseline)))
	}

	var proxies, secure *suite
	var reads *readsBench
	if o.has(suiteProxies) {
		proxies = newSuite(workloads, tb.endpoints)
	}
	if o.has(suiteTLS) {
		eps, err := tb.tlsEndpoints()
		if err != nil {
			return err
		}
		secure = newSuite(tlsWorkloads, eps)
	}
	if o.has(suiteReads) {
		if reads, err = newReadsBench(tb); err != nil {
			return err
		}
	}

	// Idle memory first, on fresh processes: a process that has already
	// served the workloads would reuse freed memory and look cheaper.
	if o.idle > 0 {
		for _, ep := range tb.endpoints {
			s, err := measureIdle(ctx, ep, o.idle, o.idleSettle)
			if err != nil {
				return err
			}
			proxies.res.idle[ep.name] = s
			logf("idle: %-10s %d connections, RSS %d → %d KiB, %.2f KiB each", ep.name, s.conns, s.before, s.after, s.perConn())
		}
	}

	tck := clockTicks()
	for round := range o.rounds {
		if proxies != nil {
			if err := proxies.round(ctx, o, benchBin, round, tck); err != nil {
				return err
			}
		}
		if secure != nil {
			if err := secure.round(ctx, o, benchBin, round, tck); err != nil {
				return fmt.Errorf("TLS: %w", err)
			}
		}
		if reads != nil {
			if err := reads.round(ctx, o, benchBin, round, tck); err != nil {
				return err
			}
		}
	}

	// Stop everything first: getrusage counts the CPU time of children
	// only once they have been reaped, and the meter must not take the
	// run's own processes for other work.
	if err := tb.close(); err != nil {
		return err
	}
	rec := &record{
		when:           start,
		commandLine:    commandLine(),
		machine:        describeMachine(o.switchyard),
		switchyardMode: tb.switchyardMode,
		rounds:         o.rounds,
		n:              o.n,
		loadStart:      loadStart,
		loadEnd:        loadAverage(),
		otherWork:      meter.otherWork(runtime.NumCPU()),
		notes:          notes,
	}
	if proxies != nil {
		rec.proxies = proxies.res
	}
	if secure != nil {
		rec.tls = secure.res
		rec.tlsMode = tb.file.mode
	}
	if reads != nil {
		rec.reads = reads
		rec.readsMode = tb.file.mode
	}
	var sb strings.Builder
	rec.write(&sb)
	fmt.Print(sb.String())
	logf("finished in %v", time.Since(start).Round(time.Second))
	if o.write {
		if err := updateReadme(o.readme, sb.String()); err != nil {
			return err
		}
		logf("wrote the results into %s", o.readme)
	}
	return nil
}

// fitIdle raises the open-file limit, which the proxies inherit, for the
// idle-connection test, and lowers o.idle to what the limit allows. The
// harness needs a descriptor per idle connection, HAProxy two (it opens a
// Redis connection for each client). It returns a note for the report
// when it lowered o.idle.
func fitIdle(o *options) (string, error) {
	lim, err := raiseFileLimit(uint64(2*o.idle + haproxyFDs))
	if err != nil {
		return "", err
	}
	most, why := int(lim)-1024, "the harness holds one descriptor per connection"
	if slices.Contains(o.endpoints, epHAProxy) {
		most, why = (int(lim)-haproxyFDs)/2, "HAProxy needs two descriptors per connection"
	}
	if o.idle <= most {
		return "", nil
	}
	if most < 100 {
		return "", fmt.Errorf("the open-file limit (%d) leaves no room for idle connections; raise it or use -idle 0", lim)
	}
	note := fmt.Sprintf("idle connections lowered from %d to %d: %s and the open-file hard limit is %d", o.idle, most, why, lim)
	o.idle = most
	return note, nil
}

// suite is a set of workloads run against a set of endpoints.
type suite struct {
	workloads []workload
	endpoints []endpoint
	res       *results
}

func newSuite(ws []workload, eps []endpoint) *suite {
	var names []string
	for _, ep := range eps {
		names = append(names, ep.name)
	}
	return &suite{workloads: ws, endpoints: eps, res: newResults(ws, names)}
}

// round runs every test of every workload against every endpoint once.
// Endpoints take turns within each test, and their order rotates from
// round to round, so that a slow phase of the machine hits all of them
// alike.
func (s *suite) round(ctx context.Context, o options, bin string, round int, tck int64) error {
	order := rotate(s.endpoints, round)
	for _, w := range s.workloads {
		for _, t := range w.tests {
			for _, ep := range order {
				sm, err := runTest(ctx, bin, ep, w, t, o.n, tck)
				if err != nil {
					return fmt.Errorf("round %d, %s: %w", round+1, w.title, err)
				}
				s.res.add(caseKey{w.id, t}, ep.name, sm)
				logf("round %d/%d  %-38s %-3s %-14s %8.0f rps  p50 %.3f ms  p99 %.3f ms  cpu %.2f s",
					round+1, o.rounds, w.title, strings.ToUpper(t), ep.name, sm.rps, sm.p50, sm.p99, sm.cpu)
			}
		}
	}
	return nil
}

// commandLine is how this run was invoked, as `go run` would be typed.
func commandLine() string {
	args := []string{"go", "run", "./bench/harness"}
	if exe := filepath.Base(os.Args[0]); exe != "harness" {
		args = []string{os.Args[0]} // a built binary, not go run
	}
	for _, a := range os.Args[1:] {
		if a == "" || strings.ContainsAny(a, " \t'\"$\\") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		args = append(args, a)
	}
	return strings.Join(args, " ")
}

// logf writes progress to stderr; stdout carries only the report.
func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
}
