package proxy_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pnats/switchyard/proxy"
)

// CLIENT ID answers the ID of a connection that is the client's: another
// client's CLIENT UNBLOCK of that ID reaches the client's BLPOP. Before,
// it was a shared connection's ID and the UNBLOCK found nobody blocked.
func TestClientIDUnblocks(t *testing.T) {
	_, _, addr := setup(t, proxy.Config{})
	a := dialRaw(t, addr)
	a.send(cmd("CLIENT", "ID"))
	id := strings.TrimPrefix(a.line(), ":")
	a.send(cmd("GET", "k") + cmd("BLPOP", "jobs", "0"))
	a.expect("$-1")
	b := dialRaw(t, addr)
	waitFor(t, func() error {
		b.send(cmd("CLIENT", "UNBLOCK", id))
		if l := b.line(); l != ":1" {
			return fmt.Errorf("CLIENT UNBLOCK %s: %s", id, l)
		}
		return nil
	})
	a.expect("*-1")
	// The connection stays the client's: its ID does not change.
	a.send(cmd("CLIENT", "ID"))
	a.expect(":" + id)
}

// The RESP2 client-side caching pattern: a client subscribes to
// __redis__:invalidate on the connection CLIENT ID named, another
// redirects its tracking there, and the invalidation arrives.
func TestTrackingRedirect(t *testing.T) {
	_, _, addr := setup(t, proxy.Config{})
	a := dialRaw(t, addr)
	a.send(cmd("CLIENT", "ID"))
	id := strings.TrimPrefix(a.line(), ":")
	a.send(cmd("SUBSCRIBE", "__redis__:invalidate"))
	a.expect("*3", "$9", "subscribe", "$20", "__redis__:invalidate", ":1")
	invalidateFor(t, addr, id)
	a.expect("*3", "$7", "message", "$20", "__redis__:invalidate", "*1", "$2", "rk")
}

// A client that redirects its tracking to a shared connection (its ID
// is in CLIENT LIST) makes Redis push invalidations there. The pushes
// are dropped; the commands of the clients sharing that connection are
// answered as before. Before, the connection was closed and their
// commands in flight failed.
func TestPushOnSharedConnection(t *testing.T) {
	_, _, addr := setup(t, proxy.Config{PoolSize: 1})
	v := dialRaw(t, addr)
	v.send(cmd("HELLO", "3"))
	for v.line() != "modules" { // HELLO's map ends with modules, an empty array
	}
	v.expect("*0")
	// The ID of the shared RESP3 connection v's commands use.
	connID := func() string {
		v.send(cmd("CLIENT", "INFO"))
		info := v.line()
		if !strings.HasPrefix(info, "=") && !strings.HasPrefix(info, "$") {
			t.Fatalf("CLIENT INFO: %q", info)
		}
		body := v.line()
		v.expect("") // CLIENT INFO ends its line with LF, before the frame's CRLF
		id := strings.Fields(strings.TrimPrefix(body, "txt:"))[0]
		return strings.TrimPrefix(id, "id=")
	}
	id := connID()

	b := dialRaw(t, addr)
	b.send(cmd("CLIENT", "TRACKING", "on", "REDIRECT", id) + cmd("GET", "pk"))
	b.expect("+OK", "$-1")
	for i := range 20 {
		w := dialRaw(t, addr)
		w.send(cmd("SET", "pk", "x") + cmd("GET", "pk"))
		w.expect("+OK", "$1", "x")
		b.send(cmd("GET", "pk")) // tracked again, so the next SET invalidates again
		b.expect("$1", "x")
		v.send(cmd("INCR", "n"))
		if l := v.line(); l != ":"+strconv.Itoa(i+1) {
			t.Fatalf("INCR on the connection that got the push: %q", l)
		}
	}
	// The push, which came while nothing was in flight on that
	// connection, was dropped, and the connection kept.
	if now := connID(); now != id {
		t.Fatalf("the shared connection was replaced: id %s, then %s", id, now)
	}
}

// In a tunnel the proxy's answers keep their place among Redis's: CLIENT
// REPLY and NO-EVICT go to Redis (the connection is the client's alone),
// and CLIENT GETNAME names the client, not the proxy's connection.
func TestTunnelRepliesInOrder(t *testing.T) {
	_, _, addr := setup(t, proxy.Config{})
	c := dialRaw(t, addr)
	c.send(cmd("CLIENT", "SETNAME", "worker") + cmd("SUBSCRIBE", "a") + cmd("CLIENT", "REPLY", "OFF") + cmd("PING"))
	c.expect("+OK", "*3", "$9", "subscribe", "$1", "a", ":1")
	if l := c.line(); !strings.HasPrefix(l, "-ERR Can't execute 'client|reply'") {
		t.Fatalf("CLIENT REPLY while subscribed: %q", l)
	}
	c.expect("*2", "$4", "pong", "$0", "")

	d := dialRaw(t, addr)
	d.send(cmd("CLIENT", "SETNAME", "cache") + cmd("HELLO", "3"))
	d.expect("+OK")
	for d.line() != "modules" { // HELLO's map ends with modules, an empty array
	}
	d.expect("*0")
	d.send(cmd("CLIENT", "TRACKING", "on") + cmd("CLIENT", "NO-EVICT", "on") + cmd("CLIENT", "GETNAME") + cmd("GET", "k2"))
	d.expect("+OK", "+OK", "$5", "cache", "_")
}

// RESET with an argument is an arity error that changes nothing, as in
// Redis; before, the proxy reset the session.
func TestResetArity(t *testing.T) {
	_, _, addr := setup(t, proxy.Config{})
	c := dialRaw(t, addr)
	c.send(cmd("SELECT", "2") + cmd("CLIENT", "SETNAME", "keep") + cmd("RESET", "now") + cmd("CLIENT", "GETNAME") + cmd("SET", "where", "x"))
	c.expect("+OK", "+OK", "-ERR wrong number of arguments for 'reset' command", "$4", "keep", "+OK")
	c.send(cmd("SELECT", "0") + cmd("EXISTS", "where"))
	c.expect("+OK", ":0")
}

// Commands the proxy answers or refuses itself cannot be queued inside
// MULTI: refused when queued, they make EXEC fail as Redis fails a
// transaction with a command it could not queue, and nothing runs.
func TestRefusedInsideMulti(t *testing.T) {
	_, _, addr := setup(t, proxy.Config{})
	c := dialRaw(t, addr)
	for _, bad := range []string{cmd("CLIENT", "SETNAME", "zz"), cmd("CLIENT", "GETNAME"), cmd("CLIENT", "NO-EVICT", "on"), cmd("CLIENT", "ID"), cmd("RESET", "foo")} {
		c.send(cmd("MULTI") + cmd("INCR", "tx") + bad + cmd("INCR", "tx") + cmd("EXEC"))
		c.expect("+OK", "+QUEUED")
		if l := c.line(); !(strings.HasPrefix(l, "-ERR switchyard: ") && strings.Contains(l, "inside MULTI is not supported")) && l != "-ERR wrong number of arguments for 'reset' command" {
			t.Fatalf("refused inside MULTI: %q", l)
		}
		c.expect("+QUEUED", "-EXECABORT Transaction discarded because of previous errors.")
	}
	c.send(cmd("EXISTS", "tx") + cmd("CLIENT", "GETNAME"))
	c.expect(":0", "$-1")
}

// RESET in a tunnel ends it: Redis leaves Pub/Sub (or MONITOR, or
// tracking), and the client is served as any other again, with the
// proxy's own replies in order after the +RESET; a client of a proxy
// with client_auth must authenticate again.
func TestResetEndsTunnel(t *testing.T) {
	_, _, addr := setup(t, proxy.Config{Authenticate: func(user, pass string) bool { return pass == "pw" }})
	c := dialRaw(t, addr)
	c.send(cmd("AUTH", "pw") + cmd("SUBSCRIBE", "a") + cmd("RESET") + cmd("GET", "k") + cmd("AUTH", "pw") + cmd("GET", "k"))
	c.expect("+OK", "*3", "$9", "subscribe", "$1", "a", ":1", "+RESET")
	if l := c.line(); !strings.HasPrefix(l, "-NOAUTH") {
		t.Fatalf("GET after RESET: %q", l)
	}
	c.expect("+OK", "$-1")
	// No longer subscribed: a message to a does not reach it.
	p := dialRaw(t, addr)
	p.send(cmd("AUTH", "pw") + cmd("PUBLISH", "a", "x"))
	p.expect("+OK", ":0")

	c.send(cmd("MONITOR") + cmd("RESET") + cmd("PING"))
	c.expect("+OK", "+RESET")
	if l := c.line(); !strings.HasPrefix(l, "-NOAUTH") {
		t.Fatalf("PING after RESET: %q", l)
	}
	c.send(cmd("AUTH", "pw") + cmd("SET", "k", "v") + cmd("GET", "k"))
	c.expect("+OK", "+OK", "$1", "v")
}

// The tunnel ends at the reply to the command the proxy sends after the
// client's RESET, not at the first +RESET: a script may return one, and
// CLIENT REPLY SKIP may suppress the RESET's own.
func TestResetEndsTunnelAtItsOwnReply(t *testing.T) {
	_, _, addr := setup(t, proxy.Config{ReadTimeout: 20 * time.Second})
	c := dialRaw(t, addr)
	c.send(cmd("CLIENT", "TRACKING", "on") + cmd("EVAL", "return redis.status_reply('RESET')", "0") + cmd("RESET") + cmd("GET", "x") + cmd("PING"))
	c.expect("+OK", "+RESET", "+RESET", "$-1", "+PONG")

	d := dialRaw(t, addr)
	d.send(cmd("CLIENT", "TRACKING", "on") + cmd("CLIENT", "REPLY", "SKIP") + cmd("RESET") + cmd("PING"))
	d.expect("+OK", "+PONG") // at once, as from Redis; not after read_timeout
}

// After CLIENT ID every command of the client runs on the connection
// named: a later SELECT, AUTH or HELLO applies there, and RESP3 pushes
// redirected to it reach the client.
func TestClientIDConnectionIsTheClients(t *testing.T) {
	rs, _, addr := setup(t, proxy.Config{})
	admin := rs.Client()
	defer admin.Close()
	if err := admin.Do(context.Background(), "ACL", "SETUSER", "ro", "on", ">ropw", "~*", "&*", "+@all", "-set").Err(); err != nil {
		t.Fatal(err)
	}
	c := dialRaw(t, addr)
	c.send(cmd("CLIENT", "ID"))
	id := strings.TrimPrefix(c.line(), ":")
	c.send(cmd("SELECT", "1") + cmd("MULTI") + cmd("SET", "db1", "x") + cmd("EXEC") + cmd("AUTH", "ro", "ropw") + cmd("SET", "a", "1"))
	c.expect("+OK", "+OK", "+QUEUED", "*1", "+OK", "+OK")
	if l := c.line(); !strings.HasPrefix(l, "-NOPERM") {
		t.Fatalf("SET as a user without SET: %q", l)
	}
	if n, err := admin.Do(context.Background(), "SELECT", "1").Result(); err != nil || n != "OK" {
		t.Fatal(n, err)
	}
	if v, _ := admin.Get(context.Background(), "db1").Result(); v != "x" {
		t.Fatalf("the SET after SELECT 1 went to db 0 (db1=%q)", v)
	}

	a := dialRaw(t, addr)
	a.send(cmd("HELLO", "3"))
	for a.line() != "modules" {
	}
	a.expect("*0")
	a.send(cmd("CLIENT", "ID"))
	id = strings.TrimPrefix(a.line(), ":")
	invalidateFor(t, addr, id)
	a.send(cmd("PING"))
	a.expect(">2", "$10", "invalidate", "*1", "$2", "rk", "+PONG")
}

// invalidateFor has one client track key rk with its invalidations
// redirected to the client with ID id, and another change rk.
func invalidateFor(t *testing.T, addr, id string) {
	t.Helper()
	b := dialRaw(t, addr)
	b.send(cmd("CLIENT", "TRACKING", "on", "REDIRECT", id) + cmd("GET", "rk"))
	b.expect("+OK", "$-1")
	w := dialRaw(t, addr)
	w.send(cmd("SET", "rk", "x"))
	w.expect("+OK")
}

// A RESET after a blocking command in a tunnel waits for it, as on Redis,
// however long past read_timeout it blocks: the replies come in order.
// An audit saw the client cut off at read_timeout with those replies lost.
func TestResetAfterBlockingInTunnel(t *testing.T) {
	_, _, addr := setup(t, proxy.Config{ReadTimeout: 300 * time.Millisecond})
	c := dialRaw(t, addr)
	c.send(cmd("CLIENT", "ID"))
	c.line()
	c.send(cmd("BLPOP", "nolx", "1") + cmd("RESET") + cmd("PING"))
	c.expect("*-1", "+RESET", "+PONG")
}

// A client that leaves while its RESET waits behind a blocked command
// frees the blocked backend connection at once, as a blocked client
// does, not when some timeout passes.
func TestClientGoneWhileResetWaits(t *testing.T) {
	rs, _, addr := setup(t, proxy.Config{ReadTimeout: 30 * time.Second})
	c := dialRaw(t, addr)
	c.send(cmd("CLIENT", "ID"))
	c.line()
	c.send(cmd("BLPOP", "nolz", "0") + cmd("RESET"))
	admin := rs.Client()
	defer admin.Close()
	blocked := func() (int, error) {
		list, err := admin.ClientList(context.Background()).Result()
		return strings.Count(list, "flags=b"), err
	}
	waitFor(t, func() error {
		if n, err := blocked(); n != 1 {
			return fmt.Errorf("%d blocked clients (%v)", n, err)
		}
		return nil
	})
	c.nc.Close()
	waitFor(t, func() error {
		if n, err := blocked(); n != 0 {
			return fmt.Errorf("%d blocked clients after the client left (%v)", n, err)
		}
		return nil
	})
}
