package main

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pnats/switchyard/internal/lab"
	"github.com/pnats/switchyard/internal/lab/labtest"
	"github.com/pnats/switchyard/sentinel"
	"go.uber.org/zap/zaptest"
)

// Reloads pass sockets between groups by address: two groups may swap
// ports, an address may be spelt anew (then the group waits for the old
// socket to close), and a socket nobody takes is closed.
func TestReloadPassesSockets(t *testing.T) {
	skipShort(t)
	rs := labtest.Server(t, lab.ServerOptions{Args: []string{"--enable-debug-command", "yes"}})
	p1, p2 := freeAddr(t), freeAddr(t)
	sup := newSupervisor(zaptest.NewLogger(t), nil, 2*time.Second)
	defer sup.shutdown()
	group := func(name, listen string, hold time.Duration) groupConfig {
		return groupConfig{Name: name, Listen: listen, Upstream: rs.Addr, HoldTimeout: hold}
	}
	if err := sup.start([]groupConfig{group("a", p1, time.Second), group("b", p2, time.Second)}); err != nil {
		t.Fatal(err)
	}
	listening := func(want map[string]string) {
		t.Helper()
		got := map[string]string{}
		for _, g := range sup.groups() {
			got[g.cfg.Name] = g.l.Addr().String()
			if err := ping(g.cfg.Listen); err != nil {
				t.Fatalf("group %s: %v", g.cfg.Name, err)
			}
		}
		if len(got) != len(want) {
			t.Fatalf("groups listening: %v, want %v", got, want)
		}
		for name, addr := range want {
			if got[name] != addr {
				t.Fatalf("groups listening: %v, want %v", got, want)
			}
		}
	}
	listening(map[string]string{"a": p1, "b": p2})

	// Swapped ports: each new group takes the other's socket.
	if err := sup.reload(&config{Groups: []groupConfig{group("a", p2, 2*time.Second), group("b", p1, 2*time.Second)}}); err != nil {
		t.Fatal(err)
	}
	listening(map[string]string{"a": p2, "b": p1})

	// The same port spelt anew: binding it fails while the old socket is
	// open, so the group is built again once the old one has stopped.
	_, port, _ := net.SplitHostPort(p2)
	respelt := "localhost:" + port
	if err := sup.reload(&config{Groups: []groupConfig{group("a", respelt, 2*time.Second), group("b", p1, 2*time.Second)}}); err != nil {
		t.Fatal(err)
	}
	listening(map[string]string{"a": p2, "b": p1})

	// A changed group that cannot take a new port (another process has
	// it) keeps running as it was, its clients untouched, although its
	// other address was offered for passing on.
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	kept := dial(t, p2)
	kept.send("PING\r\n")
	kept.expect("+PONG")
	withRead := group("a", respelt, 2*time.Second)
	withRead.ReadListen = taken.Addr().String()
	if err := sup.reload(&config{Groups: []groupConfig{withRead, group("b", p1, 2*time.Second)}}); err == nil {
		t.Fatal("a reload onto a taken port reported no error")
	}
	kept.send("PING\r\n")
	kept.expect("+PONG")
	if a := sup.configs()["a"]; a.ReadListen != "" {
		t.Fatalf("group a runs with read_listen %q", a.ReadListen)
	}

	// A removed group's socket is closed at once: while the group drains
	// a slow command, its port refuses connections rather than queueing
	// them for nobody.
	busy := dial(t, p1)
	busy.send("DEBUG SLEEP 1\r\n")
	awaitAsleep(t, rs.Addr)
	if err := sup.reload(&config{Groups: []groupConfig{group("a", respelt, 2*time.Second)}}); err != nil {
		t.Fatal(err)
	}
	refused(t, p1)
	busy.expect("+OK")
	listening(map[string]string{"a": p2})
	sup.shutdown()
	refused(t, p2)
}

func refused(t *testing.T, addr string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err == nil {
		c.Close()
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial %s: %v, want connection refused", addr, err)
	}
}

// A reload's new Sentinel group has verified its master before it
// replaces the old one: the facade and /readyz, which ask the running
// groups, never see the group without one for the reload's sake (a
// review saw the facade flag it o_down for a few milliseconds per
// reload).
func TestReloadVerifiesBeforeServing(t *testing.T) {
	skipShort(t)
	g := labtest.Group(t, lab.GroupOptions{Name: "mymaster", Replicas: 1, Sentinels: 1})
	discover := false
	addr := freeAddr(t)
	sentinelGroup := func(pool int) groupConfig {
		return groupConfig{
			Name: "s", Listen: addr, PoolSize: pool, HoldTimeout: 2 * time.Second,
			Sentinel: &sentinelConfig{MasterName: g.Name, Addrs: []string{g.Sentinels[0].Addr}, Discover: &discover, PollInterval: 100 * time.Millisecond},
		}
	}
	sup := newSupervisor(zaptest.NewLogger(t), nil, 2*time.Second)
	defer sup.shutdown()
	if err := sup.start([]groupConfig{sentinelGroup(2)}); err != nil {
		t.Fatal(err)
	}
	labtest.Eventually(t, 10*time.Second, func() error {
		if _, _, ok := sup.groups()[0].srv.Master(); !ok {
			return errors.New("no master yet")
		}
		return nil
	})
	// What the facade and /readyz see, all along the reloads: the group,
	// with a master, never a moment without it (an audit saw a
	// reconnecting client told the group was down, in the gap between
	// the old group's halt and the new one's start).
	stop, missed := make(chan struct{}), make(chan string, 1)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for {
			select {
			case <-stop:
				return
			default:
			}
			gs := sup.groups()
			why := ""
			switch {
			case len(gs) != 1:
				why = fmt.Sprintf("%d groups running", len(gs))
			case !gs[0].up():
				why = "the group is not up"
			}
			if why != "" {
				select {
				case missed <- why:
				default:
				}
			}
		}
	}()
	defer func() {
		close(stop)
		<-watched
	}()
	for pool := 3; pool < 6; pool++ {
		if err := sup.reload(&config{Groups: []groupConfig{sentinelGroup(pool)}}); err != nil {
			t.Fatal(err)
		}
		select {
		case why := <-missed:
			t.Fatalf("reload %d: during it %s", pool-2, why)
		default:
		}
		running := sup.groups()[0]
		if running.cfg.PoolSize != pool {
			t.Fatalf("running pool_size %d, want %d", running.cfg.PoolSize, pool)
		}
		if _, _, ok := running.srv.Master(); !ok {
			t.Fatalf("reload %d: the new group serves without a verified master", pool-2)
		}
	}
	// The same port spelt anew cannot be bound until the old group has
	// closed its socket: the group is built again after the halt, and the
	// old one keeps the name until the new one has a master.
	_, port, _ := net.SplitHostPort(addr)
	respelt := sentinelGroup(6)
	respelt.Listen = "localhost:" + port
	if err := sup.reload(&config{Groups: []groupConfig{respelt}}); err != nil {
		t.Fatal(err)
	}
	select {
	case why := <-missed:
		t.Fatalf("respelt reload: during it %s", why)
	default:
	}
	running := sup.groups()[0]
	if running.cfg.Listen != respelt.Listen {
		t.Fatalf("running listen %q, want %q", running.cfg.Listen, respelt.Listen)
	}
	if _, _, ok := running.srv.Master(); !ok {
		t.Fatal("respelt reload: the new group has no verified master")
	}
	if err := ping(addr); err != nil {
		t.Fatalf("respelt reload: %v", err)
	}
	// An earlier reload's drain ends in the background, after taking
	// the reload lock, so it may finish just after the last reload:
	// drains must not pile up, but need not be over at this instant.
	labtest.Eventually(t, 10*time.Second, func() error {
		if d := sup.drainingGroups(); len(d) > 1 {
			return fmt.Errorf("draining %d groups, want the replaced one at most", len(d))
		}
		return nil
	})
}

// The clients of a configuration a reload replaced or removed are still
// connected while they drain, and /status and the connection gauges
// count them: a review found them missing from both until the drain
// ended.
func TestDrainingClientsAreCounted(t *testing.T) {
	skipShort(t)
	rs := labtest.Server(t, lab.ServerOptions{Args: []string{"--enable-debug-command", "yes"}})
	pa, pb := freeAddr(t), freeAddr(t)
	sup := newSupervisor(zaptest.NewLogger(t), nil, 10*time.Second)
	defer sup.shutdown()
	group := func(name, listen string, hold time.Duration) groupConfig {
		return groupConfig{Name: name, Listen: listen, Upstream: rs.Addr, HoldTimeout: hold}
	}
	if err := sup.start([]groupConfig{group("a", pa, time.Second), group("b", pb, time.Second)}); err != nil {
		t.Fatal(err)
	}
	collector := newGroupCollector(sup.groups, sup.drainingGroups)
	clients := func() map[string]float64 {
		got := map[string]float64{}
		for labels, v := range series(t, collector, "client_connections") {
			got[labels] = v
		}
		return got
	}

	// One client of each group has a command in flight; a reload
	// replaces a and removes b.
	busyA, busyB := dial(t, pa), dial(t, pb)
	for _, c := range []*rawConn{busyA, busyB} { // their backend connections open
		c.send("PING\r\n")
		c.expect("+PONG")
	}
	busyA.send("DEBUG SLEEP 1.5\r\n")
	awaitAsleep(t, rs.Addr)
	busyB.send("PING\r\n") // queued behind the sleep on Redis
	labtest.Eventually(t, 5*time.Second, func() error {
		if st := statusOf(sup.groups(), nil); st.Groups[1].Pending == 0 {
			return errors.New("b's PING not sent yet")
		}
		return nil
	})
	if err := sup.reload(&config{Groups: []groupConfig{group("a", pa, 2*time.Second)}}); err != nil {
		t.Fatal(err)
	}
	st := statusOf(sup.groups(), sup.drainingGroups())
	if len(st.Groups) != 1 || st.Groups[0].Clients != 0 {
		t.Fatalf("running groups: %+v, want a with no clients", st.Groups)
	}
	if len(st.Draining) != 2 || st.Draining[0].Name != "a" || st.Draining[0].Clients != 1 ||
		st.Draining[1].Name != "b" || st.Draining[1].Clients != 1 || st.Draining[1].Listen != pb {
		t.Fatalf("draining: %+v, want a and b with a client each", st.Draining)
	}
	if got := clients(); got["group=a "] != 1 || got["group=b "] != 1 || len(got) != 2 {
		t.Fatalf("client_connections while draining: %v, want 1 for a and for b", got)
	}
	var out strings.Builder
	printDraining(&out, st)
	if !strings.Contains(out.String(), pb) {
		t.Fatalf("switchyard status does not list b's drain:\n%s", out.String())
	}

	busyA.expect("+OK")
	busyB.expect("+PONG")
	labtest.Eventually(t, 5*time.Second, func() error {
		if d := sup.drainingGroups(); len(d) > 0 {
			return fmt.Errorf("%d groups still draining", len(d))
		}
		return nil
	})
	if got := clients(); got["group=a "] != 0 || len(got) != 1 {
		t.Fatalf("client_connections after the drain: %v, want a's only, at 0", got)
	}
}

// A reload whose changed group verifies no master keeps the group it was
// to replace while that one serves a master, and says so: a review saw a
// mistyped master_name, and a pool_size change pushed while the
// Sentinels were down, each take a serving group to -TRYAGAIN, logged as
// a successful reload. A group that serves no master is replaced all the
// same: the reload may be what fixes its Sentinel configuration.
func TestReloadKeepsAServingGroupFromAConfigurationWithoutMaster(t *testing.T) {
	skipShort(t)
	g := labtest.Group(t, lab.GroupOptions{Name: "mymaster", Replicas: 1, Sentinels: 1})
	discover := false
	sentinelGroup := func(addr, master string, pool int) groupConfig {
		return groupConfig{
			Name: "s", Listen: addr, PoolSize: pool, HoldTimeout: 2 * time.Second,
			Sentinel: &sentinelConfig{MasterName: master, Addrs: []string{g.Sentinels[0].Addr}, Discover: &discover, PollInterval: 100 * time.Millisecond},
		}
	}
	serving := func(sup *supervisor, addr, master string, pool int) {
		t.Helper()
		running := sup.groups()
		if len(running) != 1 {
			t.Fatalf("%d groups running", len(running))
		}
		if c := running[0].cfg; c.Sentinel.MasterName != master || c.PoolSize != pool {
			t.Fatalf("running master_name %q pool_size %d, want %q and %d", c.Sentinel.MasterName, c.PoolSize, master, pool)
		}
		if !running[0].up() {
			t.Fatal("the running group is not up")
		}
		if err := ping(addr); err != nil {
			t.Fatal(err)
		}
	}
	kept := func(err error) {
		t.Helper()
		if err == nil || !strings.Contains(err.Error(), `group "s" kept its previous configuration: the new one verified no master`) {
			t.Fatalf("reload: %v, want the group kept", err)
		}
	}

	// A group with no master (its master_name mistyped) takes any
	// reload, one that verifies no master either included, and then the
	// one that fixes it.
	fixed := freeAddr(t)
	sup := newSupervisor(zaptest.NewLogger(t), nil, 2*time.Second)
	defer sup.shutdown()
	if err := sup.start([]groupConfig{sentinelGroup(fixed, "mymastr", 2)}); err != nil {
		t.Fatal(err)
	}
	if err := sup.reload(&config{Groups: []groupConfig{sentinelGroup(fixed, "mymasterr", 2)}}); err != nil {
		t.Fatalf("a reload of a group without master: %v", err)
	}
	if n := sup.groups()[0].cfg.Sentinel.MasterName; n != "mymasterr" {
		t.Fatalf("running master_name %q after a reload of a group without master", n)
	}
	if err := sup.reload(&config{Groups: []groupConfig{sentinelGroup(fixed, g.Name, 2)}}); err != nil {
		t.Fatalf("the reload that fixes master_name: %v", err)
	}
	serving(sup, fixed, g.Name, 2)
	sup.shutdown()

	addr := freeAddr(t)
	sup = newSupervisor(zaptest.NewLogger(t), nil, 2*time.Second)
	defer sup.shutdown()
	if err := sup.start([]groupConfig{sentinelGroup(addr, g.Name, 2)}); err != nil {
		t.Fatal(err)
	}
	labtest.Eventually(t, 10*time.Second, func() error {
		if !sup.groups()[0].up() {
			return errors.New("no master yet")
		}
		return nil
	})
	kept(sup.reload(&config{Groups: []groupConfig{sentinelGroup(addr, "mymastr", 3)}}))
	serving(sup, addr, g.Name, 2)

	// With its Sentinel gone the group serves its last master; a change
	// made meanwhile cannot verify one.
	if err := g.Sentinels[0].Stop(); err != nil {
		t.Fatal(err)
	}
	labtest.Eventually(t, 10*time.Second, func() error {
		if s := sup.groups()[0].watcher.Topology().State; s != sentinel.StateDegraded {
			return fmt.Errorf("state %s, want degraded", s)
		}
		return nil
	})
	kept(sup.reload(&config{Groups: []groupConfig{sentinelGroup(addr, g.Name, 4)}}))
	serving(sup, addr, g.Name, 2)
}
