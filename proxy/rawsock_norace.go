//go:build linux && !race

package proxy

import "syscall"

// rawSocket's system calls (see rawsock_race.go for the race detector's).
func sockRead(fd int, p []byte) (int, syscall.Errno)  { return rawRead(fd, p) }
func sockWrite(fd int, p []byte) (int, syscall.Errno) { return rawWrite(fd, p) }
