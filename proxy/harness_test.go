package proxy_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pnats/switchyard/internal/lab"
	"github.com/pnats/switchyard/internal/lab/labtest"
	"github.com/pnats/switchyard/proxy"
	"github.com/redis/go-redis/v9"
)

// startProxy serves a proxy.Server on a free loopback port, with master as
// its upstream, and closes it at cleanup.
func startProxy(t testing.TB, master string, cfg proxy.Config) (*proxy.Server, string) {
	t.Helper()
	if noEventLoop() {
		cfg.NoEventLoop = true
	}
	if noIOUring() {
		cfg.NoIOUring = true
	}
	srv := proxy.New(cfg)
	if master != "" {
		srv.SetMaster(1, master)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	t.Cleanup(func() {
		srv.Close()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Error("Serve did not return after Close")
		}
	})
	return srv, l.Addr().String()
}

// noEventLoop reports whether the tests run with a goroutine per client
// (make test runs this package both ways).
func noEventLoop() bool { return os.Getenv("SWITCHYARD_TEST_NO_EVENT_LOOP") != "" }

// noIOUring reports whether the event loop makes a system call per client
// read and write, as where io_uring is unavailable (make test runs this
// package that way too).
func noIOUring() bool { return os.Getenv("SWITCHYARD_TEST_NO_IO_URING") != "" }

// setup starts a redis-server and a proxy in front of it.
func setup(t testing.TB, cfg proxy.Config, args ...string) (*lab.Server, *proxy.Server, string) {
	t.Helper()
	rs := labtest.Server(t, lab.ServerOptions{Args: args})
	srv, addr := startProxy(t, rs.Addr, cfg)
	return rs, srv, addr
}

func client(t testing.TB, addr string, opt ...func(*redis.Options)) *redis.Client {
	t.Helper()
	o := &redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second}
	for _, f := range opt {
		f(o)
	}
	c := redis.NewClient(o)
	t.Cleanup(func() { c.Close() })
	return c
}

// rawConn is a plain TCP client for byte-exact protocol checks.
type rawConn struct {
	t  testing.TB
	nc net.Conn
	br *bufio.Reader
}

func dialRaw(t testing.TB, addr string) *rawConn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &rawConn{t: t, nc: nc, br: bufio.NewReader(nc)}
}

func (c *rawConn) send(s string) {
	c.t.Helper()
	c.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.nc.Write([]byte(s)); err != nil {
		c.t.Fatalf("write %q: %v", s, err)
	}
}

// line reads one line, without its CRLF.
func (c *rawConn) line() string {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	s, err := c.br.ReadString('\n')
	if err != nil {
		c.t.Fatalf("read: %v (got %q)", err, s)
	}
	return s[:len(s)-2]
}

// expect reads one line per want and fails on the first that differs.
func (c *rawConn) expect(want ...string) {
	c.t.Helper()
	for i, w := range want {
		if l := c.line(); l != w {
			c.t.Fatalf("line %d: got %q, want %q", i+1, l, w)
		}
	}
}

// check is expect for use off the test's goroutine: it reads one line
// per want, under the connection's own deadline, and returns the first
// difference instead of failing the test.
func (c *rawConn) check(want ...string) error {
	for i, w := range want {
		l, err := c.br.ReadString('\n')
		if err != nil {
			return fmt.Errorf("line %d: %v (got %q)", i+1, err, l)
		}
		if l = strings.TrimSuffix(l, "\r\n"); l != w {
			return fmt.Errorf("line %d: got %q, want %q", i+1, l, w)
		}
	}
	return nil
}

// halfClose shuts the client's write side (shutdown(SHUT_WR), as
// `nc -N` does) and returns everything the proxy sends until it closes
// the connection, within 10 s.
func (c *rawConn) halfClose() string {
	c.t.Helper()
	if err := c.nc.(*net.TCPConn).CloseWrite(); err != nil {
		c.t.Fatal(err)
	}
	c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	rest, err := io.ReadAll(c.br)
	if err != nil {
		c.t.Fatalf("reading to the close: %v (read %q)", err, rest)
	}
	return string(rest)
}

// closed reports whether the peer closed the connection within 5 s,
// after whatever it still had to say (an error reply, say).
func (c *rawConn) closed() bool {
	c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		if _, err := c.br.ReadByte(); err != nil {
			return !isTimeout(err)
		}
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// waitFor polls cond until it returns nil, for up to 10 s.
func waitFor(t testing.TB, cond func() error) {
	t.Helper()
	labtest.Eventually(t, 10*time.Second, cond)
}

// waitBusy waits until rs stops answering PING: a DEBUG SLEEP sent
// through the proxy is running there.
func waitBusy(t *testing.T, rs *lab.Server) {
	t.Helper()
	direct := dialRaw(t, rs.Addr)
	waitFor(t, func() error {
		direct.nc.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		direct.nc.Write([]byte(cmd("PING")))
		if _, err := direct.br.ReadString('\n'); err == nil {
			return fmt.Errorf("redis-server still answers")
		}
		return nil
	})
}

// cmd encodes a command as a RESP array.
func cmd(args ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	return b.String()
}

// waitCommandTable waits until the proxy has asked rs for its command
// table (which it does for each new master), so that a test's request
// is not the only one in flight by accident.
func waitCommandTable(t testing.TB, rs *lab.Server) {
	t.Helper()
	waitFor(t, func() error {
		if labtest.CommandCalls(t, rs, "command") == 0 {
			return errors.New("command table not loaded yet")
		}
		return nil
	})
}

// settle makes sure c is served and that no reply from rs is due on the
// proxy's connections: after the command table was asked for, a PING
// answered on the same shared connection comes after COMMAND's reply.
func settle(t testing.TB, c *rawConn, rs *lab.Server) {
	t.Helper()
	c.send(cmd("PING"))
	c.expect("+PONG")
	waitCommandTable(t, rs)
	c.send(cmd("PING"))
	c.expect("+PONG")
}

// waitUnread waits until a connection to rs holds at least n bytes that
// rs has not read (the receive queue in /proc/net/tcp): a write to a
// paused node has begun.
func waitUnread(t *testing.T, rs *lab.Server, n int64) {
	t.Helper()
	_, port, err := net.SplitHostPort(rs.Addr)
	if err != nil {
		t.Fatal(err)
	}
	var p int64
	fmt.Sscan(port, &p)
	suffix := fmt.Sprintf(":%04X", p)
	waitFor(t, func() error {
		data, err := os.ReadFile("/proc/net/tcp")
		if err != nil {
			return err
		}
		for _, line := range strings.Split(string(data), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) < 5 || f[3] != "01" || !strings.HasSuffix(f[1], suffix) {
				continue
			}
			var tx, rx int64
			if _, err := fmt.Sscanf(f[4], "%x:%x", &tx, &rx); err == nil && rx >= n {
				return nil
			}
		}
		return fmt.Errorf("no connection to %s holds %d unread bytes", rs.Addr, n)
	})
}

// settledPair connects two clients to addr and has each answered once:
// both are served, and the proxy has loaded rs's command table.
func settledPair(t *testing.T, addr string, rs *lab.Server) (a, b *rawConn) {
	t.Helper()
	a, b = dialRaw(t, addr), dialRaw(t, addr)
	settle(t, a, rs)
	b.send(cmd("PING"))
	b.expect("+PONG")
	return a, b
}

// expectValue fails t unless node holds key=want; who names node in the
// failure ("the new master has").
func expectValue(t *testing.T, node *lab.Server, key, want, who string) {
	t.Helper()
	if v, _ := node.Client().Get(ctxT(t), key).Result(); v != want {
		t.Fatalf("%s %s=%q", who, key, v)
	}
}

// expectNoSET fails t if the old master oldM ran any SET.
func expectNoSET(t *testing.T, oldM *lab.Server) {
	t.Helper()
	if n := labtest.CommandCalls(t, oldM, "set"); n != 0 {
		t.Fatalf("the old master ran %d SETs", n)
	}
}

// gate holds the first goroutine that reaches it once armed (a test hook
// calls pass) until the test opens it, so that a test can act while a
// proxy goroutine stands at a known point.
type gate struct {
	armed   atomic.Bool
	reached chan struct{}
	proceed chan struct{}
	once    sync.Once
}

func newGate() *gate {
	return &gate{reached: make(chan struct{}), proceed: make(chan struct{})}
}

// pass is the hook's body.
func (g *gate) pass() {
	if g.armed.CompareAndSwap(true, false) {
		close(g.reached)
		<-g.proceed
	}
}

// arm makes the next pass hold. The gate opens when the test ends at the
// latest: arm runs after the server starts, so this cleanup runs before
// the server's Close, which could otherwise wait for the held goroutine.
func (g *gate) arm(t *testing.T) {
	t.Cleanup(g.open)
	g.armed.Store(true)
}

// wait fails t unless a goroutine reaches the gate within 10 s.
func (g *gate) wait(t *testing.T, what string) {
	t.Helper()
	select {
	case <-g.reached:
	case <-time.After(10 * time.Second):
		t.Fatal(what)
	}
}

func (g *gate) open() { g.once.Do(func() { close(g.proceed) }) }

// expectNoSETFor fails t with why if oldM runs a SET within d: long enough
// for a command the proxy should hold back to have arrived by mistake.
func expectNoSETFor(t *testing.T, oldM *lab.Server, d time.Duration, why string) {
	t.Helper()
	for deadline := time.Now().Add(d); time.Now().Before(deadline); {
		if labtest.CommandCalls(t, oldM, "set") > 0 {
			t.Fatal(why)
		}
		time.Sleep(10 * time.Millisecond) // between polls
	}
}

// closesWithin reports whether srv.Close returns within d. A Close that
// does not is left running: the test fails, and its cleanup ends it.
func closesWithin(srv *proxy.Server, d time.Duration) bool {
	closed := make(chan struct{})
	go func() {
		srv.Close()
		close(closed)
	}()
	select {
	case <-closed:
		return true
	case <-time.After(d):
		return false
	}
}
