package proxy_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pnats/switchyard/internal/lab"
	"github.com/pnats/switchyard/internal/lab/labtest"
	"github.com/pnats/switchyard/proxy"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// TestNewGenerationFencesOldMaster switches the master under load: after
// SetMaster returns, the old node receives no command, stateless clients
// carry on against the new one, and pinned sessions end.
func TestNewGenerationFencesOldMaster(t *testing.T) {
	oldM := labtest.Server(t, lab.ServerOptions{})
	newM := labtest.Server(t, lab.ServerOptions{})
	srv, addr := startProxy(t, oldM.Addr, proxy.Config{})
	ctx := ctxT(t)

	// A transaction with a queued write, a blocked BLPOP and a subscriber,
	// all on the old master.
	tx := dialRaw(t, addr)
	tx.send("MULTI\r\nSET fenced:tx queued\r\n")
	if tx.line() != "+OK" || tx.line() != "+QUEUED" {
		t.Fatal("MULTI/SET")
	}
	blocked := dialRaw(t, addr)
	blocked.send("BLPOP fenced:q 0\r\n")
	sub := dialRaw(t, addr)
	sub.send("SUBSCRIBE fenced:ch\r\n")
	for i := 0; i < 6; i++ {
		sub.line()
	}
	waitFor(t, func() error {
		if n := blockedClients(t, oldM.Client()); n != 1 {
			return fmt.Errorf("blocked_clients %d", n)
		}
		return nil
	})

	// Writers keep writing through the switch.
	var acked atomic.Int64
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			c := client(t, addr)
			for j := 0; ; j++ {
				select {
				case <-stop:
					return
				default:
				}
				if c.Set(ctx, fmt.Sprintf("w:%d:%d", i, j), j, 0).Err() == nil {
					acked.Add(1)
				}
			}
		}(i)
	}
	waitFor(t, func() error {
		if acked.Load() < 100 {
			return errors.New("writers not running")
		}
		return nil
	})

	srv.SetMaster(2, newM.Addr)
	setsOnOld := labtest.CommandCalls(t, oldM, "set")
	after := acked.Load()
	waitFor(t, func() error {
		if acked.Load() < after+500 {
			return fmt.Errorf("writes stalled after the switch (%d acked since)", acked.Load()-after)
		}
		return nil
	})
	close(stop)
	wg.Wait()

	if got := labtest.CommandCalls(t, oldM, "set"); got != setsOnOld {
		t.Fatalf("old master executed %d SETs after the switch", got-setsOnOld)
	}
	if labtest.CommandCalls(t, newM, "set") == 0 {
		t.Fatal("no SET reached the new master")
	}
	if got := labtest.CommandCalls(t, oldM, "exec"); got != 0 {
		t.Fatalf("EXEC ran on the old master %d times", got)
	}

	// The pinned clients see their connections end.
	tx.send("EXEC\r\n")
	if !tx.closed() {
		t.Fatal("transaction client still connected after the switch")
	}
	if !blocked.closed() {
		t.Fatal("blocked client still connected after the switch")
	}
	if !sub.closed() {
		t.Fatal("subscriber still connected after the switch")
	}
	if v, err := oldM.Client().Exists(ctx, "fenced:tx").Result(); err != nil || v != 0 {
		t.Fatalf("queued transaction write applied on the old master (exists=%d, %v)", v, err)
	}
	if got := labtest.CommandCalls(t, oldM, "exec"); got != 0 {
		t.Fatalf("EXEC ran on the old master %d times", got)
	}
}

// setWhileHeld holds srv, sends SET held 1 through c, and checks that it
// waits; its result arrives on the channel once the hold ends.
func setWhileHeld(t *testing.T, srv *proxy.Server, c *redis.Client) <-chan error {
	t.Helper()
	srv.Hold("test")
	done := make(chan error, 1)
	go func() { done <- c.Set(ctxT(t), "held", "1", 0).Err() }()
	select {
	case err := <-done:
		t.Fatalf("SET completed during the hold: %v", err)
	case <-time.After(200 * time.Millisecond): // it waits for the hold now
	}
	return done
}

// TestHoldThenSwitch: commands sent while a failover holds the group go to
// the new master, never to the old one.
func TestHoldThenSwitch(t *testing.T) {
	oldM := labtest.Server(t, lab.ServerOptions{})
	newM := labtest.Server(t, lab.ServerOptions{})
	srv, addr := startProxy(t, oldM.Addr, proxy.Config{HoldTimeout: 10 * time.Second})
	ctx := ctxT(t)
	c := client(t, addr)
	if err := c.Set(ctx, "before", "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	done := setWhileHeld(t, srv, c)
	srv.SetMaster(2, newM.Addr)
	if err := <-done; err != nil {
		t.Fatalf("held SET: %v", err)
	}
	if n, _ := newM.Client().Exists(ctx, "held").Result(); n != 1 {
		t.Fatal("held write did not reach the new master")
	}
	if n, _ := oldM.Client().Exists(ctx, "held").Result(); n != 0 {
		t.Fatal("held write reached the old master")
	}
}

func TestHoldReleaseAndTimeout(t *testing.T) {
	rs := labtest.Server(t, lab.ServerOptions{})
	srv, addr := startProxy(t, rs.Addr, proxy.Config{HoldTimeout: 300 * time.Millisecond})
	ctx := ctxT(t)
	c := client(t, addr)

	srv.Hold("test")
	start := time.Now()
	err := c.Set(ctx, "k", "v", 0).Err()
	if err == nil || !strings.HasPrefix(err.Error(), "TRYAGAIN") {
		t.Fatalf("SET during an unreleased hold: %v, want TRYAGAIN", err)
	}
	if time.Since(start) < 250*time.Millisecond {
		t.Fatal("hold gave up before HoldTimeout")
	}
	if n, _ := rs.Client().Exists(ctx, "k").Result(); n != 0 {
		t.Fatal("a write refused with TRYAGAIN was applied")
	}

	done := make(chan error, 1)
	go func() { done <- c.Set(ctx, "k", "v", 0).Err() }()
	srv.Release()
	if err := <-done; err != nil {
		t.Fatalf("SET after Release: %v", err)
	}
}

func TestNoMasterFailsClosed(t *testing.T) {
	srv, addr := startProxy(t, "", proxy.Config{HoldTimeout: 100 * time.Millisecond})
	err := client(t, addr).Set(ctxT(t), "k", "v", 0).Err()
	if err == nil || !strings.HasPrefix(err.Error(), "TRYAGAIN") {
		t.Fatalf("SET with no master: %v", err)
	}
	if _, _, ok := srv.Master(); ok {
		t.Fatal("Master reports ok with none set")
	}
}

// TestReadonlyReplyIsRetriedOnNewMaster: the node the proxy believes is
// master was demoted; its -READONLY means nothing was written, so the
// proxy asks for a re-check and replays the rest of the pipeline on the
// new master.
func TestReadonlyReplyIsRetriedOnNewMaster(t *testing.T) {
	newM := labtest.Server(t, lab.ServerOptions{})
	demoted := labtest.Server(t, lab.ServerOptions{})
	var srv *proxy.Server
	var rechecks atomic.Int32
	srv, addr := startProxy(t, demoted.Addr, proxy.Config{
		HoldTimeout: 5 * time.Second,
		Recheck: func() {
			rechecks.Add(1)
			go srv.SetMaster(2, newM.Addr) // what the Sentinel watcher would do
		},
	})
	ctx := ctxT(t)
	c := client(t, addr)
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if err := demoted.Client().SlaveOf(ctx, "127.0.0.1", strconv.Itoa(newM.Port)).Err(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() error {
		role, err := demoted.Client().Do(ctx, "ROLE").Slice()
		if err != nil || role[0] != "slave" {
			return fmt.Errorf("not a replica yet: %v %v", role, err)
		}
		return nil
	})
	pipe := c.Pipeline()
	set := pipe.Set(ctx, "ro:k", "new", 0)
	get := pipe.Get(ctx, "ro:k")
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatalf("pipeline after demotion: %v", err)
	}
	if set.Err() != nil || get.Val() != "new" {
		t.Fatalf("SET %v, GET %q: the pipeline was not replayed in order", set.Err(), get.Val())
	}
	if rechecks.Load() == 0 {
		t.Fatal("Recheck not called")
	}
	if v, _ := newM.Client().Get(ctx, "ro:k").Result(); v != "new" {
		t.Fatalf("new master has %q", v)
	}
}

// TestUnreachableMasterIsRechecked: a master that refuses connections got
// nothing, so the command waits for the re-check the proxy asks for and
// goes to the new master instead of failing.
func TestUnreachableMasterIsRechecked(t *testing.T) {
	dead := labtest.Server(t, lab.ServerOptions{})
	next := labtest.Server(t, lab.ServerOptions{})
	// Set once startProxy returns; a pointer the race detector can follow
	// to the goroutine that uses it, which a client's TCP connection is not.
	var srvp atomic.Pointer[proxy.Server]
	var rechecks atomic.Int32
	srv, addr := startProxy(t, dead.Addr, proxy.Config{
		HoldTimeout: 5 * time.Second,
		Recheck: func() {
			if rechecks.Add(1) == 1 {
				go func() {
					time.Sleep(200 * time.Millisecond) // the watcher takes a moment
					srvp.Load().SetMaster(2, next.Addr)
				}()
			}
		},
	})
	srvp.Store(srv)
	ctx := ctxT(t)
	if err := dead.Kill(); err != nil {
		t.Fatal(err)
	}
	c := client(t, addr)
	if err := c.Set(ctx, "rechecked", "1", 0).Err(); err != nil {
		t.Fatalf("SET with an unreachable master: %v", err)
	}
	if rechecks.Load() == 0 {
		t.Fatal("Recheck not called")
	}
	if n, _ := next.Client().Exists(ctx, "rechecked").Result(); n != 1 {
		t.Fatal("write did not reach the new master")
	}
}

// TestHoldClosesStalledMaster: the master stops answering (SIGSTOP) with
// writes in flight, then a failover starts. Those writes must end as
// errors at once: if the old master woke up after the promotion it would
// acknowledge them on data about to be discarded.
func TestHoldClosesStalledMaster(t *testing.T) {
	oldM := labtest.Server(t, lab.ServerOptions{})
	srv, addr := startProxy(t, oldM.Addr, proxy.Config{StallTimeout: 100 * time.Millisecond, ReadTimeout: time.Minute})
	ctx := ctxT(t)
	c := client(t, addr, func(o *redis.Options) { o.ReadTimeout = time.Minute })
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	// The proxy loads the command table from each new master; let that
	// finish, so that the only request in flight below is the client's.
	waitCommandTable(t, oldM)
	if err := oldM.Pause(); err != nil {
		t.Fatal(err)
	}
	defer oldM.Resume()
	done := make(chan error, 1)
	go func() { done <- c.Set(ctx, "stuck", "v", 0).Err() }()
	waitFor(t, func() error {
		if srv.Stats().BackendPending == 0 {
			return errors.New("write not in flight yet")
		}
		return nil
	})
	time.Sleep(150 * time.Millisecond) // longer than StallTimeout without a reply
	srv.Hold("test")
	select {
	case err := <-done:
		if err == nil || err.Error() != "ERR switchyard: master stopped answering while commands were held; the command may or may not have run" {
			t.Fatalf("stalled write ended with %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the stalled write is still waiting after the hold began")
	}
}

// A reply the old master sent before the switch, but that the event loop
// reads only after the connection was fenced, must not reach the client
// as a success: the proxy cannot tell whether the old master took the
// write before or after the new one was known. The loop is held at the
// start of its read until the failover has closed the connection.
func TestEventLoopLateReplyAfterFenceIsNotASuccess(t *testing.T) {
	if noEventLoop() {
		t.Skip("the loop's own descriptor is what outlives the closed connection")
	}
	read, closed := newGate(), make(chan struct{}, 1)
	proxy.SetLoopReadHooks(t, read.pass, func() {
		select {
		case closed <- struct{}{}:
		default: // later closes need not be counted
		}
	})
	oldM := labtest.Server(t, lab.ServerOptions{})
	newM := labtest.Server(t, lab.ServerOptions{})
	srv, addr := startProxy(t, oldM.Addr, proxy.Config{PoolSize: 1})
	c := dialRaw(t, addr)
	// No other reply is on its way: the read held below is the SET's.
	settle(t, c, oldM)
	read.arm(t)
	c.send(cmd("SET", "late", "reply"))
	read.wait(t, "the loop did not start reading the reply")
	srv.SetMaster(2, newM.Addr)
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("the old master's connection was not closed")
	}
	read.open()
	if l := c.line(); l != "-ERR switchyard: master changed before the reply; the command may or may not have run" {
		t.Fatalf("a reply read after the fence reached the client as %q", l)
	}
}

// The same, before the close: from the moment the master changes, a reply
// from the old one is not a success, even while its connections are
// still open (they close on a goroutine of their own, held back here).
func TestLateReplyBeforeTheCloseIsNotASuccess(t *testing.T) {
	gate := make(chan struct{})
	proxy.SetReplacedHook(t, func() { <-gate })
	defer close(gate)
	oldM := labtest.Server(t, lab.ServerOptions{Args: []string{"--enable-debug-command", "yes"}})
	newM := labtest.Server(t, lab.ServerOptions{})
	srv, addr := startProxy(t, oldM.Addr, proxy.Config{PoolSize: 1})
	c := dialRaw(t, addr)
	settle(t, c, oldM)
	c.send(cmd("DEBUG", "SLEEP", "0.3") + cmd("SET", "late", "reply"))
	waitBusy(t, oldM)
	srv.SetMaster(2, newM.Addr)
	const lost = "-ERR switchyard: master changed before the reply; the command may or may not have run"
	c.expect(lost)
	c.expect(lost)
}

// Close does not wait for commands held by a failover: no master will
// come for them, and waiting would hold up the process's exit for
// HoldTimeout.
func TestCloseDoesNotWaitForHeldCommands(t *testing.T) {
	rs := labtest.Server(t, lab.ServerOptions{})
	in := &count{}
	srv, addr := startProxy(t, rs.Addr, proxy.Config{HoldTimeout: time.Minute, Metrics: &proxy.Metrics{BytesIn: in}})
	c := dialRaw(t, addr)
	settle(t, c, rs)
	srv.Hold("test")
	_, before := in.get()
	set := cmd("SET", "held", "v")
	c.send(set)
	// Read by the proxy: from here the SET waits for the hold's end.
	waitFor(t, func() error {
		if _, n := in.get(); n < before+float64(len(set)) {
			return errors.New("the SET is not read yet")
		}
		return nil
	})
	if !closesWithin(srv, 15*time.Second) {
		t.Fatal("Close waited for a command held by the failover")
	}
	if n := labtest.CommandCalls(t, rs, "set"); n != 0 {
		t.Fatalf("the held SET ran %d times", n)
	}
}

// A command queued behind a large write that the master's connection
// never finished (the master died mid-write) was not sent: it waits for
// the master to come back, as a new command does, and runs there once.
// The large command was partly written and gets the error that says it
// may have run. With a goroutine per client the large command's goroutine
// is the flusher; in the event loop, the goroutine the partial write is
// handed to.
func TestUnsentBehindBrokenWriteWaitsForMaster(t *testing.T) {
	rs, srv, addr := setup(t, proxy.Config{PoolSize: 1, HoldTimeout: time.Minute, DialBackoff: 20 * time.Millisecond})
	x, y := settledPair(t, addr, rs)
	if err := rs.Pause(); err != nil { // its socket buffer fills; the write stops
		t.Fatal(err)
	}
	wrote := make(chan error, 1)
	go func() {
		x.nc.SetWriteDeadline(time.Now().Add(30 * time.Second))
		_, err := x.nc.Write([]byte(cmd("SET", "big", strings.Repeat("x", 32<<20))))
		wrote <- err
	}()
	waitFor(t, func() error {
		if n := srv.Stats().BackendPending; n != 1 {
			return fmt.Errorf("%d requests pending, want the large SET", n)
		}
		return nil
	})
	// Its write has begun, so the small SET cannot join it.
	waitUnread(t, rs, 64<<10)
	y.send(cmd("SET", "small", "v"))
	waitFor(t, func() error {
		if n := srv.Stats().BackendPending; n != 2 {
			return fmt.Errorf("%d requests pending, want the small SET too", n)
		}
		return nil
	})
	if err := rs.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := <-wrote; err != nil {
		t.Fatalf("sending the large SET: %v", err)
	}
	if l := x.line(); !strings.HasPrefix(l, "-ERR switchyard: ") || !strings.HasSuffix(l, "may or may not have run") {
		t.Fatalf("the partly written SET got %q", l)
	}
	ctx := ctxT(t)
	if err := rs.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	y.expect("+OK")
	expectValue(t, rs, "small", "v", "the restarted master has")
}

// killProxyConns closes every client connection of rs except the test's
// own (the proxy's, all of them) and waits until Redis has none left.
func killProxyConns(t *testing.T, rs *lab.Server) {
	t.Helper()
	if err := closeClientsOf(rs); err != nil {
		t.Fatal(err)
	}
}

// TestHeldCommandOutlivesItsConnection: a command held by a failover hold
// while Redis closed the proxy's connections (its idle-client timeout,
// CLIENT KILL, a restart) goes out on a new connection when the hold is
// released: nothing of it was sent, and the master did not change.
func TestHeldCommandOutlivesItsConnection(t *testing.T) {
	rs := labtest.Server(t, lab.ServerOptions{})
	srv, addr := startProxy(t, rs.Addr, proxy.Config{HoldTimeout: 10 * time.Second})
	ctx := ctxT(t)
	c := client(t, addr)
	if err := c.Set(ctx, "before", "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	done := setWhileHeld(t, srv, c)
	killProxyConns(t, rs)
	srv.Release()
	if err := <-done; err != nil {
		t.Fatalf("held SET after Redis closed its connection: %v", err)
	}
	if v, _ := rs.Client().Get(ctx, "held").Result(); v != "1" {
		t.Fatalf("held SET not on Redis: %q", v)
	}
}

// TestHeldCommandOutlivesACloseNotYetRead is the test above with Redis
// closing the connections during the hold while the event loop, which
// reads them, is kept from reading the close until the held SET's
// connection is closed (or for 2 s, by when the SET has long been
// written): the SET must still go out on a new connection, not into the
// closed socket, where it would fail as "may or may not have run". A
// fresh-clone CI run under -race met this by chance, a close an instant
// before the release. A client the loop serves, and one a goroutine
// serves, wait for the master before they take a connection (connect);
// a later segment of a goroutine's pipeline, whose batch began before
// the hold, waits with the connection the batch had (awaitRelease).
//
// With a goroutine per client (make test's second pass) reader goroutines
// read the connections, and only while a reply is due: nothing reads the
// close at all, and the same looks must find it.
func TestHeldCommandOutlivesACloseNotYetRead(t *testing.T) {
	for _, how := range []string{"a client on the loop", "a client on a goroutine", "a segment after the hold began"} {
		t.Run(how, func(t *testing.T) {
			if noEventLoop() && how == "a client on the loop" {
				t.Skip("no event loop")
			}
			rs := labtest.Server(t, lab.ServerOptions{Args: []string{"--enable-debug-command", "yes"}})
			var stall, armed atomic.Bool
			stalled, unstall, closed, killed := make(chan struct{}), make(chan struct{}), make(chan struct{}, 1), make(chan struct{})
			var stalledOnce, unstallOnce, killOnce sync.Once
			proxy.SetLoopReadHooks(t, func() {
				if stall.Load() {
					stalledOnce.Do(func() { close(stalled) })
					<-unstall
				}
			}, func() {
				select {
				case closed <- struct{}{}:
				default:
				}
			})
			t.Cleanup(func() { unstallOnce.Do(func() { close(unstall) }) })
			// As the held SET starts to wait: Redis closes every
			// connection, and the loop sees the close come and waits.
			proxy.SetHoldWaitHook(t, func() {
				if !armed.Load() {
					return
				}
				killOnce.Do(func() {
					defer close(killed)
					stall.Store(true)
					if err := closeClientsOf(rs); err != nil {
						t.Error(err)
						return
					}
					if noEventLoop() {
						return
					}
					select {
					case <-stalled:
					case <-time.After(10 * time.Second):
						t.Error("the event loop never started reading the closed connection")
					}
				})
			})
			srv, addr := startProxy(t, rs.Addr, proxy.Config{HoldTimeout: 10 * time.Second, StallTimeout: time.Minute})
			c := dialRaw(t, addr)
			if how != "a client on the loop" {
				// Every CLIENT SETNAME the proxy answers itself moves the
				// client off the loop, and after 8 such moves it stays off.
				for range 9 {
					c.send(cmd("CLIENT", "SETNAME", "g"))
					c.expect("+OK")
				}
			}
			c.send(cmd("SET", "before", "1"))
			c.expect("+OK")
			// No reply may be on its way when the loop is kept from
			// reading: the command table's, read in pieces, would keep
			// the look from seeing the close behind it.
			settle(t, c, rs)
			if n, want := srv.Stats().EventLoop, map[bool]int{true: 1, false: 0}[how == "a client on the loop"]; n != want {
				t.Fatalf("%d clients on the event loop, want %d", n, want)
			}
			want := []string{"+OK"}
			armed.Store(true)
			if how == "a segment after the hold began" {
				// The DEBUG goes out before the hold; the SETNAME, which the
				// proxy answers after it, starts a new segment for the SET.
				c.send(cmd("DEBUG", "SLEEP", "0.3") + cmd("CLIENT", "SETNAME", "x") + cmd("SET", "held", "1"))
				waitBusy(t, rs)
				srv.Hold("test")
				want = []string{"+OK", "+OK", "+OK"}
			} else {
				srv.Hold("test")
				c.send(cmd("SET", "held", "1"))
			}
			select {
			case <-killed:
			case <-time.After(10 * time.Second):
				t.Fatal("the held SET never came to wait for the hold")
			}
			for len(closed) > 0 { // a close before the release is not the SET's
				<-closed
			}
			srv.Release()
			select {
			case <-closed:
			case <-time.After(2 * time.Second):
			}
			unstallOnce.Do(func() { close(unstall) })
			c.expect(want...)
			expectValue(t, rs, "held", "1", "after the release Redis has")
		})
	}
}

// closeClientsOf closes every client connection of rs but its own and
// waits, up to 10 s, until Redis has none left; it may be called from a
// goroutine other than the test's.
func closeClientsOf(rs *lab.Server) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rc := rs.Client()
	defer rc.Close()
	if err := rc.ClientKillByFilter(ctx, "TYPE", "normal", "SKIPME", "yes").Err(); err != nil {
		return err
	}
	for {
		list, err := rc.ClientList(ctx).Result()
		if err == nil && strings.Count(list, "\n") <= 1 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("Redis still has client connections: %v %q", err, list)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// TestCommandsWaitForALoadingMaster: a master restarted without a
// failover (within Sentinel's down-after, or a fixed upstream) answers
// -LOADING while it loads its data set, and runs nothing. The proxy sends
// those commands again until it has loaded, within HoldTimeout, instead
// of passing on the errors (a review counted hundreds per restart under
// load). A pipeline goes again as a whole, and nothing in it runs twice.
func TestCommandsWaitForALoadingMaster(t *testing.T) {
	// 5,000 keys at 300 µs each: 1.5 s of loading, during which Redis
	// answers every 1 KiB loaded.
	rs := labtest.Server(t, lab.ServerOptions{Args: []string{"--key-load-delay", "300", "--loading-process-events-interval-bytes", "1024"}})
	ctx := ctxT(t)
	rc := rs.Client()
	defer rc.Close()
	if _, err := rc.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := range 5000 {
			p.Set(ctx, fmt.Sprint("fill:", i), "v", 0)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := rc.Save(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	_, addr := startProxy(t, rs.Addr, proxy.Config{HoldTimeout: 20 * time.Second})
	c := client(t, addr)
	if err := c.Set(ctx, "before", "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rs.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if err := rc.Get(ctx, "fill:0").Err(); err == nil || !strings.HasPrefix(err.Error(), "LOADING") {
		t.Fatalf("the restarted master answered %v, not LOADING: it loaded too fast for the test\n%s", err, rs.LogTail(30))
	}
	cmds, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for range 3 {
			p.Incr(ctx, "n")
		}
		return nil
	})
	if err != nil {
		t.Fatalf("a pipeline sent while the master loads: %v", err)
	}
	for i, cmd := range cmds {
		if v := cmd.(*redis.IntCmd).Val(); v != int64(i+1) {
			t.Fatalf("INCR %d answered %d", i+1, v)
		}
	}
	expectValue(t, rs, "n", "3", "after the pipeline the master has")
}

// TestLoadingFrom: only a segment whose replies are -LOADING from the
// first one on is sent again; a command that ran after it (Redis runs
// PUBLISH while loading) must not run twice.
func TestLoadingFrom(t *testing.T) {
	const loading = "-LOADING Redis is loading the dataset in memory\r\n"
	for _, c := range []struct {
		replies []string
		first   int
		ok      bool
	}{
		{[]string{"+OK\r\n", loading, loading}, 1, true},
		{[]string{loading}, 0, true},
		{[]string{loading, ":1\r\n", loading}, 0, false},
		{[]string{"+OK\r\n", "-ERR LOADING\r\n"}, 0, false},
		// A script's own error, not Redis's.
		{[]string{"-LOADING my app is warming up\r\n"}, 0, false},
		{[]string{"-LOADING Valkey is loading the dataset in memory\r\n"}, 0, true},
	} {
		if !c.ok {
			c.first = -1 // none to report
		}
		var b []byte
		var offsets []int
		for _, r := range c.replies {
			offsets = append(offsets, len(b))
			b = append(b, r...)
		}
		first, ok := proxy.LoadingFrom(b, offsets)
		if !ok {
			first = -1
		}
		if first != c.first || ok != c.ok {
			t.Errorf("%q: %d %v, want %d %v", c.replies, first, ok, c.first, c.ok)
		}
	}
}

// TestScriptLoadingErrorRunsOnce: a script or function that writes and
// then returns an error reading like Redis's -LOADING, even word for
// word, has run: it is not sent again (a review saw one run 20 times).
func TestScriptLoadingErrorRunsOnce(t *testing.T) {
	rs := labtest.Server(t, lab.ServerOptions{})
	_, addr := startProxy(t, rs.Addr, proxy.Config{HoldTimeout: 500 * time.Millisecond})
	ctx := ctxT(t)
	c := client(t, addr)
	for i, msg := range []string{"LOADING Redis is loading the dataset in memory", "LOADING my app is warming up"} {
		key := fmt.Sprint("evk", i)
		script := fmt.Sprintf("redis.call('INCR', KEYS[1]); return redis.error_reply(%q)", msg)
		if err := c.Eval(ctx, script, []string{key}).Err(); err == nil || err.Error() != msg {
			t.Fatalf("the script answered %v, want its own error", err)
		}
		expectValue(t, rs, key, "1", "after one EVAL Redis has")
	}
}

// TestIdleConnectionsClosedByRedis: connections Redis closed while they
// were idle, shared ones and a transaction's kept for reuse, are replaced
// before anything is written to them. A command on one would otherwise
// fail as "may or may not have run", though Redis never saw it.
func TestIdleConnectionsClosedByRedis(t *testing.T) {
	rs := labtest.Server(t, lab.ServerOptions{})
	_, addr := startProxy(t, rs.Addr, proxy.Config{})
	ctx := ctxT(t)
	c := client(t, addr)
	tx := func(v string) error {
		_, err := c.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Set(ctx, "tx", v, 0)
			return nil
		})
		return err
	}
	for i := range 10 {
		if err := c.Set(ctx, fmt.Sprint("k", i), "v", 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx("1"); err != nil {
		t.Fatal(err)
	}
	killProxyConns(t, rs)
	for i := range 10 {
		if err := c.Set(ctx, fmt.Sprint("k", i), "w", 0).Err(); err != nil {
			t.Fatalf("SET %d after Redis closed the idle connections: %v", i, err)
		}
	}
	if err := tx("2"); err != nil {
		t.Fatalf("MULTI/EXEC after Redis closed the idle connections: %v", err)
	}
	if v, _ := rs.Client().Get(ctx, "tx").Result(); v != "2" {
		t.Fatalf("tx = %q, want 2", v)
	}
}

// TestHoldClosesTunnelConnections: a hold holds what goes through the
// shared connections and transactions, but a tunnel (here a RESP3
// tracking client, whose commands go straight through) has a connection
// of its own. If the master being replaced is a zombie that wakes after
// the promotion, it would acknowledge the tunnel's writes on data about
// to be discarded: so Hold closes it at once, as the switch would. (A
// blocked pop or WAIT is unblocked instead: unblock_test.go.)
func TestHoldClosesTunnelConnections(t *testing.T) {
	rs := labtest.Server(t, lab.ServerOptions{})
	srv, addr := startProxy(t, rs.Addr, proxy.Config{HoldTimeout: 10 * time.Second})
	ctx := ctxT(t)
	tracking := client(t, addr, func(o *redis.Options) { o.Protocol, o.PoolSize = 3, 1 })
	if err := tracking.Do(ctx, "CLIENT", "TRACKING", "on").Err(); err != nil {
		t.Fatal(err)
	}
	if err := tracking.Set(ctx, "before", "1", 0).Err(); err != nil {
		t.Fatalf("a write through the tunnel before the hold: %v", err)
	}
	if n := srv.Stats().Pinned; n != 1 {
		t.Fatalf("%d pinned sessions, want the tracking one", n)
	}
	srv.Hold("test")
	// The tracking client's connection is closed, so its session ends.
	// (A client library then dials again; its next command is held like
	// any other.)
	waitFor(t, func() error {
		if n := srv.Stats().Pinned; n != 0 {
			return fmt.Errorf("%d sessions still hold a connection of their own", n)
		}
		return nil
	})
}

// TestRefusedPipelineIsNotSplit: when a command of a pipeline is refused
// for want of a master, every command the client had sent after it is
// refused too, at once, even if a master turns up before the proxy gets
// to them. Before, each command waited HoldTimeout of its own, and one a
// master turned up for ran after the earlier ones were refused, so
// retrying those reordered the client's writes.
func TestRefusedPipelineIsNotSplit(t *testing.T) {
	const hold = 400 * time.Millisecond
	rs := labtest.Server(t, lab.ServerOptions{})
	for _, tc := range []struct {
		name   string
		master func(t *testing.T) string // "" for none
		held   bool                      // a Hold that ends in Release
	}{
		{"no master", func(*testing.T) string { return "" }, false},
		{"unreachable master", func(t *testing.T) string {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			l.Close()
			return l.Addr().String()
		}, false},
		{"held", func(*testing.T) string { return rs.Addr }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// A pipeline larger than a client's read buffer: the proxy
			// reads it in several batches.
			const n = 300
			var cmds []string
			for i := range n {
				cmds = append(cmds, fmt.Sprintf("APPEND log %d,", i))
			}
			// A master may turn up before the first command is refused
			// (a slow machine): then nothing is refused and nothing is
			// shown; try again.
			for attempt := 1; ; attempt++ {
				srv, addr := startProxy(t, tc.master(t), proxy.Config{HoldTimeout: hold, DialBackoff: 20 * time.Millisecond})
				rs.Client().Del(ctxT(t), "log")
				c := dialFrames(t, addr)
				if tc.held {
					c.send("PING") // connected to the master before the hold
					c.expect("+PONG")
					srv.Hold("test")
				}
				start := time.Now()
				c.send(cmds...)
				// After the first command's hold ran out, before a second
				// hold of the same length would have.
				waitFor(t, func() error {
					if time.Since(start) < hold*3/2 {
						return errors.New("waiting")
					}
					return nil
				})
				if tc.held {
					srv.Release()
				} else {
					srv.SetMaster(2, rs.Addr)
				}
				var ran []string
				refused := -1
				for i := range n {
					got := c.reply()
					switch {
					case strings.HasPrefix(got, "-TRYAGAIN"):
						if refused < 0 {
							refused = i
						}
					case strings.HasPrefix(got, ":"):
						if refused >= 0 {
							t.Fatalf("command %d ran after command %d was refused (%q)", i, refused, got)
						}
						ran = append(ran, fmt.Sprintf("%d,", i))
					default:
						t.Fatalf("reply %d: %q", i, got)
					}
				}
				log, _ := rs.Client().Get(ctxT(t), "log").Result()
				if want := strings.Join(ran, ""); log != want {
					t.Fatalf("log %q, want what was acknowledged: %q", log, want)
				}
				// The refusal ends with the pipeline: a command sent after
				// reading its replies runs.
				c.send("APPEND log end")
				if got := c.reply(); !strings.HasPrefix(got, ":") {
					t.Fatalf("command after the refused pipeline: %q", got)
				}
				if refused == 0 {
					return
				}
				if attempt == 5 {
					t.Fatalf("in %d attempts the first command was never refused", attempt)
				}
				t.Logf("attempt %d: the master came before a refusal (first refused: %d); again", attempt, refused)
			}
		})
	}
}

// TestFailedDialIsLogged: a master the proxy cannot connect to (here,
// nothing listens; an audit saw the same with a wrong CA or server name)
// is named in a warning with the reason, spaced to one a second, not
// only counted: clients get a TRYAGAIN that cannot say more.
func TestFailedDialIsLogged(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	core, logs := observer.New(zap.WarnLevel)
	_, addr := startProxy(t, l.Addr().String(), proxy.Config{Group: "g1", HoldTimeout: 300 * time.Millisecond, DialBackoff: 10 * time.Millisecond, Logger: zap.New(core)})
	c := dialFrames(t, addr)
	c.send("SET k v")
	if got := c.reply(); !strings.HasPrefix(got, "-TRYAGAIN") {
		t.Fatalf("SET: %q", got)
	}
	lines := logs.FilterMessage("cannot connect to the master").All()
	if len(lines) == 0 {
		t.Fatal("no warning names the failed dial")
	}
	if len(lines) > 2 {
		t.Errorf("%d warnings for one command's dials within 300ms: not spaced", len(lines))
	}
	f := lines[0].ContextMap()
	if f["addr"] != l.Addr().String() || !strings.Contains(fmt.Sprint(f["error"]), "refused") || f["group"] != "g1" {
		t.Errorf("warning fields %v: want the group, the address and the reason", f)
	}
}

// TestSubscribeWithoutMasterCloses: a SUBSCRIBE that finds no master
// within HoldTimeout closes the connection (after the replies before it)
// instead of answering an error. go-redis takes an error reply to
// SUBSCRIBE as harmless and stays on the connection, believing itself
// subscribed: after a master crash a chaos audit saw its subscriber
// receive nothing for minutes. Closed, it reconnects and subscribes
// again, and once there is a master that works.
func TestSubscribeWithoutMasterCloses(t *testing.T) {
	rs := labtest.Server(t, lab.ServerOptions{})
	srv, addr := startProxy(t, "", proxy.Config{HoldTimeout: 200 * time.Millisecond})
	c := dialRaw(t, addr)
	c.send(cmd("CLIENT", "SETNAME", "sub") + cmd("SUBSCRIBE", "news"))
	c.expect("+OK") // answered by the proxy: the replies before it arrive
	if !c.closed() {
		t.Fatal("a SUBSCRIBE with no master was answered instead of closing the connection")
	}
	// A master that refuses the connection for now (a script past
	// busy-reply-threshold answers the proxy's CLIENT SETNAME with BUSY)
	// closes it too: an error reply would strand the subscriber just the
	// same.
	busy := labtest.Server(t, lab.ServerOptions{Args: []string{"--busy-reply-threshold", "50"}})
	_, baddr := startProxy(t, busy.Addr, proxy.Config{HoldTimeout: 200 * time.Millisecond})
	script := make(chan error, 1)
	go func() { script <- busy.Client().Eval(ctxT(t), "while true do end", nil).Err() }()
	defer func() {
		labtest.Eventually(t, 5*time.Second, func() error { return busy.Client().ScriptKill(ctxT(t)).Err() })
		<-script
	}()
	waitFor(t, func() error {
		if err := busy.Client().Ping(ctxT(t)).Err(); err == nil || !strings.HasPrefix(err.Error(), "BUSY") {
			return fmt.Errorf("PING: %v, want BUSY", err)
		}
		return nil
	})
	b := dialRaw(t, baddr)
	b.send(cmd("SUBSCRIBE", "news"))
	if !b.closed() {
		t.Fatal("a SUBSCRIBE that met a busy master was answered instead of closing the connection")
	}

	// Not UNSUBSCRIBE: it ends subscriptions, an error leaves none.
	u := dialRaw(t, addr)
	u.send(cmd("UNSUBSCRIBE") + cmd("CLIENT", "SETNAME", "still-here"))
	u.expect("-TRYAGAIN switchyard: no verified master for this group, try again", "+OK")

	srv.SetMaster(1, rs.Addr)
	sub := client(t, addr).Subscribe(ctxT(t), "news")
	defer sub.Close()
	if _, err := sub.Receive(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if err := rs.Client().Publish(ctxT(t), "news", "hi").Err(); err != nil {
		t.Fatal(err)
	}
	if m, err := sub.ReceiveMessage(ctxT(t)); err != nil || m.Payload != "hi" {
		t.Fatalf("after the master came: %v %v", m, err)
	}
}

// A SELECT or HELLO (AUTH takes SELECT's path) that meets a master switch
// on its way, its pool on the old master closed under it or HELLO's own
// round trip fenced, has changed no data: it is made again on the new
// master instead of answered "may or may not have run", which a client
// connecting during a failover would take for a failed connection. A
// PING pipelined behind it still gets its one reply: PONG, or an error if
// it too met a switch.
func TestSettingsMeetingASwitchAreTriedOnTheNewMaster(t *testing.T) {
	a := labtest.Server(t, lab.ServerOptions{})
	b := labtest.Server(t, lab.ServerOptions{})
	srv, addr := startProxy(t, a.Addr, proxy.Config{})
	stop := make(chan struct{})
	flipped := make(chan struct{})
	go func() {
		defer close(flipped)
		for epoch := uint64(2); ; epoch++ {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
				// Far more often than any failover: most connections
				// the proxy opens meet a switch on their way.
			}
			next := a.Addr
			if epoch%2 == 0 {
				next = b.Addr
			}
			srv.SetMaster(epoch, next)
		}
	}()
	var failed atomic.Int64
	var first atomic.Value
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 100; j++ {
				c, err := net.DialTimeout("tcp", addr, 5*time.Second)
				if err != nil {
					failed.Add(1)
					first.CompareAndSwap(nil, err.Error())
					return
				}
				c.SetDeadline(time.Now().Add(10 * time.Second))
				br := bufio.NewReader(c)
				if j%2 == 0 {
					db := strconv.Itoa(1 + j%3)
					c.Write([]byte(cmd("SELECT", db) + cmd("PING")))
					if got, err := br.ReadString('\n'); err != nil || got != "+OK\r\n" {
						failed.Add(1)
						first.CompareAndSwap(nil, fmt.Sprintf("SELECT %s: %q %v", db, got, err))
					}
				} else {
					c.Write([]byte(cmd("HELLO", "3") + cmd("PING")))
					got, err := br.ReadString('\n')
					if err != nil || !strings.HasPrefix(got, "%") { // a map
						failed.Add(1)
						first.CompareAndSwap(nil, fmt.Sprintf("HELLO 3: %q %v", got, err))
					}
				}
				// The PING's reply: the map's lines start with '%', '$',
				// ':', '*' or a bulk string's text, none with '+' or '-'.
				for {
					got, err := br.ReadString('\n')
					if err != nil {
						failed.Add(1)
						first.CompareAndSwap(nil, fmt.Sprintf("the PING after a setting got no reply: %v", err))
						break
					}
					if got[0] == '+' || got[0] == '-' {
						break
					}
				}
				c.Close()
			}
		}()
	}
	wg.Wait()
	close(stop)
	<-flipped
	if n := failed.Load(); n != 0 {
		t.Fatalf("%d of 400 connections (a SELECT or HELLO, then a PING) failed across master switches, the first: %v", n, first.Load())
	}
}
