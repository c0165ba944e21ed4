package sentinel

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pnats/switchyard/internal/lab"
	"github.com/pnats/switchyard/internal/lab/labtest"
	"github.com/redis/go-redis/v9"
)

// gate forwards TCP connections to one address until it is shut: then it
// passes no byte either way and closes nothing, as a path that drops
// packets would. Put between the Watcher and the Sentinels, it cuts the
// Watcher off while the Sentinels still see Redis and one another.
type gate struct {
	addr   string
	mu     sync.Mutex
	open   chan struct{} // closed while bytes flow
	closed bool
}

func startGate(t *testing.T, target string) *gate {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &gate{addr: l.Addr().String(), open: make(chan struct{})}
	close(g.open)
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		l.Close()
		g.set(true)
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, c, u)
			mu.Unlock()
			go g.copy(u, c)
			go g.copy(c, u)
		}
	}()
	return g
}

// set shuts the gate, or opens it.
func (g *gate) set(shut bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if shut && !g.closed {
		g.open = make(chan struct{})
	} else if !shut && g.closed {
		close(g.open)
	}
	g.closed = shut
}

func (g *gate) wait() {
	g.mu.Lock()
	ch := g.open
	g.mu.Unlock()
	<-ch
}

func (g *gate) copy(dst, src net.Conn) {
	defer dst.Close()
	buf := make([]byte, 16<<10)
	for {
		n, err := src.Read(buf)
		g.wait()
		if n > 0 {
			if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			if err != io.EOF {
				src.Close()
			}
			return
		}
	}
}

// gates puts a gate in front of each Sentinel.
func gates(t *testing.T, ss []*lab.Sentinel) ([]*gate, []string) {
	var gs []*gate
	var addrs []string
	for _, s := range ss {
		g := startGate(t, s.Addr)
		gs = append(gs, g)
		addrs = append(addrs, g.addr)
	}
	return gs, addrs
}

// neverWritable fails the test if, for d, the Watcher's Topology is ever
// writable on addr.
func neverWritable(t *testing.T, r *run, addr string, d time.Duration, why string) {
	t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if top := r.w.Topology(); top.Writable() && top.Master == addr {
			t.Fatalf("%s: writable on %s: %s", why, addr, describe(top))
		}
	}
}

// TestCutOffDuringFailover: the Watcher loses every Sentinel, and they
// then fail the master over. The demoted master answers ROLE master until
// they convert it, ten seconds or more later (never, if they stop
// meanwhile), and every write it took until then is lost; an audit lost
// 51,803 acknowledged writes so. Once a replica the Sentinels listed
// answers ROLE master, the group must fail closed.
func TestCutOffDuringFailover(t *testing.T) {
	t.Parallel()
	g := labtest.Group(t, lab.GroupOptions{Replicas: 2, Sentinels: 3})
	gs, addrs := gates(t, g.Sentinels)
	r := startWatcher(t, Config{Sentinels: addrs})
	old := g.Master.Addr
	r.waitTopo(t, 10*time.Second, func(top Topology) error {
		if err := isReady(old, 1)(top); err != nil {
			return err
		}
		if len(top.Replicas) != 2 {
			return fmt.Errorf("%d replicas listed, want 2", len(top.Replicas))
		}
		return nil
	})
	for _, x := range gs {
		x.set(true)
	}
	r.waitTopo(t, 10*time.Second, isState(StateDegraded, old, 1))
	nm, err := g.Failover(ctxT(t, 30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	// Failing closed because the old master says it is a replica comes
	// too late: the Sentinels convert it seconds after the promotion.
	r.waitTopo(t, 5*time.Second, func(top Topology) error {
		if err := isState(StateNoMaster, old, 1)(top); err != nil {
			return err
		}
		if !strings.Contains(top.Reason, "but so does "+nm.Addr) {
			return errors.New("failed closed for another reason than the promoted replica")
		}
		return nil
	})
	neverWritable(t, r, old, time.Second, "cut off from the Sentinels after "+nm.Addr+" was promoted")
	for _, x := range gs {
		x.set(false)
	}
	r.waitTopo(t, 10*time.Second, isReady(nm.Addr, 2))
}

// TestMinorityDoesNotMoveTheGroup: of three Sentinels the Watcher follows,
// one monitors another node under the group's name. While the group's
// two answer they outvote it; when they stop, it is the only one left,
// and its node answers ROLE master: the Watcher moved the group there on
// the word of one Sentinel of three, with the true master still up.
func TestMinorityDoesNotMoveTheGroup(t *testing.T) {
	t.Parallel()
	g := labtest.Group(t, lab.GroupOptions{Replicas: 1, Sentinels: 2})
	other := labtest.Server(t, lab.ServerOptions{})
	rogue := labtest.Sentinel(t, lab.SentinelOptions{MasterAddr: other.Addr})
	r := startWatcher(t, Config{Sentinels: append(sentinelAddrs(g.Sentinels...), rogue.Addr)})
	r.waitTopo(t, 10*time.Second, isReady(g.Master.Addr, 1))
	for _, s := range g.Sentinels {
		if err := s.Kill(); err != nil {
			t.Fatal(err)
		}
	}
	r.waitTopo(t, 10*time.Second, isState(StateNoMaster, g.Master.Addr, 1))
	neverWritable(t, r, other.Addr, time.Second, "only the rogue Sentinel answers")
}

// roleOf asks addr for its ROLE; "" if it does not answer.
func roleOf(addr string) string {
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	v, err := c.Do(ctx, "ROLE").Slice()
	if err != nil || len(v) == 0 {
		return ""
	}
	r, _ := v[0].(string)
	return r
}

// TestForgottenSentinelsStillCount: the Watcher is given one Sentinel of
// three and discovers the others (discover: true). The other two stop,
// after promoting the replica (REPLICAOF NO ONE stands in for a failover
// the remaining one does not see). The group fails closed, since the
// replica answers ROLE master; but once the remaining Sentinel flags the
// others s_down their links are forgotten, and the review found the one
// left counted as all the Sentinels known: the demoted master was
// writable again.
func TestForgottenSentinelsStillCount(t *testing.T) {
	t.Parallel()
	g := labtest.Group(t, lab.GroupOptions{Replicas: 1, Sentinels: 3})
	r := startWatcher(t, Config{Sentinels: []string{g.Sentinels[0].Addr}, Discover: true})
	old, rep := g.Master.Addr, g.Replicas[0].Addr
	r.waitTopo(t, 10*time.Second, func(top Topology) error {
		if len(top.Sentinels) != 3 {
			return fmt.Errorf("%d Sentinels known, want 3", len(top.Sentinels))
		}
		return isReady(old, 1)(top)
	})
	for _, s := range g.Sentinels[1:] {
		if err := s.Kill(); err != nil {
			t.Fatal(err)
		}
	}
	c := redis.NewClient(&redis.Options{Addr: rep})
	defer c.Close()
	if err := c.Do(ctxT(t, 5*time.Second), "REPLICAOF", "NO", "ONE").Err(); err != nil {
		t.Fatal(err)
	}
	r.waitTopo(t, 10*time.Second, func(top Topology) error {
		if top.State != StateNoMaster || !strings.Contains(top.Reason, rep+" answers ROLE master too") {
			return errors.New("not failed closed on the promoted replica")
		}
		return nil
	})
	labtest.Eventually(t, 20*time.Second, func() error {
		top := r.w.Topology()
		if top.Writable() && top.Master == old && roleOf(rep) == "master" {
			t.Fatalf("writable on %s while %s answers ROLE master: %s", old, rep, describe(top))
		}
		if len(top.Sentinels) > 1 {
			return fmt.Errorf("%d Sentinels still linked", len(top.Sentinels))
		}
		return nil
	})
	neverWritable(t, r, old, time.Second, "the other Sentinels forgotten")
}

// TestMyIDRefuserAtTwoAddresses: one Sentinel of three refuses SENTINEL
// MYID and is reached at two addresses. It gets no vote, as documented;
// the review found it counted twice among the Sentinels known, so the
// other two, a true majority, were "no more than half", and an ordinary
// failover failed closed until the old master was converted.
func TestMyIDRefuserAtTwoAddresses(t *testing.T) {
	t.Parallel()
	g := labtest.Group(t, lab.GroupOptions{Replicas: 1, Sentinels: 3})
	s3 := g.Sentinels[2]
	sc := redis.NewClient(&redis.Options{Addr: s3.Addr})
	defer sc.Close()
	if err := sc.Do(ctxT(t, 5*time.Second), "ACL", "SETUSER", "default", "-sentinel|myid").Err(); err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(s3.Addr)
	r := startWatcher(t, Config{Sentinels: []string{g.Sentinels[0].Addr, g.Sentinels[1].Addr, s3.Addr, "localhost:" + port}})
	old := g.Master.Addr
	r.waitTopo(t, 10*time.Second, isReady(old, 1))
	nm, err := g.Failover(ctxT(t, 30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	r.waitTopo(t, 5*time.Second, isReady(nm.Addr, 2))
	// Until the Sentinels convert the old master it answers ROLE master,
	// a rival only to a minority's choice.
	for end := time.Now().Add(30 * time.Second); roleOf(old) == "master" && time.Now().Before(end); {
		if top := r.w.Topology(); !top.Writable() || top.Master != nm.Addr {
			t.Fatalf("not writable on %s, which two of three Sentinels name, while %s still answers ROLE master: %s", nm.Addr, old, describe(top))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
