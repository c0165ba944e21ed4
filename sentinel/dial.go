package sentinel

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"time"
)

// dialer returns the Dialer for every go-redis client of this package. A
// failed dial is handed to go-redis as a connection whose first read or
// write fails with the dial error, instead of as a dial error.
//
// Why: go-redis's connection pool treats dial errors specially. After
// PoolSize of them it logs through its global logger, fails every command
// with the last dial error and starts a goroutine that re-dials once a
// second until it succeeds. For a Sentinel or node that is down that means
// log lines outside our zap logger, up to a second of delay before a
// restarted Sentinel is seen again, and a goroutine that outlives Run. A
// failed read is an ordinary bad connection: go-redis drops it and dials
// afresh on the next command.
//
// With tlsConfig set, the connection is TLS: the handshake runs here, on
// a fresh configuration per dial so that reloaded CAs apply.
func dialer(timeout time.Duration, tlsConfig func() *tls.Config) func(ctx context.Context, network, addr string) (net.Conn, error) {
	d := &net.Dialer{Timeout: timeout, KeepAlive: 15 * time.Second}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return deadConn{err: err}, nil
		}
		if tlsConfig == nil {
			return c, nil
		}
		tc := tls.Client(c, tlsConfig())
		hctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		if err := tc.HandshakeContext(hctx); err != nil {
			c.Close()
			return deadConn{err: fmt.Errorf("sentinel: TLS handshake with %s: %w", addr, err)}, nil
		}
		return tc, nil
	}
}

// deadConn is a connection that was never made.
type deadConn struct{ err error }

func (c deadConn) Read([]byte) (int, error)         { return 0, c.err }
func (c deadConn) Write([]byte) (int, error)        { return 0, c.err }
func (c deadConn) Close() error                     { return nil }
func (c deadConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c deadConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c deadConn) SetDeadline(time.Time) error      { return nil }
func (c deadConn) SetReadDeadline(time.Time) error  { return nil }
func (c deadConn) SetWriteDeadline(time.Time) error { return nil }
