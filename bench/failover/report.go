package main

import (
	"bytes"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"time"
)

// Targets for Switchyard (see README.md, "Targets").
const (
	targetFirstWrite = 50 * time.Millisecond  // +switch-master → first write on the new master
	targetGapSlack   = 100 * time.Millisecond // allowed beyond Sentinel's own fault → +switch-master
)

// report renders a run's results as Markdown.
type report struct {
	opts    options
	results []result
	notes   []string
	machine machine
	command string
	took    time.Duration
}

func (r report) markdown() string {
	var b strings.Builder
	m := r.machine
	fmt.Fprintf(&b, "Recorded %s on %d CPUs (%s); %s, Redis %s, %s; switchyard %s. %d writers, %v warm-up, %v written after the switch; the run took %v. Load average at the start: %s; at the end: %s.\n\n",
		m.date, m.nproc, m.cpu, m.goVersion, m.redis, m.haproxy, m.switchyard, r.opts.writers, r.opts.warmup, r.opts.after, r.took.Round(time.Second), m.loadStart, loadAvg())
	fmt.Fprintf(&b, "```sh\n%s\n```\n\n", r.command)
	for _, n := range r.notes {
		fmt.Fprintf(&b, "- %s\n", n)
	}
	if len(r.notes) > 0 {
		b.WriteString("\n")
	}

	b.WriteString("#### Writes\n\n")
	b.WriteString("| scenario | endpoint | acked | errors | writes unavailable | gap began (after fault) | +switch-master → first write on new master | +promoted-slave → first write on new master | lost: acked before +try-failover | lost: acked +try-failover … +switch-master | lost: acked after +switch-master | Switchyard's switch_to_first_command |\n")
	b.WriteString("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, res := range r.results {
		if res.err != nil {
			fmt.Fprintf(&b, "| %s | %s | failed: %s |||||||||\n", res.scenario, res.endpoint, oneLine(res.err.Error(), 120))
			continue
		}
		mm := res.m
		fmt.Fprintf(&b, "| %s | %s | %d | %d | %s | %s | %s | %s | %d | %d | %d | %s |\n",
			res.scenario, res.endpoint, mm.acked, mm.errors, dur(mm.gap), signed(mm.gapFrom-res.tl.fault),
			optDur(mm.firstNew, mm.firstNewOK), optDur(mm.firstNewPromoted, mm.firstNewPromotedOK),
			mm.lostBeforeTry, mm.lostTryToSwitch, mm.lostAfterSwitch, metricText(res))
	}

	b.WriteString("\n#### Sentinel's timeline (from the fault, first arrival on any Sentinel)\n\n")
	b.WriteString("| scenario | endpoint | +sdown | +odown | +try-failover | +promoted-slave | +switch-master | old master back | +convert-to-slave | new masters |\n")
	b.WriteString("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, res := range r.results {
		if res.err != nil {
			continue
		}
		tl := res.tl
		ev := func(ch string) string {
			d, ok := tl.at(ch)
			if !ok {
				return "—"
			}
			return dur(d - tl.fault)
		}
		back := "—"
		if tl.recovered > 0 {
			back = dur(tl.recovered - tl.fault)
		}
		conv := ev(chConvertToSlave)
		if d, ok := tl.at(chConvertToSlave); ok && d > tl.end {
			conv += " (after the writers stopped)"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %d |\n",
			res.scenario, res.endpoint, ev(chSdown), ev(chOdown), ev(chTryFailover), ev(chPromotedSlave), ev(chSwitchMaster), back, conv, len(tl.newMasters))
	}

	if t := r.targets(); t != "" {
		b.WriteString("\n#### Targets (Switchyard)\n\n")
		b.WriteString(t)
	}

	b.WriteString("\n#### Notes\n\n")
	for _, res := range r.results {
		if res.err != nil {
			fmt.Fprintf(&b, "- %s × %s failed: %s\n", res.scenario, res.endpoint, oneLine(res.err.Error(), 400))
			continue
		}
		fmt.Fprintf(&b, "- %s × %s: master %s → %s", res.scenario, res.endpoint, res.oldMaster, res.finalMaster)
		if len(res.tl.newMasters) > 1 {
			fmt.Fprintf(&b, " (Sentinel switched %d times: %s)", len(res.tl.newMasters), strings.Join(res.tl.newMasters, " → "))
		}
		if len(res.errorKinds) > 0 {
			fmt.Fprintf(&b, "; errors: %s", counts(res.errorKinds))
		}
		if lt := lostAfterText(res); lt != "" {
			fmt.Fprintf(&b, "; %s", lt)
		}
		if res.m.twice+res.m.disorder > 0 {
			fmt.Fprintf(&b, "; on the final master %d values twice and %d out of order", res.m.twice, res.m.disorder)
		}
		if hc := haproxyText(res); hc != "" {
			fmt.Fprintf(&b, "; HAProxy (after fault): %s", hc)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// targets evaluates Switchyard's rows against the targets; empty when
// Switchyard was not measured.
func (r report) targets() string {
	var rows []result
	for _, res := range r.results {
		if res.endpoint == epSwitchyard && res.err == nil {
			rows = append(rows, res)
		}
	}
	if len(rows) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("| target | " + strings.Join(scenarioNames(rows), " | ") + " | met |\n")
	b.WriteString("|---|" + strings.Repeat("---|", len(rows)) + "---|\n")
	type check func(res result) (ok, applies bool, value string)
	line := func(name string, f check) {
		all := true
		var cells []string
		for _, res := range rows {
			ok, applies, v := f(res)
			if !applies {
				cells = append(cells, "n/a")
				continue
			}
			all = all && ok
			cells = append(cells, mark(ok)+" "+v)
		}
		fmt.Fprintf(&b, "| %s | %s | %s |\n", name, strings.Join(cells, " | "), yesNo(all))
	}
	line(fmt.Sprintf("first write on new master ≤ %v after +switch-master", targetFirstWrite), func(res result) (bool, bool, string) {
		m := res.m
		return m.firstNewOK && m.firstNew <= targetFirstWrite, true, optDur(m.firstNew, m.firstNewOK)
	})
	line("no acked write lost after +switch-master", func(res result) (bool, bool, string) {
		return res.m.lostAfterSwitch == 0, true, fmt.Sprintf("%d lost", res.m.lostAfterSwitch)
	})
	line("no write executed twice or out of order", func(res result) (bool, bool, string) {
		m := res.m
		return m.twice+m.disorder == 0, true, fmt.Sprintf("%d twice, %d out of order", m.twice, m.disorder)
	})
	line("graceful: no acked write lost once the hold began (+try-failover)", func(res result) (bool, bool, string) {
		if res.scenario != scGraceful {
			return false, false, ""
		}
		m := res.m
		return m.lostTryToSwitch+m.lostAfterSwitch == 0, true,
			fmt.Sprintf("%d lost (+%d acked before the hold, not yet replicated)", m.lostTryToSwitch+m.lostAfterSwitch, m.lostBeforeTry)
	})
	line(fmt.Sprintf("writes unavailable ≤ Sentinel's fault → +switch-master + %v", targetGapSlack), func(res result) (bool, bool, string) {
		sw, ok := res.tl.at(chSwitchMaster)
		if !ok {
			return false, true, "no +switch-master"
		}
		limit := sw - res.tl.fault + targetGapSlack
		return res.m.gap <= limit, true, fmt.Sprintf("%s vs %s", dur(res.m.gap), dur(limit))
	})
	return b.String()
}

func scenarioNames(rows []result) []string {
	var out []string
	for _, r := range rows {
		out = append(out, r.scenario)
	}
	return out
}

func metricText(res result) string {
	switch {
	case res.endpoint != epSwitchyard:
		return "—"
	case !res.metricOK || res.metric.count == 0:
		return "absent"
	case res.metric.count == 1:
		return dur(time.Duration(res.metric.sum * float64(time.Second)))
	}
	return fmt.Sprintf("mean %s of %d", dur(time.Duration(res.metric.sum/float64(res.metric.count)*float64(time.Second))), res.metric.count)
}

// haproxyText lists HAProxy's server state changes after the fault, each
// node named by its role.
func haproxyText(res result) string {
	var parts []string
	for _, c := range res.haproxy {
		if c.at < res.tl.fault {
			continue
		}
		role := "replica " + c.addr
		switch c.addr {
		case res.oldMaster:
			role = "old master"
		case res.finalMaster:
			role = "new master"
		}
		parts = append(parts, fmt.Sprintf("%s %s at %s", role, c.state, dur(c.at-res.tl.fault)))
	}
	return strings.Join(parts, ", ")
}

// lostAfterText says when the writes lost after the switch were
// sent and acknowledged.
func lostAfterText(res result) string {
	sw, ok := res.tl.at(chSwitchMaster)
	if !ok || res.m.lostAfterSwitch == 0 {
		return ""
	}
	var ackLo, ackHi, sentLo, sentHi time.Duration
	n := 0
	for _, l := range res.m.lost {
		if l.at < sw {
			continue
		}
		if n == 0 || l.at < ackLo {
			ackLo = l.at
		}
		if n == 0 || l.sent < sentLo {
			sentLo = l.sent
		}
		ackHi, sentHi = max(ackHi, l.at), max(sentHi, l.sent)
		n++
	}
	f := res.tl.fault
	return fmt.Sprintf("the %d writes lost after the switch were sent %s … %s and acknowledged %s … %s from the fault",
		n, signed(sentLo-f), signed(sentHi-f), signed(ackLo-f), signed(ackHi-f))
}

func counts(m map[string]int) string {
	keys := slices.Sorted(maps.Keys(m))
	slices.SortStableFunc(keys, func(a, b string) int { return m[b] - m[a] })
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%d %s", m[k], k))
	}
	return strings.Join(parts, ", ")
}

// dur formats a duration for the tables: ms below 10 s, else s.
func dur(d time.Duration) string {
	switch ms := float64(d) / float64(time.Millisecond); {
	case ms < 0:
		return "-" + dur(-d)
	case ms < 10:
		return fmt.Sprintf("%.1f ms", ms)
	case ms < 10000:
		return fmt.Sprintf("%.0f ms", ms)
	default:
		return fmt.Sprintf("%.1f s", ms/1000)
	}
}

func signed(d time.Duration) string {
	if d >= 0 {
		return "+" + dur(d)
	}
	return dur(d)
}

func optDur(d time.Duration, ok bool) string {
	if !ok {
		return "none"
	}
	return dur(d)
}

func mark(ok bool) string {
	if ok {
		return "✅"
	}
	return "❌"
}

func yesNo(ok bool) string {
	if ok {
		return "**yes**"
	}
	return "**no**"
}

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	s = strings.ReplaceAll(s, "|", "/")
	if len(s) > n {
		s = s[:n] + "…"
	}
	return s
}

// machine describes where the run happened.
type machine struct {
	date, cpu, goVersion, redis, haproxy, switchyard string
	nproc                                            int
	loadStart                                        string // 1, 5 and 15 min load averages
}

func describeMachine(b binaries) machine {
	m := machine{
		date:      time.Now().UTC().Format("2006-01-02 15:04 UTC"),
		nproc:     runtime.NumCPU(),
		cpu:       cpuModel(),
		goVersion: runtime.Version(),
		redis:     "unknown",
		haproxy:   "HAProxy not measured",
		loadStart: loadAvg(),
	}
	// "Redis server v=7.0.15 sha=…"
	for f := range strings.FieldsSeq(output("redis-server", "--version")) {
		if v, ok := strings.CutPrefix(f, "v="); ok {
			m.redis = v
		}
	}
	if b.haproxy != "" {
		// "HAProxy version 2.6.12-1+deb12u4 2026/10/17 - https://haproxy.org/"
		f := strings.Fields(firstLine(output(b.haproxy, "-v")))
		if len(f) >= 3 {
			m.haproxy = "HAProxy " + f[2]
		}
	}
	if b.switchyard != "" {
		m.switchyard = strings.TrimPrefix(firstLine(output(b.switchyard, "version")), "switchyard ")
	}
	return m
}

// loadAvg is the 1, 5 and 15 minute load averages: other work on the
// machine moves every number here.
func loadAvg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(data)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "unknown"
}

func cpuModel() string {
	data, _ := os.ReadFile("/proc/cpuinfo")
	for line := range strings.SplitSeq(string(data), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

func output(bin string, args ...string) string {
	out, _ := exec.Command(bin, args...).CombinedOutput()
	return string(out)
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return strings.TrimSpace(l)
}

const (
	markerStart = "<!-- results:start -->"
	markerEnd   = "<!-- results:end -->"
)

// writeBetweenMarkers replaces what lies between the results markers in
// path with body.
func writeBetweenMarkers(path, body string) error {
	old, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("-write: %w", err)
	}
	out, err := replaceBetween(old, body)
	if err != nil {
		return fmt.Errorf("-write %s: %w", path, err)
	}
	return os.WriteFile(path, out, 0o644)
}

func replaceBetween(doc []byte, body string) ([]byte, error) {
	i := bytes.Index(doc, []byte(markerStart))
	j := bytes.Index(doc, []byte(markerEnd))
	if i < 0 || j < i {
		return nil, fmt.Errorf("no %s … %s section", markerStart, markerEnd)
	}
	var b bytes.Buffer
	b.Write(doc[:i+len(markerStart)])
	b.WriteString("\n")
	b.WriteString(strings.TrimSpace(body))
	b.WriteString("\n")
	b.Write(doc[j:])
	return b.Bytes(), nil
}
