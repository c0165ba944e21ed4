package main

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// timeline is one run's moments as offsets from the writers' start.
type timeline struct {
	fault time.Duration
	// first is the first arrival, from any Sentinel, of each event channel
	// at or after the fault (+sdown only for the master).
	first map[string]time.Duration
	// newMasters are the distinct addresses +switch-master named, in
	// order; more than one means a second failover during the run.
	newMasters []string
	// recovered is when the old master was restarted (kill) or resumed
	// (zombie); zero for graceful.
	recovered time.Duration
	end       time.Duration // the writers were told to stop
}

func (tl timeline) at(channel string) (time.Duration, bool) {
	d, ok := tl.first[channel]
	return d, ok
}

// buildTimeline reduces Sentinel events to first arrivals after the fault.
func buildTimeline(evs []event, start, fault time.Time) timeline {
	tl := timeline{fault: fault.Sub(start), first: map[string]time.Duration{}}
	for _, e := range evs {
		if e.at.Before(fault) {
			continue
		}
		if e.channel == chSdown && !strings.HasPrefix(e.payload, "master ") {
			continue // a replica or a Sentinel
		}
		d := e.at.Sub(start)
		if old, ok := tl.first[e.channel]; !ok || d < old {
			tl.first[e.channel] = d
		}
		if e.channel == chSwitchMaster {
			// "<name> <old-ip> <old-port> <new-ip> <new-port>"
			if f := strings.Fields(e.payload); len(f) == 5 {
				addr := f[3] + ":" + f[4]
				if !slices.Contains(tl.newMasters, addr) {
					tl.newMasters = append(tl.newMasters, addr)
				}
			}
		}
	}
	return tl
}

// presence says which values each writer's list holds on the final
// master: presence[w][seq].
type presence [][]bool

func (p presence) has(w int, seq int64) bool {
	return w < len(p) && seq >= 0 && seq < int64(len(p[w])) && p[w][seq]
}

// listPresence turns one list's values (LRANGE) into a presence row. It
// also counts the values found more than once (a write executed twice:
// every attempt writes a new value) and those smaller than the one before
// them (executed out of order: a writer sends its next write only after
// the last one's reply).
func listPresence(values []string) (row []bool, twice, disorder int, err error) {
	seqs := make([]int64, len(values))
	var hi int64
	for i, v := range values {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return nil, 0, 0, fmt.Errorf("list value %.40q is not a non-negative integer", v)
		}
		seqs[i], hi = n, max(hi, n)
		if i > 0 && n < seqs[i-1] {
			disorder++
		}
	}
	row = make([]bool, hi+1)
	for _, n := range seqs {
		if row[n] {
			twice++
		}
		row[n] = true
	}
	return row, twice, disorder, nil
}

// measures are the numbers reported for one scenario × endpoint.
type measures struct {
	acked, errors int
	// gap is the longest interval with no acknowledged write from any
	// writer; it began at gapFrom.
	gap, gapFrom time.Duration
	// firstNew is from the first +switch-master to the earliest ack at or
	// after it of a write sent after the fault whose value is on the final
	// master.
	firstNew   time.Duration
	firstNewOK bool
	// firstNewPromoted is the same from the first +promoted-slave: after
	// promotion the new master no longer replicates from the old one, so
	// a later ack found on it was written to it.
	firstNewPromoted   time.Duration
	firstNewPromotedOK bool
	// Acknowledged writes missing from the final master, by when they
	// were acknowledged: before +try-failover, from +try-failover to
	// +switch-master, and at or after +switch-master.
	lostBeforeTry, lostTryToSwitch, lostAfterSwitch int
	// lost lists every acknowledged write missing from the final master.
	lost []lostWrite
	// twice counts values on the final master more than once, disorder
	// values smaller than the one before them (listPresence).
	twice, disorder int
}

// lostWrite is an acknowledged write missing from the final master.
type lostWrite struct {
	writer int
	ack
}

func (m measures) lostBeforeSwitch() int { return m.lostBeforeTry + m.lostTryToSwitch }

// measure computes the measures from the writers' logs, what the final
// master holds and the timeline. Writer i's values are checked against
// present[i].
func measure(logs []*writerLog, present presence, tl timeline) measures {
	var m measures
	sw, swOK := tl.at(chSwitchMaster)
	try, tryOK := tl.at(chTryFailover)
	prom, promOK := tl.at(chPromotedSlave)
	var times []time.Duration
	for i, l := range logs {
		m.acked += len(l.acks)
		m.errors += l.errors
		for _, a := range l.acks {
			times = append(times, a.at)
			on := present.has(i, a.seq)
			// Sent after the fault: not a write the old master executed
			// (and replicated) before the fault but acknowledged late, as
			// a paused master does once it is resumed.
			onNew := on && a.sent >= tl.fault
			if onNew && swOK && a.at >= sw && (!m.firstNewOK || a.at-sw < m.firstNew) {
				m.firstNew, m.firstNewOK = a.at-sw, true
			}
			if onNew && promOK && a.at >= prom && (!m.firstNewPromotedOK || a.at-prom < m.firstNewPromoted) {
				m.firstNewPromoted, m.firstNewPromotedOK = a.at-prom, true
			}
			if on {
				continue
			}
			m.lost = append(m.lost, lostWrite{writer: i, ack: a})
			switch {
			case swOK && a.at >= sw:
				m.lostAfterSwitch++
			case tryOK && a.at >= try:
				m.lostTryToSwitch++
			default:
				m.lostBeforeTry++
			}
		}
	}
	m.gap, m.gapFrom = longestGap(times)
	return m
}

// longestGap sorts times and returns the longest interval between
// consecutive ones and where it began.
func longestGap(times []time.Duration) (gap, from time.Duration) {
	slices.Sort(times)
	for i := 1; i < len(times); i++ {
		if d := times[i] - times[i-1]; d > gap {
			gap, from = d, times[i-1]
		}
	}
	return gap, from
}
