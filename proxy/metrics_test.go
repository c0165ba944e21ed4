package proxy_test

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/pnats/switchyard/internal/lab"
	"github.com/pnats/switchyard/internal/lab/labtest"
	"github.com/pnats/switchyard/proxy"
	"github.com/pnats/switchyard/router"
)

// count is an honest fake of a Prometheus counter or histogram: it keeps
// the number of calls and their sum.
type count struct {
	mu    sync.Mutex
	calls int
	sum   float64
}

func (c *count) Add(v float64)     { c.mu.Lock(); c.calls++; c.sum += v; c.mu.Unlock() }
func (c *count) Observe(v float64) { c.Add(v) }
func (c *count) get() (int, float64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls, c.sum
}

// batchCount is count for a proxy.BatchObserver: calls counts the values
// recorded, and batches the calls that recorded them.
type batchCount struct {
	count
	batches int
}

func (c *batchCount) Observe(v float64) { c.ObserveN(v, 1) }
func (c *batchCount) ObserveN(v float64, n int) {
	c.mu.Lock()
	c.calls += n
	c.sum += v * float64(n)
	c.batches++
	c.mu.Unlock()
}

func commandID(t *testing.T, name string) int {
	for id := 0; id < router.NumCommandIDs; id++ {
		if router.CommandName(id) == name {
			return id
		}
	}
	t.Fatalf("%s has no metric ID", name)
	return 0
}

func TestMetricsAndStats(t *testing.T) {
	m := &proxy.Metrics{
		ClientsAccepted: &count{}, BytesIn: &count{}, BytesOut: &count{},
		BackendConnects: &count{}, Failovers: &count{},
	}
	durations := map[string]*count{}
	for _, name := range []string{"SELECT", "other"} {
		c := &count{}
		durations[name] = c
		m.CommandDuration[commandID(t, name)] = c
	}
	// GET's observer takes a run of GETs in one call.
	gets := &batchCount{}
	durations["GET"] = &gets.count
	m.CommandDuration[commandID(t, "GET")] = gets
	var firstEpoch atomic.Uint64
	m.FirstCommand = func(epoch uint64) { firstEpoch.Store(epoch) }

	rs := labtest.Server(t, lab.ServerOptions{})
	srv, addr := startProxy(t, rs.Addr, proxy.Config{Metrics: m})
	raw := dialRaw(t, addr)
	const n = 25
	raw.send(strings.Repeat("GET metrics:k\r\n", n)) // one pipeline
	for i := 0; i < n; i++ {
		if l := raw.line(); l != "$-1" {
			t.Fatalf("GET %d: %q", i, l)
		}
	}
	raw.send("SELECT 1\r\nNOSUCHCMD\r\n")
	raw.line()
	raw.line()

	if c, _ := durations["GET"].get(); c != n {
		t.Errorf("GET observed %d times, want %d", c, n)
	}
	gets.mu.Lock()
	if gets.batches >= n {
		t.Errorf("a pipeline of %d GETs was observed in %d calls", n, gets.batches)
	}
	gets.mu.Unlock()
	if c, _ := durations["SELECT"].get(); c != 1 {
		t.Errorf("SELECT observed %d times", c)
	}
	if c, _ := durations["other"].get(); c != 1 {
		t.Errorf("unknown command observed %d times as other", c)
	}
	if c, _ := m.ClientsAccepted.(*count).get(); c != 1 {
		t.Errorf("clients accepted %d", c)
	}
	if _, b := m.BytesIn.(*count).get(); b != float64(n*len("GET metrics:k\r\n")+len("SELECT 1\r\nNOSUCHCMD\r\n")) {
		t.Errorf("bytes in %v", b)
	}
	if _, b := m.BytesOut.(*count).get(); b == 0 {
		t.Error("bytes out not counted")
	}
	if c, _ := m.BackendConnects.(*count).get(); c == 0 {
		t.Error("backend connects not counted")
	}
	if firstEpoch.Load() != 1 {
		t.Errorf("FirstCommand epoch %d, want 1", firstEpoch.Load())
	}

	// A transaction pins the session; Stats sees it.
	tx := dialRaw(t, addr)
	tx.send("MULTI\r\n")
	tx.line()
	st := srv.Stats()
	if st.Clients != 2 || st.Pinned != 1 || st.Master != rs.Addr || st.Epoch != 1 || st.BackendConns < 2 {
		t.Fatalf("stats %+v", st)
	}

	other := labtest.Server(t, lab.ServerOptions{})
	srv.SetMaster(2, other.Addr)
	raw.send("PING\r\n")
	raw.line()
	waitFor(t, func() error {
		if firstEpoch.Load() != 2 {
			return fmt.Errorf("FirstCommand epoch %d after the switch", firstEpoch.Load())
		}
		return nil
	})
	if c, _ := m.Failovers.(*count).get(); c != 1 {
		t.Errorf("failovers %d", c)
	}
}
