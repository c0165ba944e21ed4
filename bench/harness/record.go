package main

import (
	"errors"
	"fmt"
	"io"
	"os"
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
	// and ended; above the CPU count, other work competed with the run.
	loadStart, loadEnd string
	notes              []string
	res                *results
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
	fmt.Fprintf(w, "- Load average (1, 5, 15 min) at the start %s, at the end %s; more than %d means other work shared the CPUs\n",
		rec.loadStart, rec.loadEnd, m.nproc)
	for _, note := range rec.notes {
		fmt.Fprintf(w, "- %s\n", note)
	}

	fmt.Fprintln(w, "\n### Targets")
	fmt.Fprintln(w)
	writeTargets(w, rec.res.targets())

	fmt.Fprintln(w, "\n### Throughput, latency and CPU")
	fmt.Fprintln(w)
	rec.res.writeThroughput(w)

	if len(rec.res.idle) > 0 {
		fmt.Fprintln(w, "\n### Memory per idle client connection")
		fmt.Fprintln(w)
		rec.res.writeIdle(w)
	}

	fmt.Fprintln(w, "\n### redis-benchmark commands")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "PORT is the endpoint's port; each command is one cell of the table.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "```sh")
	for _, c := range benchCommands(rec.n) {
		fmt.Fprintln(w, c)
	}
	fmt.Fprintln(w, "```")
}

// benchCommands are the redis-benchmark command lines of every test, in
// run order, with PORT in place of the endpoint's port.
func benchCommands(n int) []string {
	var out []string
	for _, w := range workloads {
		for _, t := range w.tests {
			args := w.args("PORT", t, n)
			out = append(out, "redis-benchmark "+strings.Join(args, " "))
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
