package main

import (
	"context"
	stdtls "crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pnats/switchyard/internal/lab"
	"github.com/pnats/switchyard/internal/lab/labtest"
	"github.com/pnats/switchyard/tls/tlstest"
	"github.com/redis/go-redis/v9"
)

// redisCLI runs redis-cli with args and returns its output.
func redisCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	if _, err := exec.LookPath("redis-cli"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("redis-cli not installed (apt-get install redis-tools)")
		}
		t.Skip("redis-cli not installed (apt-get install redis-tools)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "redis-cli", args...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// TestSidecarTLSAndPassword runs the binary as the sidecar would, from the
// environment only: TLS with required client certificates on
// SWITCHYARD_LISTEN and a client password, in front of a Redis that needs
// its own password. redis-cli --tls is the client, as a user would run it.
func TestSidecarTLSAndPassword(t *testing.T) {
	skipShort(t)
	rs := labtest.Server(t, lab.ServerOptions{Args: []string{"--requirepass", "backend-pw"}})
	ca := tlstest.NewCA(t, "sidecar CA")
	dir := t.TempDir()
	srvCert, srvKey := ca.Issue(t, "switchyard", []string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)}, false)
	cliCert, cliKey := ca.Issue(t, "app", nil, nil, true)
	tlstest.WriteFiles(t, dir, map[string][]byte{"ca.crt": ca.CertPEM, "tls.crt": srvCert, "tls.key": srvKey,
		"client.crt": cliCert, "client.key": cliKey, "redis-pw": []byte("backend-pw\n")})
	addr := freeAddr(t)
	host, port, _ := net.SplitHostPort(addr)
	rhost, rport, _ := net.SplitHostPort(rs.Addr)

	p := &proc{cmd: exec.Command(binary(t)), done: make(chan error, 1)}
	p.cmd.Stdout, p.cmd.Stderr = p, p
	p.cmd.Env = append(os.Environ(),
		"SWITCHYARD_CONFIG=", "SWITCHYARD_LISTEN="+addr, "SWITCHYARD_ADMIN_LISTEN=",
		"REDIS_HOST="+rhost, "REDIS_PORT="+rport, "REDIS_PASSWORD_FILE="+filepath.Join(dir, "redis-pw"),
		"SWITCHYARD_TLS_CERT_FILE="+filepath.Join(dir, "tls.crt"), "SWITCHYARD_TLS_KEY_FILE="+filepath.Join(dir, "tls.key"),
		"SWITCHYARD_TLS_CLIENT_CA_FILE="+filepath.Join(dir, "ca.crt"), "SWITCHYARD_PASSWORD=client-pw")
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("switchyard output:\n%s", p.output())
		}
	})

	tlsArgs := []string{"--tls", "--cacert", filepath.Join(dir, "ca.crt"), "-h", host, "-p", port}
	withCert := append(tlsArgs, "--cert", filepath.Join(dir, "client.crt"), "--key", filepath.Join(dir, "client.key"))
	labtest.Eventually(t, 10*time.Second, func() error {
		out, err := redisCLI(t, append(withCert, "--no-auth-warning", "-a", "client-pw", "PING")...)
		if err != nil || out != "PONG" {
			return fmt.Errorf("redis-cli --tls PING: %q %v", out, err)
		}
		return nil
	})
	out, _ := redisCLI(t, append(withCert, "--no-auth-warning", "-a", "client-pw", "SET", "tls:k", "v")...)
	if out != "OK" {
		t.Fatalf("SET over TLS: %q", out)
	}
	if out, _ := redisCLI(t, append(withCert, "--no-auth-warning", "-a", "wrong", "GET", "tls:k")...); !strings.Contains(out, "WRONGPASS") && !strings.Contains(out, "AUTH failed") {
		t.Fatalf("wrong password: %q", out)
	}
	if out, _ := redisCLI(t, append(withCert, "GET", "tls:k")...); !strings.Contains(out, "NOAUTH") {
		t.Fatalf("no password: %q", out)
	}
	// mTLS: a client without a certificate does not get in.
	if out, err := redisCLI(t, append(tlsArgs, "--no-auth-warning", "-a", "client-pw", "PING")...); err == nil && out == "PONG" {
		t.Fatal("a client without a certificate was served")
	}
	// Plain text on the TLS port does not get in either.
	if out, err := redisCLI(t, "-h", host, "-p", port, "--no-auth-warning", "-a", "client-pw", "PING"); err == nil && out == "PONG" {
		t.Fatal("a plain-text client was served")
	}
}

// TestCertificateRotation: the certificate files change under a running
// proxy; new handshakes get the new certificate and a client connected
// before keeps working.
func TestCertificateRotation(t *testing.T) {
	skipShort(t)
	rs := labtest.Server(t, lab.ServerOptions{})
	ca := tlstest.NewCA(t, "rotation CA")
	dir := t.TempDir()
	issue := func() []byte {
		cert, key := ca.Issue(t, "switchyard", []string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)}, false)
		tlstest.WriteFiles(t, dir, map[string][]byte{"tls.crt": cert, "tls.key": key})
		return cert
	}
	first := issue()
	tlsAddr := freeAddr(t)
	cfgPath := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(cfgPath, []byte(fmt.Sprintf(`groups:
  - name: rot
    upstream: '%s'
    tls: {listen: '%s', cert_file: '%s', key_file: '%s', reload_interval: 50ms}
`, rs.Addr, tlsAddr, filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"))), 0o600)
	startBinary(t, "-config", cfgPath)

	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.CertPEM)
	serial := func() (string, error) {
		c, err := stdtls.Dial("tcp", tlsAddr, &stdtls.Config{RootCAs: pool, ServerName: "localhost"})
		if err != nil {
			return "", err
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].SerialNumber.String(), nil
	}
	labtest.Eventually(t, 10*time.Second, func() error { _, err := serial(); return err })
	before, _ := serial()
	if before != tlstest.SerialOf(t, first).String() {
		t.Fatalf("serving serial %s, not the first certificate's", before)
	}
	kept := redis.NewClient(&redis.Options{Addr: tlsAddr, PoolSize: 1, TLSConfig: &stdtls.Config{RootCAs: pool, ServerName: "localhost"}})
	defer kept.Close()
	ctx := context.Background()
	if err := kept.Set(ctx, "rot", "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	second := issue()
	labtest.Eventually(t, 10*time.Second, func() error {
		got, err := serial()
		if err != nil {
			return err
		}
		if got != tlstest.SerialOf(t, second).String() {
			return errors.New("new handshakes still get the old certificate")
		}
		return nil
	})
	if v, err := kept.Incr(ctx, "rot").Result(); err != nil || v != 2 {
		t.Fatalf("the connection from before the rotation: %v %v", v, err)
	}
}

// TestBackendCARotation: backend_tls's CA bundle is reloaded from disk, as
// a listener's certificate is. Rotating Redis to a certificate of a new
// CA (bundle first, then the server) left every new backend dial failing
// verification until a restart, a SIGHUP included: the files were read
// once. An audit of TLS under faults found it.
func TestBackendCARotation(t *testing.T) {
	skipShort(t)
	ca1, ca2 := tlstest.NewCA(t, "backend CA 1"), tlstest.NewCA(t, "backend CA 2")
	dir := t.TempDir()
	cert1, key1 := ca1.Issue(t, "redis.internal", []string{"redis.internal"}, nil, false)
	cert2, key2 := ca2.Issue(t, "redis.internal", []string{"redis.internal"}, nil, false)
	tlstest.WriteFiles(t, dir, map[string][]byte{"ca.crt": ca1.CertPEM, "r1.crt": cert1, "r1.key": key1, "r2.crt": cert2, "r2.key": key2})
	both := x509.NewCertPool()
	both.AppendCertsFromPEM(ca1.CertPEM)
	both.AppendCertsFromPEM(ca2.CertPEM)
	rs := labtest.Server(t, lab.ServerOptions{Args: []string{
		"--tls-cert-file", filepath.Join(dir, "r1.crt"), "--tls-key-file", filepath.Join(dir, "r1.key"),
		"--tls-ca-cert-file", filepath.Join(dir, "ca.crt"), "--tls-auth-clients", "no",
	}, TLS: &stdtls.Config{RootCAs: both, ServerName: "redis.internal"}})
	addr := freeAddr(t)
	cfgPath := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(cfgPath, []byte(fmt.Sprintf(`groups:
  - name: btls
    upstream: '%s'
    listen: '%s'
    hold_timeout: 1s
    backend_tls: {ca_file: '%s', server_name: redis.internal, reload_interval: 50ms}
`, rs.Addr, addr, filepath.Join(dir, "ca.crt"))), 0o600)
	startBinary(t, "-config", cfgPath)
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer c.Close()
	ctx := context.Background()
	labtest.Eventually(t, 10*time.Second, func() error { return c.Set(ctx, "k", "1", 0).Err() })

	tlstest.WriteFiles(t, dir, map[string][]byte{"ca.crt": append(append([]byte{}, ca1.CertPEM...), ca2.CertPEM...)})
	admin := rs.Client()
	defer admin.Close()
	if err := admin.Do(ctx, "CONFIG", "SET", "tls-cert-file", filepath.Join(dir, "r2.crt"), "tls-key-file", filepath.Join(dir, "r2.key")).Err(); err != nil {
		t.Fatal(err)
	}
	// New backend connections, which must verify the CA 2 certificate.
	labtest.Eventually(t, 10*time.Second, func() error {
		admin.Do(ctx, "CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
		return c.Set(ctx, "k", "2", 0).Err()
	})
}
