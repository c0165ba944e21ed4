package sentinel

import (
	"slices"
	"strconv"
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
	// StateNoMaster: the Sentinels disagree, or the node they name is not
	// master. Fail closed; Master is only the last verified master, for
	// information.
	StateNoMaster
	// StateDegraded: no Sentinel is reachable; Master is the last verified
	// master and still answers ROLE master.
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

// Replica is a replica as the Sentinels report it.
type Replica struct {
	Addr             string   // host:port as Sentinel announces it
	Flags            []string // e.g. "slave", "s_down", "disconnected"
	Down             bool     // s_down, o_down or disconnected
	MasterLinkStatus string   // "ok" or "err", from SENTINEL replicas
	ReplOffset       int64    // slave-repl-offset
}

// SentinelStatus is what one Sentinel address told the Watcher.
type SentinelStatus struct {
	Addr      string
	Reachable bool
	Master    string // the master it names, "" if unreachable
	Agrees    bool   // names the chosen master
	LastError string
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

// equal reports whether two topologies would look the same to a reader.
func (t *Topology) equal(o *Topology) bool {
	return t.Epoch == o.Epoch && t.State == o.State && t.Master == o.Master &&
		t.Reason == o.Reason && t.LastSwitch.Equal(o.LastSwitch) && t.SwitchEvent.Equal(o.SwitchEvent) &&
		slices.EqualFunc(t.Replicas, o.Replicas, func(a, b Replica) bool {
			return a.Addr == b.Addr && a.Down == b.Down && a.MasterLinkStatus == b.MasterLinkStatus &&
				a.ReplOffset == b.ReplOffset && slices.Equal(a.Flags, b.Flags)
		}) &&
		slices.Equal(t.Sentinels, o.Sentinels)
}
