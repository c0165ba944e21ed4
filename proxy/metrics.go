package proxy

import (
	"time"

	"github.com/pnats/switchyard/router"
)

// Counter, Gauge and Observer are what the data path records into. They
// are declared here so that this package does not import a metrics
// library: cmd passes Prometheus collectors, which satisfy them.
type Counter interface{ Add(float64) }
type Observer interface{ Observe(float64) }

// BatchObserver is an Observer that can record a value n times in one
// call. A client's pipeline is answered together, so its commands share a
// duration; an Observer that is a BatchObserver gets one call per run of
// the same command instead of one per command.
type BatchObserver interface {
	Observer
	ObserveN(v float64, n int)
}

// Metrics are the data path's counters and histograms. A nil field is not
// recorded. Gauges (clients, pinned sessions, backend connections, queued
// requests) are not here: Stats reads them when they are scraped, so they
// cost the data path nothing.
type Metrics struct {
	ClientsAccepted Counter // clients accepted
	ClientsRejected Counter // clients refused at MaxClients
	// SlowClients counts clients disconnected because a write to them made
	// no progress for ClientWriteTimeout.
	SlowClients Counter
	// OutputLimitClients counts clients disconnected because the replies
	// held for them passed ClientOutputLimit.
	OutputLimitClients Counter
	// AuthFailures counts AUTH (and HELLO … AUTH) refused, by the proxy
	// or by Redis.
	AuthFailures    Counter
	BytesIn         Counter // bytes read from clients
	BytesOut        Counter // bytes written to clients
	BackendConnects Counter // backend connections established
	BackendErrors   Counter // failed dials and backend connections lost
	Failovers       Counter // master changes (SetMaster to a new node)
	// BlockedResent counts pops and stream reads sent again after a
	// failover: unblocked on the old master by its hold, or fenced
	// before they were written (session.reblock).
	BlockedResent Counter
	// CommandDuration observes, per command ID (router.CommandName), the
	// seconds from reading a command to having its reply.
	CommandDuration [router.NumCommandIDs]Observer
	// ReplicaCommandDuration is the same for commands a replica served.
	ReplicaCommandDuration [router.NumCommandIDs]Observer
	// FirstCommand is called once per master change, when the first
	// command is routed to the new master, with that master's epoch.
	FirstCommand func(epoch uint64)
}

func (m *Metrics) add(c Counter, v float64) {
	if c != nil {
		c.Add(v)
	}
}

// observe records one duration for each command ID in ids, under the
// master's or the replicas' observers.
func (m *Metrics) observe(ids []uint16, d time.Duration, replica bool) {
	obs := &m.CommandDuration
	if replica {
		obs = &m.ReplicaCommandDuration
	}
	secs := d.Seconds()
	for i := 0; i < len(ids); {
		id, n := ids[i], 1
		for i+n < len(ids) && ids[i+n] == id {
			n++
		}
		i += n
		switch o := obs[id].(type) {
		case nil:
		case BatchObserver:
			o.ObserveN(secs, n)
		default:
			for ; n > 0; n-- {
				o.Observe(secs)
			}
		}
	}
}

// Stats is a snapshot of the server's gauges.
type Stats struct {
	Clients        int // connected clients
	EventLoop      int // clients the event loop serves (no goroutine of their own)
	Pinned         int // sessions holding a dedicated backend connection
	BackendConns   int // open backend connections to the current master
	BackendPending int // requests written to the master and awaiting replies
	Held           bool
	Master         string
	Epoch          uint64
}

// Stats returns the current gauges.
func (s *Server) Stats() Stats {
	var st Stats
	s.mu.Lock()
	st.Clients = len(s.sessions)
	for sess := range s.sessions {
		if sess.pinned.Load() {
			st.Pinned++
		}
		if sess.inLoopNow() {
			st.EventLoop++
		}
	}
	s.mu.Unlock()
	st.Held = s.held.Load()
	if g := s.gen.Load(); g != nil {
		st.Master, st.Epoch = g.addr, g.epoch
		st.BackendConns, st.BackendPending = g.stats()
	}
	return st
}

// stats counts the generation's open connections and pending replies.
func (g *generation) stats() (conns, pending int) {
	g.mu.Lock()
	pools := make([]*pool, 0, len(g.pools))
	for _, p := range g.pools {
		pools = append(pools, p)
	}
	g.mu.Unlock()
	for _, p := range pools {
		p.mu.Lock()
		for _, sl := range p.slots {
			if sl.conn != nil && sl.conn.alive() {
				conns++
				pending += int(sl.conn.outstanding.Load())
			}
		}
		conns += len(p.idle) + len(p.active)
		for c := range p.active {
			pending += int(c.outstanding.Load())
		}
		p.mu.Unlock()
	}
	return conns, pending
}
