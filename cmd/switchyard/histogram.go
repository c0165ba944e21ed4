package main

import (
	"math"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// histogramSet is a histogram vector for the data path's command
// durations. It exports what a prometheus.HistogramVec would, but records
// a run of equal values in one step (ObserveN): a client's pipeline is
// answered together, and a prometheus.Histogram would take four atomic
// additions per command of it. Series are made on first use.
type histogramSet struct {
	desc   *prometheus.Desc
	bounds []float64 // upper bounds, ascending; +Inf is implied

	mu     sync.Mutex
	series map[string]*histogram // by the labels' values joined with 0 bytes
}

type histogram struct {
	labels  []string
	counts  []atomic.Uint64 // per bucket (not cumulative), +Inf last
	sumBits atomic.Uint64   // float64 bits of the sum of the values
}

func newHistogramSet(name, help string, bounds []float64, labels ...string) *histogramSet {
	return &histogramSet{
		desc:   prometheus.NewDesc(name, help, labels, nil),
		bounds: bounds,
		series: map[string]*histogram{},
	}
}

// with returns the series of these label values, making it if need be.
func (s *histogramSet) with(values ...string) *histogram {
	key := joinLabels(values)
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.series[key]
	if h == nil {
		h = &histogram{labels: append([]string(nil), values...), counts: make([]atomic.Uint64, len(s.bounds)+1)}
		s.series[key] = h
	}
	return h
}

func joinLabels(values []string) string {
	key := ""
	for _, v := range values {
		key += v + "\x00"
	}
	return key
}

// forget drops the series whose first label (the group) is group.
func (s *histogramSet) forget(group string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for key, h := range s.series {
		if h.labels[0] == group {
			delete(s.series, key)
		}
	}
}

func (s *histogramSet) Describe(ch chan<- *prometheus.Desc) { ch <- s.desc }

func (s *histogramSet) Collect(ch chan<- prometheus.Metric) {
	s.mu.Lock()
	all := make([]*histogram, 0, len(s.series))
	for _, h := range s.series {
		all = append(all, h)
	}
	s.mu.Unlock()
	for _, h := range all {
		// The count is the buckets' total, read once, so that it always
		// equals the +Inf bucket; the sum may include an observation
		// the buckets do not yet, as with any concurrent scrape.
		cumulative := make(map[float64]uint64, len(s.bounds))
		var total uint64
		for i := range h.counts {
			total += h.counts[i].Load()
			if i < len(s.bounds) {
				cumulative[s.bounds[i]] = total
			}
		}
		ch <- prometheus.MustNewConstHistogram(s.desc, total, math.Float64frombits(h.sumBits.Load()), cumulative, h.labels...)
	}
}

// bucket is the index of the bucket v falls in: the first whose upper
// bound is at least v (buckets are "less than or equal"), or +Inf's.
func (s *histogramSet) bucket(v float64) int {
	return sort.SearchFloat64s(s.bounds, v)
}

// observeN records v n times.
func (h *histogram) observeN(set *histogramSet, v float64, n int) {
	if n <= 0 {
		return
	}
	h.counts[set.bucket(v)].Add(uint64(n))
	add := v * float64(n)
	for {
		old := h.sumBits.Load()
		if h.sumBits.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+add)) {
			return
		}
	}
}

// lazyHistogram is one series of a histogramSet, made on its first
// observation, so that commands never used add no series. It is a
// proxy.BatchObserver.
type lazyHistogram struct {
	set    *histogramSet
	labels []string
	once   sync.Once
	h      *histogram
}

func (l *lazyHistogram) Observe(v float64) { l.ObserveN(v, 1) }

func (l *lazyHistogram) ObserveN(v float64, n int) {
	l.once.Do(func() { l.h = l.set.with(l.labels...) })
	l.h.observeN(l.set, v, n)
}
