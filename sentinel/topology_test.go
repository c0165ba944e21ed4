package sentinel

import (
	"strings"
	"testing"
)

// TestTopologyQuorum: the facade's SENTINEL CKQUORUM answer is the worst
// a reachable Sentinel gives; with none reachable, nobody vouches for a
// failover, so it is NOQUORUM too.
func TestTopologyQuorum(t *testing.T) {
	const (
		ok3 = "OK 3 usable Sentinels. Quorum and failover authorization can be reached"
		no1 = "NOQUORUM 1 usable Sentinels. Not enough available Sentinels to reach the majority and authorize a failover"
	)
	for _, tc := range []struct {
		name      string
		sentinels []SentinelStatus
		want      string // a prefix
	}{
		{"fixed upstream", nil, ""},
		{"all say OK", []SentinelStatus{{Reachable: true, Quorum: ok3}, {Reachable: true, Quorum: ok3}}, ok3},
		{"one says NOQUORUM", []SentinelStatus{{Reachable: true, Quorum: ok3}, {Reachable: true, Quorum: no1}}, no1},
		{"an unreachable one's old answer", []SentinelStatus{{Reachable: true, Quorum: ok3}, {Reachable: false, Quorum: no1}}, ok3},
		{"none reachable", []SentinelStatus{{Reachable: false, Quorum: ok3}}, "NOQUORUM switchyard: none of the group's Sentinels answers"},
		{"asked of none", []SentinelStatus{{Reachable: true}}, ""},
		{"unknown beside OK", []SentinelStatus{{Reachable: true}, {Reachable: true, Quorum: ok3}}, ok3},
	} {
		got := Topology{Sentinels: tc.sentinels}.Quorum()
		if !strings.HasPrefix(got, tc.want) || tc.want == "" && got != "" {
			t.Errorf("%s: %q, want %q…", tc.name, got, tc.want)
		}
	}
}
