package tls

import (
	stdtls "crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pnats/switchyard/tls/tlstest"
	"go.uber.org/zap/zapcore"
)

func TestServerHandshake(t *testing.T) {
	ca := tlstest.NewCA(t, "test CA")
	dir := t.TempDir()
	serial := pairFiles(t, ca, dir, "tls.crt", "tls.key", false)
	crt, key := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")

	srv, err := NewServer(ServerConfig{CertFile: crt, KeyFile: key}, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := srv.Config()
	if cfg.MinVersion != stdtls.VersionTLS12 {
		t.Errorf("MinVersion = %x, want TLS 1.2", cfg.MinVersion)
	}
	addr := serveTLS(t, cfg)

	tests := []struct {
		name    string
		roots   []*tlstest.CA
		wantErr string
	}{
		{name: "verified with the CA", roots: []*tlstest.CA{ca}},
		{name: "unknown CA refused", roots: []*tlstest.CA{tlstest.NewCA(t, "other CA")}, wantErr: "certificate signed by unknown authority"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := dial(addr, &stdtls.Config{RootCAs: pool(tt.roots...), ServerName: "localhost"})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("dial error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if got := c.ConnectionState().PeerCertificates[0].SerialNumber; got.Cmp(serial) != 0 {
				t.Errorf("served serial %x, want %x", got, serial)
			}
			if err := echo(c, "hello"); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestServerRefusesOldTLS(t *testing.T) {
	// Go's servers already refuse TLS 1.0 and 1.1 by default; re-enable
	// them, so that only our MinVersion can make this test pass. The
	// "control" case checks that the setting took effect.
	t.Setenv("GODEBUG", "tls10server=1")

	ca := tlstest.NewCA(t, "test CA")
	dir := t.TempDir()
	pairFiles(t, ca, dir, "tls.crt", "tls.key", false)
	srv, err := NewServer(ServerConfig{CertFile: filepath.Join(dir, "tls.crt"), KeyFile: filepath.Join(dir, "tls.key")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ours := serveTLS(t, srv.Config())
	plain := serveTLS(t, &stdtls.Config{GetCertificate: srv.Config().GetCertificate})

	tests := []struct {
		name   string
		addr   string
		max    uint16
		wantOK bool
	}{
		{"control: stdlib default accepts TLS 1.1 here", plain, stdtls.VersionTLS11, true},
		{"TLS 1.0 refused", ours, stdtls.VersionTLS10, false},
		{"TLS 1.1 refused", ours, stdtls.VersionTLS11, false},
		{"TLS 1.2 accepted", ours, stdtls.VersionTLS12, true},
		{"TLS 1.3 accepted", ours, stdtls.VersionTLS13, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := exchange(tt.addr, &stdtls.Config{
				RootCAs: pool(ca), ServerName: "localhost",
				MinVersion: stdtls.VersionTLS10, MaxVersion: tt.max,
			})
			if tt.wantOK && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if !tt.wantOK && err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

func TestServerClientAuth(t *testing.T) {
	ca := tlstest.NewCA(t, "server CA")
	clientCA := tlstest.NewCA(t, "client CA")
	otherCA := tlstest.NewCA(t, "other CA")
	dir := t.TempDir()
	pairFiles(t, ca, dir, "tls.crt", "tls.key", false)
	tlstest.WriteFiles(t, dir, map[string][]byte{"clients.pem": clientCA.CertPEM})

	good, bad := clientCert(t, clientCA), clientCert(t, otherCA)
	// Issued by the server's CA, which is not the client CA: a listener
	// must not accept it just because it trusts that CA for other things.
	serverCAClient := clientCert(t, ca)

	addrs := map[ClientAuth]string{}
	for _, mode := range []ClientAuth{ClientAuthNone, ClientAuthOptional, ClientAuthRequire} {
		cfg := ServerConfig{CertFile: filepath.Join(dir, "tls.crt"), KeyFile: filepath.Join(dir, "tls.key"), ClientAuth: mode}
		if mode != ClientAuthNone {
			cfg.ClientCAFile = filepath.Join(dir, "clients.pem")
		}
		srv, err := NewServer(cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		addrs[mode] = serveTLS(t, srv.Config())
	}

	tests := []struct {
		mode   ClientAuth
		cert   *stdtls.Certificate
		desc   string
		wantOK bool
	}{
		{ClientAuthNone, nil, "no cert", true},
		{ClientAuthOptional, nil, "no cert", true},
		{ClientAuthOptional, &good, "cert from client CA", true},
		{ClientAuthOptional, &bad, "cert from other CA", false},
		{ClientAuthOptional, &serverCAClient, "cert from server CA", false},
		{ClientAuthRequire, nil, "no cert", false},
		{ClientAuthRequire, &good, "cert from client CA", true},
		{ClientAuthRequire, &bad, "cert from other CA", false},
		{ClientAuthRequire, &serverCAClient, "cert from server CA", false},
	}
	for _, tt := range tests {
		for _, v := range []uint16{stdtls.VersionTLS12, stdtls.VersionTLS13} {
			name := tt.mode.String() + "/" + tt.desc + "/" + stdtls.VersionName(v)
			t.Run(name, func(t *testing.T) {
				cfg := &stdtls.Config{RootCAs: pool(ca), ServerName: "localhost", MaxVersion: v}
				if tt.cert != nil {
					// Not Certificates: with those, a Go client sends no
					// certificate when the server's list of acceptable CAs
					// does not include its issuer, so "optional" would see
					// no certificate at all. Always send it, as other
					// clients do.
					cfg.GetClientCertificate = func(*stdtls.CertificateRequestInfo) (*stdtls.Certificate, error) {
						return tt.cert, nil
					}
				}
				err := exchange(addrs[tt.mode], cfg)
				if tt.wantOK && err != nil {
					t.Fatalf("refused: %v", err)
				}
				if !tt.wantOK && err == nil {
					t.Fatal("accepted")
				}
			})
		}
	}
}

func TestNewServerExpiredCertWarns(t *testing.T) {
	ca := tlstest.NewCA(t, "test CA")
	now := time.Now()
	tests := []struct {
		name     string
		from, to time.Time
		wantWarn string
	}{
		{"valid", now.Add(-time.Hour), now.Add(time.Hour), ""},
		{"expired", now.Add(-2 * time.Hour), now.Add(-time.Hour), "EXPIRED"},
		{"not yet valid", now.Add(time.Hour), now.Add(2 * time.Hour), "NOT YET VALID"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			certPEM, keyPEM := ca.IssueCert(t, &x509.Certificate{
				Subject: pkix.Name{CommonName: tt.name}, DNSNames: []string{"localhost"},
				NotBefore: tt.from, NotAfter: tt.to,
				ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			})
			dir := t.TempDir()
			tlstest.WriteFiles(t, dir, map[string][]byte{"tls.crt": certPEM, "tls.key": keyPEM})
			log, logs := observed()
			if _, err := NewServer(ServerConfig{CertFile: filepath.Join(dir, "tls.crt"), KeyFile: filepath.Join(dir, "tls.key")}, log); err != nil {
				t.Fatalf("NewServer: %v (an out-of-date certificate is a warning, not an error)", err)
			}
			entries := logs.All()
			if len(entries) != 1 {
				t.Fatalf("got %d log entries, want 1: %v", len(entries), entries)
			}
			e := entries[0]
			if tt.wantWarn == "" {
				if e.Level != zapcore.InfoLevel {
					t.Errorf("logged %v %q, want info", e.Level, e.Message)
				}
				return
			}
			if e.Level != zapcore.WarnLevel || !strings.Contains(e.Message, tt.wantWarn) {
				t.Errorf("logged %v %q, want a warning containing %q", e.Level, e.Message, tt.wantWarn)
			}
		})
	}
}

func TestParseClientAuth(t *testing.T) {
	tests := []struct {
		in      string
		want    ClientAuth
		wantErr bool
	}{
		{"", ClientAuthNone, false},
		{"none", ClientAuthNone, false},
		{"optional", ClientAuthOptional, false},
		{"require", ClientAuthRequire, false},
		{"required", 0, true},
		{"Require", 0, true},
		{"yes", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseClientAuth(tt.in)
			if tt.wantErr {
				if err == nil || !strings.HasPrefix(err.Error(), "tls: ") || !strings.Contains(err.Error(), tt.in) {
					t.Fatalf("error = %v, want one naming %q", err, tt.in)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("= %v, %v; want %v", got, err, tt.want)
			}
			if tt.in != "" && got.String() != tt.in {
				t.Errorf("String() = %q, want %q", got.String(), tt.in)
			}
		})
	}
}
