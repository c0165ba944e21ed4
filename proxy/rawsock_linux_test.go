//go:build linux

package proxy

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

// rawPair returns a rawSocket and the plain TCP connection at its other
// end, over loopback.
func rawPair(t *testing.T) (*rawSocket, *net.TCPConn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	peer, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	nc, err := RawSocketListener(l).Accept()
	if err != nil {
		t.Fatal(err)
	}
	rs, ok := nc.(*rawSocket)
	if !ok {
		t.Fatalf("RawSocketListener accepted a %T", nc)
	}
	t.Cleanup(func() { rs.Close(); peer.Close() })
	return rs, peer.(*net.TCPConn)
}

// TestRawSocketBehavesAsTCPConn: a rawSocket's reads and writes, made with
// raw system calls, must end as net.TCPConn's do, since TLS and the
// sessions' error handling rely on it: data in order, io.EOF at the
// peer's end, timeouts as net.Error timeouts, a Close ending a waiting
// Read with net.ErrClosed, a write larger than the socket's buffers
// waiting for the peer to read, and a reset peer as an error.
func TestRawSocketBehavesAsTCPConn(t *testing.T) {
	t.Run("read and EOF", func(t *testing.T) {
		rs, peer := rawPair(t)
		go func() {
			// Later than the Read, most likely: it then waits in the poller.
			time.Sleep(20 * time.Millisecond)
			peer.Write([]byte("hello"))
			peer.CloseWrite()
		}()
		got, err := io.ReadAll(rs)
		if err != nil || string(got) != "hello" {
			t.Fatalf("read %q, %v; want hello and EOF", got, err)
		}
	})
	t.Run("read deadline", func(t *testing.T) {
		rs, _ := rawPair(t)
		rs.SetReadDeadline(time.Now().Add(30 * time.Millisecond))
		n, err := rs.Read(make([]byte, 8))
		var ne net.Error
		if n != 0 || !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("read past its deadline: %d, %v; want a timeout", n, err)
		}
		// Logged as net.TCPConn's would be, once wrapped.
		if want := "read tcp " + rs.LocalAddr().String() + "->" + rs.RemoteAddr().String() + ": i/o timeout"; err.Error() != want {
			t.Fatalf("the timeout reads %q, want %q", err, want)
		}
	})
	t.Run("close ends a read", func(t *testing.T) {
		rs, _ := rawPair(t)
		errc := make(chan error, 1)
		go func() {
			_, err := rs.Read(make([]byte, 8))
			errc <- err
		}()
		time.Sleep(20 * time.Millisecond) // the Read most likely waits in the poller by then
		rs.Close()
		select {
		case err := <-errc:
			if !errors.Is(err, net.ErrClosed) {
				t.Fatalf("read ended by Close: %v; want net.ErrClosed", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Close did not end a waiting Read")
		}
		if _, err := rs.Read(nil); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("an empty read after Close: %v; want net.ErrClosed", err)
		}
	})
	t.Run("large write", func(t *testing.T) {
		rs, peer := rawPair(t)
		want := bytes.Repeat([]byte("0123456789abcdef"), 1<<19) // 8 MiB, far over the buffers
		got := make(chan []byte, 1)
		go func() {
			b, _ := io.ReadAll(peer)
			got <- b
		}()
		n, err := rs.Write(want)
		if n != len(want) || err != nil {
			t.Fatalf("write: %d of %d, %v", n, len(want), err)
		}
		rs.CloseWrite()
		if b := <-got; !bytes.Equal(b, want) {
			t.Fatalf("the peer read %d bytes, not what was written", len(b))
		}
	})
	t.Run("write deadline", func(t *testing.T) {
		rs, _ := rawPair(t) // the peer reads nothing
		rs.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
		big := make([]byte, 64<<20)
		n, err := rs.Write(big)
		var ne net.Error
		if n >= len(big) || !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("write to a peer that reads nothing: %d of %d, %v; want a timeout", n, len(big), err)
		}
	})
	t.Run("reset peer", func(t *testing.T) {
		rs, peer := rawPair(t)
		peer.SetLinger(0)
		peer.Close()
		var err error
		deadline := time.Now().Add(5 * time.Second)
		for err == nil && time.Now().Before(deadline) {
			_, err = rs.Write([]byte("x"))
		}
		if !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, syscall.EPIPE) {
			t.Fatalf("write to a reset peer: %v; want ECONNRESET or EPIPE", err)
		}
		if _, err := rs.Read(make([]byte, 1)); err == nil {
			t.Fatal("read from a reset peer: no error")
		}
	})
}
