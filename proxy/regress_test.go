package proxy_test

// Regression tests for defects a review found in the session and backend
// code, each reproduced against a real redis-server before the fix.

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pnats/switchyard/internal/lab"
	"github.com/pnats/switchyard/internal/lab/labtest"
	"github.com/pnats/switchyard/proxy"
	"github.com/pnats/switchyard/resp"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// frameConn sends commands as multibulk and reads whole reply frames.
type frameConn struct {
	t  *testing.T
	nc net.Conn
	rd *resp.Reader
}

func dialFrames(t *testing.T, addr string) *frameConn {
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &frameConn{t: t, nc: nc, rd: resp.NewReader(nc, 4096, resp.Limits{})}
}

func (c *frameConn) send(cmds ...string) {
	c.t.Helper()
	var b []byte
	for _, cmd := range cmds {
		var args [][]byte
		for _, a := range strings.Fields(cmd) {
			args = append(args, []byte(a))
		}
		b = resp.AppendCommand(b, args)
	}
	c.nc.SetWriteDeadline(time.Now().Add(3 * time.Second))
	if _, err := c.nc.Write(b); err != nil {
		c.t.Fatal(err)
	}
}

// reply returns the next frame with CRLFs shown as spaces.
func (c *frameConn) reply() string {
	c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	raw, _, err := c.rd.ReadReply()
	if err != nil {
		return fmt.Sprintf("<read error: %v>", err)
	}
	return strings.TrimSpace(strings.ReplaceAll(string(raw), "\r\n", " "))
}

func (c *frameConn) expect(want ...string) {
	c.t.Helper()
	for i, w := range want {
		if got := c.reply(); got != w {
			c.t.Fatalf("reply %d = %q, want %q", i, got, w)
		}
	}
}

// A command pipelined before MULTI must not make the transaction's new
// connection go back to the pool before MULTI is sent on it.
func TestPipelinedCommandBeforeMulti(t *testing.T) {
	_, _, addr := setup(t, proxy.Config{})
	a := dialFrames(t, addr)
	a.send("PING")
	a.expect("+PONG")
	a.send("SET k 0", "MULTI", "INCR k", "INCR k", "EXEC")
	a.expect("+OK", "+OK", "+QUEUED", "+QUEUED", "*2 :1 :2")
	b := dialFrames(t, addr)
	b.send("MULTI", "SET other 1", "EXEC")
	b.expect("+OK", "+QUEUED", "*1 +OK")
}

// Likewise before SUBSCRIBE: the tunnel's connection must stay the
// subscriber's, not be handed to another client.
func TestPipelinedCommandBeforeSubscribe(t *testing.T) {
	_, _, addr := setup(t, proxy.Config{})
	a := dialFrames(t, addr)
	a.send("PING", "SUBSCRIBE ch")
	a.expect("+PONG", "*3 $9 subscribe $2 ch :1")
	b := dialFrames(t, addr)
	b.send("BLPOP nosuchlist 1")
	b.expect("*-1")
	a.send("SUBSCRIBE ch2")
	a.expect("*3 $9 subscribe $3 ch2 :2")
}

// HELLO after a forwarded command must not overwrite that command, nor
// switch the shared connection to RESP3.
func TestPipelinedCommandBeforeHello(t *testing.T) {
	_, _, addr := setup(t, proxy.Config{})
	a := dialFrames(t, addr)
	a.send("PING")
	a.expect("+PONG")
	a.send("SET k v", "HELLO 3")
	a.expect("+OK")
	if got := a.reply(); !strings.HasPrefix(got, "%7") {
		t.Fatalf("HELLO 3 reply %q", got)
	}
	b := dialFrames(t, addr)
	b.send("HSET h f v", "HGETALL h", "GET k")
	b.expect(":1", "*2 $1 f $1 v", "$1 v")
}

// A command before SELECT goes out on its own database's connection.
func TestPipelinedCommandBeforeSelect(t *testing.T) {
	_, _, addr := setup(t, proxy.Config{})
	a := dialFrames(t, addr)
	a.send("SELECT 1")
	a.expect("+OK")
	a.send("SET k v", "SELECT 2", "GET k", "SELECT 1", "GET k")
	a.expect("+OK", "+OK", "$-1", "+OK", "$1 v")
}

// SUBSCRIBE inside MULTI is refused and the transaction aborts, so no
// subscribed connection goes back to the pool looking clean.
func TestSubscribeInsideMultiRefused(t *testing.T) {
	rs, _, addr := setup(t, proxy.Config{})
	a := dialFrames(t, addr)
	a.send("MULTI", "SUBSCRIBE ch", "EXEC")
	a.expect("+OK", "-ERR switchyard: SUBSCRIBE inside MULTI is not supported",
		"-EXECABORT Transaction discarded because of previous errors.")
	b := dialFrames(t, addr)
	b.send("WATCH x")
	b.expect("+OK")
	d := dialFrames(t, rs.Addr)
	d.send("PUBLISH ch secret")
	d.expect(":0")
	b.send("GET x")
	b.expect("$-1")
}

// A client that pipelines more while blocked and then leaves is noticed:
// its BLPOP does not take the next element for nobody.
func TestBlockedClientLeavesAfterPipelining(t *testing.T) {
	rs, _, addr := setup(t, proxy.Config{})
	direct := rs.Client()
	defer direct.Close()
	a := dialFrames(t, addr)
	a.send("BLPOP q 0")
	waitFor(t, func() error {
		if n := blockedClients(t, direct); n != 1 {
			return fmt.Errorf("blocked_clients %d", n)
		}
		return nil
	})
	a.send("PING")
	a.nc.Close()
	waitFor(t, func() error {
		if n := blockedClients(t, direct); n != 0 {
			return fmt.Errorf("blocked_clients %d after the client left", n)
		}
		return nil
	})
	direct.RPush(context.Background(), "q", "item")
	if n := direct.LLen(context.Background(), "q").Val(); n != 1 {
		t.Fatalf("the element was popped for a departed client (len %d)", n)
	}
}

// An EXEC held by a failover must never reach the old master once the new
// one is set: the client is told, and the transaction does not run.
func TestHeldExecNeverReachesOldMaster(t *testing.T) {
	for i := 0; i < 10; i++ {
		old := labtest.Server(t, lab.ServerOptions{})
		nw := labtest.Server(t, lab.ServerOptions{})
		srv, addr := startProxy(t, old.Addr, proxy.Config{HoldTimeout: 5 * time.Second})
		a := dialFrames(t, addr)
		a.send("MULTI", "SET fenced yes")
		a.expect("+OK", "+QUEUED")
		srv.Hold("test")
		a.send("EXEC")
		time.Sleep(20 * time.Millisecond) // let the EXEC reach the hold
		srv.SetMaster(2, nw.Addr)
		if got := a.reply(); !strings.HasPrefix(got, "-TRYAGAIN") && !strings.HasPrefix(got, "<read error") {
			t.Fatalf("round %d: EXEC answered %q", i, got)
		}
		d := dialFrames(t, old.Addr)
		d.send("GET fenced")
		d.expect("$-1")
	}
}

// UNSUBSCRIBE outside a subscription answers one frame per channel; that
// must not shift other clients' replies on a shared connection.
func TestUnsubscribeOutsideSubscription(t *testing.T) {
	_, _, addr := setup(t, proxy.Config{PoolSize: 1})
	a := dialFrames(t, addr)
	b := dialFrames(t, addr)
	a.send("UNSUBSCRIBE x y z")
	a.expect("*3 $11 unsubscribe $1 x :0", "*3 $11 unsubscribe $1 y :0", "*3 $11 unsubscribe $1 z :0")
	b.send("SET bkey bval", "GET bkey")
	b.expect("+OK", "$4 bval")
	c3 := dialFrames(t, addr)
	c3.send("HELLO 3")
	c3.reply()
	c3.send("UNSUBSCRIBE")
	c3.expect(">3 $11 unsubscribe _ :0")
	d3 := dialFrames(t, addr)
	d3.send("HELLO 3", "GET bkey")
	d3.reply()
	d3.expect("$4 bval")
}

// A client that half-closes while its command waits gets what it was
// owed before it, then an error that says why the proxy stopped waiting
// and that the command may have run, then the close. The hostile-client
// audit saw "lost the connection to the master", blaming a master that
// was fine; a review then showed that saying nothing (as Redis does for
// a command it had blocked) hides a pop Redis had already made. The
// blocked pop takes nothing afterwards.
func TestHalfCloseWhileBlocked(t *testing.T) {
	rs, _, addr := setup(t, proxy.Config{})
	direct := rs.Client()
	defer direct.Close()
	for _, blocking := range []string{cmd("BLPOP", "hcb:list", "5"), cmd("WAIT", "1", "5000")} {
		c := dialRaw(t, addr)
		c.send(cmd("INCR", "hcb:n") + blocking + cmd("INCR", "hcb:n"))
		if l := c.line(); !strings.HasPrefix(l, ":") {
			t.Fatalf("INCR before %q: %q", blocking, l)
		}
		waitFor(t, func() error { // the blocking command is on Redis
			if n := blockedClients(t, direct); n != 1 {
				return fmt.Errorf("%d blocked clients", n)
			}
			return nil
		})
		if rest := c.halfClose(); rest != halfClosedReply {
			t.Fatalf("after half-closing during %q: %q, want %q and the close", blocking, rest, halfClosedReply)
		}
		waitFor(t, func() error {
			if n := blockedClients(t, direct); n != 0 {
				return fmt.Errorf("%d blocked clients after the half-close", n)
			}
			return nil
		})
	}
	// A WAIT whose preparing PUBLISH waits for a write pause (as a
	// failover begins) ends the same way.
	if err := direct.Do(ctxT(t), "CLIENT", "PAUSE", "10000", "WRITE").Err(); err != nil {
		t.Fatal(err)
	}
	c := dialRaw(t, addr)
	c.send(cmd("WAIT", "0", "0"))
	waitFor(t, func() error { // the PUBLISH is held by the pause
		if n := blockedClients(t, direct); n != 1 {
			return fmt.Errorf("%d blocked clients", n)
		}
		return nil
	})
	if rest := c.halfClose(); rest != halfClosedReply {
		t.Fatalf("after half-closing during a paused WAIT: %q, want %q and the close", rest, halfClosedReply)
	}
	if err := direct.Do(ctxT(t), "CLIENT", "UNPAUSE").Err(); err != nil {
		t.Fatal(err)
	}
	if err := direct.RPush(ctxT(t), "hcb:list", "kept").Err(); err != nil {
		t.Fatal(err)
	}
	if got, _ := direct.LRange(ctxT(t), "hcb:list", 0, -1).Result(); len(got) != 1 {
		t.Fatalf("hcb:list = %v: the half-closed client's BLPOP took the element", got)
	}
}

const halfClosedReply = "-ERR switchyard: the client closed its side of the connection while the command waited, so the proxy stopped waiting; the command may or may not have run\r\n"

// TestHalfCloseNeverHidesAPop: a BLPOP that Redis answers at once, from
// a client that half-closes right after sending it, is either answered
// or told that it may have run; never silence while an element was
// popped (a review caught that).
func TestHalfCloseNeverHidesAPop(t *testing.T) {
	rs, _, addr := setup(t, proxy.Config{})
	direct := rs.Client()
	defer direct.Close()
	for i := range 30 {
		if err := direct.RPush(ctxT(t), "hcp:list", "v"+strconv.Itoa(i)).Err(); err != nil {
			t.Fatal(err)
		}
		c := dialRaw(t, addr)
		c.send(cmd("BLPOP", "hcp:list", "1"))
		got := c.halfClose()
		answered := strings.Contains(got, "v"+strconv.Itoa(i))
		if !answered && got != halfClosedReply {
			n, _ := direct.LLen(ctxT(t), "hcp:list").Result()
			t.Fatalf("try %d: the client read %q; %d elements left", i, got, n)
		}
		direct.Del(ctxT(t), "hcp:list")
	}
}

// TestWaitAfterDiscardInOnePipeline: a DISCARD and a WAIT in one write,
// inside a transaction begun earlier. Flushing the DISCARD gave the
// client's connection back to the pool, and WAIT then went out on it,
// although another client could already have taken it for its own
// MULTI: WAIT was QUEUED in that client's transaction (the differential
// test caught it). Several clients race for the pool's connections here.
func TestWaitAfterDiscardInOnePipeline(t *testing.T) {
	_, _, addr := setup(t, proxy.Config{})
	const clients, rounds = 6, 150
	errs := make(chan error, clients)
	for i := range clients {
		c := dialRaw(t, addr)
		c.nc.SetDeadline(time.Now().Add(30 * time.Second))
		go func() {
			send := func(s string) error { _, err := c.nc.Write([]byte(s)); return err }
			for range rounds {
				var err error
				if i%2 == 0 {
					err = send(cmd("MULTI"))
					if err == nil {
						err = c.check("+OK")
					}
					if err == nil {
						err = send(cmd("SET", "wad:k", "v") + cmd("DISCARD") + cmd("WAIT", "0", "0"))
					}
					if err == nil {
						err = c.check("+QUEUED", "+OK", ":0")
					}
				} else {
					err = send(cmd("MULTI") + cmd("INCR", "wad:n") + cmd("EXEC"))
					if err == nil {
						err = c.check("+OK", "+QUEUED", "*1")
					}
					if l, rerr := c.br.ReadString('\n'); err == nil && (rerr != nil || !strings.HasPrefix(l, ":")) {
						err = fmt.Errorf("EXEC's INCR: %q (%v)", l, rerr)
					}
				}
				if err != nil {
					errs <- fmt.Errorf("client %d: %w", i, err)
					return
				}
			}
			errs <- nil
		}()
	}
	var first error
	for range clients {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	if first != nil {
		t.Fatal(first)
	}
}

// TestHalfCloseInTunnel: a client on a connection of its own (after
// CLIENT ID or SUBSCRIBE) that half-closes right after its last commands
// gets every reply, then the close, as from a direct Redis, which answers
// what it read before the end. The proxy closed the tunnel when it read
// the end, and the replies still on their way from Redis were lost. A
// command Redis had blocked is dropped, as Redis drops it, and the end
// of the tunnel is not a backend error.
func TestHalfCloseInTunnel(t *testing.T) {
	backendErrs := &count{}
	rs, _, addr := setup(t, proxy.Config{Metrics: &proxy.Metrics{BackendErrors: backendErrs}})
	direct := rs.Client()
	defer direct.Close()
	// Busy for 200 ms on Redis, so that its reply and the PING's come
	// well after the end reached the proxy.
	const slow = `local t0 = redis.call('TIME')
repeat local t = redis.call('TIME') until (t[1] - t0[1]) * 1000000 + (t[2] - t0[2]) > 200000
return 'done'`
	c := dialRaw(t, addr)
	c.send(cmd("CLIENT", "ID"))
	if l := c.line(); !strings.HasPrefix(l, ":") {
		t.Fatalf("CLIENT ID: %q", l)
	}
	c.send(cmd("EVAL", slow, "0") + cmd("PING"))
	if got, want := c.halfClose(), "$4\r\ndone\r\n+PONG\r\n"; got != want {
		t.Fatalf("after half-closing a tunnel: read %q, want %q and the close", got, want)
	}

	c = dialRaw(t, addr)
	c.send(cmd("SUBSCRIBE", "hct:a", "hct:b") + cmd("PING"))
	want := "*3\r\n$9\r\nsubscribe\r\n$5\r\nhct:a\r\n:1\r\n*3\r\n$9\r\nsubscribe\r\n$5\r\nhct:b\r\n:2\r\n*2\r\n$4\r\npong\r\n$0\r\n\r\n"
	if got := c.halfClose(); got != want {
		t.Fatalf("after half-closing a subscriber: read %q, want %q and the close", got, want)
	}
	waitFor(t, func() error { // Redis let the subscriber go
		n, err := direct.PubSubNumSub(ctxT(t), "hct:a").Result()
		if err != nil || n["hct:a"] != 0 {
			return fmt.Errorf("hct:a has %v subscribers (%v)", n, err)
		}
		return nil
	})

	// Blocked on Redis when the end comes: dropped, at once, as Redis
	// drops it for a direct client.
	c = dialRaw(t, addr)
	c.send(cmd("CLIENT", "ID") + cmd("BLPOP", "hct:list", "30"))
	if l := c.line(); !strings.HasPrefix(l, ":") {
		t.Fatalf("CLIENT ID: %q", l)
	}
	waitFor(t, func() error {
		if n := blockedClients(t, direct); n != 1 {
			return fmt.Errorf("%d blocked clients", n)
		}
		return nil
	})
	if got := c.halfClose(); got != "" {
		t.Fatalf("after half-closing during a BLPOP in a tunnel: read %q, want only the close", got)
	}
	if err := direct.RPush(ctxT(t), "hct:list", "kept").Err(); err != nil {
		t.Fatal(err)
	}
	if got, _ := direct.LRange(ctxT(t), "hct:list", 0, -1).Result(); len(got) != 1 {
		t.Fatalf("hct:list = %v: the half-closed client's BLPOP took the element", got)
	}
	// QUIT in a tunnel: Redis answers and closes, as the client asked.
	for _, first := range []string{cmd("SUBSCRIBE", "hct:q"), cmd("CLIENT", "ID"), cmd("MONITOR")} {
		c = dialRaw(t, addr)
		c.send(first + cmd("QUIT"))
		c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
		got, err := io.ReadAll(c.br)
		if err != nil || !strings.HasSuffix(string(got), "+OK\r\n") {
			t.Fatalf("%q then QUIT: read %q (%v), want its replies, +OK and the close", first, got, err)
		}
	}
	waitFor(t, func() error { // the proxy has seen every tunnel end
		if n := blockedClients(t, direct); n != 0 {
			return fmt.Errorf("%d blocked clients", n)
		}
		l, err := direct.ClientList(ctxT(t)).Result()
		for _, tunnel := range []string{"flags=O", "sub=1", "cmd=quit"} {
			if err != nil || strings.Contains(l, tunnel) {
				return fmt.Errorf("a tunnel is still open on Redis (%v):\n%s", err, l)
			}
		}
		return nil
	})
	if n, _ := backendErrs.get(); n != 0 {
		t.Fatalf("ending tunnels with the client counted %d backend errors", n)
	}
}

// TestRefusedOwnConnectionRefusesThePipeline: a client pipelines a
// transaction (MULTI, INCR, INCR, EXEC, as client libraries send one)
// while Redis refuses new connections (maxclients reached, or a password
// the proxy lacks) but the proxy's shared one still works. MULTI got
// Redis's refusal, and the INCRs then ran one by one on the shared
// connection, EXEC answering "EXEC without MULTI": the client saw its
// transaction fail, and a retry would apply its writes twice. Directly,
// Redis runs none of them. The soak audit found it.
func TestRefusedOwnConnectionRefusesThePipeline(t *testing.T) {
	for _, tc := range []struct{ param, value, refusal string }{
		{"maxclients", "1", "-ERR max number of clients reached"},
		{"requirepass", "rotated", "-NOAUTH Authentication required."},
	} {
		t.Run(tc.param, func(t *testing.T) {
			rs, _, addr := setup(t, proxy.Config{})
			direct := dialRaw(t, rs.Addr)
			settle(t, dialRaw(t, addr), rs) // the shared connection is up
			direct.send(cmd("CONFIG", "SET", tc.param, tc.value))
			direct.expect("+OK")

			c := dialRaw(t, addr)
			c.send(cmd("MULTI") + cmd("INCR", "rp:k") + cmd("INCR", "rp:k") + cmd("EXEC"))
			for i, name := range []string{"MULTI", "INCR", "INCR", "EXEC"} {
				if l := c.line(); l != tc.refusal {
					t.Fatalf("%s (%d of the pipeline): %q, want %q", name, i+1, l, tc.refusal)
				}
			}
			// The refusal ends with the batch: the next one runs.
			c.send(cmd("GET", "rp:k"))
			if l := c.line(); l != "$-1" {
				t.Fatalf("GET after the refused pipeline: %q, want $-1: the INCRs ran", l)
			}
		})
	}
	// The same for new settings: with no connection for database 3, the
	// SET after the SELECT must not land in database 0.
	rs, _, addr := setup(t, proxy.Config{HoldTimeout: 300 * time.Millisecond})
	direct := dialRaw(t, rs.Addr)
	settle(t, dialRaw(t, addr), rs)
	direct.send(cmd("CONFIG", "SET", "maxclients", "1"))
	direct.expect("+OK")
	c := dialRaw(t, addr)
	c.send(cmd("SELECT", "3") + cmd("SET", "rp:db", "meant for 3"))
	first := c.line()
	if !strings.HasPrefix(first, "-TRYAGAIN") {
		t.Fatalf("SELECT 3 with no connection to be had: %q", first)
	}
	if l := c.line(); l != first {
		t.Fatalf("SET after the refused SELECT: %q, want %q", l, first)
	}
	direct.send(cmd("EXISTS", "rp:db"))
	direct.expect(":0")
}

// TestProtocolErrorInTunnelAfterReplies: in a tunnel, a protocol error
// must come after the replies to the commands before it, then the close,
// as from Redis: "+PONG", "$-1", then the error. The proxy wrote the
// error at once and closed the tunnel under the replies, which were lost
// or came after it. The tunnel audit found it.
func TestProtocolErrorInTunnelAfterReplies(t *testing.T) {
	for _, enter := range []string{"CLIENT ID", "CLIENT TRACKING on"} {
		t.Run(enter, func(t *testing.T) {
			_, _, addr := setup(t, proxy.Config{})
			c := dialRaw(t, addr)
			c.send(cmd(strings.Fields(enter)...))
			c.line()
			c.send(cmd("PING") + cmd("GET", "pet:k") + "*abc\r\n")
			c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
			got, err := io.ReadAll(c.br)
			if want := "+PONG\r\n$-1\r\n-ERR Protocol error: invalid multibulk length\r\n"; string(got) != want || err != nil {
				t.Fatalf("read %q (%v), want %q and the close, as from Redis", got, err, want)
			}
		})
	}
}

// TestClientIDSurvivesReset: on Redis a connection's ID never changes,
// RESET included. Through the proxy, RESET after CLIENT ID gave the
// client a new connection: a CLIENT UNBLOCK or TRACKING REDIRECT aimed at
// the ID it had handed out found nobody. The tunnel audit found it.
func TestClientIDSurvivesReset(t *testing.T) {
	_, _, addr := setup(t, proxy.Config{})
	for _, enter := range []string{"", "SUBSCRIBE"} {
		a := dialRaw(t, addr)
		if enter != "" {
			// CLIENT ID from inside a subscription names the same
			// connection, and RESET keeps it too.
			a.send(cmd("HELLO", "3") + cmd("SELECT", "2") + cmd(enter, "cir:ch"))
			a.line() // HELLO's map; the rest is read below
			for a.line() != ">3" {
			}
			a.expect("$9", "subscribe", "$6", "cir:ch", ":1")
		}
		a.send(cmd("CLIENT", "ID"))
		id := strings.TrimPrefix(a.line(), ":")
		a.send(cmd("RESET"))
		a.expect("+RESET")
		a.send(cmd("CLIENT", "ID") + cmd("PING"))
		a.expect(":"+id, "+PONG") // the same connection
		a.send(cmd("BLPOP", "cir:list", "0"))
		b := dialRaw(t, addr)
		waitFor(t, func() error {
			b.send(cmd("CLIENT", "UNBLOCK", id, "ERROR"))
			if l := b.line(); l != ":1" {
				return fmt.Errorf("CLIENT UNBLOCK %s after the client's RESET: %s", id, l)
			}
			return nil
		})
		a.expect("-UNBLOCKED client unblocked via CLIENT UNBLOCK")
	}
}

// TestRefusalDoesNotReachBack: a command pipelined before a MULTI whose
// connection Redis refuses is not refused with it: its own connection
// works, and the refusal is from the MULTI on (the review found 89235a8
// refusing it too).
func TestRefusalDoesNotReachBack(t *testing.T) {
	rs, _, addr := setup(t, proxy.Config{})
	direct := dialRaw(t, rs.Addr)
	settle(t, dialRaw(t, addr), rs)
	direct.send(cmd("CONFIG", "SET", "maxclients", "1"))
	direct.expect("+OK")
	c := dialRaw(t, addr)
	c.send(cmd("SET", "rdr:before", "1") + cmd("MULTI") + cmd("INCR", "rdr:n") + cmd("EXEC"))
	const refusal = "-ERR max number of clients reached"
	c.expect("+OK", refusal, refusal, refusal)
	direct.send(cmd("EXISTS", "rdr:before") + cmd("EXISTS", "rdr:n"))
	direct.expect(":1", ":0")
}

// TestResetInTunnelWithPassword: RESET logs a connection out on Redis.
// Ending a tunnel, the proxy sent RESET, then an ECHO of a token whose
// reply ended it; with a password the ECHO got NOAUTH, which reached the
// client unasked, the token never came, and the session hung: the client
// got no reply to anything until it left. And after CLIENT ID, RESET kept
// the connection logged out where the proxy had logged the client in, so
// every later command got NOAUTH. The review found both.
func TestResetInTunnelWithPassword(t *testing.T) {
	rs := labtest.Server(t, lab.ServerOptions{Args: []string{"--requirepass", "pw"}})
	_, addr := startProxy(t, rs.Addr, proxy.Config{Password: "pw"})
	for _, enter := range [][]string{{"SUBSCRIBE", "rtp:ch"}, {"CLIENT", "ID"}, {"MONITOR"}} {
		c := dialRaw(t, addr)
		c.send(cmd("SET", "rtp:k", "v") + cmd(enter...))
		c.expect("+OK")
		c.line() // the first line of enter's reply
		c.send(cmd("RESET"))
		for c.line() != "+RESET" { // the rest of enter's reply
		}
		// Nothing unasked before GET's reply, which the proxy's
		// credentials get.
		c.send(cmd("GET", "rtp:k"))
		c.expect("$1", "v")
	}
	// A client that logged in itself is logged out by RESET, as on Redis,
	// and nothing hangs.
	c := dialRaw(t, addr)
	c.send(cmd("AUTH", "pw") + cmd("SUBSCRIBE", "rtp:ch"))
	c.expect("+OK", "*3", "$9", "subscribe", "$6", "rtp:ch", ":1")
	c.send(cmd("RESET"))
	c.expect("+RESET")
	c.send(cmd("GET", "rtp:k"))
	c.expect("$1", "v") // the proxy's own credentials, as before its AUTH
}

// TestResetInTunnelWhateverRedisRefuses: the end of a tunnel must not
// depend on Redis accepting a command after the RESET. With the password
// rotated while the tunnel was open, the proxy's AUTH after RESET got
// WRONGPASS and its ECHO NOAUTH; with an ACL user without ECHO, NOPERM;
// either way the token never came and the session hung, the client
// reading those errors unasked.
func TestResetInTunnelWhateverRedisRefuses(t *testing.T) {
	rs := labtest.Server(t, lab.ServerOptions{Args: []string{"--requirepass", "pw"}})
	_, addr := startProxy(t, rs.Addr, proxy.Config{Password: "pw"})
	admin := dialRaw(t, rs.Addr)
	admin.send(cmd("AUTH", "pw") +
		cmd("ACL", "SETUSER", "noecho", "on", ">pw", "~*", "&*", "+@all", "-echo"))
	admin.expect("+OK", "+OK")

	c := dialRaw(t, addr)
	c.send(cmd("AUTH", "noecho", "pw") + cmd("SUBSCRIBE", "rtw:ch") + cmd("RESET") + cmd("PING"))
	c.expect("+OK", "*3", "$9", "subscribe", "$6", "rtw:ch", ":1", "+RESET")
	c.expect("+PONG") // the proxy's credentials again, as before the AUTH

	c = dialRaw(t, addr)
	c.send(cmd("SET", "rtw:k", "v") + cmd("SUBSCRIBE", "rtw:ch"))
	c.expect("+OK", "*3", "$9", "subscribe", "$6", "rtw:ch", ":1")
	admin.send(cmd("CONFIG", "SET", "requirepass", "pw2"))
	admin.expect("+OK")
	t.Cleanup(func() {
		admin.send(cmd("CONFIG", "SET", "requirepass", "pw"))
		admin.line()
	})
	c.send(cmd("RESET") + cmd("GET", "rtw:k"))
	// The shared connection, logged in before the rotation, still serves.
	c.expect("+RESET", "$1", "v")
}

// TestBlockedClientLeavesAfterLargePipeline: a client blocked in BLPOP
// that pipelines more behind it and then leaves must still be noticed, so
// that Redis drops its BLPOP and a later push stays in the list, as for a
// direct client. The blocking audit found the watcher stopped reading at
// 64 KiB and so never saw the end of 70 KB; it then waited for the end
// without reading, which a later review found cannot come behind more
// than the kernel's buffers hold (4 MB here, over TLS or not): the end
// waits behind the rest in the client's socket.
func TestBlockedClientLeavesAfterLargePipeline(t *testing.T) {
	rs := labtest.Server(t, lab.ServerOptions{})
	direct := rs.Client()
	defer direct.Close()
	for _, ep := range plainAndTLS(t, rs, proxy.Config{}) {
		for _, pings := range []int{5000, 300000} {
			t.Run(fmt.Sprintf("%s/%d bytes", ep.name, pings*len(cmd("PING"))), func(t *testing.T) {
				key := fmt.Sprintf("blp:%s:%d", ep.name, pings)
				nc := ep.dial(t)
				io.WriteString(nc, cmd("BLPOP", key, "0"))
				waitFor(t, blockedCount(t, direct, 1))
				writeAll(t, nc, strings.Repeat(cmd("PING"), pings))
				nc.Close()
				waitFor(t, blockedCount(t, direct, 0))
				direct.RPush(ctxT(t), key, "x")
				if n := direct.LLen(ctxT(t), key).Val(); n != 1 {
					t.Fatalf("the element went to the client that had left (LLEN %d)", n)
				}
			})
		}
	}
}

// TestBlockedClientKeepsLargePipeline: what a blocked client pipelines
// behind its BLPOP, 4 MB of it here, is kept and served once the BLPOP is
// answered, every command of it in order.
func TestBlockedClientKeepsLargePipeline(t *testing.T) {
	rs := labtest.Server(t, lab.ServerOptions{})
	direct := rs.Client()
	defer direct.Close()
	const pings = 300000
	for _, ep := range plainAndTLS(t, rs, proxy.Config{}) {
		t.Run(ep.name, func(t *testing.T) {
			key := "blk:" + ep.name
			nc := ep.dial(t)
			io.WriteString(nc, cmd("BLPOP", key, "0"))
			waitFor(t, blockedCount(t, direct, 1))
			var pipeline strings.Builder
			for i := range pings {
				pipeline.WriteString(cmd("ECHO", strconv.Itoa(i)))
			}
			writeAll(t, nc, pipeline.String())
			direct.RPush(ctxT(t), key, "x")
			nc.SetReadDeadline(time.Now().Add(30 * time.Second))
			rd := resp.NewReader(nc, 4096, resp.Limits{})
			raw, _, err := rd.ReadReply()
			if want := "*2\r\n$" + strconv.Itoa(len(key)) + "\r\n" + key + "\r\n$1\r\nx\r\n"; err != nil || string(raw) != want {
				t.Fatalf("BLPOP: %q, %v; want %q", raw, err, want)
			}
			for i := range pings {
				raw, _, err := rd.ReadReply()
				if want := "$" + strconv.Itoa(len(strconv.Itoa(i))) + "\r\n" + strconv.Itoa(i) + "\r\n"; err != nil || string(raw) != want {
					t.Fatalf("reply %d of the pipeline: %q, %v; want %q", i, raw, err, want)
				}
			}
		})
	}
}

// TestBlockedClientPastRequestLimitIsClosed: a blocked client that sends
// more than MaxRequestBytes behind its command is closed, as Redis closes
// one past client-query-buffer-limit: its BLPOP is dropped, not left to
// take an element for a client that cannot read it, and the proxy says
// why in its log.
func TestBlockedClientPastRequestLimitIsClosed(t *testing.T) {
	rs := labtest.Server(t, lab.ServerOptions{})
	direct := rs.Client()
	defer direct.Close()
	core, logs := observer.New(zap.WarnLevel)
	cfg := proxy.Config{MaxRequestBytes: 256 << 10, Logger: zap.New(core)}
	for _, ep := range plainAndTLS(t, rs, cfg) {
		t.Run(ep.name, func(t *testing.T) {
			key := "blc:" + ep.name
			nc := ep.dial(t)
			io.WriteString(nc, cmd("BLPOP", key, "0"))
			waitFor(t, blockedCount(t, direct, 1))
			go io.WriteString(nc, strings.Repeat(cmd("PING"), 100000)) // 1.4 MB
			waitFor(t, blockedCount(t, direct, 0))
			nc.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.Copy(io.Discard, nc); isTimeout(err) {
				t.Fatal("the connection was still open 10s after its BLPOP was dropped")
			}
			direct.RPush(ctxT(t), key, "x")
			if n := direct.LLen(ctxT(t), key).Val(); n != 1 {
				t.Fatalf("the element went to the closed client (LLEN %d)", n)
			}
		})
	}
	if n := logs.FilterMessageSnippet("more than max_request_bytes").Len(); n != 2 {
		t.Fatalf("%d warnings about the closed clients, want 2", n)
	}
}

// TestBlockedClientInputIsCounted: what a blocked client sends ahead of
// its reply counts in BytesIn once, when the proxy reads it. A review
// found the watcher's reads uncounted (64 KiB of them before it read on,
// all of them after).
func TestBlockedClientInputIsCounted(t *testing.T) {
	rs := labtest.Server(t, lab.ServerOptions{})
	direct := rs.Client()
	defer direct.Close()
	in := &count{}
	_, addr := startProxy(t, rs.Addr, proxy.Config{Metrics: &proxy.Metrics{BytesIn: in}})
	c := dialRaw(t, addr)
	blpop, ping, n := cmd("BLPOP", "bin:q", "0"), cmd("PING"), 100000
	c.send(blpop)
	waitFor(t, blockedCount(t, direct, 1))
	c.send(strings.Repeat(ping, n))
	want := float64(len(blpop) + n*len(ping))
	counted := func() error {
		if _, got := in.get(); got != want {
			return fmt.Errorf("BytesIn %v, want %v", got, want)
		}
		return nil
	}
	waitFor(t, counted) // read while the BLPOP waits
	direct.RPush(ctxT(t), "bin:q", "x")
	c.expect("*2", "$5", "bin:q", "$1", "x")
	for range n {
		c.expect("+PONG")
	}
	if err := counted(); err != nil {
		t.Fatal(err)
	}
}

// TestBlockedClientAtTheLimitIsKept: a blocked client that sends exactly
// MaxRequestBytes ahead of its reply is not over it (Redis closes one
// past client-query-buffer-limit, not at it). A review found it closed.
func TestBlockedClientAtTheLimitIsKept(t *testing.T) {
	const limit = 256 << 10
	rs := labtest.Server(t, lab.ServerOptions{})
	direct := rs.Client()
	defer direct.Close()
	in := &count{}
	_, addr := startProxy(t, rs.Addr, proxy.Config{MaxRequestBytes: limit, Metrics: &proxy.Metrics{BytesIn: in}})
	c := dialRaw(t, addr)
	blpop, ping := cmd("BLPOP", "lim:q", "0"), cmd("PING")
	c.send(blpop)
	waitFor(t, blockedCount(t, direct, 1))
	pings := limit/len(ping) - 1
	pad, echoed := "", ""
	for l := 1; len(pad) < limit-pings*len(ping); l++ {
		echoed = strings.Repeat("p", l)
		pad = cmd("ECHO", echoed)
	}
	if pings*len(ping)+len(pad) != limit {
		t.Fatalf("no ECHO makes up %d bytes", limit-pings*len(ping))
	}
	c.send(strings.Repeat(ping, pings) + pad)
	waitFor(t, func() error {
		if _, got := in.get(); got != float64(len(blpop)+limit) {
			return fmt.Errorf("BytesIn %v: the proxy has not read it all yet", got)
		}
		return nil
	})
	// Kept, not only for a grace: a client past the limit goes after
	// 250 ms.
	for end := time.Now().Add(time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if n := blockedClients(t, direct); n != 1 {
			t.Fatalf("blocked_clients %d: the client was dropped at the limit", n)
		}
	}
	direct.RPush(ctxT(t), "lim:q", "x")
	c.expect("*2", "$5", "lim:q", "$1", "x")
	for range pings {
		c.expect("+PONG")
	}
	c.expect("$"+strconv.Itoa(len(echoed)), echoed)
}

// TestAnsweredCommandPastTheLimitIsServed: the limit is for a client whose
// command Redis has blocked. A BLPOP on a list that has an element is
// answered by Redis as soon as it reads it; if the client sends more than
// MaxRequestBytes behind it before that, the client is served, as Redis
// serves it (it reads the rest only as it runs the commands). Reviews
// found it closed after its BLPOP's reply, and then, with a grace of
// 250 ms for the reply, closed while Redis was busy (here DEBUG SLEEP
// 1), after which Redis popped the element for nobody.
func TestAnsweredCommandPastTheLimitIsServed(t *testing.T) {
	rs := labtest.Server(t, lab.ServerOptions{Args: []string{"--enable-debug-command", "yes"}})
	direct := rs.Client()
	defer direct.Close()
	const pings = 300000 // 4.2 MB
	for _, ep := range plainAndTLS(t, rs, proxy.Config{MaxRequestBytes: 256 << 10}) {
		t.Run(ep.name, func(t *testing.T) {
			key := "ans:" + ep.name
			direct.RPush(ctxT(t), key, "w", "x")
			nc := ep.dial(t)
			// A first BLPOP leaves a connection for the next in the pool:
			// the next needs no new one, which Redis would not accept
			// while asleep.
			io.WriteString(nc, cmd("BLPOP", key, "0"))
			rd := resp.NewReader(nc, 4096, resp.Limits{})
			first := "*2\r\n$" + strconv.Itoa(len(key)) + "\r\n" + key + "\r\n$1\r\nw\r\n"
			if raw, _, err := rd.ReadReply(); err != nil || string(raw) != first {
				t.Fatalf("first BLPOP: %q, %v", raw, err)
			}
			busy := dialRaw(t, rs.Addr)
			busy.send(cmd("DEBUG", "SLEEP", "1"))
			waitFor(t, func() error {
				probe := redis.NewClient(&redis.Options{Addr: rs.Addr, ReadTimeout: 50 * time.Millisecond, MaxRetries: -1})
				defer probe.Close()
				if probe.Ping(ctxT(t)).Err() == nil {
					return fmt.Errorf("Redis is not asleep yet")
				}
				return nil
			})
			go io.WriteString(nc, cmd("BLPOP", key, "0")+strings.Repeat(cmd("PING"), pings))
			nc.SetReadDeadline(time.Now().Add(30 * time.Second))
			want := "*2\r\n$" + strconv.Itoa(len(key)) + "\r\n" + key + "\r\n$1\r\nx\r\n"
			if raw, _, err := rd.ReadReply(); err != nil || string(raw) != want {
				t.Fatalf("BLPOP: %q, %v; want %q (LLEN now %d)", raw, err, want, direct.LLen(ctxT(t), key).Val())
			}
			for i := range pings {
				if raw, _, err := rd.ReadReply(); err != nil || string(raw) != "+PONG\r\n" {
					t.Fatalf("reply %d of the pipeline: %q, %v", i, raw, err)
				}
			}
			busy.expect("+OK")
		})
	}
}

// endpoint is a way to reach a proxy: plainAndTLS.
type endpoint struct {
	name string
	dial func(t *testing.T) net.Conn
}

// plainAndTLS serves rs through a proxy with cfg on plain TCP (the event
// loop's, unless the tests run without it) and through another on TLS,
// listening as the binary does. The second names the master by host
// name, as a Kubernetes Service or a Sentinel that announces host names
// does: a review found a check that compared it with an IP address.
func plainAndTLS(t *testing.T, rs *lab.Server, cfg proxy.Config) []endpoint {
	_, addr := startProxy(t, rs.Addr, cfg)
	cert, pool := localCert(t)
	srv := proxy.New(cfg)
	_, port, _ := net.SplitHostPort(rs.Addr)
	srv.SetMaster(1, net.JoinHostPort("localhost", port))
	l, err := tlsListen(&tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return []endpoint{
		{"plain", func(t *testing.T) net.Conn {
			nc, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { nc.Close() })
			return nc
		}},
		{"TLS", func(t *testing.T) net.Conn {
			nc, err := tls.Dial("tcp", l.Addr().String(), &tls.Config{RootCAs: pool, ServerName: "localhost"})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { nc.Close() })
			return nc
		}},
	}
}

// blockedCount wants Redis's blocked_clients to be n.
func blockedCount(t *testing.T, c *redis.Client, n int) func() error {
	return func() error {
		if got := blockedClients(t, c); got != n {
			return fmt.Errorf("blocked_clients %d, want %d", got, n)
		}
		return nil
	}
}

// writeAll writes s to nc within 10 seconds: a proxy that stops reading
// a blocked client makes it fail.
func writeAll(t *testing.T, nc net.Conn, s string) {
	t.Helper()
	nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(nc, s); err != nil {
		t.Fatalf("writing %d bytes behind a blocked command: %v", len(s), err)
	}
	nc.SetWriteDeadline(time.Time{})
}

// TestXreadgroupNamedLikeAnOption: a group or consumer may be named
// "streams" or "block". The router took the group name STREAMS for the
// start of the keys, missed the BLOCK after it, and sent a blocking
// XREADGROUP down the shared connection, where every other client waited
// behind it. The blocking audit found it.
func TestXreadgroupNamedLikeAnOption(t *testing.T) {
	for _, names := range [][2]string{{"streams", "c"}, {"g", "STREAMS"}} {
		t.Run(names[0]+"/"+names[1], func(t *testing.T) {
			rs, _, addr := setup(t, proxy.Config{ReadTimeout: time.Minute, PoolSize: 1})
			direct := rs.Client()
			defer direct.Close()
			if err := direct.XGroupCreateMkStream(ctxT(t), "xg:s", names[0], "$").Err(); err != nil {
				t.Fatal(err)
			}
			other := dialRaw(t, addr)
			settle(t, other, rs)
			b := dialRaw(t, addr)
			b.send(cmd("XREADGROUP", "GROUP", names[0], names[1], "BLOCK", "0", "STREAMS", "xg:s", ">"))
			waitFor(t, func() error {
				if n := blockedClients(t, direct); n != 1 {
					return fmt.Errorf("blocked_clients %d", n)
				}
				return nil
			})
			other.send(cmd("PING"))
			other.expect("+PONG") // not behind the XREADGROUP
		})
	}
}

// TestScriptKillThroughProxy: Redis answers SCRIPT KILL and FUNCTION KILL
// while a script runs past busy-reply-threshold. Through the proxy they
// queued behind the script on the shared connection; and once
// read_timeout had closed it, new connections failed their handshake
// (CLIENT SETNAME gets -BUSY), so the script could not be stopped through
// the proxy at all. The blocking audit found it. From a client on another
// database, the kill's new connection could not SELECT it (Redis refuses
// SELECT while a script runs): it now goes without, and is not kept.
func TestScriptKillThroughProxy(t *testing.T) {
	const lib = "#!lua name=spin\nredis.register_function('spin', function() while true do end end)"
	for _, tc := range []struct {
		name, run, kill string
		timedOut        bool // read_timeout has failed the script's client first
		password        string
		db              string // the killer's database, if not 0
	}{
		{"SCRIPT KILL", cmd("EVAL", "while true do end", "0"), cmd("SCRIPT", "KILL"), false, "", ""},
		{"SCRIPT KILL after read_timeout", cmd("EVAL", "while true do end", "0"), cmd("SCRIPT", "KILL"), true, "", ""},
		{"FUNCTION KILL", cmd("FCALL", "spin", "0"), cmd("FUNCTION", "KILL"), false, "", ""},
		{"FUNCTION KILL after read_timeout, with a password", cmd("FCALL", "spin", "0"), cmd("FUNCTION", "KILL"), true, "pw", ""},
		{"SCRIPT KILL from database 3", cmd("EVAL", "while true do end", "0"), cmd("SCRIPT", "KILL"), false, "", "3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			readTimeout := time.Minute
			if tc.timedOut {
				readTimeout = 300 * time.Millisecond
			}
			rs, direct := busyServer(t, tc.password, "")
			_, addr := startProxy(t, rs.Addr, proxy.Config{ReadTimeout: readTimeout, PoolSize: 1, Password: tc.password})
			direct.send(cmd("FUNCTION", "LOAD", lib))
			direct.expect("$4", "spin")
			killer := dialRaw(t, addr)
			if tc.db != "" {
				killer.send(cmd("SELECT", tc.db))
				killer.expect("+OK")
			}
			killer.send(cmd("PING"))
			killer.expect("+PONG")
			a := dialRaw(t, addr)
			a.send(tc.run)
			waitScriptBusy(t, direct)
			if tc.timedOut {
				if l := a.line(); !strings.Contains(l, "may or may not have run") {
					t.Fatalf("the script's client after read_timeout: %q", l)
				}
			}
			killer.send(tc.kill)
			killer.expect("+OK")
			if !tc.timedOut {
				if l := a.line(); !strings.Contains(l, "killed by user") {
					t.Fatalf("the script's client: %q", l)
				}
			}
			// Redis answers the kill at once and stops the script at its
			// next check: -BUSY may come a moment longer.
			waitFor(t, func() error {
				killer.send(cmd("PING"))
				if l := killer.line(); l != "+PONG" {
					return fmt.Errorf("PING after the kill: %q", l)
				}
				return nil
			})
			if tc.db != "" {
				// A connection of the killer's own, as the kill's was: it
				// must be on the killer's database, not the kill's 0.
				killer.send(cmd("BLPOP", "sk:db", "0"))
				waitFor(t, func() error {
					if n := blockedClients(t, rs.Client()); n != 1 {
						return fmt.Errorf("blocked_clients %d, want 1", n)
					}
					return nil
				})
				direct.send(cmd("SELECT", tc.db) + cmd("RPUSH", "sk:db", "v"))
				direct.expect("+OK", ":1")
				killer.expect("*2", "$5", "sk:db", "$1", "v")
			}
		})
	}
}

// blockedWithBacklog has a client block in BLPOP on key with more than
// the proxy keeps for a blocked client (64 KiB) pipelined behind it.
func blockedWithBacklog(t *testing.T, addr, key string, direct *redis.Client) *rawConn {
	t.Helper()
	c := dialRaw(t, addr)
	c.send(cmd("BLPOP", key, "0") + strings.Repeat(cmd("PING"), 6000))
	waitFor(t, func() error {
		if n := blockedClients(t, direct); n != 1 {
			return fmt.Errorf("blocked_clients %d, want 1", n)
		}
		return nil
	})
	return c
}

// TestShutdownReleasesBlockedClientWithBacklog: Shutdown closes a blocked
// client's connection, and its BLPOP must leave Redis then, not when
// Shutdown's context runs out, or an element pushed meanwhile goes to
// nobody. With over 64 KiB pipelined behind the BLPOP the watcher waited
// for the peer's end only, which a close from the proxy's side never
// gives (the review of b3ae44c found it).
func TestShutdownReleasesBlockedClientWithBacklog(t *testing.T) {
	rs, srv, addr := setup(t, proxy.Config{})
	direct := rs.Client()
	defer direct.Close()
	blockedWithBacklog(t, addr, "srb:q", direct)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	done := make(chan struct{})
	go func() { srv.Shutdown(ctx); close(done) }()
	waitFor(t, func() error {
		if n := blockedClients(t, direct); n != 0 {
			return fmt.Errorf("blocked_clients %d during Shutdown", n)
		}
		return nil
	})
	<-done
}

// TestHalfCloseBehindLargeBacklog: a client blocked in BLPOP that
// pipelines over 64 KiB and then half-closes is freed by Redis, which
// reads its end; so must it be through the proxy, and its connection
// must end cleanly, not in a reset for the bytes left unread.
func TestHalfCloseBehindLargeBacklog(t *testing.T) {
	rs, _, addr := setup(t, proxy.Config{})
	direct := rs.Client()
	defer direct.Close()
	for _, target := range []string{rs.Addr, addr} {
		c := blockedWithBacklog(t, target, "hcb:q", direct)
		c.halfClose() // fails the test on a reset
		waitFor(t, func() error {
			if n := blockedClients(t, direct); n != 0 {
				return fmt.Errorf("%s: blocked_clients %d after the half-close", target, n)
			}
			return nil
		})
	}
}

// TestScriptKillAfterRefusedDial: while a script runs, a dial for any
// other client fails on CLIENT SETNAME's -BUSY, and for dial_backoff the
// pool answered every new connection with that stored error, SCRIPT
// KILL's included (the review of b3ae44c found it).
func TestScriptKillAfterRefusedDial(t *testing.T) {
	rs, _ := busyServer(t, "", "")
	_, addr := startProxy(t, rs.Addr, proxy.Config{ReadTimeout: 300 * time.Millisecond, PoolSize: 1, DialBackoff: time.Minute})
	killer := dialRaw(t, addr)
	killer.send(cmd("PING"))
	killer.expect("+PONG")
	a := dialRaw(t, addr)
	a.send(cmd("EVAL", "while true do end", "0"))
	if l := a.line(); !strings.Contains(l, "may or may not have run") {
		t.Fatalf("the script's client after read_timeout: %q", l)
	}
	other := dialRaw(t, addr)
	other.send(cmd("BLPOP", "sk:q", "1")) // a dedicated dial, refused -BUSY
	if l := other.line(); !strings.HasPrefix(l, "-BUSY") {
		t.Fatalf("BLPOP while the script runs: %q", l)
	}
	killer.send(cmd("SCRIPT", "KILL"))
	killer.expect("+OK")
}

// busyServer starts a Redis that answers -BUSY 100 ms into a script,
// with password as its requirepass and as a replica of replicaOf if not
// empty; and a connection to it, logged in, that stops any script left
// at the end.
func busyServer(t *testing.T, password, replicaOf string) (*lab.Server, *rawConn) {
	t.Helper()
	args := []string{"--busy-reply-threshold", "100"}
	if password != "" {
		args = append(args, "--requirepass", password)
	}
	rs := labtest.Server(t, lab.ServerOptions{Args: args, ReplicaOf: replicaOf})
	direct := dialRaw(t, rs.Addr)
	if password != "" {
		direct.send(cmd("AUTH", password))
		direct.expect("+OK")
	}
	t.Cleanup(func() {
		direct.send(cmd("SCRIPT", "KILL") + cmd("FUNCTION", "KILL"))
		direct.line()
		direct.line()
	})
	return rs, direct
}

// waitScriptBusy waits until direct's server answers -BUSY: a script
// runs past busy-reply-threshold.
func waitScriptBusy(t *testing.T, direct *rawConn) {
	t.Helper()
	waitFor(t, func() error {
		direct.send(cmd("PING"))
		if l := direct.line(); !strings.HasPrefix(l, "-BUSY") {
			return fmt.Errorf("PING answered %q: no script running yet", l)
		}
		return nil
	})
}

// TestScriptKillOnReadPortReachesTheScript: a read port's SCRIPT KILL
// must reach wherever the port ran the script: a replica of the read set
// (EVAL_RO runs there) and more. With no healthy replica
// (and read_policy not replica) EVAL_RO falls back to the master; and a
// replica running a script past busy-reply-threshold answers the health
// check -BUSY and leaves the read set at once. The kill went only to the
// read set, so it missed both (the review of a4ab354 found them).
func TestScriptKillOnReadPortReachesTheScript(t *testing.T) {
	t.Run("a replica in the read set", func(t *testing.T) {
		// Sent to the master, it got NOTBUSY while the replica kept
		// spinning (the review of b3ae44c).
		m := labtest.Server(t, lab.ServerOptions{})
		rep, direct := busyServer(t, "", m.Addr)
		_, _, readAddr := readProxyTable(t, replicated{master: m, replicas: []*lab.Server{rep}}, proxy.Config{ReadTimeout: time.Minute})
		a := killScript(t, readAddr, direct)
		if l := a.line(); !strings.Contains(l, "killed by user") {
			t.Fatalf("the script's client: %q", l)
		}
	})
	t.Run("fallback to the master", func(t *testing.T) {
		m, direct := busyServer(t, "", "")
		_, _, readAddr := readProxyTable(t, replicated{master: m}, proxy.Config{ReadTimeout: time.Minute})
		killScript(t, readAddr, direct)
	})
	t.Run("a replica that left the read set", func(t *testing.T) {
		m := labtest.Server(t, lab.ServerOptions{})
		rep, direct := busyServer(t, "", m.Addr)
		srv, _, readAddr := readProxyTable(t, replicated{master: m, replicas: []*lab.Server{rep}}, proxy.Config{ReadTimeout: time.Minute, ReadPolicy: proxy.ReadReplica})
		killScript(t, readAddr, direct, func() { srv.SetReplicas(nil) }) // as the health check does on -BUSY
	})
}

// killScript runs a spinning EVAL_RO through the read port readAddr
// until direct's server is busy with it, calls then (if given), and
// stops it with SCRIPT KILL through the same port. It returns the
// script's own client, which may have had its answer from elsewhere by
// then: with read_policy replica, a read whose replica left the read set
// is re-sent.
func killScript(t *testing.T, readAddr string, direct *rawConn, then ...func()) (script *rawConn) {
	t.Helper()
	killer := dialRaw(t, readAddr)
	killer.send(cmd("PING"))
	killer.expect("+PONG")
	a := dialRaw(t, readAddr)
	a.send(cmd("EVAL_RO", "while true do end", "0"))
	waitScriptBusy(t, direct)
	for _, f := range then {
		f()
	}
	killer.send(cmd("SCRIPT", "KILL"))
	killer.expect("+OK")
	waitFor(t, func() error { // stopped where it ran
		direct.send(cmd("PING"))
		if l := direct.line(); l != "+PONG" {
			return fmt.Errorf("PING after the kill: %q", l)
		}
		return nil
	})
	return a
}

// TestScriptKillKeepsDialBackoff: SCRIPT KILL dials past a stored -BUSY
// (the script it is to stop refused the connection's name), but not past
// any other refused dial: every client looping SCRIPT KILL against a
// master that refuses the proxy would dial it every dial_backoff, where
// other commands share one dial per dial_backoff (the review of a4ab354).
func TestScriptKillKeepsDialBackoff(t *testing.T) {
	rs := labtest.Server(t, lab.ServerOptions{Args: []string{"--requirepass", "pw"}})
	_, addr := startProxy(t, rs.Addr, proxy.Config{DialBackoff: time.Hour, HoldTimeout: 100 * time.Millisecond})
	admin := redis.NewClient(&redis.Options{Addr: rs.Addr, Password: "pw", PoolSize: 1})
	defer admin.Close()
	conns := func() int64 {
		t.Helper()
		s, err := admin.Info(ctxT(t), "stats").Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(s, "\r\n") {
			if v, ok := strings.CutPrefix(line, "total_connections_received:"); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				return n
			}
		}
		t.Fatal("no total_connections_received in INFO stats")
		return 0
	}
	c := dialRaw(t, addr)
	c.send(cmd("BLPOP", "kb:q", "1")) // a dedicated dial, refused NOAUTH
	if l := c.line(); !strings.HasPrefix(l, "-NOAUTH") {
		t.Fatalf("BLPOP without the password: %q", l)
	}
	before := conns()
	for range 5 {
		c.send(cmd("SCRIPT", "KILL"))
		if l := c.line(); !strings.HasPrefix(l, "-NOAUTH") {
			t.Fatalf("SCRIPT KILL without the password: %q", l)
		}
	}
	if n := conns() - before; n != 0 {
		t.Fatalf("5 SCRIPT KILLs dialled the refusing master %d times within dial_backoff", n)
	}
}

// TestTunnelAfterExecInOnePipeline: an EXEC (or DISCARD, UNWATCH) that
// ends the client's transaction gives its connection back to the pool;
// a SUBSCRIBE, CLIENT ID or blocking command in the same batch must not
// be sent on that connection, which another client may take meanwhile.
func TestTunnelAfterExecInOnePipeline(t *testing.T) {
	_, _, addr := setup(t, proxy.Config{})
	a := dialRaw(t, addr)
	a.send(cmd("MULTI") + cmd("INCR", "tae:n") + cmd("EXEC") + cmd("CLIENT", "ID"))
	a.expect("+OK", "+QUEUED", "*1")
	a.line() // EXEC's INCR
	a.line() // CLIENT ID
	b := dialRaw(t, addr)
	b.send(cmd("WATCH", "tae:k") + cmd("ECHO", "mine") + cmd("UNWATCH"))
	b.expect("+OK", "$4", "mine", "+OK")

	c := dialRaw(t, addr)
	c.send(cmd("MULTI") + cmd("EXEC") + cmd("BLPOP", "tae:none", "0"))
	c.expect("+OK", "*0")
	d := dialRaw(t, addr)
	d.send(cmd("MULTI") + cmd("ECHO", "d") + cmd("EXEC"))
	d.expect("+OK", "+QUEUED", "*1", "$1", "d") // not queued behind c's BLPOP
}

// A client that sends a protocol error and resets its connection at once
// is logged like any other: the session handed to a goroutine for the
// error reply has a connection rebuilt from its descriptor, whose peer
// address is unknown once the peer has reset, and logging it must not
// panic (a panic is logged at ERROR with a stack, for anyone to cause).
func TestProtocolErrorThenResetDoesNotPanic(t *testing.T) {
	rs := labtest.Server(t, lab.ServerOptions{})
	core, logs := observer.New(zap.DebugLevel)
	_, addr := startProxy(t, rs.Addr, proxy.Config{Logger: zap.New(core)})
	for i := 0; i < 20; i++ {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(nc, "*1\r\n$x\r\n")
		nc.(*net.TCPConn).SetLinger(0)
		nc.Close()
	}
	c := dialRaw(t, addr)
	c.send(cmd("PING"))
	c.expect("+PONG")
	waitFor(t, func() error {
		if n := logs.FilterMessage("client protocol error").Len(); n < 20 {
			return fmt.Errorf("%d of 20 protocol errors logged", n)
		}
		return nil
	})
	if p := logs.FilterMessage("session panic; closing the client").Len(); p != 0 {
		t.Fatalf("%d session panics for clients that reset after a protocol error", p)
	}
}
