package sentinel

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// view is what one Sentinel link last told the Watcher, as the decision
// sees it (a copy, taken under the Watcher's lock).
type view struct {
	Addr      string // the address dialled
	ID        string // the Sentinel's run id (SENTINEL MYID); "" if unknown
	Attempted bool   // at least one poll has finished, successfully or not
	Reachable bool   // last poll succeeded, recently enough
	Master    string // what it named on its last successful poll
	// MasterDown: on its last successful poll it flagged the master it
	// names s_down, o_down or failover_in_progress (pollResult).
	MasterDown bool
	// FailingOver: on its last successful poll it flagged the master it
	// names failover_in_progress (pollResult.FailingOver).
	FailingOver bool
	FlagsAsked  time.Time // when the flags were asked for (pollResult)
	Quorum      string    // its SENTINEL CKQUORUM answer (pollResult)
	Replicas    []Replica
	Err         string // last poll error, "" after a success
	// IDRefused: its last poll failed because SENTINEL MYID was refused.
	IDRefused bool
}

// roleResult is the answer of one ROLE check.
type roleResult struct {
	Role string // "master", "slave", "sentinel"; "" on error
	Err  error
}

func (r roleResult) master() bool { return r.Err == nil && r.Role == "master" }

func (r roleResult) String() string {
	if r.Err != nil {
		return "does not answer ROLE (" + r.Err.Error() + ")"
	}
	return "answers ROLE " + r.Role
}

// failover is a failover of the current master that the events announced.
type failover struct {
	old     string          // the master being failed over
	started time.Time       // first event seen
	trying  map[string]bool // links whose Sentinel started it and has not aborted
	leader  string          // link whose Sentinel was elected, "" if unknown
	// polled: started on a polled failover_in_progress flag, not on an
	// event; it ends when no Sentinel flags it any more and every one
	// reached names the same master (step).
	polled bool
	// promoted: started because this replica's INFO says it was
	// promoted out of old, with no word from a Sentinel; it ends when no
	// replica says so any more, unless a Sentinel's event joined (step).
	promoted string
}

// promotions is what the replicas' own INFO says
// (Watcher.notePromotions): the replicas of master `of` that were
// promoted out of its replication stream, with when each was first seen
// so. Sentinel promotes by REPLICAOF NO ONE; a leader the Watcher does not
// follow (a Sentinel left out of Config.Sentinels with Discover off, or
// one only the Watcher cannot reach) does it unannounced, and the others
// name the promoted replica only a second or two later.
type promotions struct {
	of    string
	since map[string]time.Time
	not   map[string]bool // replicas whose last INFO said they were not promoted out of it
}

// first returns the replica of master seen promoted out of it the
// longest, or "", leaving out those in skip.
func (p promotions) first(master string, skip map[string]bool) (addr string, since time.Time) {
	if master == "" || p.of != master {
		return "", time.Time{}
	}
	for a, t := range p.since {
		if skip[a] {
			continue
		}
		if addr == "" || t.Before(since) || (t.Equal(since) && a < addr) {
			addr, since = a, t
		}
	}
	return addr, since
}

// announce is a new master named by an event.
type announce struct {
	from, to string
	at       time.Time // when the event was received
	what     string    // the event's channel
	by       string    // the link it came on
}

// brain holds the decision state. Only the Watcher's decide goroutine
// touches it, so it needs no lock; step is deterministic given its inputs,
// which keeps it testable with tables.
type brain struct {
	hold time.Duration // Config.FailoverHold
	log  *zap.Logger

	state       State
	master      string // last verified master
	epoch       uint64
	reason      string
	lastSwitch  time.Time
	switchEvent time.Time

	failover *failover
	// pending is a new master named by +promoted-slave or +switch-master
	// that has not answered ROLE master yet.
	pending *announce
	// slowRole: the verified master's last ROLE check timed out, and it
	// was kept (step); for logging the start of that once.
	slowRole bool
	// replicas are the master's replicas as the reachable Sentinels that
	// name it last listed them. When no Sentinel answers, or those that
	// name the master are fewer than half of those known, a failover made
	// out of the Watcher's sight may have promoted one of them; one that
	// answers ROLE master then fails the group closed (rival).
	replicas []string
	// known is how many Sentinels tally.known counted when last a
	// majority of them answered. The links to Sentinels a minority cut
	// off from the rest sees down are forgotten (Watcher.forget, with
	// Discover), and without this floor the minority would become the
	// whole again.
	known int
	// former are masters switched away from that may still say they
	// were promoted out of the master (step): after failovers seconds
	// apart Sentinel may promote back the old master before it was
	// converted, whose stream never changed, and the one in between
	// still answers as master with that stream as its master_replid2.
	// One leaves the set once its own INFO says it was not.
	former map[string]bool
	// aborted is when the event that ended the last failover as
	// aborted was received, by the link it came on: a
	// failover_in_progress flag that Sentinel gave when asked before
	// then is that failover's, not a new one (failingOver).
	aborted map[string]time.Time
	// recent is the last switch made on an event. Sentinels that were not
	// part of the failover learn of it from hello messages a second or two
	// later; until then they still name the old master, which also still
	// answers ROLE master (it is demoted only ~10 s later by
	// +convert-to-slave). Without this the Watcher would switch back.
	recent *announce
}

func newBrain(hold time.Duration, log *zap.Logger) *brain {
	return &brain{hold: hold, log: log, reason: "waiting for the first answer from the Sentinels"}
}

// step applies the events received since the last step, then decides the
// state and master from the Sentinels' views, the replicas' word on
// promotions and ROLE checks.
func (b *brain) step(now time.Time, views []view, events []event, seen promotions, role func(addr string) roleResult) {
	// Set again below only while a slow master is kept.
	wasSlow := b.slowRole
	b.slowRole = false
	for _, ev := range events {
		b.apply(now, ev)
	}
	if f := b.failover; f != nil && now.Sub(f.started) > b.hold {
		if f.promoted != "" {
			// Decided below: no-master while the replica still says so.
			b.log.Warn("sentinel: the Sentinels did not name the replica that says it was promoted within FailoverHold",
				zap.String("master", f.old), zap.String("replica", f.promoted), zap.Duration("hold", b.hold))
		} else {
			b.log.Warn("sentinel: failover treated as aborted: no promotion within FailoverHold",
				zap.String("master", f.old), zap.Duration("hold", b.hold))
		}
		b.endFailover()
	}
	if f := b.failover; f != nil && f.polled && b.pending == nil && b.failingOver(views, f.old) == "" && !namesOther(views, f.old) {
		// Seen only as a flag, which is gone, and every Sentinel
		// reached names one master: the old one (the failover aborted)
		// or, all having learnt of it, the new one, which the decision
		// below follows. Not while only the leader names the promoted
		// replica: the others still name the old master, which still
		// answers ROLE master.
		b.endFailover()
	}
	if seen.of == b.master {
		for a := range b.former {
			if seen.not[a] {
				delete(b.former, a)
			}
		}
	}
	if f := b.failover; f != nil && f.promoted != "" && b.pending == nil && len(f.trying) == 0 && !namesOther(views, f.old) {
		// Not once a Sentinel names another master: the promoted
		// replica, named, is no longer among the replicas probed.
		if a, _ := seen.first(f.old, b.former); a == "" {
			// Sentinel converts a replica promoted by hand back within
			// 8–18 s; nothing it acknowledged is lost, and the old
			// master never stopped being the master.
			b.log.Info("sentinel: no replica says it was promoted out of the master any more; failover hold ended",
				zap.String("master", f.old), zap.String("replica", f.promoted))
			b.endFailover()
		}
	}
	if r := b.recent; r != nil && now.Sub(r.at) > b.hold {
		b.recent = nil
	}

	// 1. A new master named by an event wins as soon as it is verified:
	// this is the early path, ahead of the Sentinels' polls.
	if p := b.pending; p != nil {
		if p.from != b.master {
			b.pending = nil
		} else if r := role(p.to); r.master() {
			b.switchTo(now, p.to, p.at, fmt.Sprintf("%s from Sentinel %s named %s and it answers ROLE master", p.what, p.by, p.to))
			b.recent = p
			return
		}
	}

	if reps := listedReplicas(views, b.master); reps != nil {
		b.replicas = reps
	}
	t := tallyViews(views)
	if t.reachable == 0 {
		b.noSentinel(views, role)
		return
	}
	if b.state == StateUnknown && !allAttempted(views) {
		// Deciding on the first answer alone could pick whatever a lone
		// Sentinel says and bump the epoch when the others answer.
		b.reason = "waiting for the first answer from every Sentinel"
		return
	}

	known := max(t.known, b.known)
	if 2*t.reachable > known {
		b.known, known = t.known, t.known
	}
	cand, named := t.majority, t.votes[t.majority]
	note := ""
	if r := b.recent; r != nil && b.master == r.to {
		switch cand {
		case r.to:
			b.recent = nil // they caught up
		case r.from, "":
			note = fmt.Sprintf(" (Sentinels still naming %s have not yet learnt of %s)", r.from, r.what)
			cand = r.to
		default:
			b.recent = nil // they moved on to another master
		}
	}
	if cand == "" {
		if b.failover != nil {
			b.set(StateFailover, b.failoverReason(fmt.Sprintf("no majority of %d reachable Sentinels: %s", t.reachable, t.votesString())))
			return
		}
		b.set(StateNoMaster, fmt.Sprintf("no majority of %d reachable Sentinels names a master: %s", t.reachable, t.votesString()))
		return
	}
	r := role(cand)
	if !r.master() {
		if errors.Is(r.Err, errRolePending) && b.state == StateUnknown {
			// Start-up: the first answer is on its way. Nothing was
			// decided, so there is nothing to withdraw or warn about.
			b.reason = fmt.Sprintf("checking the ROLE of %s, which %d of %d reachable Sentinels name", cand, named, t.reachable)
			return
		}
		if b.failover != nil {
			b.set(StateFailover, b.failoverReason(fmt.Sprintf("%s %s", cand, r)))
			return
		}
		if cand == b.master && noAnswer(r.Err) && b.state == StateReady && !flaggedDown(views, cand) {
			// Busy (a slow command, a script answering BUSY, a fork) or
			// stopped: its last answer
			// was master (the state is still Ready), the Sentinels still
			// name it, and none flags it down. Holding would close the
			// connection of every command waiting on it (the proxy's
			// stall check) although nothing may change. If it is really
			// down, the Sentinels flag it s_down after
			// down-after-milliseconds, before they promote anything, and
			// the next poll sees that even if their events are lost: then
			// it is held (below), and the stall check closes what waits on
			// it before it can wake up as a zombie.
			if !wasSlow {
				b.log.Warn("sentinel: master did not answer ROLE in time; keeping it while the Sentinels name it and none flags it down",
					zap.String("master", cand), zap.Error(r.Err))
			}
			b.slowRole = true
			b.set(StateReady, fmt.Sprintf("%d of %d reachable Sentinels name %s; it did not answer ROLE in time, and is kept while no Sentinel flags it down%s", named, t.reachable, cand, note))
			return
		}
		b.set(StateNoMaster, fmt.Sprintf("%d of %d reachable Sentinels name %s but it %s%s", named, t.reachable, cand, r, note))
		return
	}
	if b.failover == nil && (b.master == "" || cand == b.master) {
		// A failover whose events were missed (this process started
		// after +try-failover, or its subscription to the leader was
		// down): the replica may be promoted already while every
		// Sentinel still names cand, which answers ROLE master and
		// would acknowledge writes the promotion discards.
		if by := b.failingOver(views, cand); by != "" {
			if b.master == "" {
				b.set(StateNoMaster, fmt.Sprintf("Sentinel %s reports a failover of %s in progress; waiting for its outcome", by, cand))
				return
			}
			f := b.startFailover(now, event{Channel: "failover_in_progress (polled)", From: by})
			f.trying[by] = true
			f.polled = true
		}
	}
	if wasSlow && cand == b.master {
		b.log.Info("sentinel: master answers ROLE again", zap.String("master", cand))
	}
	// A switch made on an event stands for FailoverHold against rivals:
	// the demoted master answers ROLE master until it is converted, and
	// with some Sentinels down those naming the new one may be no more
	// than half until the rest learn of it.
	byEvent := cand == b.master && !b.switchEvent.IsZero() && now.Sub(b.lastSwitch) <= b.hold
	minority := 2*named <= known && note == "" && !byEvent
	// A hold on a replica's word alone yields to the rival check below
	// when those naming cand are a minority: that fails closed at once.
	if f := b.failover; f != nil && cand == f.old && (f.promoted == "" || !minority) {
		b.set(StateFailover, b.failoverReason(fmt.Sprintf("%d of %d reachable Sentinels still name %s", named, t.reachable, cand)))
		return
	}
	if minority {
		// Most of the Sentinels known do not vouch for cand: those that
		// do may be cut off from the rest, which may have failed the
		// master over (or they may monitor another node under the same
		// name). Their word stands only while no other node of the group
		// says it is master.
		if a := b.rival(views, cand, role); a != "" {
			b.set(StateNoMaster, fmt.Sprintf("%d of %d reachable Sentinels name %s, which answers ROLE master, but they are %d of the %d known, and %s answers ROLE master too: a failover may have happened out of sight", named, t.reachable, cand, named, known, a))
			return
		}
	} else if b.master == "" {
		// Start-up: the leader of a failover this process did not see
		// begin names the promoted replica a moment before the others
		// learn of it, while the old master still answers ROLE master.
		// A minority naming one of cand's replicas that answers ROLE
		// master is that failover: verify nothing until they agree.
		listed := listedReplicas(views, cand)
		for _, v := range views {
			if !v.Reachable || v.Master == "" || v.Master == cand || !slices.Contains(listed, v.Master) {
				continue
			}
			ra := role(v.Master)
			if errors.Is(ra.Err, errRolePending) {
				b.reason = fmt.Sprintf("checking the ROLE of %s, which Sentinel %s names", v.Master, v.Addr)
				return
			}
			if ra.master() {
				b.set(StateNoMaster, fmt.Sprintf("%d of %d reachable Sentinels name %s, but Sentinel %s names %s, a replica of it that answers ROLE master: a failover is under way", named, t.reachable, cand, v.Addr, v.Master))
				return
			}
		}
	}
	if a, since := seen.first(cand, b.former); a != "" && cand == b.master {
		// A replica promoted out of cand: a failover led by a Sentinel
		// not followed, whose events never come, while the Sentinels
		// followed name cand until they hear of it, and cand answers
		// ROLE master until it is converted, 10 s or more later. Hold
		// as on +try-failover. Past FailoverHold, fail closed: a real
		// failover would be named by then unless its reconfiguration is
		// slow, and writes to cand would be lost; a replica promoted by
		// hand is converted back 8–18 s after, and only costs the wait.
		if d := now.Sub(since); d > b.hold {
			b.set(StateNoMaster, fmt.Sprintf("%d of %d reachable Sentinels name %s, which answers ROLE master, but its replica %s has said for %s that it was promoted out of it", named, t.reachable, cand, a, d.Round(time.Millisecond)))
			return
		}
		if b.failover == nil {
			b.failover = &failover{old: cand, started: now, trying: map[string]bool{}, promoted: a}
			b.log.Warn("sentinel: failover seen in a replica's INFO, with no event from the Sentinels followed; holding writes",
				zap.String("master", cand), zap.String("replica", a))
		}
		b.set(StateFailover, b.failoverReason(fmt.Sprintf("%d of %d reachable Sentinels still name %s", named, t.reachable, cand)))
		return
	}
	reason := fmt.Sprintf("%d of %d reachable Sentinels name %s and it answers ROLE master%s", named, t.reachable, cand, note)
	if cand != b.master {
		var at time.Time
		if p := b.pending; p != nil && p.to == cand {
			at = p.at
		}
		b.switchTo(now, cand, at, reason)
		return
	}
	b.set(StateReady, reason)
}

// apply folds one event into the failover state.
func (b *brain) apply(now time.Time, ev event) {
	if b.master == "" {
		return // no master verified yet: nothing to fail over from
	}
	switch ev.Kind {
	case kindProgress, kindLeader:
		if ev.Master != b.master {
			return
		}
		f := b.startFailover(now, ev)
		f.polled = false
		f.trying[ev.From] = true
		if ev.Kind == kindLeader {
			f.leader = ev.From
		}
	case kindPromoted:
		// Only the Sentinel that won the election promotes; accept the
		// event even if the start was missed (e.g. after a reconnect).
		if ev.Master != b.master {
			return
		}
		f := b.startFailover(now, ev)
		f.trying[ev.From] = true
		f.leader = ev.From
		b.pending = &announce{from: ev.Master, to: ev.Addr, at: ev.At, what: ev.Channel, by: ev.From}
	case kindSwitch:
		if ev.Master != b.master || ev.Addr == b.master {
			return
		}
		b.startFailover(now, ev)
		if b.pending == nil || b.pending.to != ev.Addr {
			b.pending = &announce{from: ev.Master, to: ev.Addr, at: ev.At, what: ev.Channel, by: ev.From}
		}
	case kindAbort:
		f := b.failover
		if f == nil || ev.Master != f.old || b.pending != nil {
			return
		}
		if f.promoted != "" && !f.trying[ev.From] {
			// A hold on a replica's word: the Sentinel's attempt was
			// not what promoted it.
			return
		}
		delete(f.trying, ev.From)
		if f.leader == ev.From {
			f.leader = ""
		}
		// A Sentinel that lost the election aborts while the winner goes
		// on: only when nobody is left trying has the failover failed.
		if len(f.trying) == 0 {
			b.log.Warn("sentinel: failover aborted", zap.String("master", f.old),
				zap.String("event", ev.Channel), zap.String("sentinel", ev.From))
			b.endFailover()
			b.aborted = map[string]time.Time{ev.From: ev.At}
		}
	}
}

func (b *brain) startFailover(now time.Time, ev event) *failover {
	if b.failover == nil {
		b.failover = &failover{old: b.master, started: now, trying: map[string]bool{}}
		b.log.Info("sentinel: failover started; holding writes", zap.String("master", b.master),
			zap.String("event", ev.Channel), zap.String("sentinel", ev.From))
	}
	return b.failover
}

func (b *brain) endFailover() {
	b.failover = nil
	b.pending = nil
}

func (b *brain) failoverReason(detail string) string {
	f := b.failover
	who := "an unknown Sentinel"
	if f.leader != "" {
		who = "Sentinel " + f.leader
	} else if len(f.trying) > 0 {
		var ts []string
		for t := range f.trying {
			ts = append(ts, t)
		}
		sort.Strings(ts)
		who = "Sentinel " + strings.Join(ts, ", ")
	} else if f.promoted != "" {
		who = "no Sentinel event: " + f.promoted + " says it was promoted out of it"
	}
	return fmt.Sprintf("failover of %s in progress (started by %s), holding writes; %s", f.old, who, detail)
}

// noSentinel decides with no Sentinel reachable: keep the last verified
// master while it still says it is one.
func (b *brain) noSentinel(views []view, role func(string) roleResult) {
	if b.state == StateUnknown && !allAttempted(views) {
		return
	}
	none := "no Sentinel is reachable" + pollErrors(views)
	if b.master == "" {
		b.set(StateNoMaster, none+" and no master was ever verified")
		return
	}
	r := role(b.master)
	rival := ""
	if r.master() && b.failover == nil {
		rival = b.rival(views, b.master, role)
	}
	switch {
	case b.failover != nil:
		b.set(StateFailover, b.failoverReason(fmt.Sprintf("%s; %s %s", none, b.master, r)))
	case rival != "":
		// A demoted master answers ROLE master until the Sentinels
		// convert it, 10 s or more after the promotion, or never if
		// they stop meanwhile: every write it took until then would be
		// lost.
		b.set(StateNoMaster, fmt.Sprintf("%s; last verified master %s still answers ROLE master, but so does %s, which the Sentinels listed as its replica: a failover may have happened out of sight", none, b.master, rival))
	case r.master():
		b.set(StateDegraded, fmt.Sprintf("%s; last verified master %s still answers ROLE master, and none of its replicas does", none, b.master))
	default:
		b.set(StateNoMaster, fmt.Sprintf("%s and last verified master %s %s", none, b.master, r))
	}
}

// rival returns a node of the group other than cand that answers ROLE
// master, or "": the last verified master, its replicas as last listed,
// and cand's replicas as the reachable Sentinels list them. An answer
// still on its way counts as none; it wakes the Watcher, which decides
// again.
func (b *brain) rival(views []view, cand string, role func(string) roleResult) string {
	for _, a := range append(append([]string{b.master}, b.replicas...), listedReplicas(views, cand)...) {
		if a != "" && a != cand && role(a).master() {
			return a
		}
	}
	return ""
}

// listedReplicas returns the replicas that the reachable Sentinels naming
// master list, each once, or nil if none names it.
func listedReplicas(views []view, master string) []string {
	if master == "" {
		return nil
	}
	var addrs []string
	seen := map[string]bool{}
	for _, v := range views {
		if !v.Reachable || v.Master != master {
			continue
		}
		if addrs == nil {
			addrs = []string{}
		}
		for _, r := range v.Replicas {
			if !seen[r.Addr] {
				seen[r.Addr] = true
				addrs = append(addrs, r.Addr)
			}
		}
	}
	return addrs
}

// pollErrors names why the Sentinels' last polls failed, for a reason:
// " (addr: error; …)", the first two, or "" if none says. A refusal
// (NOAUTH, WRONGPASS, an unknown master name) then reads differently
// from a Sentinel that is down.
func pollErrors(views []view) string {
	var parts []string
	for _, v := range views {
		if v.Err == "" {
			continue
		}
		if len(parts) == 2 {
			parts = append(parts, "…")
			break
		}
		e := strings.TrimPrefix(v.Err, "sentinel: "+v.Addr+": ")
		if len(e) > 160 {
			e = e[:160] + "…"
		}
		parts = append(parts, v.Addr+": "+e)
	}
	if len(parts) == 0 {
		return ""
	}
	return " (" + strings.Join(parts, "; ") + ")"
}

func (b *brain) switchTo(now time.Time, addr string, eventAt time.Time, reason string) {
	old := b.master
	if old != "" {
		if b.former == nil {
			b.former = map[string]bool{}
		}
		b.former[old] = true
	}
	delete(b.former, addr)
	b.master = addr
	b.epoch++
	b.lastSwitch = now
	b.switchEvent = eventAt
	b.endFailover()
	b.set(StateReady, reason)
	b.log.Info("sentinel: master switched", zap.String("from", old), zap.String("to", addr),
		zap.Uint64("epoch", b.epoch), zap.Bool("by_event", !eventAt.IsZero()), zap.String("reason", reason))
}

func (b *brain) set(s State, reason string) {
	if s != b.state {
		switch s {
		case StateNoMaster:
			b.log.Warn("sentinel: failing closed", zap.String("reason", reason), zap.String("last_master", b.master))
		case StateDegraded:
			b.log.Warn("sentinel: degraded", zap.String("reason", reason))
		default:
			if b.state != StateUnknown || s != StateReady {
				b.log.Info("sentinel: state "+s.String(), zap.String("reason", reason))
			}
		}
	}
	b.state, b.reason = s, reason
}

// tally counts the votes of the reachable Sentinels, once per Sentinel.
type tally struct {
	known     int // Sentinels linked, reachable or not, each once; those refusing SENTINEL MYID count as one
	reachable int
	votes     map[string]int // master address → Sentinels naming it
	majority  string         // named by more than half of reachable, or ""
}

func tallyViews(views []view) tally {
	t := tally{votes: map[string]int{}}
	known, seen := map[string]bool{}, map[string]bool{}
	for _, v := range views {
		// A Service address reaches one of the Sentinels that are also
		// dialled directly: count each Sentinel once.
		id := v.ID
		switch {
		case v.IDRefused:
			// Reached at any number of addresses, without its run id
			// it is one Sentinel or several: count one, which it would
			// be at two addresses, rather than one for each address.
			known["refused"] = true
		case id == "":
			id = "addr:" + v.Addr
			fallthrough
		default:
			known[id] = true
		}
		if !v.Reachable || seen[id] {
			continue
		}
		seen[id] = true
		t.reachable++
		if v.Master != "" {
			t.votes[v.Master]++
		}
	}
	t.known = len(known)
	for a, n := range t.votes {
		if 2*n > t.reachable {
			t.majority = a
		}
	}
	return t
}

func (t tally) votesString() string {
	if len(t.votes) == 0 {
		return "none names a master"
	}
	var parts []string
	for a, n := range t.votes {
		parts = append(parts, fmt.Sprintf("%d name %s", n, a))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

func allAttempted(views []view) bool {
	for _, v := range views {
		if !v.Attempted {
			return false
		}
	}
	return true
}

// noAnswer reports whether a ROLE check failed for want of an answer in
// time, rather than with one (a refused connection, an error reply). A
// BUSY reply counts as none: the node runs a script or function past
// busy-reply-threshold, which ROLE cannot interrupt, and it says nothing
// about the node's role.
func noAnswer(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var re redis.Error
	if errors.As(err, &re) && strings.HasPrefix(re.Error(), "BUSY ") {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// namesOther reports whether a reachable Sentinel names another master
// than master.
func namesOther(views []view, master string) bool {
	for _, v := range views {
		if v.Reachable && v.Master != "" && v.Master != master {
			return true
		}
	}
	return false
}

// failingOver returns a reachable Sentinel naming master that flags a
// failover of it in progress, or "". A flag the Sentinel that aborted
// the last failover gave when asked before its abort was received is
// that failover's: its last poll before the -failover-abort-* event
// still carries it.
func (b *brain) failingOver(views []view, master string) string {
	for _, v := range views {
		at, aborted := b.aborted[v.Addr]
		if v.Reachable && v.Master == master && v.FailingOver && (!aborted || v.FlagsAsked.After(at)) {
			return v.Addr
		}
	}
	return ""
}

// flaggedDown reports whether a reachable Sentinel that names master
// flags it s_down, o_down or failover_in_progress.
func flaggedDown(views []view, master string) bool {
	for _, v := range views {
		if v.Reachable && v.Master == master && v.MasterDown {
			return true
		}
	}
	return false
}
