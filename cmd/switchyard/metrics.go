package main

import (
	"time"

	"github.com/pnats/switchyard/proxy"
	"github.com/pnats/switchyard/router"
	"github.com/pnats/switchyard/sentinel"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the binary's Prometheus collectors. Labels are bounded: the
// group (configured), the role (master), the command (router's fixed list
// plus "other") and the group state (five values).
type metrics struct {
	reg *prometheus.Registry

	accepted, rejected, slow, outputLimit *prometheus.CounterVec
	authFailures                          *prometheus.CounterVec
	bytesIn, bytesOut                     *prometheus.CounterVec
	connects, backendErrors, failovers    *prometheus.CounterVec
	blockedResent                         *prometheus.CounterVec
	duration                              *histogramSet
	firstCommand                          *prometheus.HistogramVec
}

func newMetrics() *metrics {
	counter := func(name, help string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "switchyard", Name: name, Help: help}, []string{"group"})
	}
	m := &metrics{
		reg:           prometheus.NewRegistry(),
		accepted:      counter("client_connections_total", "Client connections accepted."),
		rejected:      counter("client_connections_rejected_total", "Client connections refused because max clients was reached."),
		slow:          counter("client_slow_disconnects_total", "Clients disconnected because they read nothing of a reply for client_write_timeout."),
		outputLimit:   counter("client_output_limit_disconnects_total", "Clients disconnected because the replies held for them passed client_output_limit."),
		authFailures:  counter("client_auth_failures_total", "AUTH and HELLO AUTH refused, by the proxy (client_auth) or by Redis."),
		bytesIn:       counter("client_received_bytes_total", "Bytes read from clients."),
		bytesOut:      counter("client_sent_bytes_total", "Bytes written to clients."),
		connects:      counter("backend_connects_total", "Backend connections established."),
		backendErrors: counter("backend_errors_total", "Backend dials that failed and backend connections lost."),
		failovers:     counter("failovers_total", "Master changes followed."),
		blockedResent: counter("blocked_commands_resent_total", "Blocked pops and stream reads sent again to the master a failover left, having taken nothing on the old one."),
		duration: newHistogramSet("switchyard_command_duration_seconds",
			"Time from reading a command to having its reply, by group, role and command (a fixed set of names, others as 'other').",
			[]float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .1, .5, 2},
			"group", "role", "command"),
		firstCommand: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "switchyard", Name: "switch_to_first_command_seconds",
			Help:    "Time from the Sentinel event (+switch-master or +promoted-slave) that announced a new master to the first command routed to it.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"group"}),
	}
	m.reg.MustRegister(m.accepted, m.rejected, m.slow, m.outputLimit, m.authFailures, m.bytesIn, m.bytesOut, m.connects, m.backendErrors,
		m.failovers, m.blockedResent, m.duration, m.firstCommand,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// forget drops a removed group's series.
func (m *metrics) forget(group string) {
	l := prometheus.Labels{"group": group}
	for _, v := range []*prometheus.CounterVec{m.accepted, m.rejected, m.slow, m.outputLimit, m.authFailures, m.bytesIn, m.bytesOut, m.connects, m.backendErrors, m.failovers, m.blockedResent} {
		v.DeletePartialMatch(l)
	}
	m.duration.forget(group)
	m.firstCommand.DeletePartialMatch(l)
}

// forGroup returns the proxy's hooks for one group. Per-command histograms
// are created on first use, so unused commands add no series.
func (m *metrics) forGroup(name string, topology func() sentinel.Topology) *proxy.Metrics {
	pm := &proxy.Metrics{
		ClientsAccepted:    m.accepted.WithLabelValues(name),
		ClientsRejected:    m.rejected.WithLabelValues(name),
		SlowClients:        m.slow.WithLabelValues(name),
		OutputLimitClients: m.outputLimit.WithLabelValues(name),
		AuthFailures:       m.authFailures.WithLabelValues(name),
		BytesIn:            m.bytesIn.WithLabelValues(name),
		BytesOut:           m.bytesOut.WithLabelValues(name),
		BackendConnects:    m.connects.WithLabelValues(name),
		BackendErrors:      m.backendErrors.WithLabelValues(name),
		Failovers:          m.failovers.WithLabelValues(name),
		BlockedResent:      m.blockedResent.WithLabelValues(name),
	}
	for id := range pm.CommandDuration {
		pm.CommandDuration[id] = &lazyHistogram{set: m.duration, labels: []string{name, "master", router.CommandName(id)}}
		pm.ReplicaCommandDuration[id] = &lazyHistogram{set: m.duration, labels: []string{name, "replica", router.CommandName(id)}}
	}
	if topology != nil {
		first := m.firstCommand.WithLabelValues(name)
		pm.FirstCommand = func(epoch uint64) {
			t := topology()
			if t.Epoch != epoch || t.SwitchEvent.IsZero() {
				return // the first master, or a switch found by polling: no event to measure from
			}
			first.Observe(time.Since(t.SwitchEvent).Seconds())
		}
	}
	return pm
}

// groupCollector reads each group's gauges when scraped.
type groupCollector struct {
	groups, draining func() []*group

	clients, looped, pinned, backendConns, pending, held, epoch, master, lastSwitch,
	state, sentinels, reachable, disagreeing, replicas, replicasDown, replicaLag, replicaReads *prometheus.Desc
}

func newGroupCollector(groups, draining func() []*group) *groupCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("switchyard_"+name, help, append([]string{"group"}, labels...), nil)
	}
	return &groupCollector{
		groups:       groups,
		draining:     draining,
		clients:      d("client_connections", "Clients connected now (compare redis_connected_clients), including those of a configuration a reload replaced, while they drain."),
		looped:       d("event_loop_clients", "Clients served by the event loop (plain TCP, no session state); the others have a goroutine each."),
		pinned:       d("pinned_sessions", "Clients holding a dedicated backend connection (transaction, blocking command, Pub/Sub, MONITOR)."),
		backendConns: d("backend_connections", "Open connections to the current master."),
		pending:      d("backend_pending_requests", "Requests written to the master and awaiting replies: pool saturation."),
		held:         d("commands_held", "1 while new commands are held because a failover is in progress or no master is verified."),
		epoch:        d("master_epoch", "Master changes this process has followed for the group since the group started, the first master counting 1; local to the process."),
		master:       d("master", "1 for the address of the group's verified master, absent while there is none: compare it across instances.", "master"),
		lastSwitch:   d("last_switch_timestamp_seconds", "Unix time at which this process last changed the group's master, its first verification after a start included."),
		state:        d("group_state", "1 for the group's current state.", "state"),
		sentinels:    d("sentinels", "Sentinels known for the group."),
		reachable:    d("sentinels_reachable", "Sentinels that answered the last poll."),
		disagreeing:  d("sentinels_disagreeing", "Reachable Sentinels that name a different master than the chosen one."),
		replicas:     d("replicas", "Replicas the Sentinels report."),
		replicasDown: d("replicas_down", "Replicas flagged s_down, o_down or disconnected."),
		replicaLag:   d("replica_lag_bytes", "Bytes of the master's replication stream a replica has not received, as the watcher last read it; absent while unknown.", "replica"),
		replicaReads: d("replica_serving_reads", "1 while a replica is eligible to serve reads, for a read port or prefer-replica if the group has them: not flagged, link up, not loading, fresh and within max_replica_lag_bytes.", "replica"),
	}
}

func (c *groupCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.clients, c.looped, c.pinned, c.backendConns, c.pending, c.held, c.epoch, c.master,
		c.lastSwitch, c.state, c.sentinels, c.reachable, c.disagreeing, c.replicas, c.replicasDown, c.replicaLag, c.replicaReads} {
		ch <- d
	}
}

func (c *groupCollector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	b := func(v bool) float64 {
		if v {
			return 1
		}
		return 0
	}
	// A group a reload replaced keeps its clients until they have drained;
	// they are still connected, under the same name.
	drains := map[string]proxy.Stats{}
	for _, g := range c.draining() {
		st, d := g.srv.Stats(), drains[g.cfg.Name]
		d.Clients += st.Clients
		d.EventLoop += st.EventLoop
		d.Pinned += st.Pinned
		d.BackendConns += st.BackendConns
		d.BackendPending += st.BackendPending
		drains[g.cfg.Name] = d
	}
	conns := func(name string, st proxy.Stats) {
		d := drains[name]
		delete(drains, name)
		gauge(c.clients, float64(st.Clients+d.Clients), name)
		gauge(c.looped, float64(st.EventLoop+d.EventLoop), name)
		gauge(c.pinned, float64(st.Pinned+d.Pinned), name)
		gauge(c.backendConns, float64(st.BackendConns+d.BackendConns), name)
		gauge(c.pending, float64(st.BackendPending+d.BackendPending), name)
	}
	for _, g := range c.groups() {
		name := g.cfg.Name
		st := g.srv.Stats()
		conns(name, st)
		gauge(c.held, b(st.Held), name)
		gauge(c.epoch, float64(st.Epoch), name)
		if g.watcher == nil {
			if addr, _, ok := g.srv.Master(); ok {
				gauge(c.master, 1, name, addr)
			}
			continue
		}
		t := g.watcher.Topology()
		switch t.State {
		case sentinel.StateReady, sentinel.StateDegraded:
			gauge(c.master, 1, name, t.Master) // absent while failing closed or held for a failover
		}
		if !t.LastSwitch.IsZero() {
			gauge(c.lastSwitch, float64(t.LastSwitch.UnixNano())/1e9, name)
		}
		for s := sentinel.StateUnknown; s <= sentinel.StateDegraded; s++ {
			gauge(c.state, b(t.State == s), name, s.String())
		}
		reach, disagree := 0, 0
		for _, s := range t.Sentinels {
			if s.Reachable {
				reach++
				if !s.Agrees {
					disagree++
				}
			}
		}
		gauge(c.sentinels, float64(len(t.Sentinels)), name)
		gauge(c.reachable, float64(reach), name)
		gauge(c.disagreeing, float64(disagree), name)
		down := 0
		now := time.Now()
		for _, r := range t.Replicas {
			if r.Down {
				down++
			}
			if r.Addr == t.Master {
				continue
			}
			if r.LagBytes >= 0 && !r.Checked.IsZero() {
				gauge(c.replicaLag, float64(r.LagBytes), name, r.Addr)
			}
			gauge(c.replicaReads, b(r.Healthy(g.maxLag, g.staleAfter(), now)), name, r.Addr)
		}
		gauge(c.replicas, float64(len(t.Replicas)), name)
		gauge(c.replicasDown, float64(down), name)
	}
	for name := range drains { // groups a reload removed, still draining
		conns(name, proxy.Stats{})
	}
}
