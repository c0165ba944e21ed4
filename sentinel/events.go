package sentinel

import (
	"net"
	"strings"
	"time"
)

// Event channels. Sentinel publishes each event on a channel named after
// it. Payloads, as observed from Redis 7.0.15:
//
//	+switch-master  "<master-name> <old-ip> <old-port> <new-ip> <new-port>"
//	master events   "master <master-name> <ip> <port>" (+odown adds " #quorum 2/2")
//	replica events  "slave <ip>:<port> <ip> <port> @ <master-name> <master-ip> <master-port>"
//
// +selected-slave, +failover-state-send-slaveof-noone,
// +failover-state-wait-promotion and +promoted-slave are replica events
// naming the promoted replica; the other failover steps are master events.
const (
	evSwitchMaster  = "+switch-master"
	evTryFailover   = "+try-failover"
	evElectedLeader = "+elected-leader"
	evSelectSlave   = "+failover-state-select-slave"
	evSelectedSlave = "+selected-slave"
	evSendNoOne     = "+failover-state-send-slaveof-noone"
	evWaitPromotion = "+failover-state-wait-promotion"
	evPromotedSlave = "+promoted-slave"
	evReconfSlaves  = "+failover-state-reconf-slaves"
	evFailoverEnd   = "+failover-end"
	evAbortNotElect = "-failover-abort-not-elected"
	evAbortNoSlave  = "-failover-abort-no-good-slave"
	evAbortTimeout  = "-failover-abort-slave-timeout"
)

// eventChannels are the channels each Sentinel link subscribes to. The
// health events do not change the decision by themselves; they make the
// Watcher poll at once instead of at the next tick.
var eventChannels = []string{
	evSwitchMaster,
	"+sdown", "-sdown", "+odown", "-odown", "+convert-to-slave", "+slave",
	evFailoverEnd,
	evTryFailover, evElectedLeader, evSelectSlave, evSelectedSlave, evSendNoOne,
	evWaitPromotion, evPromotedSlave, evReconfSlaves,
	evAbortNotElect, evAbortNoSlave, evAbortTimeout,
}

// eventKind says what an event means to the decision.
type eventKind int

const (
	kindOther    eventKind = iota // health: poll now
	kindProgress                  // a failover of Master is being attempted
	kindLeader                    // progress that only the elected Sentinel publishes
	kindPromoted                  // the elected Sentinel promoted Addr
	kindSwitch                    // +switch-master: Master moved to Addr
	kindAbort                     // the publishing Sentinel gave up its failover
)

func kindOf(channel string) eventKind {
	switch channel {
	case evSwitchMaster:
		return kindSwitch
	case evPromotedSlave:
		return kindPromoted
	case evTryFailover:
		return kindProgress
	case evElectedLeader, evSelectSlave, evSelectedSlave, evSendNoOne, evWaitPromotion, evReconfSlaves:
		return kindLeader
	case evAbortNotElect, evAbortNoSlave, evAbortTimeout:
		return kindAbort
	}
	return kindOther
}

// event is one parsed Sentinel event.
type event struct {
	At      time.Time // when it was received
	From    string    // address of the Sentinel link it arrived on
	Channel string
	Kind    eventKind
	Name    string // master name it is about
	Addr    string // the instance: the replica for replica events, the new master for +switch-master
	Master  string // the master it is about: for +switch-master the old master
}

// parseEvent parses a Sentinel event payload. It reports false for a
// payload it does not understand.
func parseEvent(channel, payload string) (event, bool) {
	ev := event{Channel: channel, Kind: kindOf(channel)}
	f := strings.Fields(payload)
	if channel == evSwitchMaster {
		if len(f) < 5 {
			return ev, false
		}
		ev.Name = f[0]
		ev.Master = net.JoinHostPort(f[1], f[2])
		ev.Addr = net.JoinHostPort(f[3], f[4])
		return ev, true
	}
	// "<type> <name> <ip> <port> [@ <master-name> <master-ip> <master-port>] [...]"
	if len(f) < 4 {
		return ev, false
	}
	ev.Addr = net.JoinHostPort(f[2], f[3])
	if f[0] == "master" {
		ev.Name = f[1]
		ev.Master = ev.Addr
		return ev, true
	}
	if len(f) < 8 || f[4] != "@" {
		return ev, false
	}
	ev.Name = f[5]
	ev.Master = net.JoinHostPort(f[6], f[7])
	return ev, true
}
