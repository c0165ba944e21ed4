package proxy_test

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/pnats/switchyard/internal/lab"
	"github.com/pnats/switchyard/internal/lab/labtest"
	"github.com/pnats/switchyard/proxy"
)

// WAIT counts the replicas that have the client's own writes, although
// they went over a shared connection and WAIT runs on another: with the
// replica stopped it must answer 0, not the 1 that a connection with no
// writes of its own gets from Redis. Found by an audit: a dedicated
// connection left idle by a BLPOP answered 1 at once.
func TestWaitCountsTheClientsWrites(t *testing.T) {
	r := startReplicated(t, 1)
	_, addr := startProxy(t, r.master.Addr, proxy.Config{})
	blpop := dialRaw(t, addr)
	blpop.send(cmd("BLPOP", "jobs", "0.1"))
	blpop.expect("*-1")
	// The replica has acknowledged everything: a WAIT that counts from
	// offset 0 would count it.
	waitReplicasAcked(t, r.master)
	if err := r.replicas[0].Pause(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.replicas[0].Resume() })

	c := dialRaw(t, addr)
	c.send(cmd("SET", "k", "2") + cmd("WAIT", "1", "300"))
	c.expect("+OK", ":0")
	// After WATCH the transaction's connection runs WAIT; the write
	// before it went over a shared one.
	c.send(cmd("SET", "k", "3") + cmd("WATCH", "w") + cmd("WAIT", "1", "300") + cmd("UNWATCH"))
	c.expect("+OK", "+OK", ":0", "+OK")

	if err := r.replicas[0].Resume(); err != nil {
		t.Fatal(err)
	}
	c.send(cmd("WAIT", "1", "5000"))
	c.expect(":1")
}

// A proxy user that may not PUBLISH cannot have WAIT count its writes:
// WAIT is answered with an error that says so, not a count that may be
// false.
func TestWaitRefusedPublish(t *testing.T) {
	rs := labtest.Server(t, lab.ServerOptions{})
	admin := rs.Client()
	defer admin.Close()
	if err := admin.Do(context.Background(), "ACL", "SETUSER", "app", "on", ">pw", "~*", "&*", "+@all", "-publish").Err(); err != nil {
		t.Fatal(err)
	}
	srv, addr := startProxy(t, rs.Addr, proxy.Config{Username: "app", Password: "pw"})
	c := dialRaw(t, addr)
	c.send(cmd("SET", "k", "1") + cmd("WAIT", "0", "100") + cmd("GET", "k"))
	c.expect("+OK")
	if l := c.line(); !strings.HasPrefix(l, "-ERR switchyard: WAIT needs the proxy's Redis user to be allowed PUBLISH "+proxy.WaitChannel) || !strings.Contains(l, "NOPERM") {
		t.Fatalf("WAIT without PUBLISH: %q", l)
	}
	c.expect("$1", "1")
	// The connection WAIT was to run on is given back, not held by the
	// client for the rest of its life.
	if st := srv.Stats(); st.Pinned != 0 {
		t.Fatalf("%d sessions hold a dedicated connection after a refused WAIT", st.Pinned)
	}
}

// While the master's writes are paused (CLIENT PAUSE WRITE, as a failover
// begins), WAIT is answered once the pause ends, not failed when
// read_timeout passes: the PUBLISH before it waits as WAIT would.
func TestWaitDuringWritePause(t *testing.T) {
	rs := labtest.Server(t, lab.ServerOptions{})
	_, addr := startProxy(t, rs.Addr, proxy.Config{ReadTimeout: 200 * time.Millisecond})
	admin := rs.Client()
	defer admin.Close()
	if err := admin.Do(context.Background(), "CLIENT", "PAUSE", "1000", "WRITE").Err(); err != nil {
		t.Fatal(err)
	}
	c := dialRaw(t, addr)
	c.send(cmd("WAIT", "0", "0"))
	c.expect(":0")
}

// Replies to the commands before a blocking one go out at once, after
// WATCH as outside it.
func TestRepliesBeforeBlockingGoOut(t *testing.T) {
	_, _, addr := setup(t, proxy.Config{})
	for _, prefix := range []string{"", cmd("WATCH", "w")} {
		c := dialRaw(t, addr)
		c.send(prefix + cmd("GET", "x") + cmd("BLPOP", "nol", "2"))
		c.nc.SetReadDeadline(time.Now().Add(time.Second))
		if prefix != "" {
			if l, err := c.br.ReadString('\n'); err != nil || l != "+OK\r\n" {
				t.Fatalf("WATCH: %q %v", l, err)
			}
		}
		if l, err := c.br.ReadString('\n'); err != nil || l != "$-1\r\n" {
			t.Fatalf("GET before BLPOP (prefix %q): %q %v: held until the BLPOP returned", prefix, l, err)
		}
		c.expect("*-1")
	}
}

// A client whose connection outlived a master switch (on Redis it would
// have been closed) gets an error from its next WAIT, not a count from
// the new master's replicas, which may never have had the writes the old
// master took: a crash loses what was not replicated. The WAIT after that
// counts again. Found by a failover audit: WAIT 1 answered 1 for a write
// the crash had lost.
func TestWaitAfterMasterSwitch(t *testing.T) {
	a := labtest.Server(t, lab.ServerOptions{})
	b := labtest.Server(t, lab.ServerOptions{})
	srv, addr := startProxy(t, a.Addr, proxy.Config{})
	c := dialRaw(t, addr)
	c.send(cmd("SET", "k", "1") + cmd("WAIT", "0", "100"))
	c.expect("+OK", ":0")
	srv.SetMaster(2, b.Addr)
	c.send(cmd("WAIT", "0", "100"))
	if l := c.line(); !strings.HasPrefix(l, "-ERR switchyard: the master changed") {
		t.Fatalf("WAIT after a master switch: %q", l)
	}
	c.send(cmd("SET", "k", "2") + cmd("WAIT", "0", "100"))
	c.expect("+OK", ":0")
}

// TestBlockingNotSentAcrossSwitchKeepsConnection: a WAIT (whose PUBLISH,
// markWrites, ran on the old master) that had its own connection to the
// old master, but was not yet sent on it when a failover held and then
// switched the master, is answered "TRYAGAIN … not sent". (A BLPOP in its
// place goes to the new master: nothing of it ran on the old one. So does
// an XREAD … $, which a review found refused: only one the hold unblocked,
// which had started from the stream's end, gets TRYAGAIN.)
// The proxy then closed the client's connection, as for a blocked command
// lost with its connection: whatever the client pipelined after it got no
// reply, and a client retrying as TRYAGAIN invites read EOF. Nothing was
// sent, so no state was lost: the connection stays, and what the client
// pipelined after it is refused with it, as after any refused command. A
// chaos audit saw a TRYAGAIN then EOF through graceful failovers; a
// second audit pinned it down.
//
// The window between taking the connection and sending on it includes
// the write of the replies before the blocking command: a client that has
// not read a large reply yet holds the proxy there.
func TestBlockingNotSentAcrossSwitchKeepsConnection(t *testing.T) {
	for _, blocking := range [][]string{{"WAIT", "0", "100"}, {"BLPOP", "bns:q", "0.1"}, {"XREAD", "BLOCK", "100", "STREAMS", "bns:s", "$"}} {
		t.Run(blocking[0], func(t *testing.T) {
			oldM := labtest.Server(t, lab.ServerOptions{})
			newM := labtest.Server(t, lab.ServerOptions{})
			srv, addr := startProxy(t, oldM.Addr, proxy.Config{HoldTimeout: 10 * time.Second})
			const size = 32 << 20 // more than the loopback socket buffers hold
			admin := oldM.Client()
			defer admin.Close()
			if err := admin.Set(context.Background(), "big", strings.Repeat("x", size), 0).Err(); err != nil {
				t.Fatal(err)
			}

			c := dialRaw(t, addr)
			c.send(cmd("SET", "k", "v") + cmd("GET", "big") + cmd(blocking...) + cmd("PING"))
			// "+OK" arriving: the proxy is writing the replies before the
			// blocking command, which the client does not take yet; it
			// has the client's own connection to the old master.
			c.expect("+OK")
			waitFor(t, func() error {
				l, err := admin.ClientList(ctxT(t)).Result()
				if n := strings.Count(l, "\n"); n < 3 || err != nil {
					return fmt.Errorf("%d clients on the old master (%v), want this one, the shared one and the client's own", n, err)
				}
				return nil
			})
			if n := labtest.CommandCalls(t, oldM, "publish"); blocking[0] == "WAIT" && n != 1 {
				t.Fatalf("PUBLISH calls on the old master: %d, want 1", n)
			}
			srv.Hold("test: failover starts")
			srv.SetMaster(2, newM.Addr)

			c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
			if l := c.line(); l != "$33554432" {
				t.Fatalf("GET big: %q", l)
			}
			if _, err := io.CopyN(io.Discard, c.br, size+2); err != nil {
				t.Fatalf("GET big: %v", err)
			}
			if name := strings.ToLower(blocking[0]); name != "wait" {
				// Sent to the new master, where it times out (nothing
				// is there), then the PING.
				c.expect("*-1", "+PONG")
				if n := labtest.CommandCalls(t, newM, name); n != 1 {
					t.Fatalf("%s calls on the new master: %d, want 1", blocking[0], n)
				}
				if n := labtest.CommandCalls(t, oldM, name); n != 0 {
					t.Fatalf("%s calls on the old master: %d, want 0", blocking[0], n)
				}
				return
			}
			const notSent = "-TRYAGAIN switchyard: master changed, not sent; try again"
			if l := c.line(); l != notSent {
				t.Fatalf("%s: %q, want %q", blocking[0], l, notSent)
			}
			c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
			l, err := c.br.ReadString('\n')
			if err != nil {
				t.Fatalf("PING pipelined after %s got no reply: %v: the proxy closed the connection", blocking[0], err)
			}
			if l = strings.TrimSpace(l); l != notSent {
				t.Fatalf("PING pipelined after the refused %s: %q, want %q", blocking[0], l, notSent)
			}
			// The connection carries on against the new master.
			c.send(cmd("SET", "k", "w") + cmd("PING"))
			c.expect("+OK")
			c.expect("+PONG")
			newC := newM.Client()
			defer newC.Close()
			if v, _ := newC.Get(ctxT(t), "k").Result(); v != "w" {
				t.Fatalf("k on the new master: %q", v)
			}
		})
	}
}

// waitReplicasAcked waits until every replica of master has acknowledged
// all of its replication stream (its offset in INFO is the master's).
func waitReplicasAcked(t *testing.T, master *lab.Server) {
	t.Helper()
	mc := master.Client()
	defer mc.Close()
	labtest.Eventually(t, 10*time.Second, func() error {
		info, err := mc.Info(context.Background(), "replication").Result()
		if err != nil {
			return err
		}
		var off string
		for _, l := range strings.Split(info, "\r\n") {
			if v, ok := strings.CutPrefix(l, "master_repl_offset:"); ok {
				off = v
			}
		}
		if !strings.Contains(info, "state=online,offset="+off+",") {
			return fmt.Errorf("replica behind master_repl_offset %s:\n%s", off, info)
		}
		return nil
	})
}
