//go:build !linux

package proxy

import "net"

// Elsewhere connections keep Go's own reads and writes.
func rawSocketOf(nc net.Conn) net.Conn { return nc }

// RawSocketListener returns l: see rawsock_linux.go.
func RawSocketListener(l net.Listener) net.Listener { return l }
