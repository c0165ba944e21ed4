package proxy_test

import (
	"fmt"
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
	for _, name := range []string{"GET", "SELECT", "other"} {
		c := &count{}
		durations[name] = c
		m.CommandDuration[commandID(t, name)] = c
	}
	var firstEpoch atomic.Uint64
	m.FirstCommand = func(epoch uint64) { firstEpoch.Store(epoch) }

	rs := labtest.Server(t, lab.ServerOptions{})
	srv, addr := startProxy(t, rs.Addr, proxy.Config{Metrics: m})
	raw := dialRaw(t, addr)
	const n = 25
	for i := 0; i < n; i++ {
		raw.send("GET metrics:k\r\n")
	}
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
