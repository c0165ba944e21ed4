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

// hungUp reports, without waiting or reading, whether the peer of fd
// has closed or reset the connection, behind bytes not read yet too.
func hungUp(fd uintptr) bool {
	const pollRDHUP = 0x2000
	pfd := struct {
		fd             int32
		events, revent int16
	}{fd: int32(fd), events: pollRDHUP}
	var ts syscall.Timespec
	n, _, e := syscall.Syscall6(syscall.SYS_PPOLL, uintptr(unsafe.Pointer(&pfd)), 1, uintptr(unsafe.Pointer(&ts)), 0, 0, 0)
	return e == 0 && n == 1 && pfd.revent&(pollRDHUP|syscall.EPOLLHUP|syscall.EPOLLERR) != 0
}
