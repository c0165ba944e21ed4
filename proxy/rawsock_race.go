//go:build linux && race

package proxy

import "syscall"

// Under the race detector rawSocket makes ordinary system calls: those of
// package syscall tell the detector that a write to a socket happens
// before a read of it, as net.TCPConn's do, and tests rely on that (a
// variable set before a client writes, read where the proxy handles what
// it wrote). Raw calls would hide the edge and report races that are not
// there. Only the kind of call differs; what rawSocket does with it is
// the same.
func sockRead(fd int, p []byte) (int, syscall.Errno) {
	if len(p) == 0 {
		return 0, 0
	}
	n, err := syscall.Read(fd, p)
	return max(n, 0), errnoOf(err)
}

func sockWrite(fd int, p []byte) (int, syscall.Errno) {
	if len(p) == 0 {
		return 0, 0
	}
	n, err := syscall.Write(fd, p)
	return max(n, 0), errnoOf(err)
}

func errnoOf(err error) syscall.Errno {
	if err == nil {
		return 0
	}
	if e, ok := err.(syscall.Errno); ok {
		return e
	}
	return syscall.EIO
}
