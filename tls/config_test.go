package tls

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pnats/switchyard/tls/tlstest"
)

func TestNewServerConfigErrors(t *testing.T) {
	ca := tlstest.NewCA(t, "test CA")
	dir := t.TempDir()
	pairFiles(t, ca, dir, "tls.crt", "tls.key", false)
	tlstest.WriteFiles(t, dir, map[string][]byte{"ca.pem": ca.CertPEM})
	crt, key, caFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"), filepath.Join(dir, "ca.pem")
	missing := filepath.Join(dir, "missing.pem")

	tests := []struct {
		name    string
		cfg     ServerConfig
		wantErr string // "" means NewServer succeeds
	}{
		{"minimal", ServerConfig{CertFile: crt, KeyFile: key}, ""},
		{"mTLS", ServerConfig{CertFile: crt, KeyFile: key, ClientCAFile: caFile, ClientAuth: ClientAuthRequire}, ""},
		{"no CertFile", ServerConfig{KeyFile: key}, "tls: ServerConfig.CertFile is required"},
		{"no KeyFile", ServerConfig{CertFile: crt}, "tls: ServerConfig.KeyFile is required"},
		{"optional without CA", ServerConfig{CertFile: crt, KeyFile: key, ClientAuth: ClientAuthOptional}, "ClientAuth optional needs ClientCAFile"},
		{"require without CA", ServerConfig{CertFile: crt, KeyFile: key, ClientAuth: ClientAuthRequire}, "ClientAuth require needs ClientCAFile"},
		{"CA without ClientAuth", ServerConfig{CertFile: crt, KeyFile: key, ClientCAFile: caFile}, "ClientCAFile " + quote(caFile) + " is set but ClientAuth is none"},
		{"bad ClientAuth", ServerConfig{CertFile: crt, KeyFile: key, ClientAuth: 7}, "ServerConfig.ClientAuth ClientAuth(7)"},
		{"negative interval", ServerConfig{CertFile: crt, KeyFile: key, ReloadInterval: -time.Second}, "ServerConfig.ReloadInterval -1s is negative"},
		{"cert file missing", ServerConfig{CertFile: missing, KeyFile: key}, "tls: CertFile " + quote(missing) + ": no such file or directory"},
		{"key file missing", ServerConfig{CertFile: crt, KeyFile: missing}, "tls: KeyFile " + quote(missing) + ": no such file or directory"},
		{"CA file missing", ServerConfig{CertFile: crt, KeyFile: key, ClientCAFile: missing, ClientAuth: ClientAuthOptional}, "tls: ClientCAFile " + quote(missing) + ": no such file or directory"},
		{"key given as cert", ServerConfig{CertFile: key, KeyFile: key}, "tls: CertFile " + quote(key) + ": holds a private key"},
		{"cert given as key", ServerConfig{CertFile: crt, KeyFile: crt}, "tls: KeyFile " + quote(crt) + ": no PEM PRIVATE KEY block"},
		{"CA given as cert", ServerConfig{CertFile: caFile, KeyFile: key}, "tls: KeyFile " + quote(key) + ": private key does not match the certificate in CertFile " + quote(caFile)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := NewServer(tt.cfg, nil)
			checkErr(t, err, tt.wantErr)
			if err == nil && s.cfg.ReloadInterval != DefaultReloadInterval {
				t.Errorf("ReloadInterval = %v, want the default %v", s.cfg.ReloadInterval, DefaultReloadInterval)
			}
		})
	}
}

func TestNewClientConfigErrors(t *testing.T) {
	ca := tlstest.NewCA(t, "test CA")
	dir := t.TempDir()
	pairFiles(t, ca, dir, "client.crt", "client.key", true)
	tlstest.WriteFiles(t, dir, map[string][]byte{"ca.pem": ca.CertPEM, "junk.pem": []byte("junk")})
	crt, key, caFile := filepath.Join(dir, "client.crt"), filepath.Join(dir, "client.key"), filepath.Join(dir, "ca.pem")
	missing, junk := filepath.Join(dir, "missing.pem"), filepath.Join(dir, "junk.pem")

	tests := []struct {
		name    string
		cfg     ClientConfig
		wantErr string
	}{
		{"system roots", ClientConfig{}, ""},
		{"CA and cert", ClientConfig{CAFile: caFile, CertFile: crt, KeyFile: key, ServerName: "redis.internal"}, ""},
		{"insecure, explicitly", ClientConfig{InsecureSkipVerify: true}, ""},
		{"cert without key", ClientConfig{CertFile: crt}, `tls: ClientConfig.CertFile ` + quote(crt) + ` and KeyFile "": set both or neither`},
		{"key without cert", ClientConfig{KeyFile: key}, `tls: ClientConfig.CertFile "" and KeyFile ` + quote(key)},
		{"insecure with CA", ClientConfig{CAFile: caFile, InsecureSkipVerify: true}, "tls: ClientConfig.InsecureSkipVerify is set together with CAFile " + quote(caFile)},
		{"negative interval", ClientConfig{ReloadInterval: -time.Minute}, "tls: ClientConfig.ReloadInterval -1m0s is negative"},
		{"CA file missing", ClientConfig{CAFile: missing}, "tls: CAFile " + quote(missing) + ": no such file or directory"},
		{"CA file not PEM", ClientConfig{CAFile: junk}, "tls: CAFile " + quote(junk) + ": no PEM CERTIFICATE block"},
		{"key file missing", ClientConfig{CertFile: crt, KeyFile: missing}, "tls: KeyFile " + quote(missing) + ": no such file or directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewClient(tt.cfg, nil)
			checkErr(t, err, tt.wantErr)
		})
	}
}

func checkErr(t *testing.T, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Fatalf("unexpected error: %v", err)
	case want != "" && err == nil:
		t.Fatalf("no error, want %q", want)
	case want != "" && (!strings.HasPrefix(err.Error(), "tls: ") || !strings.Contains(err.Error(), want)):
		t.Fatalf("error\n  %v\nwant it to contain\n  %s", err, want)
	}
}

func quote(s string) string { return `"` + s + `"` }
