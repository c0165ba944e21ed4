package proxy_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pnats/switchyard/internal/lab"
	"github.com/pnats/switchyard/internal/lab/labtest"
	"github.com/pnats/switchyard/proxy"
	"github.com/redis/go-redis/v9"
)

// TestProtocolErrorsMatchRedis sends the same malformed input to Redis and
// to the proxy: the error text must be the same, the connection must be
// closed, and the commands before the bad one must still be answered.
func TestProtocolErrorsMatchRedis(t *testing.T) {
	rs, _, addr := setup(t, proxy.Config{})
	cases := []struct{ name, input string }{
		{"bad multibulk length", "*abc\r\n"},
		{"bad bulk length", "*1\r\n$-5\r\n"},
		{"expected dollar", "*1\r\n:1\r\n"},
		{"unbalanced quotes", "SET a \"b\r\n"},
		{"after good commands", "PING\r\nPING\r\n*1\r\nx\r\n"},
		{"huge bulk", "*1\r\n$999999999999\r\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			want := exchange(t, rs.Addr, tc.input)
			got := exchange(t, addr, tc.input)
			if got != want {
				t.Fatalf("proxy replied %q, Redis replied %q", got, want)
			}
			if !strings.Contains(got, "-ERR Protocol error") {
				t.Fatalf("no protocol error in %q", got)
			}
		})
	}

	// Other clients carry on while one sends garbage.
	c := client(t, addr)
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			exchange(t, addr, "*1\r\n$x\r\n")
		}()
	}
	for i := 0; i < 200; i++ {
		if err := c.Incr(ctxT(t), "survivor").Err(); err != nil {
			t.Fatalf("good client failed while others sent garbage: %v", err)
		}
	}
	wg.Wait()
}

// exchange writes input, then reads until the peer closes the connection,
// and returns everything it read.
func exchange(t testing.TB, addr, input string) string {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.Write([]byte(input))
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	var out []byte
	buf := make([]byte, 4096)
	for {
		n, err := nc.Read(buf)
		out = append(out, buf[:n]...)
		if err != nil {
			if isTimeout(err) {
				t.Errorf("connection not closed after %q (read %q)", input, out)
			}
			return string(out)
		}
	}
}

func TestSessionCommands(t *testing.T) {
	_, _, addr := setup(t, proxy.Config{})
	raw := dialRaw(t, addr)

	raw.send("CLIENT GETNAME\r\n")
	if l := raw.line(); l != "$-1" {
		t.Fatalf("GETNAME before SETNAME: %q", l)
	}
	raw.send("CLIENT SETNAME worker-1\r\nCLIENT GETNAME\r\n")
	if raw.line() != "+OK" || raw.line() != "$8" || raw.line() != "worker-1" {
		t.Fatal("CLIENT SETNAME/GETNAME did not round-trip")
	}
	raw.send("CLIENT SETNAME \"bad name\"\r\n")
	if l := raw.line(); !strings.HasPrefix(l, "-ERR Client names cannot contain spaces") {
		t.Fatalf("bad name: %q", l)
	}

	raw.send("HELLO 3\r\n")
	if l := raw.line(); !strings.HasPrefix(l, "%") {
		t.Fatalf("HELLO 3: %q", l)
	}
	drainFor(raw, 100*time.Millisecond)
	raw.send("GET missing\r\n")
	if l := raw.line(); l != "_" {
		t.Fatalf("RESP3 null: %q", l)
	}
	raw.send("HELLO 4\r\n")
	if l := raw.line(); l != "-NOPROTO unsupported protocol version" {
		t.Fatalf("HELLO 4: %q", l)
	}
	raw.send("SELECT 2\r\nSET where two\r\n")
	if raw.line() != "+OK" || raw.line() != "+OK" {
		t.Fatal("SELECT 2 and SET")
	}
	raw.send("RESET\r\n")
	if l := raw.line(); l != "+RESET" {
		t.Fatalf("RESET: %q", l)
	}
	// RESET went back to RESP2, database 0 and no name.
	raw.send("GET where\r\nCLIENT GETNAME\r\n")
	if l := raw.line(); l != "$-1" {
		t.Fatalf("GET in db 0 after RESET: %q", l)
	}
	if l := raw.line(); l != "$-1" {
		t.Fatalf("name after RESET: %q", l)
	}
	raw.send("CLIENT REPLY OFF\r\n")
	if l := raw.line(); !strings.HasPrefix(l, "-ERR switchyard:") {
		t.Fatalf("CLIENT REPLY OFF: %q", l)
	}
	raw.send("QUIT\r\n")
	if l := raw.line(); l != "+OK" {
		t.Fatalf("QUIT: %q", l)
	}
	if !raw.closed() {
		t.Fatal("connection open after QUIT")
	}
}

// drainFor reads and discards whatever arrives within d.
func drainFor(c *rawConn, d time.Duration) {
	c.nc.SetReadDeadline(time.Now().Add(d))
	buf := make([]byte, 4096)
	for {
		if _, err := c.br.Read(buf); err != nil {
			return
		}
	}
}

func TestAuthPassesThrough(t *testing.T) {
	rs := labtest.Server(t, lab.ServerOptions{Args: []string{"--requirepass", "s3cret", "--user", "app", "on", ">apppw", "~app:*", "+@all"}})
	ctx := ctxT(t)

	t.Run("without credentials", func(t *testing.T) {
		_, addr := startProxy(t, rs.Addr, proxy.Config{})
		raw := dialRaw(t, addr)
		raw.send("PING\r\n")
		if l := raw.line(); !strings.HasPrefix(l, "-NOAUTH") {
			t.Fatalf("PING without auth: %q", l)
		}
		raw.send("AUTH wrong\r\n")
		if l := raw.line(); !strings.HasPrefix(l, "-WRONGPASS") {
			t.Fatalf("AUTH wrong: %q", l)
		}
		raw.send("AUTH s3cret\r\nPING\r\n")
		if raw.line() != "+OK" || raw.line() != "+PONG" {
			t.Fatal("AUTH with the right password did not work")
		}
		// ACL user: limited to app:* keys, which Redis enforces.
		c := client(t, addr, func(o *redis.Options) { o.Username = "app"; o.Password = "apppw" })
		if err := c.Set(ctx, "app:x", "1", 0).Err(); err != nil {
			t.Fatal(err)
		}
		if err := c.Set(ctx, "other", "1", 0).Err(); err == nil || !strings.Contains(err.Error(), "NOPERM") {
			t.Fatalf("ACL not applied through the proxy: %v", err)
		}
	})
	t.Run("configured credentials", func(t *testing.T) {
		_, addr := startProxy(t, rs.Addr, proxy.Config{Password: "s3cret"})
		if v, err := client(t, addr).Ping(ctx).Result(); err != nil || v != "PONG" {
			t.Fatalf("PING with configured backend password: %v %v", v, err)
		}
	})
}

// TestSlowClientDoesNotHoldOthers: a client that pipelines large replies
// and never reads must not stop other clients sharing its backend
// connection, and is disconnected after ClientWriteTimeout.
func TestSlowClientDoesNotHoldOthers(t *testing.T) {
	_, srv, addr := setup(t, proxy.Config{PoolSize: 1, ClientWriteTimeout: time.Second})
	ctx := ctxT(t)
	c := client(t, addr)
	big := strings.Repeat("v", 1<<20)
	if err := c.Set(ctx, "bigv", big, 0).Err(); err != nil {
		t.Fatal(err)
	}
	before := srv.Clients()
	slow := dialRaw(t, addr)
	slow.nc.(*net.TCPConn).SetReadBuffer(4096)
	go func() {
		for i := 0; i < 200; i++ {
			if _, err := slow.nc.Write([]byte("GET bigv\r\n")); err != nil {
				return
			}
		}
	}()
	waitFor(t, func() error {
		if srv.Clients() <= before {
			return fmt.Errorf("slow client not connected yet")
		}
		return nil
	})
	for i := 0; i < 100; i++ {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := c.Incr(cctx, "fast").Err()
		cancel()
		if err != nil {
			t.Fatalf("command %d stalled behind a slow client: %v", i, err)
		}
	}
	waitFor(t, func() error {
		if n := srv.Clients(); n > before {
			return fmt.Errorf("%d clients connected; the one that never reads is still there", n)
		}
		return nil
	})
}

func TestUnsupportedReplicationCommand(t *testing.T) {
	_, _, addr := setup(t, proxy.Config{})
	err := client(t, addr).Do(ctxT(t), "PSYNC", "?", "-1").Err()
	if err == nil || !strings.Contains(err.Error(), "not supported") {
		t.Fatalf("PSYNC: %v", err)
	}
	var re redis.Error
	if !errors.As(err, &re) {
		t.Fatalf("PSYNC error is not a Redis error reply: %v", err)
	}
}

// A MULTI or WATCH that Redis refuses for its arity changes no state, at
// the proxy as in Redis: what follows is answered as Redis answers it,
// and the client holds no connection of its own.
func TestRefusedTransactionCommandsLeaveNoState(t *testing.T) {
	rs, srv, addr := setup(t, proxy.Config{})
	// Every reply here is one line.
	cases := []struct {
		name  string
		input []string
	}{
		{"WATCH without keys", []string{cmd("WATCH"), cmd("SELECT", "1"), cmd("SET", "tx:a", "1"), cmd("SELECT", "0")}},
		{"MULTI with an argument", []string{cmd("MULTI", "x"), cmd("SELECT", "1"), cmd("EXEC"), cmd("SELECT", "0")}},
		{"MULTI with an argument, then BLPOP", []string{cmd("MULTI", "x"), cmd("BLPOP", "tx:none", "0.1")}},
	}
	lines := func(addr string, input []string) []string {
		c := dialRaw(t, addr)
		c.send(strings.Join(input, ""))
		var out []string
		for range input {
			out = append(out, c.line())
		}
		return out
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			want := lines(rs.Addr, tc.input)
			got := lines(addr, tc.input)
			if strings.Join(got, "|") != strings.Join(want, "|") {
				t.Fatalf("proxy replied %q, Redis replied %q", got, want)
			}
			waitFor(t, func() error {
				if n := srv.Stats().Pinned; n != 0 {
					return fmt.Errorf("%d clients hold a connection of their own", n)
				}
				return nil
			})
		})
	}
}

// TestLocalCommandErrorsMatchRedis: commands the proxy answers itself
// (AUTH, SELECT, CLIENT SETNAME/GETNAME) refuse a wrong number of
// arguments with Redis's own errors. One connection each, so failed
// AUTHs are never paced.
func TestLocalCommandErrorsMatchRedis(t *testing.T) {
	rs, _, addr := setup(t, proxy.Config{})
	inputs := [][]string{
		{"CLIENT", "GETNAME", "x"},
		{"CLIENT", "SETNAME"},
		{"CLIENT", "SETNAME", "a", "b"},
		{"AUTH"},
		{"AUTH", "a", "b", "c"},
		{"SELECT"},
		{"SELECT", "1", "2"},
		{"SELECT", "x"},
	}
	line := func(addr string, input []string) string {
		c := dialRaw(t, addr)
		c.send(cmd(input...))
		return c.line()
	}
	for _, in := range inputs {
		want, got := line(rs.Addr, in), line(addr, in)
		if got != want {
			t.Errorf("%q: proxy replied %q, Redis replied %q", in, got, want)
		}
	}
}
