package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"
)

// README markers between which -write puts the record of a run.
const (
	markerStart = "<!-- results:start -->"
	markerEnd   = "<!-- results:end -->"
)

// record is everything one run reports.
type record struct {
	when           time.Time
	commandLine    string
	machine        machine
	switchyardMode string
	rounds, n      int
	// loadStart and loadEnd are the load averages when the run started
	// and ended; above the CPU count at the start, other work was
	// running. The end value includes the run's own load.
	loadStart, loadEnd string
	// otherWork says how much CPU time other processes took during the
	// run (cpuMeter).
	otherWork string
	notes     []string
	// The suites that ran; nil for those that did not. tlsMode and
	// readsMode say how the file-configured Switchyard found the master.
	proxies            *results
	tls                *results
	reads              *readsBench
	tlsMode, readsMode string
}

// write renders the record as Markdown.
func (rec *record) write(w io.Writer) {
	m := rec.machine
	fmt.Fprintf(w, "Recorded %s with `%s`.\n\n", rec.when.UTC().Format("2006-01-02 15:04 MST"), rec.commandLine)
	fmt.Fprintf(w, "- Machine: %d CPUs (`nproc`), %s, %s\n", m.nproc, m.cpu, m.kernel)
	fmt.Fprintf(w, "- Switchyard: %s", m.switchyard)
	if rec.switchyardMode != "" {
		fmt.Fprintf(w, "; %s", rec.switchyardMode)
	}
	fmt.Fprintf(w, "\n- Go: %s (harness)\n", m.goVersion)
	fmt.Fprintf(w, "- Redis: %s\n", m.redis)
	fmt.Fprintf(w, "- HAProxy: %s\n", m.haproxy)
	fmt.Fprintf(w, "- twemproxy: %s\n", m.nutcracker)
	fmt.Fprintf(w, "- %d rounds, reported as medians over the rounds; -n %d\n", rec.rounds, rec.n)
	fmt.Fprintf(w, "- Load average (1, 5, 15 min) at the start %s (more than %d: other work was running), at the end %s (including the run's own load)\n",
		rec.loadStart, m.nproc, rec.loadEnd)
	if rec.otherWork != "" {
		fmt.Fprintf(w, "- %s\n", rec.otherWork)
	}
	for _, note := range rec.notes {
		fmt.Fprintf(w, "- %s\n", note)
	}

	if r := rec.proxies; r != nil {
		fmt.Fprintln(w, "\n### Targets")
		fmt.Fprintln(w)
		writeTargets(w, r.targets())

		fmt.Fprintln(w, "\n### Throughput, latency and CPU")
		fmt.Fprintln(w)
		r.writeThroughput(w)

		if slices.Contains(r.endpoints, epBaseline) {
			fmt.Fprintln(w, "\n### Switchyard against the baseline binary")
			fmt.Fprintln(w)
			fmt.Fprintln(w, "Each round's switchyard run against the baseline's run of the same round (throughput divided, latency subtracted), median over the rounds.")
			fmt.Fprintln(w)
			r.writeBaseline(w)
		}

		if len(r.idle) > 0 {
			fmt.Fprintln(w, "\n### Memory per idle client connection")
			fmt.Fprintln(w)
			r.writeIdle(w)
		}
	}

	if r := rec.tls; r != nil {
		fmt.Fprintln(w, "\n### TLS")
		fmt.Fprintln(w)
		fmt.Fprintf(w, "`switchyard` and `switchyard TLS` are the plain and the TLS listener of one file-configured Switchyard (%s) serving one group; "+
			"`redis TLS` is the master's own TLS port. TLS ÷ plain compares each TLS port with the plain port of the same process, paired by round.\n\n", rec.tlsMode)
		r.writeTLS(w)
	}

	if rb := rec.reads; rb != nil {
		fmt.Fprintln(w, "\n### Replica reads")
		fmt.Fprintln(w)
		fmt.Fprintf(w, "One file-configured Switchyard (%s) in front of a master and two replicas. "+
			"For \"1 replica\" the second replica's redis-server is stopped; GETs per node are from each node's `INFO commandstats`.\n\n", rec.readsMode)
		rb.res.writeReads(w)
		fmt.Fprintln(w)
		rb.writeReadSetTimes(w)
	}

	fmt.Fprintln(w, "\n### redis-benchmark commands")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "PORT is the endpoint's port; each command is one cell of a table (ca.pem: the run's CA certificate).")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "```sh")
	for _, c := range benchCommands(rec.suites(), rec.n) {
		fmt.Fprintln(w, c)
	}
	fmt.Fprintln(w, "```")
}

// suites are the suites that ran, in run order.
func (rec *record) suites() []string {
	var out []string
	if rec.proxies != nil {
		out = append(out, suiteProxies)
	}
	if rec.tls != nil {
		out = append(out, suiteTLS)
	}
	if rec.reads != nil {
		out = append(out, suiteReads)
	}
	return out
}

// benchCommands are the redis-benchmark command lines of every test of
// the suites, in run order, each suite under a comment line, with PORT in
// place of the endpoint's port. The TLS suite runs each test against
// plain and TLS ports.
func benchCommands(suites []string, n int) []string {
	var out []string
	for _, name := range suites {
		ws := map[string][]workload{suiteProxies: workloads, suiteTLS: tlsWorkloads, suiteReads: readWorkloads}[name]
		out = append(out, "# "+name)
		for _, w := range ws {
			for _, t := range w.tests {
				args := w.args("PORT", t, n)
				out = append(out, "redis-benchmark "+strings.Join(args, " "))
				if name == suiteTLS {
					out = append(out, "redis-benchmark "+strings.Join(append(args, tlsArgs("ca.pem")...), " "))
				}
			}
		}
	}
	return out
}

// updateReadme replaces what is between the markers in path with block.
func updateReadme(path, block string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("update %s: %w", path, err)
	}
	doc, err := replaceBetween(string(b), block)
	if err != nil {
		return fmt.Errorf("update %s: %w", path, err)
	}
	return os.WriteFile(path, []byte(doc), 0o644)
}

// replaceBetween puts block between markerStart and markerEnd in doc.
func replaceBetween(doc, block string) (string, error) {
	i := strings.Index(doc, markerStart)
	j := strings.Index(doc, markerEnd)
	if i < 0 || j < 0 || j < i {
		return "", errors.New("want one " + markerStart + " followed by one " + markerEnd)
	}
	if strings.Count(doc, markerStart) != 1 || strings.Count(doc, markerEnd) != 1 {
		return "", errors.New("the results markers must appear exactly once")
	}
	return doc[:i+len(markerStart)] + "\n" + strings.TrimSpace(block) + "\n" + doc[j:], nil
}
