package tls

import (
	stdtls "crypto/tls"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pnats/switchyard/tls/tlstest"
	"go.uber.org/zap/zapcore"
)

// fastReload keeps the rotation tests quick; they poll for the result.
const fastReload = 20 * time.Millisecond

// writers are the two ways certificates get replaced on disk: files
// renamed into place one by one, and a Kubernetes Secret volume whose
// ..data symlink is swapped.
var writers = []struct {
	name  string
	write func(testing.TB, string, map[string][]byte)
}{
	{"files replaced", tlstest.WriteFiles},
	{"secret volume symlink swap", tlstest.WriteSecretVolume},
}

func TestServerRotation(t *testing.T) {
	for _, w := range writers {
		t.Run(w.name, func(t *testing.T) {
			ca := tlstest.NewCA(t, "test CA")
			dir := t.TempDir()
			issue := func() *big.Int {
				certPEM, keyPEM := ca.Issue(t, "redis", []string{"localhost"}, localhost, false)
				w.write(t, dir, map[string][]byte{"tls.crt": certPEM, "tls.key": keyPEM})
				return tlstest.SerialOf(t, certPEM)
			}
			first := issue()
			log, logs := observed()
			srv, err := NewServer(ServerConfig{
				CertFile: filepath.Join(dir, "tls.crt"), KeyFile: filepath.Join(dir, "tls.key"),
				ReloadInterval: fastReload,
			}, log)
			if err != nil {
				t.Fatal(err)
			}
			addr := serveTLS(t, srv.Config())
			runUntilCleanup(t, srv.Run)

			client := &stdtls.Config{RootCAs: pool(ca), ServerName: "localhost"}
			old, err := dial(addr, client)
			if err != nil {
				t.Fatal(err)
			}
			defer old.Close()
			if err := echo(old, "before"); err != nil {
				t.Fatal(err)
			}
			if got := old.ConnectionState().PeerCertificates[0].SerialNumber; got.Cmp(first) != 0 {
				t.Fatalf("first handshake got serial %x, want %x", got, first)
			}

			second := issue()
			waitFor(t, "a new handshake to get the rotated certificate", func() bool {
				got, err := servedSerial(addr, client)
				if err != nil {
					t.Fatalf("handshake during rotation: %v", err)
				}
				return got.Cmp(second) == 0
			})
			if err := echo(old, "after"); err != nil {
				t.Fatalf("connection opened before the rotation: %v", err)
			}
			// Run logged the load of the second certificate (NewServer
			// the first).
			if n := logs.FilterMessage("tls: server certificate loaded").Len(); n < 2 {
				t.Errorf("%d load messages logged, want at least 2", n)
			}
		})
	}
}

func TestServerReloadBadFiles(t *testing.T) {
	ca := tlstest.NewCA(t, "test CA")
	otherCA := tlstest.NewCA(t, "other CA")
	certA, keyA := ca.Issue(t, "a", []string{"localhost"}, nil, false)
	certB, keyB := ca.Issue(t, "b", []string{"localhost"}, nil, false)

	tests := []struct {
		name    string
		files   map[string][]byte // replacing the good ones
		remove  string            // a file to delete instead
		wantErr []string          // substrings; paths are relative to dir
	}{
		{name: "key does not match", files: map[string][]byte{"tls.crt": certB, "tls.key": keyA},
			wantErr: []string{`KeyFile "DIR/tls.key": private key does not match the certificate in CertFile "DIR/tls.crt"`}},
		{name: "cert not PEM", files: map[string][]byte{"tls.crt": []byte("not a certificate\n")},
			wantErr: []string{`CertFile "DIR/tls.crt": no PEM CERTIFICATE block`}},
		{name: "cert and key swapped", files: map[string][]byte{"tls.crt": keyB, "tls.key": certB},
			wantErr: []string{`CertFile "DIR/tls.crt": holds a private key`}},
		{name: "key not PEM", files: map[string][]byte{"tls.key": []byte("garbage")},
			wantErr: []string{`KeyFile "DIR/tls.key": no PEM PRIVATE KEY block`}},
		{name: "key empty", files: map[string][]byte{"tls.key": {}},
			wantErr: []string{`KeyFile "DIR/tls.key": file is empty`}},
		{name: "key missing", remove: "tls.key",
			wantErr: []string{`KeyFile "DIR/tls.key": no such file or directory`}},
		{name: "client CA bundle damaged", files: map[string][]byte{"ca.pem": append(append([]byte{}, otherCA.CertPEM...), "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"...)},
			wantErr: []string{`ClientCAFile "DIR/ca.pem": certificate 2:`}},
		{name: "client CA file holds a key", files: map[string][]byte{"ca.pem": keyB},
			wantErr: []string{`ClientCAFile "DIR/ca.pem": PEM block 1 is "PRIVATE KEY"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			tlstest.WriteFiles(t, dir, map[string][]byte{"tls.crt": certA, "tls.key": keyA, "ca.pem": ca.CertPEM})
			log, logs := observed()
			srv, err := NewServer(ServerConfig{
				CertFile: filepath.Join(dir, "tls.crt"), KeyFile: filepath.Join(dir, "tls.key"),
				ClientCAFile: filepath.Join(dir, "ca.pem"), ClientAuth: ClientAuthOptional,
				ReloadInterval: fastReload,
			}, log)
			if err != nil {
				t.Fatal(err)
			}
			addr := serveTLS(t, srv.Config())
			client := &stdtls.Config{RootCAs: pool(ca), ServerName: "localhost", Certificates: []stdtls.Certificate{clientCert(t, ca)}}
			serialA := tlstest.SerialOf(t, certA)

			if tt.remove != "" {
				if err := os.Remove(filepath.Join(dir, tt.remove)); err != nil {
					t.Fatal(err)
				}
			} else {
				tlstest.WriteFiles(t, dir, tt.files)
			}

			err = srv.Reload()
			if err == nil {
				t.Fatal("Reload succeeded")
			}
			for _, want := range tt.wantErr {
				want = strings.ReplaceAll(want, "DIR", dir)
				if !strings.HasPrefix(err.Error(), "tls: ") || !strings.Contains(err.Error(), want) {
					t.Errorf("Reload error\n  %v\nwant it to contain\n  %s", err, want)
				}
			}
			if strings.Contains(err.Error(), "BEGIN") {
				t.Errorf("error quotes PEM content: %v", err)
			}
			// The previous generation keeps serving, client CA pool included.
			if got, err := servedSerial(addr, client); err != nil || got.Cmp(serialA) != 0 {
				t.Fatalf("after a failed reload: serial %x, err %v; want the old %x", got, err, serialA)
			}
			if err := exchange(addr, client); err != nil {
				t.Fatalf("client certificate refused after a failed reload: %v", err)
			}

			// Run recovers once the files are repaired.
			runUntilCleanup(t, srv.Run)
			tlstest.WriteFiles(t, dir, map[string][]byte{"tls.crt": certB, "tls.key": keyB, "ca.pem": ca.CertPEM})
			serialB := tlstest.SerialOf(t, certB)
			waitFor(t, "Run to load the repaired files", func() bool {
				got, err := servedSerial(addr, client)
				return err == nil && got.Cmp(serialB) == 0
			})
			if n := logs.FilterMessage("tls: server certificate loaded").Len(); n < 2 {
				t.Errorf("%d loads logged, want at least 2 (NewServer and Run)", n)
			}
		})
	}
}

// TestRunLogsBadFileOnce checks that Run reports a broken file, keeps
// serving, and does not repeat the report every interval.
func TestRunLogsBadFileOnce(t *testing.T) {
	ca := tlstest.NewCA(t, "test CA")
	dir := t.TempDir()
	first := pairFiles(t, ca, dir, "tls.crt", "tls.key", false)
	log, logs := observed()
	srv, err := NewServer(ServerConfig{
		CertFile: filepath.Join(dir, "tls.crt"), KeyFile: filepath.Join(dir, "tls.key"),
		ReloadInterval: fastReload,
	}, log)
	if err != nil {
		t.Fatal(err)
	}
	addr := serveTLS(t, srv.Config())
	runUntilCleanup(t, srv.Run)

	_, otherKey := ca.Issue(t, "other", nil, nil, false)
	tlstest.WriteFiles(t, dir, map[string][]byte{"tls.key": otherKey})
	errs := func() int { return logs.FilterLevelExact(zapcore.ErrorLevel).Len() }
	waitFor(t, "Run to log the mismatched key", func() bool { return errs() > 0 })
	e := logs.FilterLevelExact(zapcore.ErrorLevel).All()[0]
	if msg := e.ContextMap()["error"]; !strings.Contains(msg.(string), filepath.Join(dir, "tls.key")) {
		t.Errorf("logged error %q does not name the key file", msg)
	}

	// Let Run check the same bad content several more times: it must not
	// report it again.
	base := srv.r.checks.Load()
	waitFor(t, "five more checks", func() bool { return srv.r.checks.Load() >= base+5 })
	if n := errs(); n != 1 {
		t.Fatalf("Run logged %d errors for one bad content", n)
	}

	// A good rotation afterwards is still picked up.
	second := pairFiles(t, ca, dir, "tls.crt", "tls.key", false)
	client := &stdtls.Config{RootCAs: pool(ca), ServerName: "localhost"}
	waitFor(t, "the good rotation", func() bool {
		got, err := servedSerial(addr, client)
		if err != nil {
			t.Fatal(err)
		}
		if got.Cmp(first) != 0 && got.Cmp(second) != 0 {
			t.Fatalf("served serial %x, neither the first nor the second", got)
		}
		return got.Cmp(second) == 0
	})
	// WriteFiles renames the two files one after the other, so Run may
	// have seen one half-finished pair: at most one more distinct content.
	if n := errs(); n > 2 {
		t.Errorf("Run logged %d errors for at most 2 distinct bad contents", n)
	}
}
