//go:build !linux

package proxy

import (
	"errors"
	"net"
)

// Without epoll there is no event loop: every client gets a goroutine.
type loop struct{}

var errNoLoop = errors.New("proxy: the event loop needs Linux")

func newLoop(*Server) (*loop, error)    { return nil, errNoLoop }
func (*loop) post(*session)             {}
func (*loop) stop()                     {}
func (*loop) adopt(*backendConn) bool   { return false }
func (*loop) postBackend(*backendConn)  {}
func (*loop) resumeHeld()               {}
func (*loop) deferReply(*session) bool  { return false }
func detachConn(net.Conn) (int, error)  { return -1, errNoLoop }
func readRaw(int, []byte) (int, error)  { return 0, errNoLoop }
func writeRaw(int, []byte) (int, error) { return 0, errNoLoop }
