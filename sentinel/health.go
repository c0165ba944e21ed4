package sentinel

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// replicaHealth is what one replica's own INFO last said. The health loop
// writes it under Watcher.mu; publish copies it into Topology.Replicas.
type replicaHealth struct {
	linkUp, loading bool
	offset, lag     int64 // -1: unknown
	checked         time.Time
	failing         bool // the last probe got no answer
	// foreign: its replication stream is not the master's (another
	// master, a zombie old one); logged once, and its lag is unknown.
	foreign bool
}

// unknownHealth is the health of a replica never read.
var unknownHealth = replicaHealth{offset: -1, lag: -1}

// apply copies h into r.
func (h replicaHealth) apply(r *Replica) {
	r.LinkUp, r.Loading, r.Offset, r.LagBytes, r.Checked = h.linkUp, h.loading, h.offset, h.lag, h.checked
	r.NoAnswer = h.failing
}

// probe is one answer to INFO from a node.
type probe struct {
	err        error
	at         time.Time // when the answer arrived
	linkUp     bool      // master_link_status:up
	loading    bool      // loading:1 or -LOADING
	offset     int64     // slave_repl_offset, -1 if absent
	replOffset int64     // master_repl_offset, -1 if absent
	replID     string    // master_replid: the replication stream it has or follows
	replID2    string    // master_replid2: the stream it had before, on a promotion or a switch of master
	master     bool      // role:master
	runID      string    // run_id: another one after a restart
}

// promotedOutOf reports whether p, a replica's INFO, says it is a master
// now and was promoted out of m's replication stream (m a master's INFO):
// on REPLICAOF NO ONE a replica starts a stream of its own and keeps the
// one it followed as master_replid2.
func (p probe) promotedOutOf(m probe) bool {
	return p.err == nil && p.master && m.err == nil && m.replID != "" && p.replID2 == m.replID
}

// healthLoop reads the replicas' own INFO every PollInterval, and at once
// when the published master or set of replicas changes (healthNow). Each
// round waits for all its probes, each bounded by DialTimeout, so a round
// takes at most about DialTimeout; the decide loop never waits for it.
func (w *Watcher) healthLoop(ctx context.Context, n *nodes) {
	t := time.NewTicker(w.cfg.PollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-w.healthNow:
		}
		w.healthRound(ctx, n)
	}
}

// healthRound asks every replica of the published Topology for INFO, and
// the master for its master_repl_offset, all at the same moment so that
// the lag compares offsets read within a few milliseconds of each other.
func (w *Watcher) healthRound(ctx context.Context, n *nodes) {
	top := w.topo.Load()
	addrs := make([]string, len(top.Replicas))
	for i, r := range top.Replicas {
		addrs[i] = r.Addr
	}
	probes := make([]probe, len(addrs))
	master := probe{replOffset: -1}
	if len(addrs) > 0 {
		qctx, cancel := context.WithTimeout(ctx, w.cfg.DialTimeout)
		var wg sync.WaitGroup
		if top.Master != "" {
			wg.Go(func() { master = queryInfo(qctx, n.client(top.Master), "replication") })
		}
		for i, a := range addrs {
			wg.Go(func() { probes[i] = queryInfo(qctx, n.client(a), "replication", "persistence", "server") })
		}
		wg.Wait()
		cancel()
	}
	if ctx.Err() != nil {
		return // probes cut short by shutdown say nothing about the replicas
	}
	if w.topo.Load().Master != top.Master {
		// The master switched while the probes were out: they judge
		// the replicas against the old one (the new master "follows
		// another stream", the old one's replicas are "promoted out of
		// it"). Start again on the new one.
		select {
		case w.healthNow <- struct{}{}:
		default:
		}
		return
	}
	refused := top.Master != "" && len(addrs) > 0 && isRedisError(master.err)
	answered := master.err == nil && master.replOffset >= 0
	switch {
	case answered:
		w.lastMaster, w.lastMasterAddr = master, top.Master
	case top.Master != "" && top.Master == w.lastMasterAddr && master.err != nil && !isRedisError(master.err):
		// The master did not answer (stopped, forking, busy with a long
		// script): compare with its offset as last read. A master that
		// cannot answer INFO acknowledges hardly any writes either, so a
		// replica caught up with that offset is as fresh as a read can
		// be, and the read port keeps serving while the master is stuck
		// instead of losing every replica at once. Not when it answers
		// with an error (an ACL that denies INFO): it is alive and may
		// take writes, so the lag is unknown.
		master = w.lastMaster
	}
	switch {
	case refused && !w.masterInfoRefused:
		w.log.Warn("sentinel: the master refuses INFO; the replicas' lag is unknown, so they serve no reads, and a promotion no Sentinel followed has announced is not seen",
			zap.String("master", top.Master), zap.Error(master.err))
		w.masterInfoRefused = true
	case answered && w.masterInfoRefused:
		w.log.Info("sentinel: the master answers INFO again", zap.String("master", top.Master))
		w.masterInfoRefused = false
	}

	w.mu.Lock()
	defer w.mu.Unlock()
	old := w.health
	w.health = make(map[string]replicaHealth, len(addrs))
	for i, a := range addrs {
		h, ok := old[a]
		if !ok {
			h = unknownHealth
		}
		p := probes[i]
		if p.err != nil {
			if !h.failing {
				w.log.Warn("sentinel: replica does not answer INFO", zap.String("replica", a), zap.Error(p.err))
			}
			h.failing = true
			w.healthAging = true
			w.health[a] = h
			continue
		}
		if h.failing {
			w.log.Info("sentinel: replica answers INFO again", zap.String("replica", a))
		}
		foreign := master.err == nil && master.replID != "" && p.replID != "" && p.replID != master.replID
		if foreign && !h.foreign {
			w.log.Warn("sentinel: replica follows another replication stream than the master's; it serves no reads",
				zap.String("replica", a), zap.String("master", top.Master))
		}
		h = replicaHealth{linkUp: p.linkUp, loading: p.loading, offset: p.offset, lag: -1, checked: p.at, foreign: foreign}
		if !foreign && master.err == nil && master.replOffset >= 0 && p.offset >= 0 {
			// The replica may have been read just after the master took
			// more writes: a negative lag means caught up. Offsets of
			// different streams do not compare (foreign): a replica of
			// another master could be "ahead".
			h.lag = max(0, master.replOffset-p.offset)
		}
		w.health[a] = h
	}
	w.notePromotions(top, probes, master)
	w.poke()
}

// notePromotions records the replicas whose INFO says they were promoted
// out of the master's replication stream (probe.promotedOutOf), with when
// each was first seen so: the trace of a failover whose leader the
// Watcher does not follow (step). One that did not answer, or a round
// whose master did not, keeps what was last seen: a promotion is not
// undone by the promoted replica going quiet (Sentinel's leader kills
// the promoted replica's client connections). Not once the Sentinels
// flag it down: a dead node's last word would hold the group for ever.
//
// Only the process last seen there as a replica counts (its run_id): a
// replica restarted without REPLICAOF in its configuration (Sentinel's
// is not saved without a writable config file) loads its RDB, starts as
// a master, and names the stream the RDB came from, the master's, as its
// master_replid2, though nothing promoted it; Sentinel converts it back.
// w.mu is held.
func (w *Watcher) notePromotions(top *Topology, probes []probe, master probe) {
	masterAddr := top.Master
	old := w.promoted
	if w.promotedOf != masterAddr {
		old = nil
	}
	w.promoted, w.promotedOf, w.notPromoted = nil, masterAddr, nil
	wasReplica := w.replicaRunID
	w.replicaRunID = make(map[string]string, len(top.Replicas))
	keep := func(a string, since time.Time) {
		if w.promoted == nil {
			w.promoted = map[string]time.Time{}
		}
		w.promoted[a] = since
	}
	for i, r := range top.Replicas {
		a, p := r.Addr, probes[i]
		since, was := old[a]
		id := wasReplica[a]
		if p.err == nil && p.runID == "" && !p.loading && !w.noRunIDWarned {
			w.noRunIDWarned = true
			w.log.Warn("sentinel: replica's INFO has no run_id; a promotion no Sentinel followed has announced is not seen in it",
				zap.String("replica", a))
		}
		if p.err == nil && !p.master && p.runID != "" {
			w.replicaRunID[a] = p.runID
		} else if id != "" {
			w.replicaRunID[a] = id
		}
		switch {
		case p.err != nil && r.Down:
			if was {
				w.log.Info("sentinel: replica that said it was promoted out of the master is down", zap.String("replica", a), zap.String("master", masterAddr))
				w.urgent = true
			}
		case p.err != nil || master.err != nil || master.replID == "":
			if was {
				keep(a, since)
			}
		case p.promotedOutOf(master) && p.runID != "" && p.runID == id:
			if !was {
				w.log.Info("sentinel: replica says it was promoted out of the master",
					zap.String("replica", a), zap.String("master", masterAddr))
				since = p.at
				w.urgent = true
			}
			keep(a, since)
		default:
			if w.notPromoted == nil {
				w.notPromoted = map[string]bool{}
			}
			w.notPromoted[a] = true
			if was {
				w.log.Info("sentinel: replica no longer says it was promoted out of the master", zap.String("replica", a), zap.String("master", masterAddr))
				w.urgent = true
			}
		}
	}
}

// queryInfo reads the given INFO sections from a node. A -LOADING error
// is an answer: the node is alive and loading its data set.
func queryInfo(ctx context.Context, c *redis.Client, sections ...string) probe {
	s, err := c.Info(ctx, sections...).Result()
	if err != nil && len(sections) > 1 && isRedisError(err) && !isLoading(err) {
		// Before Redis 7, INFO takes one section: the default set
		// includes both replication and persistence.
		s, err = c.Info(ctx).Result()
	}
	p := probe{at: time.Now(), offset: -1, replOffset: -1}
	switch {
	case isLoading(err):
		p.loading = true
	case err != nil:
		p.err = err
	default:
		parseInfo(s, &p)
	}
	return p
}

func isLoading(err error) bool {
	var re redis.Error
	return errors.As(err, &re) && strings.HasPrefix(re.Error(), "LOADING")
}

// parseInfo reads the fields health needs from an INFO reply.
func parseInfo(s string, p *probe) {
	for line := range strings.Lines(s) {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok {
			continue
		}
		switch k {
		case "master_link_status":
			p.linkUp = v == "up"
		case "loading":
			p.loading = v == "1"
		case "slave_repl_offset":
			if o, err := strconv.ParseInt(v, 10, 64); err == nil {
				p.offset = o
			}
		case "master_repl_offset":
			if o, err := strconv.ParseInt(v, 10, 64); err == nil {
				p.replOffset = o
			}
		case "master_replid":
			p.replID = v
		case "master_replid2":
			p.replID2 = v
		case "role":
			p.master = v == "master"
		case "run_id":
			p.runID = v
		}
	}
}

// replicaHealthOf fills in the replicas' own health from the last health
// rounds, and reports (and clears) whether a replica failed to answer
// since the last call.
func (w *Watcher) replicaHealthOf(reps []Replica) (aging bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for i := range reps {
		h, ok := w.health[reps[i].Addr]
		if !ok {
			h = unknownHealth
		}
		h.apply(&reps[i])
	}
	aging, w.healthAging = w.healthAging, false
	return aging
}
