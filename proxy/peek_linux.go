package proxy

import (
	"sync/atomic"
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

// waitHangup waits, without reading, until the peer of fd closes or
// resets the connection (true), or until stop is set or the wait fails
// (false). Bytes left unread do not hide the end: epoll reports the
// peer's FIN behind them (EPOLLRDHUP). stop is looked at every 50 ms.
func waitHangup(fd uintptr, stop *atomic.Bool) bool {
	ep, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return false
	}
	defer syscall.Close(ep)
	ev := syscall.EpollEvent{Events: syscall.EPOLLRDHUP, Fd: int32(fd)}
	if syscall.EpollCtl(ep, syscall.EPOLL_CTL_ADD, int(fd), &ev) != nil {
		return false
	}
	events := make([]syscall.EpollEvent, 1)
	for !stop.Load() {
		n, err := syscall.EpollWait(ep, events, 50)
		if err != nil && err != syscall.EINTR {
			return false
		}
		if n > 0 && events[0].Events&(syscall.EPOLLRDHUP|syscall.EPOLLHUP|syscall.EPOLLERR) != 0 {
			return true
		}
	}
	return false
}
