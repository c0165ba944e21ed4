package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
)

// results collects every sample of one suite of workloads.
type results struct {
	workloads []workload // in report order
	endpoints []string   // names, in report order; the first is direct Redis
	samples   map[caseKey]map[string][]sample
	idle      map[string]idleSample
}

func newResults(workloads []workload, endpoints []string) *results {
	return &results{
		workloads: workloads,
		endpoints: endpoints,
		samples:   map[caseKey]map[string][]sample{},
		idle:      map[string]idleSample{},
	}
}

func (r *results) add(k caseKey, ep string, s sample) {
	if r.samples[k] == nil {
		r.samples[k] = map[string][]sample{}
	}
	r.samples[k][ep] = append(r.samples[k][ep], s)
}

// median returns the median of xs (the mean of the middle two for an even
// count), 0 for none.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	m := len(s) / 2
	if len(s)%2 == 1 {
		return s[m]
	}
	return (s[m-1] + s[m]) / 2
}

// summary is the medians of one endpoint in one case.
type summary struct {
	rounds        int
	rps, p50, p99 float64
	cpuPer100k    float64 // CPU seconds per 100,000 commands
	haveSamples   bool
	// Compared with direct Redis: the medians over the rounds of each
	// round's rps ratio and added latency (ms). Within a round the two runs
	// are moments apart, so a slow phase of the machine cancels out.
	ratio            float64
	ratioLo, ratioHi float64 // the lowest and highest per-round ratio
	addP50, addP99   float64
	haveDirect       bool
}

// summarize takes each metric's median over the rounds independently.
// Samples of one case are added round by round, so index i of every
// endpoint's samples is round i.
func (r *results) summarize(k caseKey, ep string) summary {
	ss := r.samples[k][ep]
	if len(ss) == 0 {
		return summary{}
	}
	pick := func(f func(sample) float64) float64 {
		xs := make([]float64, len(ss))
		for i, s := range ss {
			xs[i] = f(s)
		}
		return median(xs)
	}
	out := summary{
		rounds:      len(ss),
		rps:         pick(func(s sample) float64 { return s.rps }),
		p50:         pick(func(s sample) float64 { return s.p50 }),
		p99:         pick(func(s sample) float64 { return s.p99 }),
		cpuPer100k:  pick(func(s sample) float64 { return s.cpu / float64(s.requests) * 1e5 }),
		haveSamples: true,
	}
	if ep != epRedis {
		if c := r.compare(k, ep, epRedis); c.ok {
			out.haveDirect = true
			out.ratio, out.ratioLo, out.ratioHi = c.ratio, c.ratioLo, c.ratioHi
			out.addP50, out.addP99 = c.addP50, c.addP99
		}
	}
	return out
}

// comparison is one endpoint against a baseline endpoint in one case:
// the medians over the rounds of each round's rps ratio and added
// latency (ms), with the lowest and highest per-round ratio.
type comparison struct {
	ok               bool // both have samples
	ratio            float64
	ratioLo, ratioHi float64
	addP50, addP99   float64
}

// compare pairs ep's samples with base's round by round (index i of
// every endpoint's samples of a case is round i).
func (r *results) compare(k caseKey, ep, base string) comparison {
	ss, bs := r.samples[k][ep], r.samples[k][base]
	n := min(len(ss), len(bs))
	if n == 0 {
		return comparison{}
	}
	paired := func(f func(s, b sample) float64) []float64 {
		xs := make([]float64, n)
		for i := range n {
			xs[i] = f(ss[i], bs[i])
		}
		return xs
	}
	ratios := paired(func(s, b sample) float64 { return s.rps / b.rps })
	return comparison{
		ok:      true,
		ratio:   median(ratios),
		ratioLo: slices.Min(ratios),
		ratioHi: slices.Max(ratios),
		addP50:  median(paired(func(s, b sample) float64 { return s.p50 - b.p50 })),
		addP99:  median(paired(func(s, b sample) float64 { return s.p99 - b.p99 })),
	}
}

// cases lists the cases of the run in workload order.
func (r *results) cases() []caseKey {
	var out []caseKey
	for _, w := range r.workloads {
		for _, t := range w.tests {
			k := caseKey{w.id, t}
			if r.samples[k] != nil {
				out = append(out, k)
			}
		}
	}
	return out
}

// workloadByID finds a workload of any suite.
func workloadByID(id string) workload {
	for _, ws := range [][]workload{workloads, tlsWorkloads, readWorkloads} {
		for _, w := range ws {
			if w.id == id {
				return w
			}
		}
	}
	return workload{id: id, title: id}
}

// writeThroughput writes the per-case table.
func (r *results) writeThroughput(w io.Writer) {
	fmt.Fprintln(w, "| Workload | Test | Endpoint | Throughput (rps) | × direct | × direct, rounds' range | p50 (ms) | +p50 (ms) | p99 (ms) | +p99 (ms) | CPU s / 100k cmds |")
	fmt.Fprintln(w, "|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|")
	for _, k := range r.cases() {
		title := workloadByID(k.workload).title
		for _, ep := range r.endpoints {
			s := r.summarize(k, ep)
			if !s.haveSamples {
				continue
			}
			ratio, spread, dp50, dp99 := "—", "—", "—", "—"
			if s.haveDirect {
				ratio = fmt.Sprintf("%.2f×", s.ratio)
				spread = fmt.Sprintf("%.2f–%.2f", s.ratioLo, s.ratioHi)
				dp50 = fmt.Sprintf("%+.3f", s.addP50)
				dp99 = fmt.Sprintf("%+.3f", s.addP99)
			}
			fmt.Fprintf(w, "| %s | %s | %s | %.0f | %s | %s | %.3f | %s | %.3f | %s | %.2f |\n",
				title, strings.ToUpper(k.test), ep, s.rps, ratio, spread, s.p50, dp50, s.p99, dp99, s.cpuPer100k)
		}
	}
}

// writeBaseline writes switchyard against epBaseline, paired by round.
func (r *results) writeBaseline(w io.Writer) {
	fmt.Fprintln(w, "| Workload | Test | switchyard ÷ baseline | rounds' range | +p50 (ms) | +p99 (ms) | CPU s / 100k cmds: switchyard, baseline |")
	fmt.Fprintln(w, "|---|---|--:|--:|--:|--:|--:|")
	for _, k := range r.cases() {
		c := r.compare(k, epSwitchyard, epBaseline)
		if !c.ok {
			continue
		}
		sy, base := r.summarize(k, epSwitchyard), r.summarize(k, epBaseline)
		fmt.Fprintf(w, "| %s | %s | %.2f× | %.2f–%.2f | %+.3f | %+.3f | %.2f, %.2f |\n",
			workloadByID(k.workload).title, strings.ToUpper(k.test), c.ratio, c.ratioLo, c.ratioHi, c.addP50, c.addP99, sy.cpuPer100k, base.cpuPer100k)
	}
}

// writeIdle writes the idle-connection memory table.
func (r *results) writeIdle(w io.Writer) {
	fmt.Fprintln(w, "| Endpoint | Idle connections | RSS before (MiB) | RSS after (MiB) | KiB per connection |")
	fmt.Fprintln(w, "|---|--:|--:|--:|--:|")
	for _, ep := range r.endpoints {
		s, ok := r.idle[ep]
		if !ok {
			continue
		}
		fmt.Fprintf(w, "| %s | %d | %.1f | %.1f | %.2f |\n",
			ep, s.conns, float64(s.before)/1024, float64(s.after)/1024, s.perConn())
	}
}
