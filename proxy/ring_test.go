//go:build linux

package proxy_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pnats/switchyard/proxy"
)

func skipWithoutRing(t *testing.T) {
	t.Helper()
	skipWithoutLoop(t)
	if noIOUring() {
		t.Skip("the event loop's io_uring is off (SWITCHYARD_TEST_NO_IO_URING)")
	}
	if err := proxy.RingAvailable(); err != nil {
		t.Skipf("io_uring unavailable here: %v", err)
	}
}

// ringClient sends rounds of a pipelined SET and GET of a value of its
// own, whose length changes every round, and checks both replies. It
// returns errClosed if the proxy closed the connection, and stops at the
// first wrong reply with an error saying what it was.
func ringClient(addr string, id, rounds int) error {
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer nc.Close()
	br := bufio.NewReader(nc)
	key := fmt.Sprintf("ring:%d", id)
	for j := range rounds {
		val := strings.Repeat(string(rune('a'+id%26)), 1+(id*31+j*17)%700)
		fmt.Fprintf(nc, "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n",
			len(key), key, len(val), val, len(key), key)
		nc.SetReadDeadline(time.Now().Add(10 * time.Second))
		want := fmt.Sprintf("+OK\r\n$%d\r\n%s\r\n", len(val), val)
		got := make([]byte, len(want))
		if n, err := io.ReadFull(br, got); err != nil {
			if n == 0 && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || isReset(err)) {
				return errClosed
			}
			return fmt.Errorf("client %d round %d: %w after %q", id, j, err, got[:n])
		}
		if string(got) != want {
			return fmt.Errorf("client %d round %d: got %.60q, want %.60q", id, j, got, want)
		}
	}
	return nil
}

var errClosed = errors.New("closed by the proxy")

// ringClients runs that many ringClients at once and returns what each
// ended with.
func ringClients(addr string, clients, rounds int) []error {
	errs := make([]error, clients)
	var wg sync.WaitGroup
	for i := range clients {
		wg.Go(func() { errs[i] = ringClient(addr, i, rounds) })
	}
	wg.Wait()
	return errs
}

func isReset(err error) bool {
	return strings.Contains(err.Error(), "connection reset")
}

// TestEventLoopRingServesEachClientItsOwn: with io_uring the loop writes
// the replies of a round, and reads the clients epoll found readable, in
// one submission; each result must go back to its own client. Values of
// changing lengths make a result given to the wrong client, or a wrong
// count of bytes, show as a wrong reply.
func TestEventLoopRingServesEachClientItsOwn(t *testing.T) {
	skipWithoutRing(t)
	var submissions, most atomic.Int64
	proxy.SetRingHook(t, func(calls int) bool {
		submissions.Add(1)
		for {
			m := most.Load()
			if int64(calls) <= m || most.CompareAndSwap(m, int64(calls)) {
				return true
			}
		}
	})
	_, _, addr := setup(t, proxy.Config{})
	// Beside them, a client whose replies are larger than its socket
	// takes at once: the ring's send is partial, and a goroutine must
	// write the rest, in order.
	bigErr := make(chan error, 1)
	go func() { bigErr <- bigValueClient(addr, 4<<20, 5) }()
	for _, err := range ringClients(addr, 48, 150) {
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := <-bigErr; err != nil {
		t.Fatal(err)
	}
	if submissions.Load() == 0 {
		t.Fatal("the event loop made no submission through its ring")
	}
	if most.Load() < 2 {
		t.Fatalf("no submission held more than %d call: nothing was batched", most.Load())
	}
}

// bigValueClient sets a value of size bytes and reads it back rounds
// times, each reply in one piece of the client's reading.
func bigValueClient(addr string, size, rounds int) error {
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer nc.Close()
	br := bufio.NewReaderSize(nc, 64<<10)
	val := make([]byte, size)
	for i := range val {
		val[i] = byte('a' + i%26)
	}
	fmt.Fprintf(nc, "*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$%d\r\n%s\r\n", size, val)
	nc.SetReadDeadline(time.Now().Add(20 * time.Second))
	if line, err := br.ReadString('\n'); err != nil || line != "+OK\r\n" {
		return fmt.Errorf("big SET: %q %v", line, err)
	}
	want := append(fmt.Appendf(nil, "$%d\r\n", size), val...)
	want = append(want, "\r\n"...)
	got := make([]byte, len(want))
	for j := range rounds {
		nc.Write([]byte("*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n"))
		nc.SetReadDeadline(time.Now().Add(20 * time.Second))
		if _, err := io.ReadFull(br, got); err != nil {
			return fmt.Errorf("big GET %d: %w", j, err)
		}
		if !bytes.Equal(got, want) {
			i := 0
			for i < len(got) && got[i] == want[i] {
				i++
			}
			return fmt.Errorf("big GET %d: the reply differs from byte %d of %d", j, i, len(want))
		}
	}
	return nil
}

// TestEventLoopReadsOnPastAFullBuffer: a read that fills the room in a
// client's buffer, ending exactly between two commands, may have left
// more in the socket, and epoll (edge-triggered) will not say so again:
// the loop must read on after serving what it has, with the ring's reads
// as with its own.
func TestEventLoopReadsOnPastAFullBuffer(t *testing.T) {
	skipWithoutLoop(t)
	_, _, addr := setup(t, proxy.Config{ClientBufferSize: 64})
	c := dialRaw(t, addr)
	// Two SETs of 32 bytes each fill the 64-byte buffer; the GET behind
	// them stays in the socket.
	set := "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$6\r\n%06d\r\n"
	if n := len(fmt.Sprintf(set, 0)); n != 32 {
		t.Fatalf("a SET is %d bytes, want 32", n)
	}
	for i := range 20 {
		c.send(fmt.Sprintf(set, 2*i) + fmt.Sprintf(set, 2*i+1) + "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n")
		c.expect("+OK", "+OK", "$6", fmt.Sprintf("%06d", 2*i+1))
	}
}

// TestEventLoopRingFailureClosesOnlyItsClients: if a submission fails,
// the calls in it may have been made in part, so the clients in it are
// closed (a client library reconnects, as after a failed write); the
// others go on being served correctly, and the loop makes a system call
// per client from then on.
func TestEventLoopRingFailureClosesOnlyItsClients(t *testing.T) {
	skipWithoutRing(t)
	const failAt = 40
	var submissions, failedCalls atomic.Int64
	proxy.SetRingHook(t, func(calls int) bool {
		if submissions.Add(1) == failAt {
			failedCalls.Store(int64(calls))
			return false
		}
		return true
	})
	_, _, addr := setup(t, proxy.Config{})
	closed := 0
	for _, err := range ringClients(addr, 16, 300) {
		switch {
		case errors.Is(err, errClosed):
			closed++
		case err != nil:
			t.Fatal(err)
		}
	}
	if submissions.Load() < failAt {
		t.Fatalf("only %d submissions; the failure was never injected", submissions.Load())
	}
	if n := failedCalls.Load(); closed == 0 || int64(closed) > n {
		t.Fatalf("%d clients closed, want between 1 and the %d calls of the failed submission", closed, n)
	}
	after := submissions.Load()
	if after != failAt {
		t.Fatalf("%d submissions after the failure: the ring was still used", after-failAt)
	}
	// New clients are served, with a system call each.
	if err := ringClient(addr, 99, 50); err != nil {
		t.Fatalf("a client after the failure: %v", err)
	}
	if n := submissions.Load(); n != after {
		t.Fatalf("the ring was used again after its failure (%d submissions)", n-after)
	}
}
