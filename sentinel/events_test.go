package sentinel

import "testing"

// Payloads as Redis 7.0.15 published them during a real failover.
func TestParseEvent(t *testing.T) {
	tests := []struct {
		name, channel, payload string
		ok                     bool
		kind                   eventKind
		mname, addr, master    string
	}{
		{"switch-master", "+switch-master", "mymaster 127.0.0.1 31363 127.0.0.1 10295",
			true, kindSwitch, "mymaster", "127.0.0.1:10295", "127.0.0.1:31363"},
		{"try-failover", "+try-failover", "master mymaster 127.0.0.1 31363",
			true, kindProgress, "mymaster", "127.0.0.1:31363", "127.0.0.1:31363"},
		{"elected-leader", "+elected-leader", "master mymaster 127.0.0.1 31363",
			true, kindLeader, "mymaster", "127.0.0.1:31363", "127.0.0.1:31363"},
		{"selected-slave", "+selected-slave", "slave 127.0.0.1:10295 127.0.0.1 10295 @ mymaster 127.0.0.1 31363",
			true, kindLeader, "mymaster", "127.0.0.1:10295", "127.0.0.1:31363"},
		{"promoted-slave", "+promoted-slave", "slave 127.0.0.1:10295 127.0.0.1 10295 @ mymaster 127.0.0.1 31363",
			true, kindPromoted, "mymaster", "127.0.0.1:10295", "127.0.0.1:31363"},
		{"odown with quorum suffix", "+odown", "master mymaster 127.0.0.1 10295 #quorum 2/2",
			true, kindOther, "mymaster", "127.0.0.1:10295", "127.0.0.1:10295"},
		{"abort", "-failover-abort-no-good-slave", "master mymaster 127.0.0.1 6379",
			true, kindAbort, "mymaster", "127.0.0.1:6379", "127.0.0.1:6379"},
		{"ipv6", "+switch-master", "m ::1 6379 ::1 6380",
			true, kindSwitch, "m", "[::1]:6380", "[::1]:6379"},
		{"short switch-master", "+switch-master", "mymaster 127.0.0.1 1", false, kindSwitch, "", "", ""},
		{"replica without master part", "+slave", "slave 127.0.0.1:1 127.0.0.1 1", false, kindOther, "", "", ""},
		{"empty", "+sdown", "", false, kindOther, "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, ok := parseEvent(tt.channel, tt.payload)
			if ok != tt.ok {
				t.Fatalf("ok = %v, want %v (%+v)", ok, tt.ok, e)
			}
			if !ok {
				return
			}
			if e.Kind != tt.kind || e.Name != tt.mname || e.Addr != tt.addr || e.Master != tt.master {
				t.Errorf("got kind %d name %q addr %q master %q, want %d %q %q %q", e.Kind, e.Name, e.Addr, e.Master, tt.kind, tt.mname, tt.addr, tt.master)
			}
		})
	}
}
