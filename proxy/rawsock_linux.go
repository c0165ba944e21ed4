//go:build linux

package proxy

import (
	"io"
	"net"
	"os"
	"sync"
	"syscall"
)

// rawSocket is a TCP connection whose reads and writes are raw system
// calls on its non-blocking descriptor, made through its RawConn: when
// the socket is not ready, the goroutine waits in Go's poller as it would
// in net.TCPConn's own Read and Write, with the same deadlines and the
// same wake-up on Close. What it saves is the runtime's bookkeeping of an
// ordinary system call, as the event loop does (loop_linux.go, rawRead):
// each one may wake the runtime's monitor thread, which then polls every
// 20 µs for a while. It serves what goroutines read and write: TLS
// clients (RawSocketListener), clients handed from the loop to a
// goroutine or served without it, and backend connections. In a profile
// of TLS GETs through net.TCPConn the monitor had 16 % of the proxy's
// CPU samples; with rawSocket, under 1 % (bench/README.md, History).
type rawSocket struct {
	*net.TCPConn
	rc syscall.RawConn

	// The calls' arguments and results live here, with the functions
	// RawConn calls made once, so that a call allocates nothing (a
	// closure handed to RawConn would, each time). rmu and wmu keep
	// concurrent Reads (or Writes) apart, as the descriptor's own locks
	// would.
	rmu    sync.Mutex
	rp     []byte
	rn     int
	rerrno syscall.Errno
	readFn func(uintptr) bool

	wmu     sync.Mutex
	wp      []byte
	wn      int
	werrno  syscall.Errno
	writeFn func(uintptr) bool
}

// rawSocketOf returns nc as a rawSocket if it is a TCP connection whose
// RawConn can be had, else nc itself.
func rawSocketOf(nc net.Conn) net.Conn {
	tc, ok := nc.(*net.TCPConn)
	if !ok {
		return nc
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nc
	}
	c := &rawSocket{TCPConn: tc, rc: rc}
	c.readFn, c.writeFn = c.readOnce, c.writeSome
	return c
}

func (c *rawSocket) tcp() *net.TCPConn { return c.TCPConn }

func (c *rawSocket) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return c.TCPConn.Read(p) // 0, or the error of a closed connection
	}
	c.rmu.Lock()
	defer c.rmu.Unlock()
	c.rp, c.rn, c.rerrno = p, 0, 0
	err := c.rc.Read(c.readFn)
	n, errno := c.rn, c.rerrno
	c.rp = nil
	switch {
	case err != nil:
		return 0, c.opError("read", err)
	case errno != 0:
		return 0, c.opError("read", errno)
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

// readOnce reads into rp; false (wait in the poller) if nothing is there.
func (c *rawSocket) readOnce(fd uintptr) bool {
	for {
		c.rn, c.rerrno = sockRead(int(fd), c.rp)
		if c.rerrno != syscall.EINTR {
			return c.rerrno != syscall.EAGAIN
		}
	}
}

func (c *rawSocket) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.wp, c.wn, c.werrno = p, 0, 0
	err := c.rc.Write(c.writeFn)
	n, errno := c.wn, c.werrno
	c.wp = nil
	switch {
	case err != nil:
		return n, c.opError("write", err)
	case errno != 0:
		return n, c.opError("write", errno)
	}
	return n, nil
}

// writeSome writes what is left of wp; false (wait in the poller) when
// the socket is full.
func (c *rawSocket) writeSome(fd uintptr) bool {
	for c.wn < len(c.wp) {
		n, e := sockWrite(int(fd), c.wp[c.wn:])
		switch e {
		case 0:
			c.wn += n
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false
		default:
			c.werrno = e
			return true
		}
	}
	return true
}

// opError wraps err as net.TCPConn's methods do, so that callers' checks
// (a timeout, a closed connection) see what they would see there.
func (c *rawSocket) opError(op string, err error) error {
	if oe, ok := err.(*net.OpError); ok {
		err = oe.Err // RawConn's own, as "raw-read" or "raw-write"
	}
	if errno, ok := err.(syscall.Errno); ok {
		err = os.NewSyscallError(op, errno)
	}
	return &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}

// RawSocketListener returns l, handing out its TCP connections as
// rawSockets. It is for a listener wrapped in TLS (crypto/tls.NewListener),
// whose clients are served by a goroutine each rather than by the event
// loop: the proxy cannot reach under a TLS connection made elsewhere.
func RawSocketListener(l net.Listener) net.Listener { return rawListener{l} }

type rawListener struct{ net.Listener }

func (l rawListener) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return rawSocketOf(nc), nil
}
