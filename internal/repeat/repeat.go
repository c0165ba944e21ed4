// Package repeat spaces a log line that an event may repeat many times a
// second (a client refused at the connection limit, say), without losing
// count of the events: each line carries how many it stands for, and the
// tail of a burst is reported once the interval has passed, not only when
// the next event happens to come.
package repeat

import (
	"sync"
	"time"
)

// Line emits at most one line per interval. The zero value is not usable;
// use New.
type Line struct {
	every time.Duration
	emit  func(n int64) // the log call; n ≥ 1 events since the last line

	mu      sync.Mutex
	last    time.Time   // when the last line was emitted
	n       int64       // events not yet reported
	pending *time.Timer // reports n at last+every; nil when none is due
	stopped bool
}

// New returns a Line that calls emit, with the number of events it
// reports, at most once per every.
func New(every time.Duration, emit func(n int64)) *Line {
	return &Line{every: every, emit: emit}
}

// Hit records one event. The first event after a quiet interval is
// reported at once; the ones that follow within the interval are reported
// together when it ends.
func (l *Line) Hit() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped {
		return
	}
	l.n++
	if l.pending != nil {
		return
	}
	if wait := l.every - time.Since(l.last); wait > 0 {
		l.pending = time.AfterFunc(wait, l.flush)
		return
	}
	l.report()
}

// flush reports what the interval collected.
func (l *Line) flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pending = nil
	if !l.stopped && l.n > 0 {
		l.report()
	}
}

// report emits the line for l.n events; l.mu is held, so lines never
// overlap or come out of order.
func (l *Line) report() {
	n := l.n
	l.n, l.last = 0, time.Now()
	l.emit(n)
}

// Stop reports any events not yet reported and ends the Line: later hits
// are ignored and no report comes after Stop returns.
func (l *Line) Stop() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped {
		return
	}
	l.stopped = true
	if l.pending != nil {
		l.pending.Stop()
		l.pending = nil
	}
	if l.n > 0 {
		l.report()
	}
}
