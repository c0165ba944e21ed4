// Command harness benchmarks Switchyard on loopback against a direct
// Redis connection and against two reference proxies, HAProxy (TCP mode,
// one thread) and twemproxy, all started by the same run. It reports
// throughput and latency as ratios to direct Redis measured in that run,
// the CPU time each endpoint process spends per 100,000 commands and the
// memory it needs per idle client connection.
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
	"slices"
	"strings"
	"syscall"
	"time"
)

// options are the command-line flags.
type options struct {
	switchyard string
	sentinel   string
	rounds     int
	n          int
	idle       int
	idleSettle time.Duration
	endpoints  []string
	write      bool
	readme     string
	dir        string
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
	fs.StringVar(&o.sentinel, "sentinel", "auto", "how Switchyard finds the master: on (Sentinel), off (fixed upstream) or auto (Sentinel when the binary supports it)")
	fs.IntVar(&o.rounds, "rounds", 3, "interleaved rounds; the report shows the median")
	fs.IntVar(&o.n, "n", 100000, "requests per test at pipeline 1 (pipeline 16 runs 8×n)")
	fs.IntVar(&o.idle, "idle", 10000, "idle client connections for the memory measurement (0 skips it)")
	fs.DurationVar(&o.idleSettle, "idle-settle", 5*time.Second, "how long the idle connections sit before RSS is read")
	eps := fs.String("endpoints", strings.Join([]string{epRedis, epSwitchyard, epHAProxy, epTwemproxy}, ","), "endpoints to measure, comma-separated")
	quick := fs.Bool("quick", false, "smoke run: -rounds 1 -n 10000 -idle 1000 unless given")
	fs.BoolVar(&o.write, "write", false, "also write the results into -readme between the results markers")
	fs.StringVar(&o.readme, "readme", "bench/README.md", "README updated by -write")
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
	if !slices.Contains(o.endpoints, epRedis) {
		return o, errors.New("-endpoints must include redis: every number is a ratio to direct Redis")
	}
	return o, nil
}

func run(ctx context.Context, o options) (err error) {
	start, loadStart := time.Now(), loadAverage()
	for _, bin := range []string{"redis-server", "redis-benchmark"} {
		if _, err := exec.LookPath(bin); err != nil {
			return fmt.Errorf("%s is needed (make redis-deps installs it): %w", bin, err)
		}
	}
	benchBin, _ := exec.LookPath("redis-benchmark")
	if slices.Contains(o.endpoints, epSwitchyard) {
		if _, err := os.Stat(o.switchyard); err != nil {
			return fmt.Errorf("switchyard binary: %w (run make build)", err)
		}
	}
	var notes []string
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
		sentinel:   o.sentinel,
		endpoints:  o.endpoints,
		idle:       o.idle,
	}, &in)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, tb.close()) }()
	notes = append(notes, tb.notes...)

	var names []string
	for _, ep := range tb.endpoints {
		names = append(names, ep.name)
	}
	res := newResults(names)

	// Idle memory first, on fresh processes: a process that has already
	// served the workloads would reuse freed memory and look cheaper.
	if o.idle > 0 {
		for _, ep := range tb.endpoints {
			s, err := measureIdle(ctx, ep, o.idle, o.idleSettle)
			if err != nil {
				return err
			}
			res.idle[ep.name] = s
			logf("idle: %-10s %d connections, RSS %d → %d KiB, %.2f KiB each", ep.name, s.conns, s.before, s.after, s.perConn())
		}
	}

	if err := runRounds(ctx, o, benchBin, tb.endpoints, res); err != nil {
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
		notes:          notes,
		res:            res,
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

// runRounds runs every test of every workload against every endpoint,
// o.rounds times. Endpoints take turns within each test, and their order
// rotates from round to round, so that a slow phase of the machine hits
// all of them alike.
func runRounds(ctx context.Context, o options, bin string, eps []endpoint, res *results) error {
	tck := clockTicks()
	for round := range o.rounds {
		order := append(append([]endpoint(nil), eps[round%len(eps):]...), eps[:round%len(eps)]...)
		for _, w := range workloads {
			for _, t := range w.tests {
				for _, ep := range order {
					s, err := runTest(ctx, bin, ep, w, t, o.n, tck)
					if err != nil {
						return fmt.Errorf("round %d, %s: %w", round+1, w.title, err)
					}
					res.add(caseKey{w.id, t}, ep.name, s)
					logf("round %d/%d  %-38s %-3s %-10s %8.0f rps  p50 %.3f ms  p99 %.3f ms  cpu %.2f s",
						round+1, o.rounds, w.title, strings.ToUpper(t), ep.name, s.rps, s.p50, s.p99, s.cpu)
				}
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
