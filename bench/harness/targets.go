package main

import (
	"fmt"
	"io"
	"math"
	"strings"
)

// The performance targets from the project's performance issue.
const (
	targetRatioP1     = 0.9 // × direct throughput at 50 and 400 clients, pipeline 1
	targetRatioP16    = 0.8 // × direct throughput at 50 clients, pipeline 16
	targetAddedP99    = 0.2 // ms of p99 above direct at 50 clients, pipeline 1
	targetIdleKiB     = 4.0 // RSS per idle client connection
	targetMet         = "met"
	targetNotMet      = "**not met**"
	targetNotMeasured = "not measured"
)

// verdict is one target with the measured value.
type verdict struct {
	target string
	status string
	value  string
}

// targets checks Switchyard's medians against every target.
func (r *results) targets() []verdict {
	return []verdict{
		r.ratioTarget("c50p1", targetRatioP1),
		r.ratioTarget("c400p1", targetRatioP1),
		r.ratioTarget("c50p16", targetRatioP16),
		r.referenceTarget(),
		r.p99Target(),
		r.idleTarget(),
	}
}

func (r *results) ratioTarget(id string, min float64) verdict {
	v := verdict{target: fmt.Sprintf("Throughput ≥ %.1f× direct Redis, %s", min, workloadByID(id).title)}
	met, measured := true, false
	var parts []string
	for _, t := range workloadByID(id).tests {
		s := r.summarize(caseKey{id, t}, epSwitchyard)
		if !s.haveDirect {
			continue
		}
		measured = true
		met = met && s.ratio >= min
		parts = append(parts, fmt.Sprintf("%s %.2f×", strings.ToUpper(t), s.ratio))
	}
	v.status, v.value = status(measured, met), strings.Join(parts, ", ")
	return v
}

// referenceTarget: at least the throughput of every reference proxy in
// every test of every workload.
func (r *results) referenceTarget() verdict {
	v := verdict{target: "Throughput ≥ every reference proxy (HAProxy, twemproxy) in every workload"}
	met, measured := true, false
	var parts []string
	for _, ref := range []string{epHAProxy, epTwemproxy} {
		below, total := 0, 0
		lo, hi := 0.0, 0.0
		for _, k := range r.cases() {
			sy, rf := r.summarize(k, epSwitchyard), r.summarize(k, ref)
			if !sy.haveSamples || !rf.haveSamples || rf.rps == 0 {
				continue
			}
			x := sy.rps / rf.rps
			if total == 0 || x < lo {
				lo = x
			}
			if total == 0 || x > hi {
				hi = x
			}
			total++
			if x < 1 {
				below++
			}
		}
		if total == 0 {
			continue
		}
		measured = true
		met = met && below == 0
		parts = append(parts, fmt.Sprintf("below %s in %d of %d tests (%.2f–%.2f× of %s)", ref, below, total, lo, hi, ref))
	}
	v.status, v.value = status(measured, met), strings.Join(parts, "; ")
	return v
}

func (r *results) p99Target() verdict {
	v := verdict{target: fmt.Sprintf("p99 ≤ direct + %.1f ms, %s", targetAddedP99, workloadByID("c50p1").title)}
	met, measured := true, false
	var parts []string
	for _, t := range workloadByID("c50p1").tests {
		s := r.summarize(caseKey{"c50p1", t}, epSwitchyard)
		if !s.haveDirect {
			continue
		}
		measured = true
		met = met && atMostMs(s.addP99, targetAddedP99)
		parts = append(parts, fmt.Sprintf("%s %+.3f ms", strings.ToUpper(t), s.addP99))
	}
	v.status, v.value = status(measured, met), strings.Join(parts, ", ")
	return v
}

// atMostMs reports whether a latency difference in milliseconds is at
// most limit, at the microsecond resolution of redis-benchmark's
// figures: 2.103 − 1.903 is 0.2000000000000002 in floating point, and a
// difference the measurement puts at exactly the limit meets it.
func atMostMs(v, limit float64) bool {
	return math.Round(v*1000) <= math.Round(limit*1000)
}

func (r *results) idleTarget() verdict {
	v := verdict{target: fmt.Sprintf("≤ %.0f KiB RSS per idle client connection", targetIdleKiB)}
	s, ok := r.idle[epSwitchyard]
	if !ok {
		v.status = targetNotMeasured
		return v
	}
	v.status = status(true, s.perConn() <= targetIdleKiB)
	v.value = fmt.Sprintf("%.2f KiB (%d connections)", s.perConn(), s.conns)
	return v
}

func status(measured, met bool) string {
	switch {
	case !measured:
		return targetNotMeasured
	case met:
		return targetMet
	default:
		return targetNotMet
	}
}

// writeTargets writes the verdicts as a table.
func writeTargets(w io.Writer, vs []verdict) {
	fmt.Fprintln(w, "| Target | Status | Measured (Switchyard, medians) |")
	fmt.Fprintln(w, "|---|---|---|")
	for _, v := range vs {
		fmt.Fprintf(w, "| %s | %s | %s |\n", v.target, v.status, v.value)
	}
}
