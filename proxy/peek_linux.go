package proxy

import (
	"syscall"
	"unsafe"
)

// peek looks at a socket without taking anything from it or waiting:
// data when bytes wait to be read, closed when the peer has closed or
// reset the connection; neither when nothing has come.
func peek(fd uintptr) (data, closed bool) {
	var b [1]byte
	n, _, e := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&b[0])), 1,
		syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
	switch e {
	case 0:
		return n > 0, n == 0
	case syscall.EAGAIN, syscall.EINTR:
		return false, false
	}
	return false, true
}
