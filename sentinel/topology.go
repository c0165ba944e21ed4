package sentinel

import (
	"slices"
	"strconv"
	"strings"
	"time"
)

// State says whether the proxy may send writes to Topology.Master.
type State int

const (
	// StateUnknown: nothing decided yet (start-up).
	StateUnknown State = iota
	// StateReady: Master is verified (a majority of the reachable
	// Sentinels name it and it answers ROLE master).
	StateReady
	// StateFailover: a failover of Master is in progress; Master is the old
	// master and writes must be held.
	StateFailover
	// StateNoMaster: the Sentinels disagree, the node they name is not
	// master, or another node of the group answers ROLE master too while
	// few Sentinels or none vouch for it. Fail closed; Master is only the last verified master, for
	// information.
	StateNoMaster
	// StateDegraded: no Sentinel is reachable; Master is the last verified
	// master and still answers ROLE master, and none of the replicas the
	// Sentinels last listed does.
	StateDegraded
)

// String returns the state's name as used in logs and /status.
func (s State) String() string {
	switch s {
	case StateUnknown:
		return "unknown"
	case StateReady:
		return "ready"
	case StateFailover:
		return "failover"
	case StateNoMaster:
		return "no-master"
	case StateDegraded:
		return "degraded"
	}
	return "State(" + strconv.Itoa(int(s)) + ")"
}

// Replica is a replica as the Sentinels report it, with what its own INFO
// said when the Watcher last asked it.
type Replica struct {
	Addr             string   // host:port as Sentinel announces it
	Flags            []string // e.g. "slave", "s_down", "disconnected"
	Down             bool     // s_down, o_down or disconnected
	MasterLinkStatus string   // "ok" or "err", from SENTINEL replicas
	ReplOffset       int64    // slave-repl-offset, from SENTINEL replicas (Sentinel refreshes it only every 10 s)

	// The fields below come from the replica itself, read every
	// PollInterval with INFO replication and INFO persistence. A replica
	// that stops answering keeps its last values; only Checked tells that
	// they are old.
	LinkUp   bool      // its own master_link_status is up (false for a node that says it is a master)
	Loading  bool      // loading:1, or it answered -LOADING
	Offset   int64     // its slave_repl_offset; -1 if unknown
	LagBytes int64     // the master's master_repl_offset, read in the same round, minus Offset (0 if negative); -1 if unknown, or if it follows another replication stream than the master's
	Checked  time.Time // when its INFO was last read; zero if never
	NoAnswer bool      // its last INFO probe got no answer within the dial timeout
}

// Healthy reports whether the replica may serve reads at now: Sentinel does
// not flag it (s_down, o_down, disconnected), its own link to the master
// is up, it is not loading, it answered its last INFO probe, that INFO
// was read within staleAfter, and its lag is known (it follows the
// master's replication stream) and at most maxLagBytes.
//
// staleAfter should allow for one slow round: at least PollInterval +
// DialTimeout, e.g. 2×PollInterval + DialTimeout.
func (r Replica) Healthy(maxLagBytes int64, staleAfter time.Duration, now time.Time) bool {
	return !r.Down && r.LinkUp && !r.Loading && !r.NoAnswer &&
		!r.Checked.IsZero() && now.Sub(r.Checked) <= staleAfter &&
		r.LagBytes >= 0 && r.LagBytes <= maxLagBytes
}

// SentinelStatus is what one Sentinel told the Watcher. A Sentinel
// reached at more than one address (a configured Service address and its
// own, discovered) is listed once, under its own address, with the others
// in Also: it has one vote.
type SentinelStatus struct {
	Addr      string   `json:"addr"`
	Also      []string `json:"also,omitempty"`
	Reachable bool     `json:"reachable"`
	Master    string   `json:"master,omitempty"` // the master it names, "" if unreachable
	Agrees    bool     `json:"agrees"`           // names the chosen master
	// Quorum is its answer to SENTINEL CKQUORUM on its last successful
	// poll ("OK 3 usable Sentinels. …" or "NOQUORUM …"); "" if unknown.
	Quorum    string `json:"quorum,omitempty"`
	LastError string `json:"last_error,omitempty"`
}

// Topology is one published view of the group. The proxy must treat its
// slices as read-only: they are shared with every other reader.
type Topology struct {
	Epoch       uint64 // increases by one every time Master changes (never on other changes)
	State       State
	Master      string // host:port; "" when none was ever verified
	Replicas    []Replica
	Sentinels   []SentinelStatus
	Reason      string    // why the state is what it is, for logs and /status
	LastSwitch  time.Time // when Master last changed
	SwitchEvent time.Time // when the +switch-master or +promoted-slave that led to the last change was received; zero if the change came from polling
}

// Writable reports whether writes may go to Master now.
func (t Topology) Writable() bool {
	return (t.State == StateReady || t.State == StateDegraded) && t.Master != ""
}

// Quorum is what the group's Sentinels answer SENTINEL CKQUORUM: the
// first NOQUORUM among the reachable ones, else the first OK. With
// Sentinels listed and none reachable it is a NOQUORUM of the proxy's
// own: nobody can say that a failover could be authorised. "" when no
// reachable Sentinel has answered the question (none polled yet, each
// refused it) or the group has no Sentinels.
func (t Topology) Quorum() string {
	ok, reachable := "", false
	for _, s := range t.Sentinels {
		if !s.Reachable {
			continue
		}
		reachable = true
		switch {
		case strings.HasPrefix(s.Quorum, "NOQUORUM "):
			return s.Quorum
		case ok == "" && s.Quorum != "":
			ok = s.Quorum
		}
	}
	if !reachable && len(t.Sentinels) > 0 {
		return "NOQUORUM switchyard: none of the group's Sentinels answers; whether they can authorize a failover is unknown"
	}
	return ok
}

// equal reports whether two topologies would look the same to a reader.
func (t *Topology) equal(o *Topology) bool {
	return t.sameShape(o) && slices.EqualFunc(t.Replicas, o.Replicas, func(a, b Replica) bool {
		return a.ReplOffset == b.ReplOffset && a.Offset == b.Offset && a.LagBytes == b.LagBytes && a.Checked.Equal(b.Checked)
	})
}

// sameShape reports whether two topologies differ at most in the replicas'
// offsets, lag and Checked: what changes on every poll under write load,
// and what Changes reports at most once per PollInterval.
func (t *Topology) sameShape(o *Topology) bool {
	return t.Epoch == o.Epoch && t.State == o.State && t.Master == o.Master &&
		t.Reason == o.Reason && t.LastSwitch.Equal(o.LastSwitch) && t.SwitchEvent.Equal(o.SwitchEvent) &&
		slices.EqualFunc(t.Replicas, o.Replicas, sameReplica) &&
		slices.EqualFunc(t.Sentinels, o.Sentinels, func(a, b SentinelStatus) bool {
			return a.Addr == b.Addr && slices.Equal(a.Also, b.Also) && a.Reachable == b.Reachable &&
				a.Master == b.Master && a.Agrees == b.Agrees && a.Quorum == b.Quorum && a.LastError == b.LastError
		})
}

// sameReplicaSet reports whether two topologies have the same master and
// the same replica addresses, in the same order.
func (t *Topology) sameReplicaSet(o *Topology) bool {
	return t.Master == o.Master && slices.EqualFunc(t.Replicas, o.Replicas, func(a, b Replica) bool { return a.Addr == b.Addr })
}

// sameReplica compares what decides a replica's health, apart from its
// lag and how fresh it is.
func sameReplica(a, b Replica) bool {
	return a.Addr == b.Addr && a.Down == b.Down && a.MasterLinkStatus == b.MasterLinkStatus &&
		a.LinkUp == b.LinkUp && a.Loading == b.Loading && a.NoAnswer == b.NoAnswer && slices.Equal(a.Flags, b.Flags)
}
