package proxy_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pnats/switchyard/proxy"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

func TestMaxClients(t *testing.T) {
	core, logs := observer.New(zap.WarnLevel)
	rejected := &count{}
	_, srv, addr := setup(t, proxy.Config{MaxClients: 3, Logger: zap.New(core), Metrics: &proxy.Metrics{ClientsRejected: rejected}})
	var conns []*rawConn
	for i := 0; i < 3; i++ {
		c := dialRaw(t, addr)
		c.send("PING\r\n")
		if l := c.line(); l != "+PONG" {
			t.Fatalf("client %d: %q", i, l)
		}
		conns = append(conns, c)
	}
	extra := dialRaw(t, addr)
	if l := extra.line(); l != "-ERR max number of clients reached" {
		t.Fatalf("fourth client got %q", l)
	}
	if !extra.closed() {
		t.Fatal("refused client left open")
	}
	// A storm of refused clients is counted in full but logged at most
	// once a second: 30 within far less than 2 s make at most 2 lines.
	start := time.Now()
	for i := 0; i < 30; i++ {
		c := dialRaw(t, addr)
		if l := c.line(); l != "-ERR max number of clients reached" {
			t.Fatalf("refused client %d got %q", i, l)
		}
		c.nc.Close()
	}
	if n, _ := rejected.get(); n != 31 {
		t.Fatalf("%d refusals counted, want 31", n)
	}
	if lines := logs.FilterMessage("client refused: max clients reached").Len(); time.Since(start) < 2*time.Second && lines > 2 {
		t.Fatalf("%d log lines for 31 refusals", lines)
	}
	// And the lines account for all 31, the storm's tail included, with
	// no refusal after it to bring it out.
	waitFor(t, func() error {
		var n int64
		lines := logs.FilterMessage("client refused: max clients reached").All()
		for _, l := range lines {
			n += l.ContextMap()["refused_since_last_line"].(int64)
		}
		if n != 31 {
			return fmt.Errorf("%d log lines count %d refusals, want 31", len(lines), n)
		}
		return nil
	})
	conns[0].nc.Close()
	waitFor(t, func() error {
		if n := srv.Clients(); n != 2 {
			return fmt.Errorf("%d clients", n)
		}
		return nil
	})
	again := dialRaw(t, addr)
	again.send("PING\r\n")
	if l := again.line(); l != "+PONG" {
		t.Fatalf("after a client left: %q", l)
	}
}

func TestIdleTimeout(t *testing.T) {
	_, _, addr := setup(t, proxy.Config{IdleTimeout: 300 * time.Millisecond})
	idle := dialRaw(t, addr)
	idle.send("PING\r\n")
	idle.line()
	sub := dialRaw(t, addr)
	sub.send("SUBSCRIBE quiet\r\n")
	for i := 0; i < 6; i++ {
		sub.line()
	}
	blocked := dialRaw(t, addr)
	blocked.send("BLPOP idle:q 0\r\n")

	start := time.Now()
	if !idle.closed() {
		t.Fatal("idle client not closed")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("idle client closed after %v", d)
	}
	// A subscriber and a blocked client are quiet by design: they stay.
	time.Sleep(600 * time.Millisecond) // two idle periods, to prove a negative
	if err := client(t, addr).Publish(context.Background(), "quiet", "still here").Err(); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"*3", "$7", "message", "$5", "quiet", "$10", "still here"} {
		if l := sub.line(); l != want {
			t.Fatalf("subscriber got %q, want %q", l, want)
		}
	}
	client(t, addr).RPush(context.Background(), "idle:q", "x")
	for _, want := range []string{"*2", "$6", "idle:q", "$1", "x"} {
		if l := blocked.line(); l != want {
			t.Fatalf("blocked client got %q, want %q", l, want)
		}
	}
}

// TestShutdownDrains: Shutdown answers the command in flight, closes idle
// and pinned clients, and returns well before its deadline.
func TestShutdownDrains(t *testing.T) {
	rs, srv, addr := setup(t, proxy.Config{}, "--enable-debug-command", "yes")
	idle := dialRaw(t, addr)
	idle.send("PING\r\n")
	idle.line()
	sub := dialRaw(t, addr)
	sub.send("SUBSCRIBE drain\r\n")
	for i := 0; i < 6; i++ {
		sub.line()
	}
	busy := dialRaw(t, addr)
	busy.send("DEBUG SLEEP 0.5\r\n")
	// Redis is single-threaded: once it stops answering a direct PING, the
	// DEBUG SLEEP is running there. (A pending backend request alone is not
	// proof: the proxy's own COMMAND table load may be the one pending.)
	waitFor(t, func() error {
		c, err := net.Dial("tcp", rs.Addr)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(100 * time.Millisecond))
		c.Write([]byte("PING\r\n"))
		if _, err := c.Read(make([]byte, 16)); err == nil {
			return fmt.Errorf("DEBUG SLEEP not running yet")
		}
		return nil
	})

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Shutdown took %v", d)
	}
	if l := busy.line(); l != "+OK" {
		t.Fatalf("in-flight command got %q", l)
	}
	for name, c := range map[string]*rawConn{"idle": idle, "subscribed": sub, "busy": busy} {
		if !c.closed() {
			t.Errorf("%s client still open after Shutdown", name)
		}
	}
	if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		t.Error("still accepting after Shutdown")
	}
}

// TestMaxRequestBytes: a request over the limit is a protocol error that
// closes that client only; nothing of it reaches Redis.
func TestMaxRequestBytes(t *testing.T) {
	_, _, addr := setup(t, proxy.Config{MaxRequestBytes: 1 << 16})
	big := dialRaw(t, addr)
	big.send(fmt.Sprintf("*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$%d\r\n", 1<<17))
	if l := big.line(); !strings.HasPrefix(l, "-ERR Protocol error") {
		t.Fatalf("oversized request: %q", l)
	}
	if !big.closed() {
		t.Fatal("connection open after an oversized request")
	}
	c := client(t, addr)
	if err := c.Set(context.Background(), "small", strings.Repeat("x", 1<<15), 0).Err(); err != nil {
		t.Fatalf("a request under the limit: %v", err)
	}
	if n, _ := c.Exists(context.Background(), "big").Result(); n != 0 {
		t.Fatal("part of the oversized request was applied")
	}
}

// A client that reads a large batch of replies slowly but steadily is
// not cut off by ClientWriteTimeout, which is a timeout of no progress:
// Redis would deliver it all, and these replies are of commands that ran.
// Here 8 × 4 MiB take about 4 s to read against a 1 s timeout.
func TestSlowSteadyReaderGetsEverything(t *testing.T) {
	readSteadily(t, 4<<20, 64<<10, 8*time.Millisecond) // about 8 MB/s at most
}

// readSteadily has a client pipeline 8 GETs of a size-byte value through
// a proxy with a 1 s ClientWriteTimeout and read the replies chunk bytes
// at a time, pausing between reads: it must get every byte, and not be
// counted as a slow client.
func readSteadily(t *testing.T, size, chunk int, pause time.Duration) {
	t.Helper()
	slow := &count{}
	rs, _, addr := setup(t, proxy.Config{ClientWriteTimeout: time.Second, Metrics: &proxy.Metrics{SlowClients: slow}})
	const n = 8
	if err := rs.Client().Set(ctxT(t), "big", strings.Repeat("v", size), 0).Err(); err != nil {
		t.Fatal(err)
	}
	c := dialRaw(t, addr)
	c.send(strings.Repeat(cmd("GET", "big"), n))
	want := n * (len(fmt.Sprintf("$%d\r\n", size)) + size + 2)
	buf := make([]byte, chunk)
	got := 0
	c.nc.SetReadDeadline(time.Now().Add(30 * time.Second))
	for got < want {
		m, err := c.br.Read(buf)
		got += m
		if err != nil {
			t.Fatalf("after %d of %d bytes: %v", got, want, err)
		}
		time.Sleep(pause)
	}
	if n, _ := slow.get(); n != 0 {
		t.Fatalf("SlowClients counted %d disconnects of a client that read everything", n)
	}
}

// TestSlowSubscriberIsASlowClient: a subscriber that stops reading is cut
// off after PubSubWriteTimeout and counted as a slow client, not as a
// backend error: Redis did nothing wrong, and an alert on backend errors
// would send the operator to look at Redis.
func TestSlowSubscriberIsASlowClient(t *testing.T) {
	slow, backendErrs := &count{}, &count{}
	rs, _, addr := setup(t, proxy.Config{PubSubWriteTimeout: 300 * time.Millisecond,
		Metrics: &proxy.Metrics{SlowClients: slow, BackendErrors: backendErrs}})
	sub := dialRaw(t, addr)
	sub.send(cmd("SUBSCRIBE", "firehose"))
	sub.expect("*3", "$9", "subscribe", "$8", "firehose", ":1")
	// It reads no more. 24 MB fill the sockets between it and the proxy.
	msg := strings.Repeat("m", 1<<20)
	pub := rs.Client()
	defer pub.Close()
	for range 24 {
		if err := pub.Publish(ctxT(t), "firehose", msg).Err(); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, func() error {
		if n, _ := slow.get(); n != 1 {
			return fmt.Errorf("%d slow clients counted", n)
		}
		return nil
	})
	if n, _ := backendErrs.get(); n != 0 {
		t.Fatalf("a slow subscriber counted %d backend errors", n)
	}
	expectReset(t, sub)
}

// TestStalledClientIsReset: a client that reads nothing of its replies
// for ClientWriteTimeout is cut off with a reset, not an orderly close
// after the replies the kernel still holds for it.
func TestStalledClientIsReset(t *testing.T) {
	slow := &count{}
	rs, _, addr := setup(t, proxy.Config{ClientWriteTimeout: 300 * time.Millisecond, Metrics: &proxy.Metrics{SlowClients: slow}})
	if err := rs.Client().Set(ctxT(t), "big", strings.Repeat("v", 256<<10), 0).Err(); err != nil {
		t.Fatal(err)
	}
	c := dialRaw(t, addr)
	// 10 MiB of replies; the requests fit one read of the client's
	// buffer, so the proxy has read all it was sent when it closes.
	c.send(strings.Repeat(cmd("GET", "big"), 40))
	waitFor(t, func() error {
		if n, _ := slow.get(); n != 1 {
			return fmt.Errorf("%d slow clients counted", n)
		}
		return nil
	})
	expectReset(t, c)
}

// expectReset reads what c has left until the connection ends, and wants
// it reset: a client cut off for not reading must learn that plainly, not
// from an orderly end after replies that waited in the kernel.
func expectReset(t *testing.T, c *rawConn) {
	t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 1<<20)
	got := 0
	for {
		n, err := c.nc.Read(buf)
		got += n
		if err != nil {
			if !errors.Is(err, syscall.ECONNRESET) {
				t.Fatalf("after %d more bytes the connection ended with %v, want a reset", got, err)
			}
			return
		}
	}
}

// TestClientOutputLimit: a client pipelining large replies is disconnected
// once the replies held for it pass ClientOutputLimit, after the ones that
// fit; the rest are read and dropped, so the shared connection stays in
// step and another client's replies are its own. A single reply larger
// than the limit still gets through.
func TestClientOutputLimit(t *testing.T) {
	const limit = 1 << 20
	closed := &count{}
	rs, _, addr := setup(t, proxy.Config{ClientOutputLimit: limit, Metrics: &proxy.Metrics{OutputLimitClients: closed}})
	ctx := ctxT(t)
	value := strings.Repeat("v", 300<<10)
	if err := rs.Client().Set(ctx, "big", value, 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rs.Client().Set(ctx, "huge", strings.Repeat("h", 3*limit), 0).Err(); err != nil {
		t.Fatal(err)
	}

	// One reply of three times the limit gets through, alone or after
	// others in the same request (a transaction's EXEC, here).
	c := client(t, addr)
	if got, err := c.Get(ctx, "huge").Result(); err != nil || len(got) != 3*limit {
		t.Fatalf("GET of a value over the limit: %d bytes, %v", len(got), err)
	}
	tx := dialFrames(t, addr)
	tx.send("MULTI", "GET huge", "EXEC")
	tx.expect("+OK", "+QUEUED")
	if got := tx.reply(); got != "*1 $"+fmt.Sprint(3*limit)+" "+strings.Repeat("h", 3*limit) {
		t.Fatalf("EXEC of a GET over the limit: %.40q", got)
	}

	// Twenty GETs of 300 KiB in one write, then a mark: the proxy holds
	// at most the limit's worth (three replies, and the first always).
	greedy := dialFrames(t, addr)
	var cmds []string
	for range 20 {
		cmds = append(cmds, "GET big")
	}
	greedy.send(append(cmds, "INCR after")...)
	other := client(t, addr)
	got := 0
	for {
		r := greedy.reply()
		if strings.HasPrefix(r, "<read error") {
			break
		}
		if r != "$"+fmt.Sprint(len(value))+" "+value {
			t.Fatalf("reply %d: %.40q", got, r)
		}
		got++
	}
	if got == 0 || got >= 20 {
		t.Fatalf("the client got %d of 20 replies before the close; want some, not all", got)
	}
	if _, n := closed.get(); n != 1 {
		t.Fatalf("output-limit disconnects counted: %v, want 1", n)
	}
	// The rest of the batch was read and dropped, in step: another
	// client's replies are its own.
	for i := range 50 {
		key := fmt.Sprint("k", i)
		if err := other.Set(ctx, key, i, 0).Err(); err != nil {
			t.Fatal(err)
		}
		if v, err := other.Get(ctx, key).Int(); err != nil || v != i {
			t.Fatalf("another client's GET %s: %d, %v", key, v, err)
		}
	}
}

// Clients that go quiet after a large request do not keep a buffer of its
// size: a soak test found 50 clients that had each sent one 1 MiB SET
// holding 50 MB of heap, until each sent a command with as many
// arguments. The event loop reads a quiet client only once it sends more,
// so it drops the buffer when the batch is answered; a session goroutine
// drops it when it waits for the next command.
func TestQuietClientsReleaseLargeBuffers(t *testing.T) {
	_, _, addr := setup(t, proxy.Config{})
	// 1.5 MiB: the buffer grows past the frame (to about 2 MiB), so the
	// read that completes it does not fill it, and the loop has no
	// reason to read the client again.
	const clients, size = 20, 3 << 19
	req := []byte("*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$" + strconv.Itoa(size) + "\r\n" + strings.Repeat("v", size) + "\r\n")
	before := quietClients(t, addr, req, clients)
	waitFor(t, func() error {
		if grown := heapInUse() - before; grown > clients*size/4 {
			return fmt.Errorf("%d quiet clients hold %d KiB more heap than before their SETs", clients, grown>>10)
		}
		return nil
	})
}

// Clients that go quiet after one command of many arguments do not keep
// arrays sized for it: a review found ten clients holding 87 MB after one
// MSET of 200,001 arguments each (the Command's arguments and the
// Reader's spans, 40 bytes per argument).
func TestQuietClientsReleaseArgumentArrays(t *testing.T) {
	_, _, addr := setup(t, proxy.Config{})
	const clients, pairs = 10, 100000
	var b strings.Builder
	b.WriteString("*" + strconv.Itoa(1+2*pairs) + "\r\n$4\r\nMSET\r\n")
	for i := 0; i < pairs; i++ {
		b.WriteString("$1\r\nk\r\n$1\r\nv\r\n")
	}
	req := []byte(b.String())
	before := quietClients(t, addr, req, clients)
	// Each holds its request's bytes, 1.4 MB, while it is parsed; and 8 MB
	// of arrays for its arguments if they are kept.
	waitFor(t, func() error {
		if grown := heapInUse() - before; grown > int64(clients*len(req)/2) {
			return fmt.Errorf("%d quiet clients hold %d KiB more heap than before their MSETs", clients, grown>>10)
		}
		return nil
	})
}

// quietClients connects n clients that each send req, get +OK and then
// send nothing more, and returns the heap in use before they connected.
func quietClients(t *testing.T, addr string, req []byte, n int) (before int64) {
	t.Helper()
	before = heapInUse()
	for i := 0; i < n; i++ {
		c := dialRaw(t, addr)
		c.nc.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.nc.Write(req); err != nil {
			t.Fatal(err)
		}
		c.expect("+OK")
	}
	return before
}

// heapInUse is the heap in use after a collection.
func heapInUse() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapInuse)
}

// TestSlowerSteadyReaderGetsEverything: a client that reads steadily at
// about twice writeChunk per ClientWriteTimeout is not cut off, however
// large the send buffer the kernel autotunes for its socket (up to 4 MiB,
// of which a blocked write waits for a third to drain).
func TestSlowerSteadyReaderGetsEverything(t *testing.T) {
	readSteadily(t, 1<<20, 16<<10, 20*time.Millisecond) // about 800 KB/s at most
}
