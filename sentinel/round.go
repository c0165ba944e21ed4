package sentinel

import (
	"context"
	"maps"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"
)

// decideLoop runs decision rounds until ctx ends: every PollInterval (the
// ROLE re-check of the master), whenever a link or the health loop reports
// something new, and on Recheck. It is the only goroutine that touches the
// decider.
func (w *Watcher) decideLoop(ctx context.Context, wg *sync.WaitGroup, n *nodes) {
	d := &decider{
		b:     newBrain(w.cfg.FailoverHold, w.log),
		rc:    newRoleChecker(ctx, wg, n, w.cfg.DialTimeout, w.poke),
		reach: map[string]bool{},
	}
	tick := time.NewTicker(w.cfg.PollInterval)
	defer tick.Stop()
	for {
		force, ticked := false, false
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			ticked = true
		case <-w.wake:
		case <-w.recheck:
			force = true
			w.pokeLinks()
		}
		w.round(ctx, wg, d, force, ticked)
	}
}

// decider is the decide goroutine's own state; nothing else touches it.
type decider struct {
	b     *brain
	rc    *roleChecker
	reach map[string]bool // per link, to log lost and regained Sentinels
	// owed: a Topology differing only in the replicas' offsets, lag or
	// Checked was published (or a replica did not answer) without a
	// signal on Changes; the next tick sends it.
	owed bool
}

// round runs one decision and publishes its result if anything changed.
// ticked says the round is the one of this PollInterval's tick.
func (w *Watcher) round(ctx context.Context, wg *sync.WaitGroup, d *decider, force, ticked bool) {
	now := time.Now()
	views, events, seen, urgent, discovered, forgot := w.snapshot(now)
	for _, a := range forgot {
		w.log.Info("sentinel: forgot Sentinel: unreachable, and no reachable Sentinel lists it as up", zap.String("sentinel", a))
		delete(d.reach, a)
	}
	if urgent {
		force = true
	}
	if len(events) > 0 {
		// The other Sentinels have news too: hear it now, not next tick.
		w.pokeLinks()
	}
	for _, a := range discovered {
		if len(views) >= MaxSentinels {
			break
		}
		w.log.Info("sentinel: discovered Sentinel", zap.String("sentinel", a))
		w.addLink(ctx, wg, a, false)
		views = append(views, view{Addr: a})
	}
	for _, v := range views {
		// A Sentinel's first answer is logged too: one that refuses
		// from the start (a wrong password, an unknown master name)
		// must not go unlogged.
		if prev, seen := d.reach[v.Addr]; v.Attempted && (!seen || prev != v.Reachable) {
			if v.Reachable {
				w.log.Info("sentinel: Sentinel reachable", zap.String("sentinel", v.Addr), zap.String("names", v.Master))
			} else {
				w.log.Warn("sentinel: Sentinel lost", zap.String("sentinel", v.Addr), zap.String("error", v.Err))
			}
			d.reach[v.Addr] = v.Reachable
		}
	}

	maxAge := w.cfg.PollInterval / 2
	if force {
		maxAge = 0
	}
	asked := map[string]roleResult{}
	role := func(addr string) roleResult {
		if r, ok := asked[addr]; ok {
			return r
		}
		r := d.rc.check(ctx, addr, maxAge)
		asked[addr] = r
		return r
	}
	d.b.step(now, views, events, seen, role)
	if ctx.Err() != nil {
		return // a ROLE check cut short by shutdown decides nothing
	}
	d.rc.prune(10 * w.cfg.PollInterval)
	w.publish(d, views, ticked)
}

// snapshot copies the links' state and the replicas' word on promotions
// for one decision and takes the queued events. discovered lists Sentinel
// addresses not yet linked; forgot those whose links it ended (see
// forget).
func (w *Watcher) snapshot(now time.Time) (views []view, events []event, promo promotions, urgent bool, discovered, forgot []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	window := w.cfg.reachWindow()
	if w.cfg.Discover {
		forgot = w.forget(now, window)
	}
	seen := map[string]bool{}
	for _, a := range w.order {
		s := w.links[a]
		v := view{
			Addr:      a,
			ID:        s.id,
			Attempted: s.attempted,
			Reachable: s.err == "" && !s.lastOK.IsZero() && now.Sub(s.lastOK) <= window,
			Err:       s.err,
			IDRefused: s.idRefused,
		}
		if v.Reachable {
			v.Master = s.master
			v.MasterDown = s.masterDown
			v.Quorum = s.quorum
			v.FailingOver = s.failingOver
			v.FlagsAsked = s.flagsAsked
			v.Replicas = s.replicas
		} else if v.Err == "" && v.Attempted {
			v.Err = "no successful poll since " + s.lastOK.Format(time.RFC3339Nano)
		}
		views = append(views, v)
		if w.cfg.Discover {
			for _, d := range s.discovered {
				if w.links[d] == nil && !seen[d] {
					seen[d] = true
					discovered = append(discovered, d)
				}
			}
		}
	}
	events, w.events = w.events, nil
	urgent, w.urgent = w.urgent, false
	promo = promotions{of: w.promotedOf, since: maps.Clone(w.promoted), not: maps.Clone(w.notPromoted)}
	return views, events, promo, urgent, discovered, forgot
}

// forgetAfter is how many PollIntervals a discovered Sentinel must have
// been unreachable before forget may end its link.
const forgetAfter = 10

// forget ends the links to discovered Sentinels that are gone: not
// reachable for forgetAfter polls, and listed as up by none of the
// reachable Sentinels. In Kubernetes a restarted Sentinel pod comes back
// at a new address, and without this its old ones would be dialled for
// ever and fill the MaxSentinels slots, leaving none for new Sentinels.
// Seeds are never forgotten; nor is anything while no Sentinel answers,
// as then nothing says which Sentinels are gone. w.mu is held.
func (w *Watcher) forget(now time.Time, window time.Duration) []string {
	listed := map[string]bool{}
	answering := false
	for _, s := range w.links {
		if s.err == "" && !s.lastOK.IsZero() && now.Sub(s.lastOK) <= window {
			answering = true
			for _, d := range s.discovered {
				listed[d] = true
			}
		}
	}
	if !answering {
		return nil
	}
	after := forgetAfter * w.cfg.PollInterval
	var gone []string
	w.order = slices.DeleteFunc(w.order, func(a string) bool {
		s := w.links[a]
		if s.seed || listed[a] || now.Sub(s.added) < after || (!s.lastOK.IsZero() && now.Sub(s.lastOK) < after) {
			return false
		}
		s.cancel()
		delete(w.links, a)
		gone = append(gone, a)
		return true
	})
	return gone
}

func (w *Watcher) pokeLinks() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, s := range w.links {
		s.l.poke()
	}
}

// publish stores the brain's decision, with the replicas' own health, as
// the new Topology if it differs from the last one, and signals Changes:
// at once if it differs in shape, otherwise on the next tick (see
// Watcher.Changes).
func (w *Watcher) publish(d *decider, views []view, ticked bool) {
	b := d.b
	t := &Topology{
		Epoch:       b.epoch,
		State:       b.state,
		Master:      b.master,
		Reason:      b.reason,
		LastSwitch:  b.lastSwitch,
		SwitchEvent: b.switchEvent,
		Sentinels:   sentinelStatuses(views, agreeWith(b, views), w.cfg.Sentinels),
	}
	old := w.topo.Load()
	t.Replicas = pickReplicas(views, b.master)
	if t.Replicas == nil && old != nil && b.master != "" && old.Master == b.master {
		// No Sentinel answered this round. As the master is kept, so are
		// the replicas they last listed: their own probes still judge
		// their health, and a read port must not pour every read onto
		// the master (or fail them all) because the Sentinels are away.
		t.Replicas = slices.Clone(old.Replicas)
	}
	if w.replicaHealthOf(t.Replicas) {
		d.owed = true
	}
	if r, ok := unsyncedPromotion(old, t); ok {
		w.log.Warn("sentinel: the promoted replica was not in sync when last seen; what the old master acknowledged after its data is lost",
			zap.String("master", t.Master), zap.String("old_master", old.Master), zap.Bool("loading", r.Loading),
			zap.String("master_link_status", r.MasterLinkStatus), zap.Time("checked", r.Checked))
	}
	switch {
	case t.equal(old):
	case !t.sameShape(old):
		w.topo.Store(t)
		if !t.sameReplicaSet(old) {
			// Probe a new replica (say, a demoted master) now, not at
			// the next tick.
			select {
			case w.healthNow <- struct{}{}:
			default:
			}
		}
		d.owed = false
		w.signal()
		return
	default:
		w.topo.Store(t)
		d.owed = true
	}
	if d.owed && ticked {
		d.owed = false
		w.signal()
	}
}

// unsyncedPromotion returns the new master of t as old listed it, if t
// switched to it and it was not in sync then: loading a full resync's
// data by its own last INFO, or with its link to the master down by the
// Sentinels' last word. Sentinel promotes such a replica when failovers
// come seconds apart, and the writes it missed are gone with the old
// master's data. (A link its own INFO reports down says nothing here: a
// replica already promoted reports no link.)
func unsyncedPromotion(old, t *Topology) (Replica, bool) {
	if old == nil || old.Master == "" || t.Master == "" || t.Master == old.Master {
		return Replica{}, false
	}
	for _, r := range old.Replicas {
		if r.Addr == t.Master {
			return r, r.Loading || r.MasterLinkStatus == "err"
		}
	}
	return Replica{}, false
}

func (w *Watcher) signal() {
	select {
	case w.changes <- struct{}{}:
	default:
	}
}

// agreeWith is the master a Sentinel agrees with when it names it: the
// verified master while the group follows one, and while it does not
// (no-master, a failover in progress) the one most reachable Sentinels
// name, so that Sentinels naming a node that does not answer as master
// are not counted as disagreeing among themselves.
func agreeWith(b *brain, views []view) string {
	if b.state == StateReady || b.state == StateDegraded {
		return b.master
	}
	if m := tallyViews(views).majority; m != "" {
		return m
	}
	return b.master
}

// pickReplicas returns the replicas as reported by the first reachable
// Sentinel that names master (or, failing that, by any reachable one),
// without master itself: right after a switch a lagging Sentinel still
// lists the new master among the old one's replicas.
func pickReplicas(views []view, master string) []Replica {
	var from *view
	for i := range views {
		v := &views[i]
		if !v.Reachable {
			continue
		}
		if v.Master == master {
			from = v
			break
		}
		if from == nil {
			from = v
		}
	}
	if from == nil {
		return nil
	}
	out := make([]Replica, 0, len(from.Replicas))
	for _, r := range from.Replicas {
		if r.Addr != master {
			out = append(out, r)
		}
	}
	return out
}

// sentinelStatuses lists each Sentinel once, as the vote counts it
// (tallyViews): views with the same run id are one Sentinel. Its entry
// takes the address that is not a configured seed (a seed is often a
// Service address that reaches any of them), and is reachable, naming
// what it names, if any of its addresses is.
func sentinelStatuses(views []view, master string, seeds []string) []SentinelStatus {
	out := make([]SentinelStatus, 0, len(views))
	byID := map[string]int{}
	for _, v := range views {
		st := SentinelStatus{
			Addr:      v.Addr,
			Reachable: v.Reachable,
			Master:    v.Master,
			Agrees:    v.Reachable && v.Master != "" && v.Master == master,
			Quorum:    v.Quorum,
			LastError: v.Err,
		}
		i, dup := byID[v.ID]
		if v.ID == "" || !dup {
			if v.ID != "" {
				byID[v.ID] = len(out)
			}
			out = append(out, st)
			continue
		}
		prev := &out[i]
		keep, other := *prev, st
		if slices.Contains(seeds, keep.Addr) && !slices.Contains(seeds, st.Addr) {
			keep, other = st, *prev
		}
		if !keep.Reachable && other.Reachable {
			keep.Reachable, keep.Master, keep.Agrees, keep.Quorum, keep.LastError = true, other.Master, other.Agrees, other.Quorum, ""
		}
		keep.Also = append(append(keep.Also, other.Addr), other.Also...)
		*prev = keep
	}
	return out
}
