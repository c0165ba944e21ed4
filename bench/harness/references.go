package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
)

// HAProxy's maxconn is the idle test's count plus haproxySpareConns;
// haproxyFDs is what it then needs besides two descriptors per idle
// connection (it computes 2×maxconn plus a few of its own).
const (
	haproxySpareConns = 128
	haproxyFDs        = 2*haproxySpareConns + 256
)

// startReference finds (or installs) a reference proxy and starts it; a
// proxy that cannot be installed is skipped, not an error.
func (tb *testbed) startReference(ctx context.Context, in *installer, name, bin, pkg string,
	start func(ctx context.Context, bin string) error) error {
	path, err := in.find(ctx, bin, pkg)
	if errors.Is(err, errCannotInstall) {
		msg := fmt.Sprintf("%s skipped: %v", name, err)
		logf("%s", msg)
		tb.notes = append(tb.notes, msg)
		return nil
	}
	if err != nil {
		return err
	}
	return start(ctx, path)
}

func (tb *testbed) startHAProxy(ctx context.Context, bin string, maxConns int) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	cfg := filepath.Join(tb.dir, "haproxy.cfg")
	if err := os.WriteFile(cfg, []byte(haproxyConfig(port, tb.master.Addr, maxConns)), 0o644); err != nil {
		return fmt.Errorf("haproxy: %w", err)
	}
	// -db: stay in the foreground, one process, so its pid is the one measured.
	return tb.startProxy(ctx, epHAProxy, port, bin, "-db", "-f", cfg)
}

// haproxyConfig is a plain TCP proxy to upstream on one thread, with no
// health check (throughput is measured, not failover). maxconn must cover
// the idle-connection test: HAProxy's default would refuse most of it.
func haproxyConfig(port int, upstream string, maxConns int) string {
	return fmt.Sprintf(`global
    nbthread 1
    maxconn %[3]d

defaults
    mode tcp
    maxconn %[3]d
    timeout connect 5s
    timeout client 1h
    timeout server 1h

frontend bench
    bind 127.0.0.1:%[1]d
    default_backend redis

backend redis
    server master %[2]s
`, port, upstream, maxConns)
}

func (tb *testbed) startTwemproxy(ctx context.Context, bin string) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	stats, err := freePort()
	if err != nil {
		return err
	}
	cfg := filepath.Join(tb.dir, "nutcracker.yml")
	if err := os.WriteFile(cfg, []byte(twemproxyConfig(port, tb.master.Addr)), 0o644); err != nil {
		return fmt.Errorf("twemproxy: %w", err)
	}
	// Without -s, nutcracker's stats server takes the fixed port 22222.
	return tb.startProxy(ctx, epTwemproxy, port, bin,
		"-c", cfg, "-a", "127.0.0.1", "-s", strconv.Itoa(stats), "-o", filepath.Join(tb.dir, "nutcracker.out"))
}

// twemproxyConfig is one pool with one server and one server connection,
// connected at start.
func twemproxyConfig(port int, upstream string) string {
	return fmt.Sprintf(`bench:
  listen: 127.0.0.1:%d
  redis: true
  preconnect: true
  server_connections: 1
  auto_eject_hosts: false
  servers:
    - %s:1
`, port, upstream)
}

// startProxy starts a reference proxy listening on port and waits for PING.
func (tb *testbed) startProxy(ctx context.Context, name string, port int, bin string, args ...string) error {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	logf("starting %s on %s", name, addr)
	c, err := startChild(name, tb.dir, nil, bin, args...)
	if err != nil {
		return err
	}
	if err := waitPONG(ctx, c, addr, readyTimeout); err != nil {
		err = c.withLog(fmt.Errorf("%s not ready on %s: %w", name, addr, err))
		return errors.Join(err, c.stop())
	}
	tb.children = append(tb.children, c)
	tb.endpoints = append(tb.endpoints, endpoint{name: name, addr: addr, port: port, pid: c.pid()})
	return nil
}
