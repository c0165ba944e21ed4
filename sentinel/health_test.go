package sentinel

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

func TestReplicaHealthy(t *testing.T) {
	now := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	good := Replica{Addr: nodeB, Flags: []string{"slave"}, MasterLinkStatus: "ok",
		LinkUp: true, Offset: 1000, LagBytes: 100, Checked: now.Add(-time.Second)}
	with := func(f func(*Replica)) Replica {
		r := good
		f(&r)
		return r
	}
	tests := []struct {
		name string
		r    Replica
		want bool
	}{
		{"healthy", good, true},
		{"lag at the bound", with(func(r *Replica) { r.LagBytes = 1 << 20 }), true},
		{"lag zero", with(func(r *Replica) { r.LagBytes = 0 }), true},
		{"checked exactly staleAfter ago", with(func(r *Replica) { r.Checked = now.Add(-2 * time.Second) }), true},
		{"checked in the future (clock step)", with(func(r *Replica) { r.Checked = now.Add(time.Second) }), true},
		// Sentinel's own link status is refreshed only every 10 s: the
		// replica's own INFO decides.
		{"Sentinel's stale link status err", with(func(r *Replica) { r.MasterLinkStatus = "err" }), true},
		{"flagged down", with(func(r *Replica) { r.Down = true; r.Flags = []string{"slave", "s_down"} }), false},
		{"own link down", with(func(r *Replica) { r.LinkUp = false }), false},
		{"loading", with(func(r *Replica) { r.Loading = true }), false},
		{"lag over the bound", with(func(r *Replica) { r.LagBytes = 1<<20 + 1 }), false},
		{"lag unknown", with(func(r *Replica) { r.LagBytes = -1 }), false},
		{"never checked", with(func(r *Replica) { r.Checked = time.Time{} }), false},
		{"last probe unanswered, checked lately", with(func(r *Replica) { r.NoAnswer = true }), false},
		{"checked too long ago", with(func(r *Replica) { r.Checked = now.Add(-2*time.Second - time.Nanosecond) }), false},
		{"zero value", Replica{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.r.Healthy(1<<20, 2*time.Second, now); got != tt.want {
				t.Errorf("Healthy = %v, want %v for %+v", got, tt.want, tt.r)
			}
		})
	}
}

func TestParseInfo(t *testing.T) {
	tests := []struct {
		name string
		info string
		want probe
	}{
		{
			name: "replica",
			info: "# Replication\r\nrole:slave\r\nmaster_host:127.0.0.1\r\nmaster_port:6379\r\nmaster_link_status:up\r\n" +
				"master_last_io_seconds_ago:0\r\nmaster_sync_in_progress:0\r\nslave_read_repl_offset:5012\r\nslave_repl_offset:5000\r\n" +
				"slave_priority:100\r\nmaster_replid:abc\r\nmaster_repl_offset:5000\r\n\r\n# Persistence\r\nloading:0\r\nasync_loading:0\r\n",
			want: probe{linkUp: true, offset: 5000, replOffset: 5000, replID: "abc"},
		},
		{
			name: "replica syncing",
			info: "# Replication\r\nrole:slave\r\nmaster_link_status:down\r\nmaster_sync_in_progress:1\r\nslave_repl_offset:1\r\n" +
				"# Persistence\r\nloading:1\r\n",
			want: probe{loading: true, offset: 1, replOffset: -1},
		},
		{
			name: "master",
			info: "# Replication\r\nrole:master\r\nconnected_slaves:1\r\nslave0:ip=127.0.0.1,port=6380,state=online,offset=42,lag=0\r\n" +
				"master_replid:abc\r\nmaster_replid2:def\r\nmaster_repl_offset:42\r\n",
			want: probe{offset: -1, replOffset: 42, replID: "abc", replID2: "def", master: true},
		},
		{
			name: "garbage",
			info: "slave_repl_offset:x\nmaster_link_status\n:up\n",
			want: probe{offset: -1, replOffset: -1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := probe{offset: -1, replOffset: -1}
			parseInfo(tt.info, &got)
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestPublishSignals checks when Changes fires: at once for a change in
// shape, at most once per tick for offsets, lag and Checked.
func TestPublishSignals(t *testing.T) {
	w, err := New(Config{MasterName: "m", Sentinels: []string{s1}})
	if err != nil {
		t.Fatal(err)
	}
	b := newBrain(15*time.Second, zap.NewNop())
	b.state, b.master, b.epoch, b.reason = StateReady, nodeA, 1, "test"
	d := &decider{b: b}
	views := []view{up(s1, nodeA)}
	views[0].Replicas = []Replica{{Addr: nodeB, Flags: []string{"slave"}}, {Addr: nodeA, Flags: []string{"slave"}}}
	t0 := time.Now()
	setHealth := func(h replicaHealth) {
		w.mu.Lock()
		w.health[nodeB] = h
		w.mu.Unlock()
	}
	signals := func() int {
		n := 0
		for {
			select {
			case <-w.changes:
				n++
			default:
				return n
			}
		}
	}
	step := func(name string, ticked bool, want int) {
		t.Helper()
		w.publish(d, views, ticked)
		if got := signals(); got != want {
			t.Errorf("%s: %d signals, want %d", name, got, want)
		}
	}

	step("first publish", false, 1)
	if got := w.Topology().Replicas; len(got) != 1 || got[0].Addr != nodeB || got[0].Offset != -1 || got[0].LagBytes != -1 || !got[0].Checked.IsZero() {
		t.Fatalf("replicas %+v: want only %s (the master is left out), not yet checked", got, nodeB)
	}
	select {
	case <-w.healthNow:
	default:
		t.Errorf("a new replica set did not ask for a health round")
	}

	setHealth(replicaHealth{linkUp: true, offset: 100, lag: 0, checked: t0})
	step("link up", false, 1)
	setHealth(replicaHealth{linkUp: true, offset: 200, lag: 50, checked: t0.Add(100 * time.Millisecond)})
	step("offset moved", false, 0)
	if r := w.Topology().Replicas[0]; r.Offset != 200 || r.LagBytes != 50 {
		t.Errorf("an unsignalled change is not published: %+v", r)
	}
	setHealth(replicaHealth{linkUp: true, offset: 300, lag: 0, checked: t0.Add(200 * time.Millisecond)})
	step("offset moved again", false, 0)
	step("tick", true, 1)
	step("tick, nothing new", true, 0)

	setHealth(replicaHealth{linkUp: false, offset: 300, lag: 0, checked: t0.Add(300 * time.Millisecond)})
	step("link down", false, 1)
	select {
	case <-w.healthNow:
		t.Errorf("same replica set asked for a health round")
	default:
	}

	w.mu.Lock()
	w.healthAging = true
	w.mu.Unlock()
	step("replica not answering", false, 0)
	step("tick while it does not answer", true, 1)
	step("tick, answering again", true, 0)

	views[0].Replicas = append(views[0].Replicas, Replica{Addr: nodeC, Flags: []string{"slave"}})
	step("replica added", false, 1)
	select {
	case <-w.healthNow:
	default:
		t.Errorf("a new replica did not ask for a health round")
	}
}

// TestQueryInfo talks to a hand-written fake node, for the replies a lab
// server does not give on demand.
func TestQueryInfo(t *testing.T) {
	tests := []struct {
		name  string
		reply func(args []string) string
		want  probe // at is checked apart
	}{
		{
			name:  "loading",
			reply: func([]string) string { return "-LOADING Redis is loading the dataset in memory\r\n" },
			want:  probe{loading: true, offset: -1, replOffset: -1},
		},
		{
			name: "Redis 6: one section only",
			reply: func(args []string) string {
				if len(args) > 2 {
					return "-ERR syntax error\r\n"
				}
				body := "# Server\r\nredis_version:6.2.0\r\n# Persistence\r\nloading:0\r\n# Replication\r\nrole:slave\r\nmaster_link_status:up\r\nslave_repl_offset:7\r\n"
				return fmt.Sprintf("$%d\r\n%s\r\n", len(body), body)
			},
			want: probe{linkUp: true, offset: 7, replOffset: -1},
		},
		{
			name:  "no permission",
			reply: func([]string) string { return "-NOPERM this user has no permissions to run the 'info' command\r\n" },
			want:  probe{offset: -1, replOffset: -1, err: errors.New("NOPERM")},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := fakeNode(t, tt.reply)
			n := newNodes(Config{DialTimeout: time.Second}.withDefaults())
			defer n.close()
			got := queryInfo(ctxT(t, 2*time.Second), n.client(addr), "replication", "persistence")
			if (got.err != nil) != (tt.want.err != nil) || got.err != nil && !strings.HasPrefix(got.err.Error(), tt.want.err.Error()) {
				t.Fatalf("err %v, want %v", got.err, tt.want.err)
			}
			if got.err == nil && got.at.IsZero() {
				t.Errorf("an answer without a time")
			}
			got.at, got.err, tt.want.err = time.Time{}, nil, nil
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// fakeNode serves RESP on loopback: INFO gets reply(args), any other
// command (go-redis may start with HELLO) an unknown-command error.
func fakeNode(t *testing.T, reply func(args []string) string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		l.Close()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				context.AfterFunc(t.Context(), func() { c.Close() })
				r := bufio.NewReader(c)
				for {
					args, err := readCommand(r)
					if err != nil {
						return
					}
					out := "-ERR unknown command\r\n"
					if len(args) > 0 && strings.EqualFold(args[0], "info") {
						out = reply(args)
					}
					if _, err := io.WriteString(c, out); err != nil {
						return
					}
				}
			})
		}
	})
	return l.Addr().String()
}

// readCommand reads one RESP array of bulk strings.
func readCommand(r *bufio.Reader) ([]string, error) {
	line := func() (string, error) {
		s, err := r.ReadString('\n')
		return strings.TrimRight(s, "\r\n"), err
	}
	h, err := line()
	if err != nil {
		return nil, err
	}
	n, err := strconv.Atoi(strings.TrimPrefix(h, "*"))
	if err != nil || !strings.HasPrefix(h, "*") {
		return nil, fmt.Errorf("not an array: %q", h)
	}
	args := make([]string, n)
	for i := range args {
		if _, err := line(); err != nil { // $len
			return nil, err
		}
		if args[i], err = line(); err != nil {
			return nil, err
		}
	}
	return args, nil
}

func TestPromotedOutOf(t *testing.T) {
	master := probe{master: true, replID: "m1", replID2: "0000"}
	tests := []struct {
		name    string
		replica probe
		master  probe
		want    bool
	}{
		{"promoted out of the master", probe{master: true, replID: "r1", replID2: "m1"}, master, true},
		{"a replica following it", probe{replID: "m1", replID2: "0000"}, master, false},
		{"a master of another stream", probe{master: true, replID: "x1", replID2: "x0"}, master, false},
		{"the master's INFO failed", probe{master: true, replID: "r1", replID2: "m1"}, probe{err: errors.New("timeout")}, false},
		{"the master's replid unknown", probe{master: true, replID: "r1"}, probe{master: true}, false},
		{"the replica's INFO failed", probe{err: errors.New("timeout"), master: true, replID2: "m1"}, master, false},
	}
	for _, tt := range tests {
		if got := tt.replica.promotedOutOf(tt.master); got != tt.want {
			t.Errorf("%s: got %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestNoRunIDIsLogged: without run_id in a replica's INFO no promotion
// can be seen in it; that is said once, not every round.
func TestNoRunIDIsLogged(t *testing.T) {
	core, logs := observer.New(zap.WarnLevel)
	w, err := New(Config{Sentinels: []string{"127.0.0.1:1"}, MasterName: "m", Logger: zap.New(core)})
	if err != nil {
		t.Fatal(err)
	}
	top := &Topology{Master: "10.0.0.1:6379", Replicas: []Replica{{Addr: "10.0.0.2:6379"}}}
	master := probe{master: true, replID: "m1"}
	for range 3 {
		w.notePromotions(top, []probe{{replID: "m1"}}, master)
	}
	if n := logs.FilterMessageSnippet("has no run_id").Len(); n != 1 {
		t.Fatalf("%d warnings of a missing run_id, want 1", n)
	}
}
