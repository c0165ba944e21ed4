package proxy_test

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pnats/switchyard/proxy"
)

// How a shared backend connection ends, whoever reads its replies (the
// event loop, or a reader goroutine with SWITCHYARD_TEST_NO_EVENT_LOOP):
// the requests in flight get an error that says the command may have run,
// and the proxy's other clients are answered meanwhile.

// A master that stops answering (SIGSTOP) fails the request in flight
// after ReadTimeout, and the proxy works again once it answers.
func TestBackendReadTimeout(t *testing.T) {
	rs, srv, addr := setup(t, proxy.Config{ReadTimeout: 300 * time.Millisecond})
	c := dialRaw(t, addr)
	settle(t, c, rs)
	if err := rs.Pause(); err != nil {
		t.Fatal(err)
	}
	defer rs.Resume()
	c.send(cmd("GET", "k"))
	// line waits 5 s, far longer than ReadTimeout.
	if l := c.line(); l != "-ERR switchyard: timed out waiting for the master; the command may or may not have run" {
		t.Fatalf("a request to a stalled master got %q", l)
	}
	if n := srv.Stats().BackendPending; n != 0 {
		t.Fatalf("%d requests still pending after the timeout", n)
	}
	if err := rs.Resume(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() error {
		c.send(cmd("PING"))
		if l := c.line(); l != "+PONG" {
			return fmt.Errorf("PING after the master came back: %q", l)
		}
		return nil
	})
}

// A master that dies with a request in flight: the request gets an error
// at once, and another client is answered (with an error, there being no
// master) instead of waiting on a stuck proxy.
func TestBackendLostMidRequest(t *testing.T) {
	rs, _, addr := setup(t, proxy.Config{HoldTimeout: 200 * time.Millisecond}, "--enable-debug-command", "yes")
	c := dialRaw(t, addr)
	other := dialRaw(t, addr)
	for _, rc := range []*rawConn{c, other} {
		rc.send(cmd("PING"))
		rc.expect("+PONG")
	}
	c.send(cmd("DEBUG", "SLEEP", "3"))
	// Running on Redis, not merely queued: a request killed before it was
	// written is rightly reported as not sent.
	waitBusy(t, rs)
	if err := rs.Kill(); err != nil {
		t.Fatal(err)
	}
	if l := c.line(); l != "-ERR switchyard: lost the connection to the master before the reply; the command may or may not have run" {
		t.Fatalf("the request in flight got %q", l)
	}
	other.send(cmd("PING"))
	if l := other.line(); !strings.HasPrefix(l, "-") {
		t.Fatalf("PING with the master gone got %q, want an error", l)
	}
}

// Many clients sending large values at once: the proxy writes more than
// the backend socket takes in one go (the event loop then hands the rest
// to a goroutine), and every value arrives whole, each client getting
// its own reply.
func TestBackendLargeConcurrentWrites(t *testing.T) {
	rs, _, addr := setup(t, proxy.Config{})
	const clients, size = 16, 1 << 20
	conns := make([]*rawConn, clients)
	for i := range conns {
		conns[i] = dialRaw(t, addr)
		conns[i].send(cmd("PING"))
		conns[i].expect("+PONG")
	}
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i, rc := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rc.nc.SetDeadline(time.Now().Add(20 * time.Second))
			key := fmt.Sprintf("large:%d", i)
			if _, err := rc.nc.Write([]byte(cmd("SET", key, strings.Repeat(string(rune('a'+i)), size)) + cmd("STRLEN", key))); err != nil {
				errs <- err
				return
			}
			if err := rc.check("+OK", fmt.Sprintf(":%d", size)); err != nil {
				errs <- fmt.Errorf("client %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	ctx := ctxT(t)
	for i := 0; i < clients; i++ {
		v, err := rs.Client().Get(ctx, fmt.Sprintf("large:%d", i)).Bytes()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(v, bytes.Repeat([]byte{byte('a' + i)}, size)) {
			t.Fatalf("large:%d arrived damaged (%d bytes)", i, len(v))
		}
	}
}

// Values over 1 MiB, too large for the proxy to keep their write buffer,
// mixed with a stream of small pipelined commands from other clients:
// the buffer others append to while a write is in progress must never be
// the one being written, or the bytes Redis gets are scrambled. With a
// goroutine per client (SWITCHYARD_TEST_NO_EVENT_LOOP) every session
// appends while another writes, which is where this fails reliably when
// the buffers alias; through the loop it needs a partial write handed to
// a goroutine.
func TestBackendLargeValuesAmidSmallPipelines(t *testing.T) {
	rs, _, addr := setup(t, proxy.Config{})
	const small, rounds, depth, bigSize, bigSets = 12, 400, 8, 3 << 20, 20
	var wg sync.WaitGroup
	errs := make(chan error, small+1)
	deadline := time.Now().Add(30 * time.Second)
	big := dialRaw(t, addr)
	wg.Add(1)
	go func() {
		defer wg.Done()
		big.nc.SetDeadline(deadline)
		for i := 0; i < bigSets; i++ {
			v := strings.Repeat(string(rune('A'+i)), bigSize)
			if _, err := big.nc.Write([]byte(cmd("SET", "mixed:big", v))); err != nil {
				errs <- err
				return
			}
			if err := big.check("+OK"); err != nil {
				errs <- fmt.Errorf("large SET %d: %v", i, err)
				return
			}
		}
	}()
	for i := 0; i < small; i++ {
		rc := dialRaw(t, addr)
		wg.Add(1)
		go func() {
			defer wg.Done()
			rc.nc.SetDeadline(deadline)
			key := fmt.Sprintf("mixed:%d", i)
			batch := strings.Repeat(cmd("INCR", key), depth)
			n := 0
			for r := 0; r < rounds; r++ {
				if _, err := rc.nc.Write([]byte(batch)); err != nil {
					errs <- err
					return
				}
				want := make([]string, depth)
				for j := range want {
					n++
					want[j] = fmt.Sprintf(":%d", n)
				}
				if err := rc.check(want...); err != nil {
					errs <- fmt.Errorf("client %d, round %d: %v", i, r, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	ctx := ctxT(t)
	v, err := rs.Client().Get(ctx, "mixed:big").Bytes()
	if err != nil || !bytes.Equal(v, bytes.Repeat([]byte{byte('A' + bigSets - 1)}, bigSize)) {
		t.Fatalf("the last large value arrived damaged (%d bytes, %v)", len(v), err)
	}
}

// A partial write the event loop hands to a goroutine belongs to the
// pool: Close waits for that goroutine, so nothing of the proxy outlives
// Close. The master is stopped, so the write cannot finish; Close's end
// of the connection fails it.
func TestBackendHandoffEndsBeforeClose(t *testing.T) {
	if noEventLoop() {
		t.Skip("only the event loop hands writes off")
	}
	// Set before the proxy starts, which reads them.
	started, ended := make(chan struct{}), make(chan struct{})
	proxy.SetHandoffHooks(t, func() { close(started) }, func() {
		// Slower than Close's own work, so that a Close that does not
		// wait returns first.
		time.Sleep(200 * time.Millisecond)
		close(ended)
	})
	rs, srv, addr := setup(t, proxy.Config{WriteTimeout: time.Minute})
	c := dialRaw(t, addr)
	settle(t, c, rs)
	// No reply is due (settle), so the SET below is written at once, not
	// held for a batch in flight.
	if err := rs.Pause(); err != nil {
		t.Fatal(err)
	}
	defer rs.Resume()
	// More than the loopback socket buffers hold.
	c.nc.SetWriteDeadline(time.Time{})
	wrote := make(chan error, 1)
	go func() {
		_, err := c.nc.Write([]byte(cmd("SET", "blocked", strings.Repeat("v", 64<<20))))
		wrote <- err
	}()
	timeout := time.After(20 * time.Second)
	for waiting := true; waiting; {
		select {
		case <-started:
			waiting = false
		case err := <-wrote:
			if err != nil {
				t.Fatalf("writing the large SET to the proxy: %v", err)
			}
		case <-timeout:
			t.Fatal("the event loop did not hand a partial write to a goroutine")
		}
	}
	srv.Close()
	select {
	case <-ended:
	default:
		t.Fatal("Close returned while the goroutine writing to the master still ran")
	}
}
