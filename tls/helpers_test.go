package tls

import (
	"bufio"
	"context"
	stdtls "crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math/big"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pnats/switchyard/tls/tlstest"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// ioTimeout bounds every network operation in these tests, so a bug shows
// as a failure rather than a hung test binary.
const ioTimeout = 5 * time.Second

var localhost = []net.IP{net.IPv4(127, 0, 0, 1)}

// pairFiles issues a certificate from ca, writes it as crt/key into dir
// with tlstest.WriteFiles and returns its serial.
func pairFiles(t *testing.T, ca *tlstest.CA, dir, crt, key string, isClient bool) *big.Int {
	t.Helper()
	certPEM, keyPEM := ca.Issue(t, "switchyard-test", []string{"localhost"}, localhost, isClient)
	tlstest.WriteFiles(t, dir, map[string][]byte{crt: certPEM, key: keyPEM})
	return tlstest.SerialOf(t, certPEM)
}

// clientCert issues a client certificate from ca for a stdtls.Config.
func clientCert(t *testing.T, ca *tlstest.CA) stdtls.Certificate {
	t.Helper()
	certPEM, keyPEM := ca.Issue(t, "client", nil, nil, true)
	c, err := stdtls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func pool(cas ...*tlstest.CA) *x509.CertPool {
	p := x509.NewCertPool()
	for _, ca := range cas {
		p.AddCert(ca.Cert)
	}
	return p
}

// observed returns a logger that records entries at Info and above.
func observed() (*zap.Logger, *observer.ObservedLogs) {
	core, logs := observer.New(zapcore.InfoLevel)
	return zap.New(core), logs
}

// serveTLS serves cfg on a loopback port until the test ends. Each
// connection answers line by line: "who" gets the client certificate's
// serial in hex (or "none"), anything else is echoed.
func serveTLS(t *testing.T, cfg *stdtls.Config) string {
	t.Helper()
	ln, err := stdtls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex // guards conns
		conns = map[net.Conn]struct{}{}
	)
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return // listener closed by cleanup
			}
			mu.Lock()
			conns[c] = struct{}{}
			mu.Unlock()
			wg.Go(func() { answer(c.(*stdtls.Conn)) })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

func answer(c *stdtls.Conn) {
	defer c.Close()
	r := bufio.NewReader(c)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return // handshake refused, peer gone, or cleanup
		}
		if line == "who\n" {
			line = "none\n"
			if pc := c.ConnectionState().PeerCertificates; len(pc) > 0 {
				line = pc[0].SerialNumber.Text(16) + "\n"
			}
		}
		if _, err := c.Write([]byte(line)); err != nil {
			return
		}
	}
}

// dial connects and completes the handshake.
func dial(addr string, cfg *stdtls.Config) (*stdtls.Conn, error) {
	d := &stdtls.Dialer{NetDialer: &net.Dialer{Timeout: ioTimeout}, Config: cfg}
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	return c.(*stdtls.Conn), nil
}

// ask sends one line and returns the answer. In TLS 1.3 the server
// verifies a client certificate after the client's handshake has
// returned, so a refusal only shows here, on the first read.
func ask(c *stdtls.Conn, line string) (string, error) {
	if err := c.SetDeadline(time.Now().Add(ioTimeout)); err != nil {
		return "", err
	}
	if _, err := c.Write([]byte(line + "\n")); err != nil {
		return "", err
	}
	got, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSuffix(got, "\n"), err
}

// echo checks that c still carries data both ways.
func echo(c *stdtls.Conn, msg string) error {
	got, err := ask(c, msg)
	if err != nil {
		return err
	}
	if got != msg {
		return fmt.Errorf("echo: sent %q, got %q", msg, got)
	}
	return nil
}

// exchange dials, handshakes and echoes one line: nil means the server
// accepted the client.
func exchange(addr string, cfg *stdtls.Config) error {
	c, err := dial(addr, cfg)
	if err != nil {
		return err
	}
	defer c.Close()
	return echo(c, "ping")
}

// servedSerial returns the serial of the certificate a fresh handshake gets.
func servedSerial(addr string, cfg *stdtls.Config) (*big.Int, error) {
	c, err := dial(addr, cfg)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].SerialNumber, nil
}

// waitFor polls cond every 10ms until it holds or the timeout passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(ioTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", ioTimeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// runUntilCleanup runs run in a goroutine until the test ends and then
// checks that it returned, and with the context's error.
func runUntilCleanup(t *testing.T, run func(context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("Run returned %v, want context.Canceled", err)
			}
		case <-time.After(ioTimeout):
			t.Errorf("Run did not return after its context ended")
		}
	})
}

// paths returns dir/name for each name.
func paths(dir string, names ...string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = filepath.Join(dir, n)
	}
	return out
}
