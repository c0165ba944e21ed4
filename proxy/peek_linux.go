package proxy

import (
	"syscall"
	"unsafe"
)

// peekClosed looks at a socket without taking anything from it or
// waiting: true when the peer has closed or reset the connection, false
// when data waits or none has come.
func peekClosed(fd uintptr) bool {
	var b [1]byte
	n, _, e := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&b[0])), 1,
		syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
	switch e {
	case 0:
		return n == 0
	case syscall.EAGAIN, syscall.EINTR:
		return false
	}
	return true
}
