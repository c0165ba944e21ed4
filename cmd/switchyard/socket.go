package main

import (
	"net"
	"time"
)

// socket is a group's bound TCP listener. A reload that replaces a group
// with one listening on the same address passes the socket on instead of
// closing it and binding anew: the port never refuses a connection, and
// connections that arrive while one group hands over to the next wait in
// the socket's backlog for the new one.
//
// So Close, which the proxy server calls when it stops accepting, only
// stops Accept (at once, for an Accept in progress); release closes the
// socket. The group that owns the socket last releases it.
type socket struct {
	*net.TCPListener
	addr string // as configured: what a reload matches on
}

func bind(addr string) (*socket, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	return &socket{TCPListener: l.(*net.TCPListener), addr: addr}, nil
}

// Close stops Accept and leaves the socket bound.
func (s *socket) Close() error { return s.SetDeadline(time.Unix(1, 0)) }

// resume lets Accept wait again, for a group the socket was passed to.
func (s *socket) resume() error { return s.SetDeadline(time.Time{}) }

// release closes the socket: from then on the port refuses connections.
func (s *socket) release() error { return s.TCPListener.Close() }

// spare holds, by configured address, the sockets of the groups a reload
// stops or replaces, for the groups that will listen there.
type spare map[string]*socket
