package main

import (
	"strings"
	"testing"
	"time"
)

const ms1 = time.Millisecond

func TestMeasure(t *testing.T) {
	// Fault at 100 ms, +try-failover at 110, +promoted-slave at 1200,
	// +switch-master at 1300.
	tl := timeline{fault: 100 * ms1, first: map[string]time.Duration{
		chTryFailover: 110 * ms1, chPromotedSlave: 1200 * ms1, chSwitchMaster: 1300 * ms1,
	}}
	a := func(seq int64, sent, at time.Duration) ack { return ack{seq: seq, sent: sent * ms1, at: at * ms1} }
	logs := []*writerLog{
		{acks: []ack{
			a(1, 0, 50),      // before the fault, kept
			a(2, 50, 105),    // before +try-failover, lost (not replicated)
			a(3, 105, 1250),  // held, released to the new master, kept
			a(4, 1250, 1310), // kept: the first write on the new master after the switch
		}, errors: 2},
		{acks: []ack{
			a(1, 0, 60),      // kept
			a(2, 60, 1301),   // sent before the fault, acknowledged late: kept but not "on the new master"
			a(5, 1302, 1305), // lost after the switch
			a(6, 1305, 1306), // lost after the switch
			a(7, 1150, 1190), // lost between +try-failover and +switch-master
		}},
	}
	present := presence{
		{false, true, false, true, true},
		{false, true, true},
	}
	m := measure(logs, present, tl)
	if m.acked != 9 || m.errors != 2 {
		t.Errorf("acked %d errors %d, want 9 and 2", m.acked, m.errors)
	}
	if m.lostBeforeTry != 1 || m.lostTryToSwitch != 1 || m.lostAfterSwitch != 2 {
		t.Errorf("lost %d/%d/%d, want 1/1/2", m.lostBeforeTry, m.lostTryToSwitch, m.lostAfterSwitch)
	}
	if len(m.lost) != 4 {
		t.Errorf("lost list has %d entries, want 4", len(m.lost))
	}
	if !m.firstNewOK || m.firstNew != 10*ms1 {
		t.Errorf("first write on the new master %v (%v), want 10ms after the switch", m.firstNew, m.firstNewOK)
	}
	if !m.firstNewPromotedOK || m.firstNewPromoted != 50*ms1 {
		t.Errorf("first write on the new master %v (%v), want 50ms after the promotion", m.firstNewPromoted, m.firstNewPromotedOK)
	}
	// Sorted acks: 50 60 105 1190 1250 1301 1305 1306 1310: the longest
	// gap is 105 → 1190.
	if m.gap != 1085*ms1 || m.gapFrom != 105*ms1 {
		t.Errorf("gap %v from %v, want 1.085s from 105ms", m.gap, m.gapFrom)
	}
}

func TestMeasureWithoutSwitch(t *testing.T) {
	logs := []*writerLog{{acks: []ack{{seq: 1, at: ms1}, {seq: 2, at: 2 * ms1}}}}
	m := measure(logs, presence{{false, true}}, timeline{first: map[string]time.Duration{}})
	if m.firstNewOK || m.firstNewPromotedOK {
		t.Error("first write on the new master reported without a switch")
	}
	if m.lostBeforeTry != 1 || m.lostAfterSwitch != 0 {
		t.Errorf("lost %d before, %d after; want 1, 0", m.lostBeforeTry, m.lostAfterSwitch)
	}
}

func TestListPresence(t *testing.T) {
	row, twice, disorder, err := listPresence([]string{"3", "1"})
	if err != nil {
		t.Fatal(err)
	}
	if twice != 0 || disorder != 1 {
		t.Errorf("3, 1: %d twice, %d out of order; want 0, 1", twice, disorder)
	}
	p := presence{row}
	for seq, want := range map[int64]bool{0: false, 1: true, 2: false, 3: true, 4: false, -1: false} {
		if got := p.has(0, seq); got != want {
			t.Errorf("has(0, %d) = %v, want %v", seq, got, want)
		}
	}
	if p.has(1, 1) {
		t.Error("has(1, 1) on a missing writer")
	}
	if _, _, _, err := listPresence([]string{"1", "x"}); err == nil {
		t.Error("a non-integer value was accepted")
	}
	if _, twice, disorder, _ := listPresence([]string{"1", "2", "2", "3", "5", "5"}); twice != 2 || disorder != 0 {
		t.Errorf("1, 2, 2, 3, 5, 5: %d twice, %d out of order; want 2, 0", twice, disorder)
	}
}

func TestBuildTimeline(t *testing.T) {
	start := time.Unix(1000, 0)
	fault := start.Add(time.Second)
	at := func(d time.Duration) time.Time { return fault.Add(d) }
	evs := []event{
		{at: at(-time.Millisecond), channel: chSwitchMaster, payload: "bench 127.0.0.1 1 127.0.0.1 9"}, // before the fault: ignored
		{at: at(900 * ms1), channel: chSdown, payload: "slave 127.0.0.1:2 127.0.0.1 2 @ bench 127.0.0.1 1"},
		{at: at(1000 * ms1), channel: chSdown, payload: "master bench 127.0.0.1 1"},
		{at: at(2100 * ms1), channel: chSwitchMaster, payload: "bench 127.0.0.1 1 127.0.0.1 2"},
		{at: at(2000 * ms1), channel: chSwitchMaster, payload: "bench 127.0.0.1 1 127.0.0.1 2"},
		{at: at(9000 * ms1), channel: chSwitchMaster, payload: "bench 127.0.0.1 2 127.0.0.1 3"},
	}
	tl := buildTimeline(evs, start, fault)
	if tl.fault != time.Second {
		t.Errorf("fault at %v, want 1s", tl.fault)
	}
	if d, _ := tl.at(chSdown); d != 2*time.Second {
		t.Errorf("+sdown at %v, want 2s (the master's, not the replica's)", d)
	}
	if d, _ := tl.at(chSwitchMaster); d != 3*time.Second {
		t.Errorf("+switch-master at %v, want 3s (the earliest after the fault)", d)
	}
	if got := strings.Join(tl.newMasters, " "); got != "127.0.0.1:2 127.0.0.1:3" {
		t.Errorf("new masters %q", got)
	}
}

func TestParseShowStat(t *testing.T) {
	out := "# pxname,svname,qcur,status,weight\n" +
		"redis_in,FRONTEND,,OPEN,\n" +
		"redis,r0,0,UP,1\n" +
		"redis,r1,0,DOWN 1/2,1\n" +
		"redis,r2,0,UP 1/3,1\n" +
		"redis,BACKEND,0,UP,1\n\n"
	st, err := parseShowStat(out, "redis")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"r0": "UP", "r1": "DOWN", "r2": "UP"}
	if len(st) != len(want) {
		t.Errorf("states %v, want %v", st, want)
	}
	for k, v := range want {
		if st[k] != v {
			t.Errorf("%s is %q, want %q", k, st[k], v)
		}
	}
	if _, err := parseShowStat("# a,b\n1,2\n", "redis"); err == nil {
		t.Error("a header without status was accepted")
	}
}

func TestParseFirstCommandMetric(t *testing.T) {
	text := `# HELP switchyard_switch_to_first_command_seconds Time from …
# TYPE switchyard_switch_to_first_command_seconds histogram
switchyard_switch_to_first_command_seconds_bucket{group="bench",le="0.001"} 0
switchyard_switch_to_first_command_seconds_sum{group="bench"} 0.0065
switchyard_switch_to_first_command_seconds_count{group="bench"} 1
switchyard_switch_to_first_command_seconds_sum{group="other"} 9
`
	m, ok, err := parseFirstCommandMetric(strings.NewReader(text))
	if err != nil || !ok || m.count != 1 || m.sum != 0.0065 {
		t.Errorf("got %+v, %v, %v; want sum 0.0065, count 1", m, ok, err)
	}
	if _, ok, err := parseFirstCommandMetric(strings.NewReader("go_goroutines 7\n")); ok || err != nil {
		t.Errorf("absent series: ok %v, err %v", ok, err)
	}
}

func TestReplaceBetween(t *testing.T) {
	doc := "# T\n\n" + markerStart + "\nold\n" + markerEnd + "\n\ntail\n"
	got, err := replaceBetween([]byte(doc), "\nnew table\n\n")
	if err != nil {
		t.Fatal(err)
	}
	want := "# T\n\n" + markerStart + "\nnew table\n" + markerEnd + "\n\ntail\n"
	if string(got) != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if _, err := replaceBetween([]byte("no markers"), "x"); err == nil {
		t.Error("a document without markers was accepted")
	}
}

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		writers int
		after   time.Duration
		sc      string
		wantErr bool
	}{
		{name: "defaults", writers: 20, after: 5 * time.Second, sc: "graceful,kill,zombie"},
		{name: "quick", args: []string{"-quick"}, writers: 5, after: 2 * time.Second, sc: "graceful,kill,zombie"},
		{name: "quick keeps explicit flags", args: []string{"-quick", "-writers", "7"}, writers: 7, after: 2 * time.Second, sc: "graceful,kill,zombie"},
		{name: "order and duplicates", args: []string{"-scenarios", "zombie,graceful,zombie"}, writers: 20, after: 5 * time.Second, sc: "graceful,zombie"},
		{name: "unknown scenario", args: []string{"-scenarios", "flood"}, wantErr: true},
		{name: "unknown endpoint", args: []string{"-endpoints", "twemproxy"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parseFlags(tt.args)
			if tt.wantErr {
				if err == nil {
					t.Fatal("no error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if o.writers != tt.writers || o.after != tt.after || strings.Join(o.scenarios, ",") != tt.sc {
				t.Errorf("writers %d after %v scenarios %v; want %d %v %s", o.writers, o.after, o.scenarios, tt.writers, tt.after, tt.sc)
			}
		})
	}
}
