// Command failover measures what clients see when a Sentinel-managed
// Redis master fails over behind Switchyard, and behind HAProxy for
// reference: how long writes are unavailable, how soon the first write
// lands on the new master, and how many acknowledged writes are lost.
//
// Each scenario (graceful, kill, zombie) runs against each endpoint on a
// fresh lab group: a master, 2 replicas and 3 Sentinels on loopback. The
// report (Markdown) goes to stdout, progress to stderr; -write also
// records it in bench/failover/README.md. See that README for what each
// number means.
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

// options are the command-line settings.
type options struct {
	switchyard string
	writers    int
	scenarios  []string
	endpoints  []string
	warmup     time.Duration
	after      time.Duration
	write      bool
	readme     string
	dir        string
}

// binaries are the resolved paths of the endpoints' programs.
type binaries struct {
	switchyard, haproxy string
}

func main() {
	o, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "failover:", err)
		os.Exit(2)
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "failover:", err)
		os.Exit(1)
	}
}

func parseFlags(args []string) (options, error) {
	fs := flag.NewFlagSet("failover", flag.ContinueOnError)
	var o options
	fs.StringVar(&o.switchyard, "switchyard", "bin/switchyard", "the switchyard binary (make build)")
	fs.IntVar(&o.writers, "writers", 20, "concurrent writers, one connection each")
	sc := fs.String("scenarios", strings.Join([]string{scGraceful, scKill, scZombie}, ","), "scenarios to run, comma-separated")
	eps := fs.String("endpoints", strings.Join([]string{epSwitchyard, epHAProxy}, ","), "endpoints to measure, comma-separated")
	fs.DurationVar(&o.warmup, "warmup", 2*time.Second, "writing before the fault")
	fs.DurationVar(&o.after, "after", 5*time.Second, "writing after the first +switch-master")
	quick := fs.Bool("quick", false, "smoke run: -writers 5 -after 2s, unless those flags are given too")
	fs.BoolVar(&o.write, "write", false, "record the results in -readme, between the results markers")
	fs.StringVar(&o.readme, "readme", "bench/failover/README.md", "the file -write updates")
	fs.StringVar(&o.dir, "dir", "", "where logs and configuration go (default: a temporary directory, removed after a successful run)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *quick {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		if !set["writers"] {
			o.writers = 5
		}
		if !set["after"] {
			o.after = 2 * time.Second
		}
	}
	var err error
	if o.scenarios, err = list("-scenarios", *sc, scGraceful, scKill, scZombie); err != nil {
		return o, err
	}
	if o.endpoints, err = list("-endpoints", *eps, epSwitchyard, epHAProxy); err != nil {
		return o, err
	}
	if o.writers < 1 {
		return o, fmt.Errorf("-writers %d: want at least 1", o.writers)
	}
	if o.warmup <= 0 || o.after <= 0 {
		return o, fmt.Errorf("-warmup %v, -after %v: want positive durations", o.warmup, o.after)
	}
	return o, nil
}

// list splits a comma-separated flag value, keeping the order of known
// and rejecting anything else.
func list(flagName, v string, known ...string) ([]string, error) {
	var out []string
	for s := range strings.SplitSeq(v, ",") {
		s = strings.TrimSpace(s)
		if !slices.Contains(known, s) {
			return nil, fmt.Errorf("%s: unknown value %q (want %s)", flagName, s, strings.Join(known, ", "))
		}
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b string) int { return slices.Index(known, a) - slices.Index(known, b) })
	return out, nil
}

func run(o options) (err error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	began := time.Now()

	b, notes, err := findBinaries(ctx, &o)
	if err != nil {
		return err
	}
	mach := describeMachine(b)
	dir := o.dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "switchyard-failover-"); err != nil {
			return err
		}
	}
	logf("logs and configuration in %s", dir)

	var results []result
	var failed []error
	for _, sc := range o.scenarios {
		for _, ep := range o.endpoints {
			d := filepath.Join(dir, sc+"-"+ep)
			if err := os.MkdirAll(d, 0o755); err != nil {
				return err
			}
			res, err := runScenario(ctx, o, b, sc, ep, d)
			if ctx.Err() != nil {
				return fmt.Errorf("interrupted during %s × %s; every process started has been stopped; logs in %s", sc, ep, dir)
			}
			if err != nil {
				res.err = err
				failed = append(failed, fmt.Errorf("%s × %s: %w", sc, ep, err))
				logf("%s × %s FAILED: %v", sc, ep, err)
			}
			results = append(results, res)
		}
	}

	rep := report{
		opts: o, results: results, notes: notes, machine: mach,
		command: commandLine(os.Args[1:]), took: time.Since(began),
	}
	md := rep.markdown()
	fmt.Print(md)
	if len(failed) > 0 {
		return fmt.Errorf("%d of %d runs failed; logs kept in %s:\n%w", len(failed), len(results), dir, errors.Join(failed...))
	}
	if o.write {
		if err := writeBetweenMarkers(o.readme, md); err != nil {
			return err
		}
		logf("results recorded in %s", o.readme)
	}
	if o.dir == "" {
		return os.RemoveAll(dir)
	}
	return nil
}

// findBinaries resolves the endpoints' programs. A missing HAProxy is
// installed with apt-get when running as root; otherwise HAProxy is
// dropped from o.endpoints and the returned note says so.
func findBinaries(ctx context.Context, o *options) (binaries, []string, error) {
	var b binaries
	var notes []string
	if slices.Contains(o.endpoints, epSwitchyard) {
		p, err := filepath.Abs(o.switchyard)
		if err == nil {
			_, err = os.Stat(p)
		}
		if err != nil {
			return b, nil, fmt.Errorf("-switchyard %s: %w (run make build first)", o.switchyard, err)
		}
		b.switchyard = p
	}
	if slices.Contains(o.endpoints, epHAProxy) {
		p, err := findOrInstall(ctx, "haproxy", "haproxy")
		if err != nil {
			msg := fmt.Sprintf("HAProxy skipped: %v", err)
			logf("%s", msg)
			notes = append(notes, msg)
			o.endpoints = slices.DeleteFunc(o.endpoints, func(s string) bool { return s == epHAProxy })
		}
		b.haproxy = p
	}
	if len(o.endpoints) == 0 {
		return b, notes, errors.New("no endpoint left to measure")
	}
	return b, notes, nil
}

// findOrInstall returns the path of bin, installing the Debian package pkg
// with apt-get if it is missing and this runs as root.
func findOrInstall(ctx context.Context, bin, pkg string) (string, error) {
	if p, err := exec.LookPath(bin); err == nil {
		return p, nil
	}
	if os.Geteuid() != 0 {
		return "", fmt.Errorf("%s is not installed (sudo apt-get install %s)", bin, pkg)
	}
	for _, args := range [][]string{{"update", "-qq"}, {"install", "-y", "-qq", pkg}} {
		logf("apt-get %s", strings.Join(args, " "))
		cmd := exec.CommandContext(ctx, "apt-get", args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("apt-get %s: %w\n%s", strings.Join(args, " "), err, lastLines(string(out), 10))
		}
	}
	return exec.LookPath(bin)
}

// commandLine is how this run was started, for the record.
func commandLine(args []string) string {
	parts := []string{"go", "run", "./bench/failover"}
	for _, a := range args {
		if a == "" || strings.ContainsAny(a, " \t'\"$") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		parts = append(parts, a)
	}
	return strings.Join(parts, " ")
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s failover: %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
}
