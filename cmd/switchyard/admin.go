package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"sync/atomic"
	"time"

	"github.com/pnats/switchyard/sentinel"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
)

type adminServer struct {
	srv  *http.Server
	addr string // the address it listens on
	// draining is set once a SIGTERM starts the drain: /readyz then
	// answers 503, so that whatever balances on it stops sending clients.
	draining atomic.Bool
}

func (a *adminServer) Close() {
	if a.srv != nil {
		a.srv.Close()
	}
}

// startAdmin serves, on addr (empty: off):
//   - /healthz: the process is alive;
//   - /readyz: every group has a verified master;
//   - /status: each group's topology as JSON;
//   - /metrics: Prometheus.
//
// It reports on the running groups (groups) and, in /status and the
// connection gauges, on the stopped ones still draining their clients
// (draining; nil for none).
func startAdmin(addr string, groups, draining func() []*group, m *metrics, log *zap.Logger) (*adminServer, error) {
	if addr == "" {
		return &adminServer{}, nil
	}
	a := &adminServer{}
	if draining == nil {
		draining = func() []*group { return nil }
	}
	m.reg.MustRegister(newGroupCollector(groups, draining))
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		if a.draining.Load() {
			http.Error(w, "not ready: draining", http.StatusServiceUnavailable)
			return
		}
		for _, g := range groups() {
			if _, _, ok := g.srv.Master(); !ok {
				http.Error(w, fmt.Sprintf("not ready: group %s has no verified master", g.cfg.Name), http.StatusServiceUnavailable)
				return
			}
		}
		fmt.Fprintln(w, "ready")
	})
	mux.HandleFunc("/status", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(statusOf(groups(), draining()))
	})
	mux.Handle("/metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("admin_listen %q: %w", addr, err)
	}
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := hs.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("admin server stopped", zap.Error(err))
		}
	}()
	log.Info("admin listening", zap.String("addr", l.Addr().String()))
	a.srv, a.addr = hs, l.Addr().String()
	return a, nil
}

// status is /status: what an operator needs to see about each group. It
// never contains credentials.
type status struct {
	Groups []groupStatus `json:"groups"`
	// Draining lists the configurations a reload replaced or removed (or
	// every group, during shutdown) whose clients have not all gone:
	// their clients count here, not under groups.
	Draining []drainingStatus `json:"draining,omitempty"`
}

type drainingStatus struct {
	Name    string `json:"name"`
	Listen  string `json:"listen"`
	Clients int    `json:"clients"`
	Pinned  int    `json:"pinned_sessions"`
	Backend int    `json:"backend_connections"`
	Pending int    `json:"backend_pending_requests"`
}

type groupStatus struct {
	Name       string                    `json:"name"`
	Listen     string                    `json:"listen"`
	Mode       string                    `json:"mode"` // "sentinel" or "fixed"
	State      string                    `json:"state"`
	Reason     string                    `json:"reason,omitempty"`
	Master     string                    `json:"master"`
	Epoch      uint64                    `json:"epoch"`
	Held       bool                      `json:"held"`
	Degraded   bool                      `json:"degraded"`
	LastSwitch *time.Time                `json:"last_switch,omitempty"`
	Clients    int                       `json:"clients"`
	Pinned     int                       `json:"pinned_sessions"`
	Backend    int                       `json:"backend_connections"`
	Pending    int                       `json:"backend_pending_requests"`
	Replicas   []replicaStatus           `json:"replicas,omitempty"`
	Sentinels  []sentinel.SentinelStatus `json:"sentinels,omitempty"`
}

type replicaStatus struct {
	Addr       string   `json:"addr"`
	Healthy    bool     `json:"healthy"`     // passes every read-health check
	InReadSet  bool     `json:"in_read_set"` // the proxy sends it reads now
	Flags      []string `json:"flags"`
	Link       string   `json:"master_link_status"`
	LinkUp     bool     `json:"link_up"` // its own INFO says so
	Loading    bool     `json:"loading"`
	LagBytes   int64    `json:"lag_bytes"`
	ReplOffset int64    `json:"repl_offset"`
	// CheckedAt is when its INFO last answered (staleness: the read set
	// drops a replica that has not answered for three poll intervals,
	// at least 2 s); nil if it never has.
	CheckedAt *time.Time `json:"checked_at"`
}

func statusOf(groups, draining []*group) status {
	// An empty list, not null, while no group runs (during shutdown).
	out := status{Groups: []groupStatus{}}
	for _, g := range draining {
		st := g.srv.Stats()
		out.Draining = append(out.Draining, drainingStatus{
			Name: g.cfg.Name, Listen: g.l.Addr().String(),
			Clients: st.Clients, Pinned: st.Pinned, Backend: st.BackendConns, Pending: st.BackendPending,
		})
	}
	for _, g := range groups {
		st := g.srv.Stats()
		gs := groupStatus{
			Name: g.cfg.Name, Listen: g.l.Addr().String(), Mode: "fixed", State: "ready",
			Master: st.Master, Epoch: st.Epoch, Held: st.Held,
			Clients: st.Clients, Pinned: st.Pinned, Backend: st.BackendConns, Pending: st.BackendPending,
		}
		if st.Master == "" {
			gs.State = "no-master"
		}
		if g.watcher != nil {
			t := g.watcher.Topology()
			gs.Mode = "sentinel"
			gs.State = t.State.String()
			gs.Reason = t.Reason
			gs.Degraded = t.State == sentinel.StateDegraded
			if !t.LastSwitch.IsZero() {
				ls := t.LastSwitch
				gs.LastSwitch = &ls
			}
			readSet := g.srv.Replicas()
			now := time.Now()
			for _, r := range t.Replicas {
				rs := replicaStatus{
					Addr: r.Addr, Healthy: r.Healthy(g.maxLag, g.staleAfter(), now),
					InReadSet: slices.Contains(readSet, r.Addr), Flags: r.Flags,
					Link: r.MasterLinkStatus, LinkUp: r.LinkUp, Loading: r.Loading,
					LagBytes: r.LagBytes, ReplOffset: r.ReplOffset,
				}
				if !r.Checked.IsZero() {
					at := r.Checked.UTC()
					rs.CheckedAt = &at
				}
				gs.Replicas = append(gs.Replicas, rs)
			}
			gs.Sentinels = t.Sentinels
		}
		out.Groups = append(out.Groups, gs)
	}
	return out
}
