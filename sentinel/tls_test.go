package sentinel

import (
	"crypto/tls"
	"crypto/x509"
	"path/filepath"
	"testing"
	"time"

	"github.com/pnats/switchyard/internal/lab"
	"github.com/pnats/switchyard/internal/lab/labtest"
	"github.com/pnats/switchyard/tls/tlstest"
)

// TestWatcherOverTLS: a TLS-only master watched by a TLS-only Sentinel.
// The certificates name "redis.internal", never the 127.0.0.1 that
// Sentinel hands out, so verification works only through the configured
// server name.
func TestWatcherOverTLS(t *testing.T) {
	ca := tlstest.NewCA(t, "sentinel test CA")
	cert, key := ca.Issue(t, "redis.internal", []string{"redis.internal"}, nil, false)
	dir := t.TempDir()
	tlstest.WriteFiles(t, dir, map[string][]byte{"ca.crt": ca.CertPEM, "tls.crt": cert, "tls.key": key})
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.CertPEM)
	clientTLS := func() *tls.Config {
		return &tls.Config{RootCAs: pool, ServerName: "redis.internal", MinVersion: tls.VersionTLS12}
	}
	files := []string{
		"--tls-cert-file", filepath.Join(dir, "tls.crt"), "--tls-key-file", filepath.Join(dir, "tls.key"),
		"--tls-ca-cert-file", filepath.Join(dir, "ca.crt"), "--tls-auth-clients", "no",
	}
	master := labtest.Server(t, lab.ServerOptions{Args: files, TLS: clientTLS()})
	s := labtest.Sentinel(t, lab.SentinelOptions{
		MasterName: "tlsmaster", MasterAddr: master.Addr, Quorum: 1, TLS: clientTLS(),
		Args: []string{
			"tls-cert-file " + filepath.Join(dir, "tls.crt"), "tls-key-file " + filepath.Join(dir, "tls.key"),
			"tls-ca-cert-file " + filepath.Join(dir, "ca.crt"), "tls-auth-clients no", "tls-replication yes",
		},
	})

	r := startWatcher(t, Config{MasterName: "tlsmaster", Sentinels: sentinelAddrs(s), TLS: clientTLS, NodeTLS: clientTLS})
	r.waitTopo(t, 15*time.Second, isReady(master.Addr, 1))

	// Without TLS the same Sentinel is unreachable: nothing is decided.
	plain := startWatcher(t, Config{MasterName: "tlsmaster", Sentinels: sentinelAddrs(s)})
	time.Sleep(500 * time.Millisecond) // several poll intervals, to prove a negative
	if topo := plain.w.Topology(); topo.State == StateReady {
		t.Fatalf("a watcher without TLS verified a master: %s", describe(topo))
	}
}
