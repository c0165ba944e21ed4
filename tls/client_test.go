package tls

import (
	stdtls "crypto/tls"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pnats/switchyard/tls/tlstest"
	"go.uber.org/zap/zapcore"
)

// serveCert serves a certificate issued by ca for dnsNames only (no IP
// addresses, like a Redis group's certificate reached through an IP that
// Sentinel handed out).
func serveCert(t *testing.T, ca *tlstest.CA, dnsNames ...string) string {
	t.Helper()
	dir := t.TempDir()
	certPEM, keyPEM := ca.Issue(t, "redis", dnsNames, nil, false)
	tlstest.WriteFiles(t, dir, map[string][]byte{"tls.crt": certPEM, "tls.key": keyPEM})
	srv, err := NewServer(ServerConfig{CertFile: filepath.Join(dir, "tls.crt"), KeyFile: filepath.Join(dir, "tls.key")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return serveTLS(t, srv.Config())
}

func TestClientServerName(t *testing.T) {
	ca := tlstest.NewCA(t, "redis CA")
	addr := serveCert(t, ca, "redis.internal")
	if host, _, _ := net.SplitHostPort(addr); host != "127.0.0.1" {
		t.Fatalf("server on %s, want 127.0.0.1", addr)
	}
	dir := t.TempDir()
	tlstest.WriteFiles(t, dir, map[string][]byte{"ca.pem": ca.CertPEM})
	caFile := filepath.Join(dir, "ca.pem")

	tests := []struct {
		name    string
		cfg     ClientConfig
		raw     bool // stdtls.Client on a TCP conn instead of a Dialer, which fills in no name
		wantErr string
	}{
		{name: "ServerName matches the certificate", cfg: ClientConfig{CAFile: caFile, ServerName: "redis.internal"}},
		{name: "ServerName matches, raw conn", cfg: ClientConfig{CAFile: caFile, ServerName: "redis.internal"}, raw: true},
		{name: "no ServerName: verified against the IP", cfg: ClientConfig{CAFile: caFile}, wantErr: "127.0.0.1"},
		{name: "no ServerName, raw conn: refused, not skipped", cfg: ClientConfig{CAFile: caFile}, raw: true, wantErr: "either ServerName or InsecureSkipVerify must be specified"},
		{name: "wrong ServerName", cfg: ClientConfig{CAFile: caFile, ServerName: "other.internal"}, wantErr: "other.internal"},
		{name: "system roots do not know the CA", cfg: ClientConfig{ServerName: "redis.internal"}, wantErr: "unknown authority"},
		{name: "InsecureSkipVerify", cfg: ClientConfig{InsecureSkipVerify: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			log, logs := observed()
			c, err := NewClient(tt.cfg, log)
			if err != nil {
				t.Fatal(err)
			}
			err = clientExchange(addr, c.Config(), tt.raw)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.wantErr != "" && err == nil:
				t.Fatalf("accepted, want an error containing %q", tt.wantErr)
			case tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr):
				t.Fatalf("error %v, want it to contain %q", err, tt.wantErr)
			}
			warned := logs.FilterLevelExact(zapcore.WarnLevel).FilterMessageSnippet("InsecureSkipVerify").Len() > 0
			if warned != tt.cfg.InsecureSkipVerify {
				t.Errorf("warned about InsecureSkipVerify: %v, want %v", warned, tt.cfg.InsecureSkipVerify)
			}
		})
	}
}

// clientExchange echoes one line over TLS with cfg, dialled through a
// stdtls.Dialer or, with raw, through stdtls.Client on a plain TCP conn.
func clientExchange(addr string, cfg *stdtls.Config, raw bool) error {
	if !raw {
		return exchange(addr, cfg)
	}
	tcp, err := net.DialTimeout("tcp", addr, ioTimeout)
	if err != nil {
		return err
	}
	c := stdtls.Client(tcp, cfg)
	defer c.Close()
	return echo(c, "ping")
}

func TestClientCertRotation(t *testing.T) {
	for _, w := range writers {
		t.Run(w.name, func(t *testing.T) {
			serverCA, clientCA := tlstest.NewCA(t, "server CA"), tlstest.NewCA(t, "client CA")
			dir := t.TempDir()
			pairFiles(t, serverCA, dir, "server.crt", "server.key", false)
			tlstest.WriteFiles(t, dir, map[string][]byte{"server-ca.pem": serverCA.CertPEM, "client-ca.pem": clientCA.CertPEM})
			srv, err := NewServer(ServerConfig{
				CertFile: filepath.Join(dir, "server.crt"), KeyFile: filepath.Join(dir, "server.key"),
				ClientCAFile: filepath.Join(dir, "client-ca.pem"), ClientAuth: ClientAuthRequire,
			}, nil)
			if err != nil {
				t.Fatal(err)
			}
			addr := serveTLS(t, srv.Config())

			cdir := filepath.Join(dir, "client")
			issue := func() string {
				certPEM, keyPEM := clientCA.Issue(t, "switchyard", nil, nil, true)
				w.write(t, cdir, map[string][]byte{"tls.crt": certPEM, "tls.key": keyPEM})
				return tlstest.SerialOf(t, certPEM).Text(16)
			}
			first := issue()
			cl, err := NewClient(ClientConfig{
				CAFile: filepath.Join(dir, "server-ca.pem"), ServerName: "localhost",
				CertFile: filepath.Join(cdir, "tls.crt"), KeyFile: filepath.Join(cdir, "tls.key"),
				ReloadInterval: fastReload,
			}, nil)
			if err != nil {
				t.Fatal(err)
			}
			runUntilCleanup(t, cl.Run)
			cfg := cl.Config() // kept: it must follow the rotation by itself

			who := func() string {
				c, err := dial(addr, cfg)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				got, err := ask(c, "who")
				if err != nil {
					t.Fatalf("server refused the client certificate: %v", err)
				}
				return got
			}
			if got := who(); got != first {
				t.Fatalf("server saw client serial %s, want %s", got, first)
			}
			second := issue()
			waitFor(t, "the rotated client certificate", func() bool { return who() == second })
		})
	}
}

func TestClientCAReload(t *testing.T) {
	caA, caB := tlstest.NewCA(t, "CA A"), tlstest.NewCA(t, "CA B")
	addrA, addrB := serveCert(t, caA, "localhost"), serveCert(t, caB, "localhost")
	dir := t.TempDir()
	tlstest.WriteFiles(t, dir, map[string][]byte{"ca.pem": caA.CertPEM})
	c, err := NewClient(ClientConfig{CAFile: filepath.Join(dir, "ca.pem"), ServerName: "localhost"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	before := c.Config()

	tlstest.WriteFiles(t, dir, map[string][]byte{"ca.pem": []byte("not PEM")})
	if err := c.Reload(); err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "ca.pem")) {
		t.Fatalf("Reload of a broken CA file: %v, want an error naming it", err)
	}
	tlstest.WriteFiles(t, dir, map[string][]byte{"ca.pem": caB.CertPEM})
	if err := c.Reload(); err != nil {
		t.Fatal(err)
	}
	after := c.Config()

	tests := []struct {
		name   string
		cfg    *stdtls.Config
		addr   string
		wantOK bool
	}{
		{"Config before the reload trusts CA A", before, addrA, true},
		{"Config before the reload still does not trust CA B", before, addrB, false},
		{"Config after the reload trusts CA B", after, addrB, true},
		{"Config after the reload no longer trusts CA A", after, addrA, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := exchange(tt.addr, tt.cfg)
			if tt.wantOK != (err == nil) {
				t.Fatalf("error %v, want ok=%v", err, tt.wantOK)
			}
		})
	}
}
