package proxy

import (
	"net"
	"syscall"
)

// tcpNotSentLowat is TCP_NOTSENT_LOWAT, which package syscall lacks.
const tcpNotSentLowat = 25

// limitUnsent caps the bytes a client socket holds unsent: a write then
// completes as the client reads, rather than once the kernel has drained
// a third of a send buffer autotuned up to 4 MiB, so client_write_timeout
// measures the client's own progress (writeChunk per timeout).
func limitUnsent(tc *net.TCPConn) {
	if rc, err := tc.SyscallConn(); err == nil {
		rc.Control(func(fd uintptr) {
			syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, tcpNotSentLowat, writeChunk/2)
		})
	}
}
