//go:build linux

package proxy

import (
	"bytes"
	"errors"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"
)

// newTestRing returns a ring, or skips where io_uring is unavailable:
// the loop then makes a system call per client, which the rest of the
// package's tests cover.
func newTestRing(t *testing.T) *ring {
	t.Helper()
	r, err := newRing()
	if err != nil {
		// Only a kernel or a seccomp profile that refuses the ring, or a
		// kernel without IORING_OP_RECV (EINVAL, before 5.6), skips; a
		// ring that fails its probe otherwise is a defect.
		if !strings.HasPrefix(err.Error(), "io_uring_setup:") && !errors.Is(err, syscall.EINVAL) {
			t.Fatal(err)
		}
		t.Skipf("io_uring unavailable here: %v", err)
	}
	t.Cleanup(r.close)
	return r
}

// tcpPair returns the descriptors of both ends of a loopback TCP
// connection, non-blocking, as the event loop holds them.
func tcpPair(t *testing.T) (a, b int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	fa, err := dupConn(c)
	if err != nil {
		t.Fatal(err)
	}
	fb, err := dupConn(s)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	s.Close()
	t.Cleanup(func() { syscall.Close(fa); syscall.Close(fb) })
	return fa, fb
}

// TestRingAnswersAsTheSystemCallsWould: each send and receive a ring
// makes gives, in one submission, what the non-blocking write(2) or
// read(2) would have, in the order they were added: the bytes, EAGAIN
// for an empty or a full socket, 0 at the peer's close. The loop relies
// on that to finish each client as it would after its own call.
func TestRingAnswersAsTheSystemCallsWould(t *testing.T) {
	r := newTestRing(t)
	a1, b1 := tcpPair(t)
	a2, b2 := tcpPair(t)

	// Two sends of different lengths and a receive from an empty socket,
	// in one submission: each result is its own.
	buf := make([]byte, 64)
	r.add(uringOpSend, a1, []byte("+first\r\n"))
	r.add(uringOpSend, a2, []byte("$6\r\nsecond\r\n"))
	r.add(uringOpRecv, a1, buf) // nothing has come to a1
	if err := r.submit(); err != nil {
		t.Fatal(err)
	}
	if got := r.res[:3]; got[0] != 8 || got[1] != 12 || got[2] != -int32(syscall.EAGAIN) {
		t.Fatalf("results %v, want [8 12 -EAGAIN(%d)]", got, -int32(syscall.EAGAIN))
	}

	// Receives into buffers of their own, one per socket, in one
	// submission, after the bytes have arrived.
	b1buf, b2buf := make([]byte, 64), make([]byte, 4)
	waitReadable(t, b1)
	waitReadable(t, b2)
	r.add(uringOpRecv, b1, b1buf)
	r.add(uringOpRecv, b2, b2buf) // less room than there is data
	if err := r.submit(); err != nil {
		t.Fatal(err)
	}
	if r.res[0] != 8 || string(b1buf[:8]) != "+first\r\n" {
		t.Fatalf("first receive: %d %q", r.res[0], b1buf[:max(r.res[0], 0)])
	}
	if r.res[1] != 4 || string(b2buf) != "$6\r\n" {
		t.Fatalf("second receive: %d %q, want the 4 bytes it had room for", r.res[1], b2buf)
	}

	// A full socket: sends take what fits, then EAGAIN, as write(2).
	chunk := bytes.Repeat([]byte("x"), 1<<20)
	sent, full := 0, false
	for range 64 {
		r.add(uringOpSend, a1, chunk)
		if err := r.submit(); err != nil {
			t.Fatal(err)
		}
		if r.res[0] == -int32(syscall.EAGAIN) {
			full = true
			break
		}
		if r.res[0] <= 0 {
			t.Fatalf("send to a filling socket gave %d", r.res[0])
		}
		sent += int(r.res[0])
	}
	if !full || sent == 0 {
		t.Fatalf("after %d bytes the socket never said it was full", sent)
	}

	// The peer closes: a receive gives 0 (the end), a send an error.
	syscall.Close(b2)
	waitReadable(t, a2)
	r.add(uringOpRecv, a2, buf)
	if err := r.submit(); err != nil {
		t.Fatal(err)
	}
	if r.res[0] != 0 {
		t.Fatalf("receive after the peer closed gave %d, want 0", r.res[0])
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		r.add(uringOpSend, a2, []byte("+late\r\n"))
		if err := r.submit(); err != nil {
			t.Fatal(err)
		}
		if r.res[0] < 0 {
			if e := syscall.Errno(-r.res[0]); e != syscall.EPIPE && e != syscall.ECONNRESET {
				t.Fatalf("send to a closed peer: %v, want EPIPE or ECONNRESET", e)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("sends to a closed peer kept succeeding")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestRingTakesAFullSubmission: as many calls as the ring has entries go
// in one submission, and each result lands at its own index.
func TestRingTakesAFullSubmission(t *testing.T) {
	r := newTestRing(t)
	a, b := tcpPair(t)
	msgs := make([][]byte, r.entries)
	for i := range msgs {
		msgs[i] = bytes.Repeat([]byte{'a' + byte(i%26)}, 1+i%7)
		r.add(uringOpSend, a, msgs[i])
	}
	if !r.full() {
		t.Fatal("full() is false with every entry taken")
	}
	if err := r.submit(); err != nil {
		t.Fatal(err)
	}
	var want bytes.Buffer
	for i, m := range msgs {
		if int(r.res[i]) != len(m) {
			t.Fatalf("send %d: %d, want %d", i, r.res[i], len(m))
		}
		want.Write(m)
	}
	got := make([]byte, 0, want.Len())
	deadline := time.Now().Add(5 * time.Second)
	for len(got) < want.Len() && time.Now().Before(deadline) {
		waitReadable(t, b)
		buf := make([]byte, want.Len())
		n, _ := syscall.Read(b, buf)
		got = append(got, buf[:max(n, 0)]...)
	}
	if !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("the peer read %d bytes, not the %d sent in order", len(got), want.Len())
	}
}

// waitReadable waits, polling, until fd has something to read or its
// peer has closed.
func waitReadable(t *testing.T, fd int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if data, closed := peek(uintptr(fd)); data || closed {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("nothing to read after 5s")
		}
		time.Sleep(time.Millisecond)
	}
}
