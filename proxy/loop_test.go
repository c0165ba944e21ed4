//go:build linux

package proxy_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pnats/switchyard/internal/lab"
	"github.com/pnats/switchyard/internal/lab/labtest"
	"github.com/pnats/switchyard/proxy"
)

func skipWithoutLoop(t *testing.T) {
	t.Helper()
	if noEventLoop() {
		t.Skip("the event loop is off (SWITCHYARD_TEST_NO_EVENT_LOOP)")
	}
	if testing.Short() {
		t.Skip("needs redis-server")
	}
}

func waitEventLoop(t *testing.T, srv *proxy.Server, want int) {
	t.Helper()
	waitFor(t, func() error {
		if n := srv.Stats().EventLoop; n != want {
			return fmt.Errorf("%d clients in the event loop, want %d", n, want)
		}
		return nil
	})
}

// A pipeline that starts on the loop's fast path and then needs a
// goroutine (MULTI) is answered in order, commands before the hand-off
// included; the client goes back to the loop once the transaction is
// over, and leaves it for as long as it holds one.
func TestEventLoopHandOffKeepsOrder(t *testing.T) {
	skipWithoutLoop(t)
	_, srv, addr := setup(t, proxy.Config{})
	c := dialRaw(t, addr)
	c.send(cmd("SET", "h", "1") + cmd("GET", "h"))
	c.expect("+OK", "$1", "1")
	waitEventLoop(t, srv, 1)

	c.send(cmd("INCR", "h") + cmd("MULTI") + cmd("INCR", "h"))
	c.expect(":2", "+OK", "+QUEUED")
	waitEventLoop(t, srv, 0) // the transaction holds a connection: a goroutine serves it

	c.send(cmd("EXEC") + cmd("GET", "h") + cmd("PING"))
	c.expect("*1", ":3", "$1", "3", "+PONG")
	waitEventLoop(t, srv, 1)
	c.send(cmd("GET", "h"))
	c.expect("$1", "3")
}

// Idle clients of the event loop have no goroutine each: that is what
// keeps ten thousand idle connections cheap.
func TestEventLoopIdleClientsHaveNoGoroutine(t *testing.T) {
	skipWithoutLoop(t)
	_, srv, addr := setup(t, proxy.Config{})
	warm := dialRaw(t, addr)
	warm.send(cmd("PING"))
	warm.line()
	before := runtime.NumGoroutine()
	const n = 200
	for i := 0; i < n; i++ {
		c := dialRaw(t, addr)
		c.send(cmd("PING"))
		if l := c.line(); l != "+PONG" {
			t.Fatalf("client %d: %q", i, l)
		}
	}
	waitEventLoop(t, srv, n+1)
	// Allow for the runtime's and the test's own; one per client would be 200.
	if grown := runtime.NumGoroutine() - before; grown > 20 {
		t.Fatalf("%d idle clients added %d goroutines", n, grown)
	}
}

// A client that sends its commands and shuts down its side gets every
// reply, and its session ends: it does not linger in the loop. The
// commands and the FIN arrive while an earlier command is in flight, so
// epoll reports them before the loop reads either: after serving the
// commands the loop must still read on to the end of the stream.
func TestEventLoopHalfClose(t *testing.T) {
	skipWithoutLoop(t)
	rs, srv, addr := setup(t, proxy.Config{}, "--enable-debug-command", "yes")
	c := dialRaw(t, addr)
	c.send(cmd("PING"))
	c.line()
	waitEventLoop(t, srv, 1)
	c.send(cmd("DEBUG", "SLEEP", "0.3"))
	waitBusy(t, rs) // the DEBUG is in flight
	c.send(cmd("SET", "hc", "v") + cmd("GET", "hc"))
	if err := c.nc.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	c.expect("+OK", "+OK", "$1", "v")
	if !c.closed() {
		t.Fatal("the proxy did not close the half-closed client")
	}
	waitFor(t, func() error {
		if n := srv.Clients(); n != 0 {
			return fmt.Errorf("%d clients", n)
		}
		return nil
	})
}

// A client of the loop that stops reading its replies is handed to a
// goroutine that waits for it, bounded by ClientWriteTimeout; the loop
// and its other clients carry on meanwhile.
func TestEventLoopSlowReader(t *testing.T) {
	skipWithoutLoop(t)
	slow := &count{}
	_, srv, addr := setup(t, proxy.Config{ClientWriteTimeout: time.Second, Metrics: &proxy.Metrics{SlowClients: slow}})
	big := strings.Repeat("x", 256<<10)
	c := loopClient(t, srv, addr, cmd("SET", "big", big))
	// Megabytes of replies the client never reads.
	var pipeline strings.Builder
	for i := 0; i < 64; i++ {
		pipeline.WriteString(cmd("GET", "big"))
	}
	c.send(pipeline.String())

	other := dialRaw(t, addr)
	for i := 0; i < 50; i++ {
		other.send(cmd("PING"))
		if l := other.line(); l != "+PONG" {
			t.Fatalf("another client got %q while one did not read", l)
		}
	}
	waitFor(t, func() error {
		if n := srv.Clients(); n != 1 {
			return fmt.Errorf("%d clients; the one not reading should be gone after ClientWriteTimeout", n)
		}
		return nil
	})
	if n, _ := slow.get(); n != 1 {
		t.Fatalf("SlowClients counted %d disconnects, want 1", n)
	}
}

func shutdownAsync(srv *proxy.Server) <-chan error {
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		done <- srv.Shutdown(ctx)
	}()
	return done
}

// Shutdown while a loop client's segment is in flight and the node
// answers -READONLY (it was demoted): the segment is finished on a
// goroutine and answered, and nothing of it reaches Redis twice.
func TestEventLoopShutdownDoesNotResend(t *testing.T) {
	skipWithoutLoop(t)
	rs, srv, addr := setup(t, proxy.Config{HoldTimeout: 300 * time.Millisecond}, "--enable-debug-command", "yes")
	c := dialRaw(t, addr)
	c.send(cmd("PING"))
	c.line()
	waitEventLoop(t, srv, 1)
	if err := rs.Client().Do(context.Background(), "REPLICAOF", "127.0.0.1", "1").Err(); err != nil {
		t.Fatal(err) // a replica of nothing: writes get -READONLY
	}
	c.send(cmd("DEBUG", "SLEEP", "0.3") + cmd("SET", "k", "v"))
	waitBusy(t, rs)
	done := shutdownAsync(srv)
	if l := c.line(); l != "+OK" {
		t.Fatalf("DEBUG SLEEP: %q", l)
	}
	if l := c.line(); !strings.HasPrefix(l, "-READONLY") {
		t.Fatalf("SET on a replica: %q", l)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := labtest.CommandCalls(t, rs, "debug"); n != 1 {
		t.Fatalf("DEBUG ran %d times on Redis, want 1", n)
	}
}

// Shutdown while a loop client that reads slowly has a large batch in
// flight: every reply of the batch reaches it before it is closed, as
// with a goroutine per client.
func TestEventLoopShutdownAnswersSlowReader(t *testing.T) {
	skipWithoutLoop(t)
	rs, srv, addr := setup(t, proxy.Config{ClientWriteTimeout: 10 * time.Second}, "--enable-debug-command", "yes")
	big := strings.Repeat("x", 256<<10)
	c := loopClient(t, srv, addr, cmd("SET", "big", big))
	const n = 20
	pipeline := cmd("DEBUG", "SLEEP", "0.3")
	for i := 0; i < n; i++ {
		pipeline += cmd("GET", "big")
	}
	c.send(pipeline)
	waitBusy(t, rs)
	done := shutdownAsync(srv)
	// The replies (5 MiB) cannot all be written while the client reads
	// nothing: the loop hands the session to a goroutine to finish.
	waitEventLoop(t, srv, 0)
	if l := c.line(); l != "+OK" {
		t.Fatalf("DEBUG SLEEP: %q", l)
	}
	for i := 0; i < n; i++ {
		if l := c.line(); l != fmt.Sprintf("$%d", len(big)) {
			t.Fatalf("reply %d of %d: %.20q", i+1, n, l)
		}
		payload := make([]byte, len(big)+2)
		c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
		if got, err := io.ReadFull(c.br, payload); err != nil {
			t.Fatalf("reply %d of %d: %d of %d bytes, then %v", i+1, n, got, len(payload), err)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !c.closed() {
		t.Fatal("the client was not closed after its batch")
	}
}

// loopClient connects, sends first, expects +OK, and waits until the
// event loop serves the client.
func loopClient(t *testing.T, srv *proxy.Server, addr, first string) *rawConn {
	t.Helper()
	c := dialRaw(t, addr)
	c.send(first)
	if l := c.line(); l != "+OK" {
		t.Fatalf("%q: %q", first, l)
	}
	waitEventLoop(t, srv, 1)
	return c
}

// A command the loop held back behind the batch in flight (one write in
// flight per connection) when the master is replaced was never written:
// it goes to the new master, while the command in flight gets the error
// that says it may have run. So does a goroutine client's command queued
// behind the held-back write.
func TestEventLoopHeldBackCommandMovesOnFailover(t *testing.T) {
	skipWithoutLoop(t)
	oldM := labtest.Server(t, lab.ServerOptions{Args: []string{"--enable-debug-command", "yes"}})
	newM := labtest.Server(t, lab.ServerOptions{})
	// One shared connection: with two, the goroutine client could take
	// the one the loop does not hold back, and its SET would be sent.
	srv, addr := startProxy(t, oldM.Addr, proxy.Config{PoolSize: 1})
	// g keeps a goroutine: every CLIENT SETNAME the proxy answers itself
	// moves it off the loop, and after 8 such moves it stays off.
	g := dialRaw(t, addr)
	for i := 0; i < 9; i++ {
		g.send(cmd("CLIENT", "SETNAME", "g"))
		g.expect("+OK")
	}
	a, b := dialRaw(t, addr), dialRaw(t, addr)
	for _, c := range []*rawConn{a, b} {
		c.send(cmd("PING"))
		c.expect("+PONG")
	}
	waitEventLoop(t, srv, 2)
	waitCommandTable(t, oldM)
	setBehindSlowCommand(t, srv, oldM, a, b, "1", "heldback")
	g.send(cmd("SET", "heldback:g", "v"))
	waitFor(t, func() error {
		if n := srv.Stats().BackendPending; n != 3 {
			return fmt.Errorf("%d requests pending, want the goroutine's SET too", n)
		}
		return nil
	})
	srv.SetMaster(2, newM.Addr)
	b.expect("+OK")
	g.expect("+OK")
	a.expect("-ERR switchyard: master changed before the reply; the command may or may not have run")
	ctx := ctxT(t)
	for _, k := range []string{"heldback", "heldback:g"} {
		if v, _ := newM.Client().Get(ctx, k).Result(); v != "v" {
			t.Fatalf("the new master has %s=%q", k, v)
		}
		if n, _ := oldM.Client().Exists(ctx, k).Result(); n != 0 {
			t.Fatalf("the held-back %s reached the old master", k)
		}
	}
}

// A failover hold that starts while the loop holds a command back for
// the batch in flight keeps it from the old master: the command was not
// sent when the failover began, and the old master may take writes the
// promotion discards. A new master gets it (it moves as not sent); an
// aborted failover (Release) sends it to the old master after all; a hold
// that outlasts HoldTimeout fails it as not sent, as it does a command
// held by a goroutine.
func TestEventLoopHoldKeepsHeldBackCommand(t *testing.T) {
	skipWithoutLoop(t)
	for _, end := range []string{"new master", "release", "hold timeout"} {
		t.Run(end, func(t *testing.T) {
			oldM := labtest.Server(t, lab.ServerOptions{Args: []string{"--enable-debug-command", "yes"}})
			newM := labtest.Server(t, lab.ServerOptions{})
			// A long StallTimeout: the hold must not close the connection
			// for the DEBUG in flight, or the SET would end unsent anyway.
			cfg := proxy.Config{PoolSize: 1, StallTimeout: time.Minute}
			if end == "hold timeout" {
				cfg.HoldTimeout = time.Second
			}
			srv, addr := startProxy(t, oldM.Addr, cfg)
			a, b := settledPair(t, addr, oldM)
			setBehindSlowCommand(t, srv, oldM, a, b, "0.5", "held")
			srv.Hold("test")
			a.expect("+OK")
			// Without the hold's check the SET goes out within
			// microseconds of the DEBUG's reply; give it far longer.
			expectNoSETFor(t, oldM, 300*time.Millisecond, "a command held back before the failover reached the old master during the hold")
			switch end {
			case "release":
				srv.Release()
				b.expect("+OK")
				expectValue(t, oldM, "held", "v", "after the release the old master has")
				return
			case "hold timeout":
				// Sent after the held SET: refused with it, even though
				// the hold ends before the proxy reads it (see
				// TestRefusedPipelineIsNotSplit).
				b.send(cmd("SET", "after", "v"))
				// line waits 5 s, longer than HoldTimeout and the loop's
				// check interval together.
				b.expect("-TRYAGAIN switchyard: no verified master for this group, try again")
				srv.Release()
				b.expect("-TRYAGAIN switchyard: no verified master for this group, try again")
				expectNoSET(t, oldM)
				b.send(cmd("SET", "later", "v"))
				b.expect("+OK")
				return
			}
			srv.SetMaster(2, newM.Addr)
			b.expect("+OK")
			expectValue(t, newM, "held", "v", "the new master has")
			expectNoSET(t, oldM)
		})
	}
}

// A command the loop held back for the batch in flight when a hold began
// is written at the release. Redis may have closed the connection an
// instant before (a restart, CLIENT KILL), after the loop collected its
// events, so that it has not read the close: the command, never sent,
// must go out on a new connection, not into the closed socket, where it
// would fail as "may or may not have run". Here Redis closes it just as
// the loop comes to write.
func TestEventLoopHeldBackCommandOutlivesAClose(t *testing.T) {
	skipWithoutLoop(t)
	rs := labtest.Server(t, lab.ServerOptions{Args: []string{"--enable-debug-command", "yes"}})
	closed := make(chan error, 1)
	var once sync.Once
	proxy.SetResumeHook(t, func() { once.Do(func() { closed <- closeClientsOf(rs) }) })
	srv, addr := startProxy(t, rs.Addr, proxy.Config{PoolSize: 1, StallTimeout: time.Minute})
	a, b := settledPair(t, addr, rs)
	setBehindSlowCommand(t, srv, rs, a, b, "0.3", "held")
	srv.Hold("test")
	a.expect("+OK")
	srv.Release()
	b.expect("+OK")
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	default:
		t.Fatal("the loop wrote the held-back SET without the resume hook")
	}
	expectValue(t, rs, "held", "v", "after the release Redis has")
}

// setBehindSlowCommand has a run DEBUG SLEEP secs on rs and then b send
// SET key v, and waits until both are pending: with one shared
// connection, the loop holds the SET back for the DEBUG in flight.
func setBehindSlowCommand(t *testing.T, srv *proxy.Server, rs *lab.Server, a, b *rawConn, secs, key string) {
	t.Helper()
	a.send(cmd("DEBUG", "SLEEP", secs))
	waitBusy(t, rs)
	b.send(cmd("SET", key, "v"))
	waitFor(t, func() error {
		if n := srv.Stats().BackendPending; n != 2 {
			return fmt.Errorf("%d requests pending, want the DEBUG and the SET", n)
		}
		return nil
	})
}

// A client that SELECTed another database has a pool of its own, which
// closes when its last client leaves; that may be on the event loop.
// Closing it must not wait for a dial stuck in its handshake (the node
// accepted the connection but does not answer) for DialTimeout: every
// other loop client would wait with it. The probe needs nothing from
// Redis: its malformed request is answered by the proxy.
func TestEventLoopDroppedPoolDoesNotWaitForDial(t *testing.T) {
	skipWithoutLoop(t)
	rs := labtest.Server(t, lab.ServerOptions{})
	dial := newGate()
	proxy.SetDialHook(t, dial.pass)
	// Two shared connections per pool: the second client batch on db 1
	// starts a dial of the second one, and is served by the first.
	srv, addr := startProxy(t, rs.Addr, proxy.Config{PoolSize: 2, DialTimeout: time.Minute})
	t.Cleanup(func() { rs.Resume() }) // before the server closes
	b := dialRaw(t, addr)
	settle(t, b, rs)
	b.send(cmd("SELECT", "1"))
	b.expect("+OK")
	dial.arm(t)
	b.send("PING\r\n") // inline: a goroutine serves it, through pool.shared
	b.expect("+PONG")
	dial.wait(t, "no dial of the db 1 pool's second connection started")
	if err := rs.Pause(); err != nil {
		t.Fatal(err)
	}
	dial.open() // the dial connects to a node that does not answer
	waitEventLoop(t, srv, 1)
	probe := dialRaw(t, addr)
	waitEventLoop(t, srv, 2)
	b.nc.Close() // the loop closes b, and with it the db 1 pool
	waitFor(t, func() error {
		if n := srv.Clients(); n != 1 {
			return fmt.Errorf("%d clients, want the probe alone", n)
		}
		return nil
	})
	probe.send("*x\r\n")
	if l := probe.line(); !strings.HasPrefix(l, "-ERR Protocol error") {
		t.Fatalf("probe: %q", l)
	}
}

// A command the loop held back behind one to a master that stopped
// answering was never written when a failover began and Hold closed the
// stalled connection. It waits for the failover's outcome like any held
// command: a new master gets it, and an aborted failover (Release) sends
// it to the old master on a fresh connection. The command in flight gets
// the error that says it may have run.
func TestEventLoopHoldRetriesUnsentBehindStalledMaster(t *testing.T) {
	skipWithoutLoop(t)
	for _, end := range []string{"new master", "release"} {
		t.Run(end, func(t *testing.T) {
			oldM := labtest.Server(t, lab.ServerOptions{Args: []string{"--enable-debug-command", "yes"}})
			newM := labtest.Server(t, lab.ServerOptions{})
			cfg := proxy.Config{PoolSize: 1, StallTimeout: 100 * time.Millisecond, HoldTimeout: time.Minute}
			srv, addr := startProxy(t, oldM.Addr, cfg)
			a, b := settledPair(t, addr, oldM)
			setBehindSlowCommand(t, srv, oldM, a, b, "2", "unsent")
			time.Sleep(150 * time.Millisecond) // longer than StallTimeout without a reply
			srv.Hold("test")
			a.expect("-ERR switchyard: master stopped answering while commands were held; the command may or may not have run")
			if end == "release" {
				srv.Release()
				b.expect("+OK")
				expectValue(t, oldM, "unsent", "v", "after the release the old master has")
				return
			}
			srv.SetMaster(2, newM.Addr)
			b.expect("+OK")
			expectValue(t, newM, "unsent", "v", "the new master has")
			expectNoSET(t, oldM)
		})
	}
}

// A command the loop held back behind the batch in flight was never
// written when the master's connection was lost (here the master died).
// Like a new command that finds the master unreachable, it waits within
// HoldTimeout for a master to connect to (here the same one, restarted),
// instead of failing at once; the command in flight gets the error that
// says it may have run.
func TestEventLoopUnsentOnLostConnectionWaitsForMaster(t *testing.T) {
	skipWithoutLoop(t)
	rs := labtest.Server(t, lab.ServerOptions{Args: []string{"--enable-debug-command", "yes"}})
	srv, addr := startProxy(t, rs.Addr, proxy.Config{PoolSize: 1, HoldTimeout: time.Minute, DialBackoff: 20 * time.Millisecond})
	a, b := settledPair(t, addr, rs)
	setBehindSlowCommand(t, srv, rs, a, b, "10", "unsent")
	if err := rs.Kill(); err != nil {
		t.Fatal(err)
	}
	a.expect("-ERR switchyard: lost the connection to the master before the reply; the command may or may not have run")
	ctx := ctxT(t)
	if err := rs.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	b.expect("+OK")
	expectValue(t, rs, "unsent", "v", "the restarted master has")
}

// The same after a read timeout is not retried: the master is slow, not
// gone, and a second try would queue behind the same slow work, keeping
// the client waiting past ReadTimeout (here until the DEBUG SLEEP ends);
// TRYAGAIN tells it at once that nothing was sent.
func TestEventLoopUnsentAfterTimeoutIsNotRetried(t *testing.T) {
	skipWithoutLoop(t)
	rs := labtest.Server(t, lab.ServerOptions{Args: []string{"--enable-debug-command", "yes"}})
	srv, addr := startProxy(t, rs.Addr, proxy.Config{PoolSize: 1, ReadTimeout: time.Second})
	a, b := settledPair(t, addr, rs)
	setBehindSlowCommand(t, srv, rs, a, b, "3", "unsent")
	a.expect("-ERR switchyard: timed out waiting for the master; the command may or may not have run")
	b.expect("-TRYAGAIN switchyard: connection to the master lost before sending; not sent, try again")
}

// During a failover hold the same is retried even after a read timeout:
// the failover decides where the command goes, and here the new master
// gets it.
func TestEventLoopHoldRetriesUnsentAfterTimeout(t *testing.T) {
	skipWithoutLoop(t)
	oldM := labtest.Server(t, lab.ServerOptions{Args: []string{"--enable-debug-command", "yes"}})
	newM := labtest.Server(t, lab.ServerOptions{})
	// A long StallTimeout: Hold leaves the connection to the read timeout.
	cfg := proxy.Config{PoolSize: 1, StallTimeout: time.Minute, ReadTimeout: 500 * time.Millisecond, HoldTimeout: time.Minute}
	srv, addr := startProxy(t, oldM.Addr, cfg)
	a, b := settledPair(t, addr, oldM)
	setBehindSlowCommand(t, srv, oldM, a, b, "3", "unsent")
	srv.Hold("test")
	a.expect("-ERR switchyard: timed out waiting for the master; the command may or may not have run")
	srv.SetMaster(2, newM.Addr)
	b.expect("+OK")
	expectValue(t, newM, "unsent", "v", "the new master has")
}

// A command tried again waits for a master HoldTimeout in all, from its
// first failure: here it waits for the hold's end, and then for a master
// that is down; the second wait gets only what is left of HoldTimeout.
func TestEventLoopRetryWaitsHoldTimeoutInAll(t *testing.T) {
	skipWithoutLoop(t)
	rs := labtest.Server(t, lab.ServerOptions{Args: []string{"--enable-debug-command", "yes"}})
	hold := 3 * time.Second
	cfg := proxy.Config{PoolSize: 1, StallTimeout: 100 * time.Millisecond, HoldTimeout: hold, DialBackoff: 20 * time.Millisecond}
	srv, addr := startProxy(t, rs.Addr, cfg)
	a, b := settledPair(t, addr, rs)
	setBehindSlowCommand(t, srv, rs, a, b, "10", "unsent")
	time.Sleep(150 * time.Millisecond) // longer than StallTimeout without a reply
	start := time.Now()
	srv.Hold("test") // closes the stalled connection: the SET was not sent
	a.expect("-ERR switchyard: master stopped answering while commands were held; the command may or may not have run")
	if err := rs.Kill(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Until(start.Add(2 * time.Second))) // the failover lasts 2 s, then aborts
	srv.Release()
	b.expect("-TRYAGAIN switchyard: master unreachable, try again")
	// A fresh HoldTimeout after the release would end at 5 s.
	if took := time.Since(start); took > hold+time.Second {
		t.Fatalf("the retried command waited %s for a master, HoldTimeout is %s", took.Round(time.Millisecond), hold)
	}
}

// A hold that ends (Release) and starts again before the loop acts on
// the release keeps the held-back command back: the second failover may
// promote another node as much as the first. The loop is held at the
// start of its read of the reply the SET waits behind, while the test
// releases and holds again.
func TestEventLoopHoldAgainKeepsHeldBackCommand(t *testing.T) {
	skipWithoutLoop(t)
	read := newGate()
	proxy.SetLoopReadHooks(t, read.pass, nil)
	oldM := labtest.Server(t, lab.ServerOptions{Args: []string{"--enable-debug-command", "yes"}})
	srv, addr := startProxy(t, oldM.Addr, proxy.Config{PoolSize: 1, StallTimeout: time.Minute})
	a, b := settledPair(t, addr, oldM)
	read.arm(t) // the next read is the DEBUG's reply: nothing else is due
	setBehindSlowCommand(t, srv, oldM, a, b, "0.5", "held")
	srv.Hold("test")
	read.wait(t, "the loop did not start reading the DEBUG's reply")
	srv.Release()
	srv.Hold("test")
	read.open()
	a.expect("+OK")
	expectNoSETFor(t, oldM, 300*time.Millisecond, "a command held back went to the old master while a second hold was on")
	srv.Release()
	b.expect("+OK")
	expectValue(t, oldM, "held", "v", "after the last release the old master has")
}

// A client with settings of its own (RESP3, a database) moves to a new
// master's connections for those settings in the loop, as a client with
// the defaults does: only the first to need a connection there goes to a
// goroutine, which opens it.
func TestOwnSettingsMoveToTheNewMasterInTheLoop(t *testing.T) {
	skipWithoutLoop(t)
	var moves atomic.Int64
	proxy.SetToGoroutineHook(t, func() { moves.Add(1) })
	for _, tc := range []struct {
		hello, null string
		oks         int // +OK lines to the SET's, included
	}{{cmd("HELLO", "3"), "_", 1}, {cmd("SELECT", "1"), "$-1", 2}} {
		_, srv, addr := setup(t, proxy.Config{})
		next := labtest.Server(t, lab.ServerOptions{})
		var cs []*rawConn
		for i := 0; i < 2; i++ {
			c := dialRaw(t, addr)
			c.send(tc.hello + cmd("SET", "k", "v"))
			for oks := 0; oks < tc.oks; { // HELLO's map or SELECT's +OK, then SET's
				if c.line() == "+OK" {
					oks++
				}
			}
			cs = append(cs, c)
		}
		waitEventLoop(t, srv, 2)
		srv.SetMaster(2, next.Addr)
		cs[0].send(cmd("GET", "k"))
		cs[0].expect(tc.null) // the new master does not have it
		waitEventLoop(t, srv, 2)
		moved := moves.Load()
		cs[1].send(cmd("GET", "k"))
		cs[1].expect(tc.null)
		if n := moves.Load() - moved; n != 0 {
			t.Fatalf("%q: %d moves to a goroutine for a client whose connection to the new master is open", tc.hello, n)
		}
	}
}
