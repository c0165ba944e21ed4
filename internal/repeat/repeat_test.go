package repeat

import (
	"sync"
	"testing"
	"time"
)

// recorder collects the counts a Line emits.
type recorder struct {
	mu sync.Mutex
	ns []int64
}

func (r *recorder) emit(n int64) {
	r.mu.Lock()
	r.ns = append(r.ns, n)
	r.mu.Unlock()
}

func (r *recorder) get() []int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]int64(nil), r.ns...)
}

func sum(ns []int64) (t int64) {
	for _, n := range ns {
		t += n
	}
	return t
}

// TestBurstTailIsReported: a burst then silence yields a line at once
// for the first event and one for the rest when the interval ends,
// without another event to trigger it.
func TestBurstTailIsReported(t *testing.T) {
	var r recorder
	l := New(50*time.Millisecond, r.emit)
	defer l.Stop()
	for range 100 {
		l.Hit()
	}
	if got := r.get(); len(got) != 1 || got[0] != 1 {
		t.Fatalf("lines right after the burst: %v, want [1]", got)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(r.get()) < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got := r.get(); len(got) != 2 || got[1] != 99 {
		t.Fatalf("lines after the interval: %v, want [1 99]", got)
	}
}

// TestEveryEventCounted: under concurrent hits over several intervals,
// the lines account for every event, and come no closer together than
// the interval.
func TestEveryEventCounted(t *testing.T) {
	var r recorder
	var times []time.Time
	var mu sync.Mutex
	l := New(20*time.Millisecond, func(n int64) {
		mu.Lock()
		times = append(times, time.Now())
		mu.Unlock()
		r.emit(n)
	})
	var wg sync.WaitGroup
	const workers, each = 8, 500
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				l.Hit()
				if i%50 == 0 {
					time.Sleep(time.Millisecond)
				}
			}
		}()
	}
	wg.Wait()
	l.Stop()
	if got := sum(r.get()); got != workers*each {
		t.Fatalf("lines account for %d events, want %d (%v)", got, workers*each, r.get())
	}
	mu.Lock()
	defer mu.Unlock()
	for i := 1; i < len(times)-1; i++ { // the last may be Stop's flush
		if d := times[i].Sub(times[i-1]); d < 19*time.Millisecond {
			t.Fatalf("lines %d and %d only %v apart", i-1, i, d)
		}
	}
}

// TestStop: Stop reports what is pending, and nothing comes after it.
func TestStop(t *testing.T) {
	var r recorder
	l := New(time.Hour, r.emit)
	l.Hit()
	l.Hit()
	l.Hit()
	l.Stop()
	l.Hit()
	if got := r.get(); len(got) != 2 || got[0] != 1 || got[1] != 2 {
		t.Fatalf("lines: %v, want [1 2]", got)
	}
}
