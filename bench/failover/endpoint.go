package main

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/pnats/switchyard/internal/lab"
)

// Endpoint names, in report order.
const (
	epSwitchyard = "switchyard"
	epHAProxy    = "haproxy"
)

// readyTimeout bounds how long a started proxy may take to route to the
// master.
const readyTimeout = 20 * time.Second

// endpoint is a proxy in front of one lab group; the writers connect to
// addr.
type endpoint struct {
	name string
	addr string // 127.0.0.1:PORT
	proc *lab.Process

	// Switchyard only: its admin HTTP address (/metrics).
	admin string
	// HAProxy only: its stats socket and the Redis address of each
	// server name in the backend.
	statsSocket string
	servers     map[string]string
}

// startEndpoint starts the named proxy in dir in front of g and waits
// until it routes to g's master.
func startEndpoint(ctx context.Context, name string, b binaries, dir string, g *lab.Group) (*endpoint, error) {
	switch name {
	case epSwitchyard:
		return startSwitchyard(ctx, b.switchyard, dir, g)
	case epHAProxy:
		return startHAProxy(ctx, b.haproxy, dir, g)
	}
	return nil, fmt.Errorf("unknown endpoint %q", name)
}

// stop stops the proxy process; it is safe on a nil endpoint.
func (e *endpoint) stop() error {
	if e == nil {
		return nil
	}
	return e.proc.Stop()
}

// freeAddr returns a loopback address with a port that was free a moment
// ago. A proxy that then fails to bind says so in its log, which the
// readiness error includes.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// pingOnce opens a connection to addr, sends PING and expects +PONG.
func pingOnce(addr string) error {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Second))
	if _, err := conn.Write([]byte("*1\r\n$4\r\nPING\r\n")); err != nil {
		return fmt.Errorf("PING %s: %w", addr, err)
	}
	buf := make([]byte, 64)
	n, err := conn.Read(buf)
	if err != nil {
		return fmt.Errorf("PING %s: %w", addr, err)
	}
	if got := string(buf[:n]); got != "+PONG\r\n" {
		return fmt.Errorf("PING %s: reply %.60q", addr, got)
	}
	return nil
}
