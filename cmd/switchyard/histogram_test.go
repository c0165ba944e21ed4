package main

import (
	"math"
	"math/rand"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// The command-duration histograms scrape exactly as client_golang's
// HistogramVec would for the same observations, whether they came one at
// a time or in runs, including values on a bucket's bound and past the
// last; forgetting a group drops its series only.
func TestHistogramSetMatchesPrometheus(t *testing.T) {
	bounds := []float64{.001, .01, .1, 1}
	mine := newHistogramSet("h_seconds", "help", bounds, "group", "role", "command")
	ref := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "h_seconds", Help: "help", Buckets: bounds},
		[]string{"group", "role", "command"})
	values := []float64{0, .0005, .001, .002, .01, .05, .1, .5, 1, 2, 30}
	rng := rand.New(rand.NewSource(1))
	labels := [][]string{{"a", "master", "GET"}, {"a", "replica", "GET"}, {"b", "master", "SET"}}
	lazy := make([]*lazyHistogram, len(labels))
	for i, l := range labels {
		lazy[i] = &lazyHistogram{set: mine, labels: l}
	}
	for i := 0; i < 2000; i++ {
		which, v, n := rng.Intn(len(labels)), values[rng.Intn(len(values))], 1+rng.Intn(20)
		if rng.Intn(2) == 0 {
			lazy[which].ObserveN(v, n)
		} else {
			for k := 0; k < n; k++ {
				lazy[which].Observe(v)
			}
		}
		for k := 0; k < n; k++ {
			ref.WithLabelValues(labels[which]...).Observe(v)
		}
	}
	compare := func() {
		t.Helper()
		got, want := gatherHistograms(t, mine), gatherHistograms(t, ref)
		if len(got) != len(want) {
			t.Fatalf("%d series, want %d", len(got), len(want))
		}
		for key, w := range want {
			g := got[key]
			if g == nil {
				t.Fatalf("series %s missing", key)
			}
			if g.count != w.count || math.Abs(g.sum-w.sum) > 1e-6*w.sum {
				t.Fatalf("series %s: count %d sum %v, want %d and %v", key, g.count, g.sum, w.count, w.sum)
			}
			if len(g.buckets) != len(w.buckets) {
				t.Fatalf("series %s: buckets %v, want %v", key, g.buckets, w.buckets)
			}
			for i, wb := range w.buckets {
				if g.buckets[i] != wb {
					t.Fatalf("series %s: buckets %v, want %v", key, g.buckets, w.buckets)
				}
			}
		}
	}
	compare()
	mine.forget("a")
	ref.DeletePartialMatch(prometheus.Labels{"group": "a"})
	compare()
}

// Concurrent observations are all counted.
func TestHistogramSetConcurrent(t *testing.T) {
	set := newHistogramSet("h_seconds", "help", []float64{.001, .01}, "group", "role", "command")
	l := &lazyHistogram{set: set, labels: []string{"a", "master", "GET"}}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 1000; i++ {
				l.ObserveN(.005, 3)
			}
		}()
	}
	wg.Wait()
	h := gatherHistograms(t, set)["GET/a/master"]
	if h == nil || h.count != 24000 || math.Abs(h.sum-120) > 1e-6 || h.buckets[0] != [2]float64{.001, 0} || h.buckets[1] != [2]float64{.01, 24000} {
		t.Fatalf("after 8×1000 runs of 3: %+v", h)
	}
}

// scrapedHistogram is one histogram series as scraped: its count, sum,
// and each bucket's upper bound and cumulative count.
type scrapedHistogram struct {
	count   uint64
	sum     float64
	buckets [][2]float64
}

// gatherHistograms scrapes c's histograms, by their label values in the
// labels' name order, joined with "/".
func gatherHistograms(t *testing.T, c prometheus.Collector) map[string]*scrapedHistogram {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*scrapedHistogram{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := ""
			for _, l := range m.GetLabel() {
				if key != "" {
					key += "/"
				}
				key += l.GetValue()
			}
			h := m.GetHistogram()
			sh := &scrapedHistogram{count: h.GetSampleCount(), sum: h.GetSampleSum()}
			for _, b := range h.GetBucket() {
				sh.buckets = append(sh.buckets, [2]float64{b.GetUpperBound(), float64(b.GetCumulativeCount())})
			}
			out[key] = sh
		}
	}
	return out
}
