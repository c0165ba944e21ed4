package sentinel

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

const (
	nodeA = "10.0.0.1:6379"
	nodeB = "10.0.0.2:6379"
	nodeC = "10.0.0.3:6379"
	s1    = "10.0.1.1:26379"
	s2    = "10.0.1.2:26379"
	s3    = "10.0.1.3:26379"
)

// up is a reachable Sentinel view naming master.
func up(addr, master string) view {
	return view{Addr: addr, ID: "id-" + addr, Attempted: true, Reachable: true, Master: master}
}

// listing is v with the replicas it lists.
func listing(v view, replicas ...string) view {
	for _, r := range replicas {
		v.Replicas = append(v.Replicas, Replica{Addr: r})
	}
	return v
}

// failing is v flagging a failover of the master it names in progress.
func failing(v view) view {
	v.FailingOver = true
	return v
}

// askedAt is v with its flags asked for at t.
func askedAt(v view, t time.Time) view {
	v.FlagsAsked = t
	return v
}

// down is an unreachable Sentinel view.
func down(addr string) view {
	return view{Addr: addr, Attempted: true, Err: "connection refused"}
}

func ev(kind, from, name, addr, master string, at time.Time) event {
	return event{At: at, From: from, Channel: kind, Kind: kindOf(kind), Name: name, Addr: addr, Master: master}
}

func TestBrainStep(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	evAt := t0.Add(-50 * time.Millisecond)
	ready := func(master string, epoch uint64) *brain {
		b := newBrain(15*time.Second, zap.NewNop())
		b.state, b.master, b.epoch = StateReady, master, epoch
		return b
	}
	inFailover := func(master string, epoch uint64, started time.Time, trying ...string) *brain {
		b := ready(master, epoch)
		b.state = StateFailover
		b.failover = &failover{old: master, started: started, trying: map[string]bool{}}
		for _, s := range trying {
			b.failover.trying[s] = true
		}
		return b
	}
	roles := func(m map[string]string) func(string) roleResult {
		return func(addr string) roleResult {
			r, ok := m[addr]
			switch {
			case !ok:
				return roleResult{Err: errors.New("connection refused")}
			case r == "timeout":
				return roleResult{Err: fmt.Errorf("sentinel: ROLE: %w", context.DeadlineExceeded)}
			}
			return roleResult{Role: r}
		}
	}
	promotedB := func(of string, ago time.Duration) promotions {
		return promotions{of: of, since: map[string]time.Time{nodeB: t0.Add(-ago)}}
	}
	promotedOut := func(master string, epoch uint64, by string) *brain {
		b := inFailover(master, epoch, t0.Add(-time.Second))
		b.failover.promoted = by
		return b
	}
	masterA := map[string]string{nodeA: "master", nodeB: "slave", nodeC: "slave"}
	masterB := map[string]string{nodeA: "slave", nodeB: "master", nodeC: "slave"}
	bothMaster := map[string]string{nodeA: "master", nodeB: "master", nodeC: "slave"}

	tests := []struct {
		name        string
		brain       *brain
		views       []view
		events      []event
		seen        promotions
		roles       map[string]string
		state       State
		master      string
		epoch       uint64
		switchEvent time.Time
		reason      string // substring
	}{
		{
			name:   "majority verified at start",
			brain:  newBrain(15*time.Second, zap.NewNop()),
			views:  []view{up(s1, nodeA), up(s2, nodeA), up(s3, nodeB)},
			roles:  masterA,
			state:  StateReady,
			master: nodeA, epoch: 1,
			reason: "2 of 3 reachable Sentinels name 10.0.0.1:6379 and it answers ROLE master",
		},
		{
			name:   "not verified at start while a Sentinel fails the named master over",
			brain:  newBrain(15*time.Second, zap.NewNop()),
			views:  []view{failing(up(s1, nodeA)), up(s2, nodeA), up(s3, nodeA)},
			roles:  bothMaster,
			state:  StateNoMaster,
			reason: "reports a failover of 10.0.0.1:6379 in progress",
		},
		{
			name:   "a polled failover_in_progress holds like +try-failover",
			brain:  ready(nodeA, 1),
			views:  []view{failing(up(s1, nodeA)), up(s2, nodeA), up(s3, nodeA)},
			roles:  bothMaster,
			state:  StateFailover,
			master: nodeA, epoch: 1,
			reason: "failover of 10.0.0.1:6379 in progress",
		},
		{
			name:   "not verified at start while the failover's leader names the promoted replica",
			brain:  newBrain(15*time.Second, zap.NewNop()),
			views:  []view{up(s1, nodeB), listing(up(s2, nodeA), nodeB, nodeC), listing(up(s3, nodeA), nodeB, nodeC)},
			roles:  bothMaster,
			state:  StateNoMaster,
			reason: "Sentinel 10.0.1.1:26379 names 10.0.0.2:6379, a replica of it that answers ROLE master",
		},
		{
			name: "a failover seen only as a polled flag ends when the flag does",
			brain: func() *brain {
				b := inFailover(nodeA, 1, t0.Add(-time.Second), s1)
				b.failover.polled = true
				return b
			}(),
			views:  []view{up(s1, nodeA), up(s2, nodeA), up(s3, nodeA)},
			roles:  masterA,
			state:  StateReady,
			master: nodeA, epoch: 1,
		},
		{
			name: "a polled failover holds while only its leader names the promoted replica",
			brain: func() *brain {
				b := inFailover(nodeA, 1, t0.Add(-time.Second), s1)
				b.failover.polled = true
				return b
			}(),
			views:  []view{up(s1, nodeB), up(s2, nodeA), up(s3, nodeA)},
			roles:  bothMaster,
			state:  StateFailover,
			master: nodeA, epoch: 1,
			reason: "2 of 3 reachable Sentinels still name 10.0.0.1:6379",
		},
		{
			name:   "waits for every Sentinel's first answer",
			brain:  newBrain(15*time.Second, zap.NewNop()),
			views:  []view{up(s1, nodeA), {Addr: s2}, {Addr: s3}},
			roles:  masterA,
			state:  StateUnknown,
			reason: "waiting",
		},
		{
			name:   "unreachable Sentinels do not vote",
			brain:  newBrain(15*time.Second, zap.NewNop()),
			views:  []view{up(s1, nodeA), down(s2), down(s3)},
			roles:  masterA,
			state:  StateReady,
			master: nodeA, epoch: 1,
			reason: "1 of 1 reachable",
		},
		{
			name:   "a lone Sentinel of three is not followed while another node answers ROLE master",
			brain:  newBrain(15*time.Second, zap.NewNop()),
			views:  []view{listing(up(s1, nodeA), nodeB, nodeC), down(s2), down(s3)},
			roles:  bothMaster,
			state:  StateNoMaster,
			reason: "they are 1 of the 3 known, and 10.0.0.2:6379 answers ROLE master too",
		},
		{
			name:   "no switch on a minority's word while the old master answers ROLE master",
			brain:  ready(nodeA, 1),
			views:  []view{up(s1, nodeB), down(s2), down(s3)},
			roles:  bothMaster,
			state:  StateNoMaster,
			master: nodeA, epoch: 1,
			reason: "10.0.0.1:6379 answers ROLE master too",
		},
		{
			name:   "a minority's word is taken once the old master is demoted",
			brain:  ready(nodeA, 1),
			views:  []view{up(s1, nodeB), down(s2), down(s3)},
			roles:  masterB,
			state:  StateReady,
			master: nodeB, epoch: 2,
		},
		{
			name:   "two of three Sentinels move the master while the old one still answers ROLE master",
			brain:  ready(nodeA, 1),
			views:  []view{up(s1, nodeB), up(s2, nodeB), down(s3)},
			roles:  bothMaster,
			state:  StateReady,
			master: nodeB, epoch: 2,
		},
		{
			name: "a minority that has forgotten the others is still a minority",
			brain: func() *brain {
				b := ready(nodeA, 1)
				b.known = 3 // before the links to s2 and s3 were forgotten (Discover)
				return b
			}(),
			views:  []view{listing(up(s1, nodeA), nodeB)},
			roles:  bothMaster,
			state:  StateNoMaster,
			master: nodeA, epoch: 1,
			reason: "they are 1 of the 3 known",
		},
		{
			name:  "Sentinels refusing SENTINEL MYID count once among those known",
			brain: ready(nodeA, 1),
			views: []view{up(s1, nodeB), up(s2, nodeB),
				{Addr: s3, Attempted: true, Err: "MYID refused", IDRefused: true},
				{Addr: "sentinel-3.local:26379", Attempted: true, Err: "MYID refused", IDRefused: true}},
			roles:  bothMaster,
			state:  StateReady,
			master: nodeB, epoch: 2,
		},
		{
			name: "after an event switch, Sentinels catching up are not taken for a minority",
			brain: func() *brain {
				b := ready(nodeB, 2)
				b.lastSwitch, b.switchEvent = t0.Add(-time.Second), t0.Add(-time.Second)
				return b
			}(),
			// The Sentinels list the old master as a replica at once.
			views:  []view{listing(up(s1, nodeB), nodeA, nodeC), up(s2, nodeB), up(s3, nodeA), down("10.0.1.4:26379"), down("10.0.1.5:26379")},
			roles:  bothMaster,
			state:  StateReady,
			master: nodeB, epoch: 2,
			switchEvent: t0.Add(-time.Second),
		},
		{
			name:   "tie fails closed",
			brain:  ready(nodeA, 3),
			views:  []view{up(s1, nodeA), up(s2, nodeB)},
			roles:  bothMaster,
			state:  StateNoMaster,
			master: nodeA, epoch: 3,
			reason: "no majority of 2 reachable Sentinels names a master: 1 name 10.0.0.1:6379, 1 name 10.0.0.2:6379",
		},
		{
			name:   "half is not a majority",
			brain:  ready(nodeA, 1),
			views:  []view{up(s1, nodeA), up(s2, nodeA), up(s3, nodeB), up("10.0.1.4:26379", nodeC)},
			roles:  masterA,
			state:  StateNoMaster,
			master: nodeA, epoch: 1,
			reason: "no majority of 4",
		},
		{
			name:  "one Sentinel behind two addresses counts once",
			brain: ready(nodeA, 1),
			views: []view{
				up(s1, nodeB),
				{Addr: "svc:26379", ID: "id-" + s1, Attempted: true, Reachable: true, Master: nodeB},
				up(s2, nodeA),
			},
			roles:  bothMaster,
			state:  StateNoMaster,
			master: nodeA, epoch: 1,
			reason: "no majority of 2",
		},
		{
			name:   "majority names a replica",
			brain:  ready(nodeA, 2),
			views:  []view{up(s1, nodeB), up(s2, nodeB), up(s3, nodeA)},
			roles:  masterA,
			state:  StateNoMaster,
			master: nodeA, epoch: 2,
			reason: "2 of 3 reachable Sentinels name 10.0.0.2:6379 but it answers ROLE slave",
		},
		{
			name:   "lone Sentinel names a replica",
			brain:  newBrain(15*time.Second, zap.NewNop()),
			views:  []view{up(s1, nodeB)},
			roles:  masterA,
			state:  StateNoMaster,
			reason: "1 of 1 reachable Sentinels name 10.0.0.2:6379 but it answers ROLE slave",
		},
		{
			name:   "master demoted under us",
			brain:  ready(nodeA, 1),
			views:  []view{up(s1, nodeA), up(s2, nodeA), up(s3, nodeA)},
			roles:  masterB,
			state:  StateNoMaster,
			master: nodeA, epoch: 1,
			reason: "answers ROLE slave",
		},
		{
			name:   "master does not answer",
			brain:  ready(nodeA, 1),
			views:  []view{up(s1, nodeA), up(s2, nodeA), up(s3, nodeA)},
			roles:  map[string]string{},
			state:  StateNoMaster,
			master: nodeA, epoch: 1,
			reason: "does not answer ROLE (connection refused)",
		},
		{
			// A slow command or a fork: holding would fence everyone
			// waiting on it, for a master nobody is replacing.
			name:   "master too busy to answer ROLE in time is kept",
			brain:  ready(nodeA, 1),
			views:  []view{up(s1, nodeA), up(s2, nodeA), up(s3, nodeA)},
			roles:  map[string]string{nodeA: "timeout"},
			state:  StateReady,
			master: nodeA, epoch: 1,
			reason: "did not answer ROLE in time, and is kept",
		},
		{
			// s_down comes before any promotion, and reaches the polls
			// even when the events are lost: the stall check must fence
			// what waits on a master that may wake up as a zombie.
			name:   "busy master flagged down by a Sentinel: held",
			brain:  ready(nodeA, 1),
			views:  []view{up(s1, nodeA), up(s2, nodeA), {Addr: s3, ID: "id-" + s3, Attempted: true, Reachable: true, Master: nodeA, MasterDown: true}},
			roles:  map[string]string{nodeA: "timeout"},
			state:  StateNoMaster,
			master: nodeA, epoch: 1,
			reason: "does not answer ROLE",
		},
		{
			// Its last answer was not master (here: slave, which made the
			// state no-master): a timeout now says nothing new.
			name: "a node that answered slave and then times out stays held",
			brain: func() *brain {
				b := ready(nodeA, 1)
				b.state = StateNoMaster
				return b
			}(),
			views:  []view{up(s1, nodeA), up(s2, nodeA), up(s3, nodeA)},
			roles:  map[string]string{nodeA: "timeout"},
			state:  StateNoMaster,
			master: nodeA, epoch: 1,
			reason: "does not answer ROLE",
		},
		{
			name:   "a new master that does not answer ROLE in time is not taken",
			brain:  ready(nodeA, 1),
			views:  []view{up(s1, nodeB), up(s2, nodeB), up(s3, nodeA)},
			roles:  map[string]string{nodeA: "master", nodeB: "timeout"},
			state:  StateNoMaster,
			master: nodeA, epoch: 1,
			reason: "does not answer ROLE",
		},
		{
			name:   "busy master during a failover: held",
			brain:  inFailover(nodeA, 1, t0.Add(-time.Second), s1),
			views:  []view{up(s1, nodeA), up(s2, nodeA), up(s3, nodeA)},
			roles:  map[string]string{nodeA: "timeout"},
			state:  StateFailover,
			master: nodeA, epoch: 1,
		},
		{
			name:   "majority moves: switch by polling",
			brain:  ready(nodeA, 1),
			views:  []view{up(s1, nodeB), up(s2, nodeB), up(s3, nodeA)},
			roles:  bothMaster,
			state:  StateReady,
			master: nodeB, epoch: 2,
		},
		{
			name:   "degraded keeps the verified master",
			brain:  ready(nodeA, 4),
			views:  []view{down(s1), down(s2), down(s3)},
			roles:  masterA,
			state:  StateDegraded,
			master: nodeA, epoch: 4,
			reason: "no Sentinel is reachable (10.0.1.1:26379: connection refused; 10.0.1.2:26379: connection refused; …); last verified master 10.0.0.1:6379 still answers ROLE master",
		},
		{
			name: "no Sentinel, and a replica they listed answers ROLE master: fail closed",
			brain: func() *brain {
				b := ready(nodeA, 4)
				b.replicas = []string{nodeC, nodeB}
				return b
			}(),
			views:  []view{down(s1), down(s2), down(s3)},
			roles:  bothMaster,
			state:  StateNoMaster,
			master: nodeA, epoch: 4,
			reason: "last verified master 10.0.0.1:6379 still answers ROLE master, but so does 10.0.0.2:6379, which the Sentinels listed as its replica",
		},
		{
			name:   "degraded master stops being master",
			brain:  ready(nodeA, 4),
			views:  []view{down(s1), down(s2), down(s3)},
			roles:  masterB,
			state:  StateNoMaster,
			master: nodeA, epoch: 4,
			reason: "no Sentinel is reachable (10.0.1.1:26379: connection refused; 10.0.1.2:26379: connection refused; …) and last verified master 10.0.0.1:6379 answers ROLE slave",
		},
		{
			name:   "no Sentinel and never a master",
			brain:  newBrain(15*time.Second, zap.NewNop()),
			views:  []view{down(s1), down(s2)},
			roles:  masterA,
			state:  StateNoMaster,
			reason: "no master was ever verified",
		},
		{
			// A refusal reads as one: the operator sees the password is
			// wrong, not that the Sentinels are down.
			name:  "Sentinels refusing, never a master",
			brain: newBrain(15*time.Second, zap.NewNop()),
			views: []view{{Addr: s1, Attempted: true, Err: "sentinel: " + s1 + ": SENTINEL MYID refused (the Sentinel user needs +sentinel|myid): NOAUTH Authentication required."}},
			roles: masterA,
			state: StateNoMaster,
			reason: "no Sentinel is reachable (10.0.1.1:26379: SENTINEL MYID refused (the Sentinel user needs +sentinel|myid): " +
				"NOAUTH Authentication required.) and no master was ever verified",
		},
		{
			name:   "try-failover holds writes",
			brain:  ready(nodeA, 1),
			views:  []view{up(s1, nodeA), up(s2, nodeA), up(s3, nodeA)},
			events: []event{ev(evTryFailover, s1, "m", nodeA, nodeA, evAt)},
			roles:  masterA,
			state:  StateFailover,
			master: nodeA, epoch: 1,
			reason: "failover of 10.0.0.1:6379 in progress (started by Sentinel 10.0.1.1:26379)",
		},
		{
			name:   "failover of another master is ignored",
			brain:  ready(nodeA, 1),
			views:  []view{up(s1, nodeA), up(s2, nodeA), up(s3, nodeA)},
			events: []event{ev(evTryFailover, s1, "m", nodeC, nodeC, evAt)},
			roles:  masterA,
			state:  StateReady,
			master: nodeA, epoch: 1,
		},
		{
			name:  "promoted-slave from the leader switches at once",
			brain: ready(nodeA, 1),
			views: []view{up(s1, nodeA), up(s2, nodeA), up(s3, nodeA)},
			events: []event{
				ev(evTryFailover, s1, "m", nodeA, nodeA, evAt),
				ev(evElectedLeader, s1, "m", nodeA, nodeA, evAt),
				ev(evPromotedSlave, s1, "m", nodeB, nodeA, evAt),
			},
			roles:  bothMaster, // the old master is demoted only later
			state:  StateReady,
			master: nodeB, epoch: 2, switchEvent: evAt,
			reason: "+promoted-slave from Sentinel 10.0.1.1:26379 named 10.0.0.2:6379",
		},
		{
			name:  "promoted replica not yet master keeps holding",
			brain: ready(nodeA, 1),
			views: []view{up(s1, nodeA), up(s2, nodeA), up(s3, nodeA)},
			events: []event{
				ev(evTryFailover, s1, "m", nodeA, nodeA, evAt),
				ev(evPromotedSlave, s1, "m", nodeB, nodeA, evAt),
			},
			roles:  masterA,
			state:  StateFailover,
			master: nodeA, epoch: 1,
		},
		{
			name:   "switch-master from any Sentinel",
			brain:  ready(nodeA, 7),
			views:  []view{up(s1, nodeA), up(s2, nodeA), up(s3, nodeA)},
			events: []event{ev(evSwitchMaster, s3, "m", nodeB, nodeA, evAt)},
			roles:  bothMaster,
			state:  StateReady,
			master: nodeB, epoch: 8, switchEvent: evAt,
		},
		{
			name:   "switch-master from another old master is ignored",
			brain:  ready(nodeA, 7),
			views:  []view{up(s1, nodeA), up(s2, nodeA), up(s3, nodeA)},
			events: []event{ev(evSwitchMaster, s3, "m", nodeB, nodeC, evAt)},
			roles:  bothMaster,
			state:  StateReady,
			master: nodeA, epoch: 7,
		},
		{
			name:   "abort by the only Sentinel trying ends the hold",
			brain:  inFailover(nodeA, 1, t0.Add(-time.Second), s1),
			views:  []view{up(s1, nodeA), up(s2, nodeA), up(s3, nodeA)},
			events: []event{ev(evAbortNoSlave, s1, "m", nodeA, nodeA, evAt)},
			roles:  masterA,
			state:  StateReady,
			master: nodeA, epoch: 1,
		},
		{
			name:   "the aborting Sentinel's flag asked before its abort starts no new hold",
			brain:  inFailover(nodeA, 1, t0.Add(-time.Second), s1),
			views:  []view{askedAt(failing(up(s1, nodeA)), evAt.Add(-time.Millisecond)), up(s2, nodeA), up(s3, nodeA)},
			events: []event{ev(evAbortNoSlave, s1, "m", nodeA, nodeA, evAt)},
			roles:  masterA,
			state:  StateReady,
			master: nodeA, epoch: 1,
		},
		{
			name:   "the aborting Sentinel's flag asked after its abort is a new failover",
			brain:  inFailover(nodeA, 1, t0.Add(-time.Second), s1),
			views:  []view{askedAt(failing(up(s1, nodeA)), evAt.Add(time.Millisecond)), up(s2, nodeA), up(s3, nodeA)},
			events: []event{ev(evAbortNoSlave, s1, "m", nodeA, nodeA, evAt)},
			roles:  masterA,
			state:  StateFailover,
			master: nodeA, epoch: 1,
		},
		{
			name:   "another Sentinel's flag asked before the abort still holds",
			brain:  inFailover(nodeA, 1, t0.Add(-time.Second), s1),
			views:  []view{up(s1, nodeA), askedAt(failing(up(s2, nodeA)), evAt.Add(-time.Millisecond)), up(s3, nodeA)},
			events: []event{ev(evAbortNoSlave, s1, "m", nodeA, nodeA, evAt)},
			roles:  masterA,
			state:  StateFailover,
			master: nodeA, epoch: 1,
		},
		{
			name:  "abort by a Sentinel that lost the election keeps holding",
			brain: inFailover(nodeA, 1, t0.Add(-time.Second), s1, s2),
			views: []view{up(s1, nodeA), up(s2, nodeA), up(s3, nodeA)},
			events: []event{
				ev(evElectedLeader, s1, "m", nodeA, nodeA, evAt),
				ev(evAbortNotElect, s2, "m", nodeA, nodeA, evAt),
			},
			roles:  masterA,
			state:  StateFailover,
			master: nodeA, epoch: 1,
			reason: "started by Sentinel 10.0.1.1:26379",
		},
		{
			name:   "no promotion within FailoverHold: back to the old master",
			brain:  inFailover(nodeA, 1, t0.Add(-16*time.Second), s1),
			views:  []view{up(s1, nodeA), up(s2, nodeA), up(s3, nodeA)},
			roles:  masterA,
			state:  StateReady,
			master: nodeA, epoch: 1,
		},
		{
			name:   "failover while the old master is dead holds rather than fails",
			brain:  inFailover(nodeA, 1, t0.Add(-time.Second), s1),
			views:  []view{up(s1, nodeA), up(s2, nodeA), up(s3, nodeA)},
			roles:  map[string]string{nodeB: "slave"},
			state:  StateFailover,
			master: nodeA, epoch: 1,
		},
		{
			name:   "failover with the Sentinels split holds",
			brain:  inFailover(nodeA, 1, t0.Add(-time.Second), s1),
			views:  []view{up(s1, nodeB), up(s2, nodeA)},
			roles:  masterA,
			state:  StateFailover,
			master: nodeA, epoch: 1,
		},
		{
			name: "stale Sentinels do not switch back after an event switch",
			brain: func() *brain {
				b := ready(nodeB, 2)
				b.recent = &announce{from: nodeA, to: nodeB, at: t0.Add(-time.Second), what: evPromotedSlave, by: s1}
				return b
			}(),
			views:  []view{up(s1, nodeB), up(s2, nodeA), up(s3, nodeA)},
			roles:  bothMaster,
			state:  StateReady,
			master: nodeB, epoch: 2,
			reason: "have not yet learnt of +promoted-slave",
		},
		{
			name: "stale window over: the Sentinels' majority wins again",
			brain: func() *brain {
				b := ready(nodeB, 2)
				b.recent = &announce{from: nodeA, to: nodeB, at: t0.Add(-20 * time.Second), what: evPromotedSlave, by: s1}
				return b
			}(),
			views:  []view{up(s1, nodeB), up(s2, nodeA), up(s3, nodeA)},
			roles:  bothMaster,
			state:  StateReady,
			master: nodeA, epoch: 3,
		},
		{
			name:   "a replica promoted out of the master unannounced holds writes",
			brain:  ready(nodeA, 1),
			views:  []view{up(s1, nodeA), up(s2, nodeA)},
			seen:   promotedB(nodeA, 100*time.Millisecond),
			roles:  bothMaster,
			state:  StateFailover,
			master: nodeA, epoch: 1,
			reason: "started by no Sentinel event: 10.0.0.2:6379 says it was promoted out of it",
		},
		{
			name:   "a promotion out of another master says nothing",
			brain:  ready(nodeA, 1),
			views:  []view{up(s1, nodeA), up(s2, nodeA)},
			seen:   promotedB(nodeC, 100*time.Millisecond),
			roles:  bothMaster,
			state:  StateReady,
			master: nodeA, epoch: 1,
		},
		{
			name:   "a promotion standing past FailoverHold fails closed",
			brain:  ready(nodeA, 1),
			views:  []view{up(s1, nodeA), up(s2, nodeA)},
			seen:   promotedB(nodeA, 16*time.Second),
			roles:  bothMaster,
			state:  StateNoMaster,
			master: nodeA, epoch: 1,
			reason: "has said for 16s that it was promoted out of it",
		},
		{
			name:   "the hold on a promotion ends when the replica no longer says so",
			brain:  promotedOut(nodeA, 1, nodeB),
			views:  []view{up(s1, nodeA), up(s2, nodeA)},
			roles:  masterA,
			state:  StateReady,
			master: nodeA, epoch: 1,
		},
		{
			name: "the hold on a promotion stays while a Sentinel's event says a failover is on",
			brain: func() *brain {
				b := promotedOut(nodeA, 1, nodeB)
				b.failover.trying[s1] = true
				return b
			}(),
			views:  []view{up(s1, nodeA), up(s2, nodeA)},
			roles:  masterA,
			state:  StateFailover,
			master: nodeA, epoch: 1,
		},
		{
			name:   "a hold on a promotion yields to a minority's rival check",
			brain:  promotedOut(nodeA, 1, nodeB),
			views:  []view{listing(up(s1, nodeA), nodeB), down(s2), down(s3)},
			seen:   promotedB(nodeA, time.Second),
			roles:  bothMaster,
			state:  StateNoMaster,
			master: nodeA, epoch: 1,
			reason: "10.0.0.2:6379 answers ROLE master too",
		},
		{
			name:   "a promotion seen by a minority with no rival answering still holds",
			brain:  ready(nodeA, 1),
			views:  []view{up(s1, nodeA), down(s2), down(s3)},
			seen:   promotedB(nodeA, time.Second),
			roles:  masterA,
			state:  StateFailover,
			master: nodeA, epoch: 1,
		},
		{
			name:   "the hold on a promotion stays once a Sentinel names another master",
			brain:  promotedOut(nodeA, 1, nodeB),
			views:  []view{up(s1, nodeB), up(s2, nodeA)},
			roles:  bothMaster,
			state:  StateFailover,
			master: nodeA, epoch: 1,
		},
		{
			name:   "the Sentinels naming the promoted replica switch to it",
			brain:  promotedOut(nodeA, 1, nodeB),
			views:  []view{up(s1, nodeB), up(s2, nodeB)},
			seen:   promotedB(nodeA, time.Second),
			roles:  bothMaster,
			state:  StateReady,
			master: nodeB, epoch: 2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := tt.brain
			b.step(t0, tt.views, tt.events, tt.seen, roles(tt.roles))
			if b.state != tt.state || b.master != tt.master || b.epoch != tt.epoch {
				t.Errorf("got state %v master %q epoch %d, want %v %q %d (reason %q)",
					b.state, b.master, b.epoch, tt.state, tt.master, tt.epoch, b.reason)
			}
			if !b.switchEvent.Equal(tt.switchEvent) {
				t.Errorf("switchEvent %v, want %v", b.switchEvent, tt.switchEvent)
			}
			if !strings.Contains(b.reason, tt.reason) {
				t.Errorf("reason %q does not contain %q", b.reason, tt.reason)
			}
		})
	}
}

// TestBrainFailoverSequence walks one failover through several steps, as
// the events arrive, with the other Sentinels catching up afterwards.
func TestBrainFailoverSequence(t *testing.T) {
	b := newBrain(15*time.Second, zap.NewNop())
	now := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	roles := map[string]string{nodeA: "master", nodeB: "slave"}
	role := func(a string) roleResult { return roleResult{Role: roles[a]} }
	steps := []struct {
		name   string
		views  []view
		events []event
		before func()
		state  State
		master string
		epoch  uint64
	}{
		{name: "start", views: []view{up(s1, nodeA), up(s2, nodeA), up(s3, nodeA)}, state: StateReady, master: nodeA, epoch: 1},
		{name: "try", views: []view{up(s1, nodeA), up(s2, nodeA), up(s3, nodeA)},
			events: []event{ev(evTryFailover, s1, "m", nodeA, nodeA, now)}, state: StateFailover, master: nodeA, epoch: 1},
		{name: "wait-promotion", views: []view{up(s1, nodeA), up(s2, nodeA), up(s3, nodeA)},
			events: []event{ev(evWaitPromotion, s1, "m", nodeB, nodeA, now)}, state: StateFailover, master: nodeA, epoch: 1},
		{name: "promoted", views: []view{up(s1, nodeA), up(s2, nodeA), up(s3, nodeA)},
			before: func() { roles[nodeB] = "master" },
			events: []event{ev(evPromotedSlave, s1, "m", nodeB, nodeA, now)}, state: StateReady, master: nodeB, epoch: 2},
		{name: "others lag", views: []view{up(s1, nodeA), up(s2, nodeA), up(s3, nodeA)}, state: StateReady, master: nodeB, epoch: 2},
		{name: "others catch up", views: []view{up(s1, nodeA), up(s2, nodeB), up(s3, nodeB)},
			events: []event{ev(evSwitchMaster, s2, "m", nodeB, nodeA, now)}, state: StateReady, master: nodeB, epoch: 2},
		{name: "old master demoted", before: func() { roles[nodeA] = "slave" },
			views: []view{up(s1, nodeB), up(s2, nodeB), up(s3, nodeB)}, state: StateReady, master: nodeB, epoch: 2},
	}
	for _, s := range steps {
		now = now.Add(100 * time.Millisecond)
		if s.before != nil {
			s.before()
		}
		b.step(now, s.views, s.events, promotions{}, role)
		if b.state != s.state || b.master != s.master || b.epoch != s.epoch {
			t.Fatalf("%s: got %v %q %d, want %v %q %d (reason %q)", s.name, b.state, b.master, b.epoch, s.state, s.master, s.epoch, b.reason)
		}
	}
	if b.recent != nil {
		t.Errorf("recent switch still remembered after the Sentinels caught up: %+v", b.recent)
	}
}

// TestBrainFormerMasterIsNoPromotion: failovers seconds apart, A to B and
// back to A before A was converted: A's replication stream never changed,
// and B, still answering as master until Sentinel converts it, has A's
// stream as its master_replid2. That is no new promotion out of A; once B
// no longer says so, a later word that it was promoted is one.
func TestBrainFormerMasterIsNoPromotion(t *testing.T) {
	b := newBrain(15*time.Second, zap.NewNop())
	now := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	roles := map[string]string{nodeA: "master", nodeB: "slave"}
	role := func(a string) roleResult { return roleResult{Role: roles[a]} }
	all := func(m string) []view { return []view{up(s1, m), up(s2, m), up(s3, m)} }
	none := promotions{}
	bOutOfA := promotions{of: nodeA, since: map[string]time.Time{nodeB: now}}
	steps := []struct {
		name   string
		views  []view
		events []event
		seen   promotions
		before func()
		state  State
		master string
		epoch  uint64
	}{
		{name: "start", views: all(nodeA), seen: none, state: StateReady, master: nodeA, epoch: 1},
		{name: "to B", views: all(nodeA), before: func() { roles[nodeB] = "master" },
			events: []event{ev(evPromotedSlave, s1, "m", nodeB, nodeA, now)}, state: StateReady, master: nodeB, epoch: 2},
		{name: "back to A", views: all(nodeB),
			events: []event{ev(evPromotedSlave, s1, "m", nodeA, nodeB, now)}, state: StateReady, master: nodeA, epoch: 3},
		{name: "a round that lists no replica", views: all(nodeA), seen: promotions{of: nodeA}, state: StateReady, master: nodeA, epoch: 3},
		{name: "B, not yet converted, names A's stream", views: all(nodeA), seen: bOutOfA, state: StateReady, master: nodeA, epoch: 3},
		{name: "B converted", views: all(nodeA), seen: promotions{of: nodeA, not: map[string]bool{nodeB: true}}, before: func() { roles[nodeB] = "slave" },
			state: StateReady, master: nodeA, epoch: 3},
		{name: "B promoted out of A", views: all(nodeA), seen: bOutOfA, before: func() { roles[nodeB] = "master" },
			state: StateFailover, master: nodeA, epoch: 3},
	}
	for _, s := range steps {
		now = now.Add(100 * time.Millisecond)
		if s.before != nil {
			s.before()
		}
		b.step(now, s.views, s.events, s.seen, role)
		if b.state != s.state || b.master != s.master || b.epoch != s.epoch {
			t.Fatalf("%s: got %v %q %d, want %v %q %d (reason %q)", s.name, b.state, b.master, b.epoch, s.state, s.master, s.epoch, b.reason)
		}
	}
}

// A Service address that reaches a Sentinel also dialled at its own
// address is one Sentinel in the status, as in the vote: listed under its
// own address, reachable if either address is, so that the counts behind
// switchyard_sentinels_reachable match the vote.
func TestSentinelStatusesCountEachSentinelOnce(t *testing.T) {
	const svc = "platform-kv-sentinel.platform.svc:26379"
	seed := up(svc, nodeA)
	seed.ID = "id-" + s1 // the Service reached s1 this time
	s1down := down(s1)
	s1down.ID = "id-" + s1
	views := []view{seed, s1down, up(s2, nodeA), up(s3, nodeB), {Addr: "10.0.1.9:26379", Attempted: true, Err: "timeout"}}
	got := sentinelStatuses(views, nodeA, []string{svc})
	if len(got) != 4 {
		t.Fatalf("%d entries, want 4 Sentinels: %+v", len(got), got)
	}
	first := got[0]
	if first.Addr != s1 || len(first.Also) != 1 || first.Also[0] != svc || !first.Reachable || !first.Agrees || first.LastError != "" {
		t.Fatalf("merged entry %+v: want s1's address, the Service in also, reachable through it", first)
	}
	reach, agree := 0, 0
	for _, s := range got {
		if s.Reachable {
			reach++
		}
		if s.Agrees {
			agree++
		}
	}
	if reach != 3 || agree != 2 {
		t.Fatalf("reachable %d, agreeing %d; want 3 and 2", reach, agree)
	}
	if n := tallyViews(views).reachable; n != reach {
		t.Fatalf("the vote counts %d reachable Sentinels, the status %d", n, reach)
	}
}

// TestUnsyncedPromotion: a switch to a replica that was loading a full
// resync's data, or whose link the Sentinels reported down, is logged;
// a switch to one in sync, or no switch, is not.
func TestUnsyncedPromotion(t *testing.T) {
	old := &Topology{Master: nodeA, Replicas: []Replica{
		{Addr: nodeB, MasterLinkStatus: "ok", LinkUp: true},
		{Addr: nodeC, MasterLinkStatus: "ok", Loading: true},
		{Addr: "10.0.0.4:6379", MasterLinkStatus: "err"},
	}}
	for _, tt := range []struct {
		to   string
		want bool
	}{
		{nodeB, false},
		{nodeC, true},
		{"10.0.0.4:6379", true},
		{nodeA, false},           // no switch
		{"10.0.0.9:6379", false}, // not a replica it knew
	} {
		if _, got := unsyncedPromotion(old, &Topology{Master: tt.to}); got != tt.want {
			t.Errorf("switch to %s: unsynced %v, want %v", tt.to, got, tt.want)
		}
	}
	if _, got := unsyncedPromotion(nil, &Topology{Master: nodeC}); got {
		t.Error("the first master counted as a promotion")
	}
}

// TestBrainAbortLeavesAHoldOnAPromotion: an abort from a Sentinel that was
// not trying does not end a hold on a replica's word (its attempt did not
// promote the replica), nor log one.
func TestBrainAbortLeavesAHoldOnAPromotion(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	t0 := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	b := newBrain(15*time.Second, zap.New(core))
	b.state, b.master, b.epoch = StateFailover, nodeA, 1
	started := t0.Add(-time.Second)
	b.failover = &failover{old: nodeA, started: started, trying: map[string]bool{}, promoted: nodeB}
	seen := promotions{of: nodeA, since: map[string]time.Time{nodeB: started}}
	role := func(a string) roleResult { return roleResult{Role: "master"} }
	b.step(t0, []view{up(s1, nodeA), up(s2, nodeA)}, []event{ev(evAbortNotElect, s1, "m", nodeA, nodeA, t0)}, seen, role)
	if b.state != StateFailover || b.failover == nil || !b.failover.started.Equal(started) {
		t.Fatalf("state %v failover %+v, want the hold kept from %v", b.state, b.failover, started)
	}
	if n := logs.Len(); n != 0 {
		t.Errorf("%d log lines, want none: %v", n, logs.All()[0].Message)
	}
}
