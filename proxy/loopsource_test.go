//go:build linux

package proxy

import (
	"io"
	"syscall"
	"testing"

	"github.com/pnats/switchyard/resp"
)

// A backend that sends its last reply and closes: epoll reports the data
// and the close as one event. After the reply the loop must read on to
// the end of the stream, not wait for an event that never comes, or a
// closed connection would look alive until a request timed out on it.
func TestLoopSourceReadsToTheCloseAfterHangUp(t *testing.T) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fds[0])
	if _, err := syscall.Write(fds[1], []byte("+OK\r\n")); err != nil {
		t.Fatal(err)
	}
	syscall.Close(fds[1])

	c := &backendConn{lfd: fds[0], lcan: true, lhup: true}
	rd := resp.NewReader(loopSource{c}, 4096, resp.Limits{})
	raw, _, err := rd.ReadReply()
	if err != nil || string(raw) != "+OK\r\n" {
		t.Fatalf("first reply: %q, %v", raw, err)
	}
	if _, _, err := rd.ReadReply(); err != io.EOF {
		t.Fatalf("after the last reply of a closed peer: %v, want EOF", err)
	}

	// Without the hang-up, a short read means the socket is empty and the
	// next read waits for epoll: no EAGAIN system call.
	fds2, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fds2[0])
	defer syscall.Close(fds2[1])
	syscall.Write(fds2[1], []byte("+OK\r\n"))
	c2 := &backendConn{lfd: fds2[0], lcan: true}
	rd2 := resp.NewReader(loopSource{c2}, 4096, resp.Limits{})
	if raw, _, err := rd2.ReadReply(); err != nil || string(raw) != "+OK\r\n" {
		t.Fatalf("reply: %q, %v", raw, err)
	}
	if _, _, err := rd2.ReadReply(); err != resp.ErrWouldBlock {
		t.Fatalf("with nothing more sent: %v, want ErrWouldBlock", err)
	}
	if c2.lcan {
		t.Fatal("a short read left lcan set")
	}
}
