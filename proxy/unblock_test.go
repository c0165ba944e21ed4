package proxy_test

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pnats/switchyard/internal/lab"
	"github.com/pnats/switchyard/internal/lab/labtest"
	"github.com/pnats/switchyard/proxy"
	"github.com/redis/go-redis/v9"
)

// TestHoldUnblocksBlockedPop: a failover's hold used to close the
// connection of a client blocked in BLPOP, which got "may or may not have
// run" and, if the old master had just popped an element for it, lost
// that element. Now the old master, still answering, unblocks it with
// CLIENT UNBLOCK … ERROR: nothing is taken there, and the proxy sends the
// BLPOP again where the hold leads (the new master, or the old one when
// the failover aborts). The client only sees its element arrive, however
// many failovers come first: an audit found the second one dropped it.
func TestHoldUnblocksBlockedPop(t *testing.T) {
	for _, switches := range []bool{true, false} {
		name := "aborted"
		if switches {
			name = "switch"
		}
		t.Run(name, func(t *testing.T) {
			nodes := []*lab.Server{labtest.Server(t, lab.ServerOptions{})}
			if switches {
				nodes = append(nodes, labtest.Server(t, lab.ServerOptions{}))
			}
			resent := &count{}
			srv, addr := startProxy(t, nodes[0].Addr, proxy.Config{HoldTimeout: 10 * time.Second, Metrics: &proxy.Metrics{BlockedResent: resent}})
			ctx := ctxT(t)
			c := dialRaw(t, addr)
			c.send(cmd("BLPOP", "uq", "0"))
			const failovers = 2
			for i := range failovers {
				from, to := nodes[i%len(nodes)], nodes[(i+1)%len(nodes)]
				waitBlockedOn(t, from, 1)
				srv.Hold("test")
				waitUnblocked(t, srv, from)
				if switches {
					if i == failovers-1 {
						// Pushed on the old master once nobody waits
						// there: it stays, as on a Redis with no consumer.
						if err := from.Client().LPush(ctx, "uq", "old").Err(); err != nil {
							t.Fatal(err)
						}
					}
					srv.SetMaster(uint64(i+2), to.Addr)
				} else {
					srv.Release()
				}
			}
			last := nodes[failovers%len(nodes)]
			waitBlockedOn(t, last, 1)
			if err := last.Client().LPush(ctx, "uq", "new").Err(); err != nil {
				t.Fatal(err)
			}
			c.expect("*2", "$2", "uq", "$3", "new")
			c.send(cmd("PING"))
			c.expect("+PONG")
			if n, _ := resent.get(); n != failovers {
				t.Fatalf("BlockedResent counted %d, want %d", n, failovers)
			}
			if switches {
				if n := nodes[1].Client().LLen(ctx, "uq").Val(); n != 1 {
					t.Fatalf("the second node's list has %d elements, want the 1 nobody popped", n)
				}
			}
		})
	}
}

// TestResentPopKeepsItsTimeout: a pop or stream read the hold unblocked
// is sent again with what is left of its timeout, not the whole of it: a
// client's wait ends about when it would have without the failover, and
// within the read timeout it set for it. One whose timeout has passed
// meanwhile goes with a millisecond, and the client gets Redis's own
// timed-out reply. The new master's MONITOR shows what was sent.
func TestResentPopKeepsItsTimeout(t *testing.T) {
	for _, tc := range []struct {
		name, key string
		cmd       []string
		timeout   float64 // as sent, in the command's unit
		unit      time.Duration
		timedOut  string // the reply when the timeout is over at the re-send
	}{
		{"BLPOP", "tq", []string{"BLPOP", "tq"}, 5, time.Second, "*-1"},
		{"BLPOP over", "tq", []string{"BLPOP", "tq"}, 1, time.Second, "*-1"},
		{"XREAD", "ts", []string{"XREAD", "BLOCK", "5000", "STREAMS", "ts", "0"}, 5000, time.Millisecond, "*-1"},
		{"XREAD over", "ts", []string{"XREAD", "BLOCK", "1000", "STREAMS", "ts", "0"}, 1000, time.Millisecond, "*-1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			oldM := labtest.Server(t, lab.ServerOptions{})
			newM := labtest.Server(t, lab.ServerOptions{})
			srv, addr := startProxy(t, oldM.Addr, proxy.Config{HoldTimeout: 10 * time.Second})
			args := tc.cmd
			if args[0] == "BLPOP" {
				args = append(args, strconv.FormatFloat(tc.timeout, 'f', 1, 64)) // "5.0": in seconds to the millisecond
			}
			c := dialRaw(t, addr)
			c.send(cmd(args...))
			waitBlockedOn(t, oldM, 1)
			blockedAt := time.Now()
			srv.Hold("test")
			waitUnblocked(t, srv, oldM)
			mon := dialRaw(t, newM.Addr)
			mon.send(cmd("MONITOR"))
			mon.expect("+OK")
			// What the proxy has waited for by the switch, at least.
			waited := 1200 * time.Millisecond
			for time.Since(blockedAt) < waited {
				time.Sleep(10 * time.Millisecond)
			}
			srv.SetMaster(2, newM.Addr)
			var sent []string
			for {
				l := mon.line()
				if strings.Contains(l, `"`+args[0]+`"`) {
					sent = strings.Split(l, `" "`)
					break
				}
			}
			i := len(sent) - 1
			if args[0] == "XREAD" {
				i = 2
			}
			got, err := strconv.ParseFloat(strings.Trim(sent[i], `"`), 64)
			if err != nil {
				t.Fatalf("the re-sent command's timeout: %q: %v", sent, err)
			}
			left := time.Duration(tc.timeout*float64(tc.unit)) - waited
			least := 2 * time.Millisecond // in seconds: 0.001 is no timeout on Redis 6.0 to 7.0.7
			if tc.unit == time.Millisecond {
				least = time.Millisecond
			}
			if want := max(left, least); time.Duration(got*float64(tc.unit)) > want {
				t.Fatalf("re-sent as %q: a timeout of %v, want at most %v (%v less the %v waited)",
					sent, time.Duration(got*float64(tc.unit)), want, time.Duration(tc.timeout*float64(tc.unit)), waited)
			}
			if got <= 0 {
				t.Fatalf("re-sent as %q: no timeout at all", sent)
			}
			if left > 0 {
				waitBlockedOn(t, newM, 1)
				if err := newM.Client().XAdd(ctxT(t), &redis.XAddArgs{Stream: "ts", Values: []string{"f", "v"}}).Err(); err != nil {
					t.Fatal(err)
				}
				if err := newM.Client().LPush(ctxT(t), "tq", "v").Err(); err != nil {
					t.Fatal(err)
				}
				if l := c.line(); l != "*2" && l != "*1" {
					t.Fatalf("the re-sent command's reply begins %q, want its element", l)
				}
				return
			}
			c.expect(tc.timedOut)
		})
	}
}

// waitUnblocked waits until the hold has unblocked the client blocked on
// on, and the proxy has read Redis's -UNBLOCKED: a switch that closes the
// old master's connections before that gives the client "may or may not
// have run" (it fails safe), which a test of the re-send must not race.
func waitUnblocked(t *testing.T, srv *proxy.Server, on *lab.Server) {
	t.Helper()
	waitBlockedOn(t, on, 0)
	waitFor(t, func() error {
		if n := srv.Stats().Pinned; n != 0 {
			return fmt.Errorf("%d sessions still hold their blocked connection", n)
		}
		return nil
	})
}

// blockedPop connects to the proxy at addr and blocks in BLPOP uq 0,
// which it waits to see on the master on.
func blockedPop(t *testing.T, addr string, on *lab.Server) *rawConn {
	t.Helper()
	c := dialRaw(t, addr)
	c.send(cmd("BLPOP", "uq", "0"))
	waitBlockedOn(t, on, 1)
	return c
}

// waitBlockedOn waits until on has want clients blocked.
func waitBlockedOn(t *testing.T, on *lab.Server, want int) {
	t.Helper()
	waitFor(t, func() error {
		if n := blockedClients(t, on.Client()); n != want {
			return fmt.Errorf("blocked_clients %d on %s, want %d", n, on.Addr, want)
		}
		return nil
	})
}

// TestUnblockedPopOutlastingHoldTimeout: a pop the hold unblocked, whose
// hold then outlasts HoldTimeout, gets TRYAGAIN (it ran nowhere), and the
// client's connection carries on. An audit found it got no reply at all,
// so the client read the next command's reply as the pop's.
func TestUnblockedPopOutlastingHoldTimeout(t *testing.T) {
	rs := labtest.Server(t, lab.ServerOptions{})
	srv, addr := startProxy(t, rs.Addr, proxy.Config{HoldTimeout: 300 * time.Millisecond})
	c := blockedPop(t, addr, rs)
	srv.Hold("test")
	if l := c.line(); !strings.HasPrefix(l, "-TRYAGAIN") {
		t.Fatalf("the unblocked BLPOP after HoldTimeout: %q", l)
	}
	srv.Release()
	c.send(cmd("ECHO", "next"))
	c.expect("$4", "next")
}

// TestUnblockedPopOfAClientThatLeft: a client that leaves while its
// unblocked pop waits for the failover's outcome must not have it sent
// again: it would take an element for nobody. An audit lost one so.
func TestUnblockedPopOfAClientThatLeft(t *testing.T) {
	oldM := labtest.Server(t, lab.ServerOptions{})
	newM := labtest.Server(t, lab.ServerOptions{})
	srv, addr := startProxy(t, oldM.Addr, proxy.Config{HoldTimeout: 10 * time.Second})
	c := blockedPop(t, addr, oldM)
	srv.Hold("test")
	waitUnblocked(t, srv, oldM)
	c.nc.Close()
	if err := newM.Client().LPush(ctxT(t), "uq", "precious").Err(); err != nil {
		t.Fatal(err)
	}
	srv.SetMaster(2, newM.Addr)
	waitFor(t, func() error {
		if n := srv.Stats().Clients; n != 0 {
			return fmt.Errorf("%d clients connected", n)
		}
		return nil
	})
	if n := newM.Client().LLen(ctxT(t), "uq").Val(); n != 1 {
		t.Fatalf("the new master's list has %d elements: the departed client's BLPOP took it", n)
	}
}

// TestHoldDeliversPopServedDuringUnblock: when the old master has already
// served the pop as the hold begins, the element reaches the client. Here
// a script pushes it and then runs past busy-reply-threshold, so Redis
// answers the proxy's CLIENT UNBLOCK -BUSY until the script ends and the
// pop is served; the proxy keeps asking meanwhile (within StallTimeout).
func TestHoldDeliversPopServedDuringUnblock(t *testing.T) {
	oldM, direct := busyServer(t, "", "")
	next := labtest.Server(t, lab.ServerOptions{})
	srv, addr := startProxy(t, oldM.Addr, proxy.Config{HoldTimeout: 10 * time.Second, StallTimeout: 5 * time.Second})
	c := blockedPop(t, addr, oldM)
	// The pop is served when the script ends, some 600 ms after the push.
	const spin = `redis.call('LPUSH', KEYS[1], 'x')
local t0 = redis.call('TIME')
while true do
  local t = redis.call('TIME')
  if (t[1] - t0[1]) * 1000000 + t[2] - t0[2] > 600000 then return 1 end
end`
	script := dialRaw(t, oldM.Addr)
	script.send(cmd("EVAL", spin, "1", "uq"))
	waitScriptBusy(t, direct)
	srv.Hold("test")
	c.expect("*2", "$2", "uq", "$1", "x")
	script.expect(":1")
	srv.SetMaster(2, next.Addr)
	c.send(cmd("PING"))
	c.expect("+PONG")
	if n := oldM.Client().LLen(ctxT(t), "uq").Val(); n != 0 {
		t.Fatalf("the old master's list has %d elements, want none", n)
	}
}

// TestHoldClosesPopOnStoppedMaster: a master that does not answer the
// CLIENT UNBLOCK within StallTimeout (stopped; it may wake up as a
// zombie after the promotion and serve the pop) gets the blocked
// client's connection closed, as before: the client is told the command
// may or may not have run, instead of waiting on a node being replaced.
func TestHoldClosesPopOnStoppedMaster(t *testing.T) {
	oldM := labtest.Server(t, lab.ServerOptions{})
	srv, addr := startProxy(t, oldM.Addr, proxy.Config{HoldTimeout: 10 * time.Second, StallTimeout: 200 * time.Millisecond})
	c := blockedPop(t, addr, oldM)
	if err := oldM.Pause(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { oldM.Resume() })
	srv.Hold("test")
	if l := c.line(); !strings.Contains(l, "may or may not have run") {
		t.Fatalf("blocked BLPOP on a stopped master at the hold: %q", l)
	}
}

// TestUnblockedXreadFromNowGetsTryAgain: XREAD … $ reads what is added
// after it runs. Sent again after a hold unblocked it, it would skip the
// entries added meanwhile, and the client would never see them: so it
// gets TRYAGAIN (it ran nowhere) and keeps its connection, to go on from
// the last ID it saw. A review found the entries skipped.
func TestUnblockedXreadFromNowGetsTryAgain(t *testing.T) {
	rs := labtest.Server(t, lab.ServerOptions{})
	srv, addr := startProxy(t, rs.Addr, proxy.Config{HoldTimeout: 10 * time.Second})
	c := dialRaw(t, addr)
	c.send(cmd("XREAD", "BLOCK", "0", "STREAMS", "us", "$"))
	waitBlockedOn(t, rs, 1)
	srv.Hold("test")
	waitBlockedOn(t, rs, 0)
	if err := rs.Client().XAdd(ctxT(t), &redis.XAddArgs{Stream: "us", ID: "5-0", Values: []string{"f", "v"}}).Err(); err != nil {
		t.Fatal(err)
	}
	srv.Release()
	if l := c.line(); !strings.HasPrefix(l, "-TRYAGAIN") {
		t.Fatalf("the unblocked XREAD … $: %q", l)
	}
	c.send(cmd("XREAD", "STREAMS", "us", "0"))
	if l := c.line(); l != "*1" {
		t.Fatalf("XREAD from 0 after the TRYAGAIN: %q", l)
	}
}

// TestUnblockedPopWithTheNewMasterDown: a pop the hold unblocked, whose
// new master cannot be reached within HoldTimeout, gets TRYAGAIN and
// keeps its connection, as a new pop would. A review found it closed.
func TestUnblockedPopWithTheNewMasterDown(t *testing.T) {
	rs := labtest.Server(t, lab.ServerOptions{})
	srv, addr := startProxy(t, rs.Addr, proxy.Config{HoldTimeout: 500 * time.Millisecond, DialBackoff: 20 * time.Millisecond})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := l.Addr().String()
	l.Close()
	c := blockedPop(t, addr, rs)
	srv.Hold("test")
	waitUnblocked(t, srv, rs)
	srv.SetMaster(2, down)
	if l := c.line(); !strings.HasPrefix(l, "-TRYAGAIN") {
		t.Fatalf("the unblocked BLPOP with the new master down: %q", l)
	}
	srv.SetMaster(3, rs.Addr)
	c.send(cmd("PING"))
	c.expect("+PONG")
}

// TestKillConnectionIsNotKept: a SCRIPT KILL's connection, dialed during
// the script, has neither its name nor its CLIENT ID (Redis refused both
// -BUSY). Kept, it served a later BLPOP, which a hold then could not
// unblock and closed. A review found it.
func TestKillConnectionIsNotKept(t *testing.T) {
	rs, direct := busyServer(t, "", "")
	srv, addr := startProxy(t, rs.Addr, proxy.Config{HoldTimeout: 10 * time.Second})
	k := dialRaw(t, addr)
	k.send(cmd("PING")) // the shared connections are up before the script
	k.expect("+PONG")
	script := dialRaw(t, rs.Addr)
	script.send(cmd("EVAL", "while true do end", "0"))
	waitScriptBusy(t, direct)
	k.send(cmd("SCRIPT", "KILL"))
	k.expect("+OK")
	if l := script.line(); !strings.Contains(l, "killed") {
		t.Fatalf("the script's client: %q", l)
	}
	c := blockedPop(t, addr, rs)
	srv.Hold("test")
	waitBlockedOn(t, rs, 0)
	srv.Release()
	waitBlockedOn(t, rs, 1)
	if err := rs.Client().LPush(ctxT(t), "uq", "x").Err(); err != nil {
		t.Fatal(err)
	}
	c.expect("*2", "$2", "uq", "$1", "x")
}

// TestHoldAnswersBlockedWait: a client blocked in WAIT used to have its
// connection closed when a failover began, with "may or may not have
// run", though WAIT writes nothing. Now the old master ends it with
// CLIENT UNBLOCK (TIMEOUT), as its own timeout would: the client gets the
// count of replicas that have its writes so far, a true count, and keeps
// its connection. After a switch its next WAIT says the master changed
// (its writes went to the old one); after an abort it counts as before.
func TestHoldAnswersBlockedWait(t *testing.T) {
	for _, switches := range []bool{true, false} {
		name := "aborted"
		if switches {
			name = "switch"
		}
		t.Run(name, func(t *testing.T) {
			oldM := labtest.Server(t, lab.ServerOptions{})
			labtest.Server(t, lab.ServerOptions{ReplicaOf: oldM.Addr})
			srv, addr := startProxy(t, oldM.Addr, proxy.Config{HoldTimeout: 10 * time.Second})
			c := dialRaw(t, addr)
			// Two replicas asked for, one there: it waits for ever.
			c.send(cmd("SET", "wk", "1") + cmd("WAIT", "2", "0"))
			c.expect("+OK")
			waitBlockedOn(t, oldM, 1)
			// The count is of the acknowledgements in so far: the
			// replica's for the SET (WAIT asks for it) come first.
			waitReplicasAcked(t, oldM)
			srv.Hold("test")
			c.expect(":1")
			waitFor(t, func() error {
				if n := srv.Stats().Pinned; n != 0 {
					return fmt.Errorf("%d sessions still hold the WAIT's connection", n)
				}
				return nil
			})
			if switches {
				newM := labtest.Server(t, lab.ServerOptions{})
				srv.SetMaster(2, newM.Addr)
				c.send(cmd("WAIT", "0", "0"))
				if l := c.line(); !strings.Contains(l, "the master changed since this client's earlier commands") {
					t.Fatalf("WAIT after the switch: %q", l)
				}
			} else {
				srv.Release()
				c.send(cmd("SET", "wk", "2") + cmd("WAIT", "1", "0"))
				c.expect("+OK", ":1")
			}
			c.send(cmd("PING"))
			c.expect("+PONG")
		})
	}
}
