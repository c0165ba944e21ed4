// Package labtest wraps package lab for tests: each helper makes a
// t.TempDir(), starts the processes, registers a t.Cleanup that stops them
// and, if the test failed, logs the tails of their logs.
//
// If redis-server or redis-sentinel is missing, the helpers skip the test
// (or fail it when the environment variable CI is "true", so that CI cannot
// silently skip the integration tests).
package labtest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pnats/switchyard/internal/lab"
	"github.com/pnats/switchyard/tls/tlstest"
)

// startTimeout bounds each helper's start.
const startTimeout = 30 * time.Second

// tailLines is how many log lines are logged for a failed test.
const tailLines = 40

// requireBinary skips (or, with CI=true, fails) the test if bin is not
// installed; pkg is the Debian/Ubuntu package that provides it.
func requireBinary(t testing.TB, bin, def, pkg string) {
	t.Helper()
	if bin == "" {
		bin = def
	}
	if _, err := exec.LookPath(bin); err != nil {
		missing(t, fmt.Sprintf("%s not installed; apt-get install %s", bin, pkg))
	}
}

func missing(t testing.TB, msg string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatal(msg + " (CI=true: not skipping)")
	}
	t.Skip(msg)
}

func checkStartErr(t testing.TB, what string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if errors.Is(err, lab.ErrNotInstalled) {
		missing(t, fmt.Sprintf("%v; apt-get install redis-server redis-sentinel", err))
	}
	t.Fatalf("labtest: start %s: %v", what, err)
}

// Server starts a redis-server (in a fresh t.TempDir() when o.Dir is empty)
// and stops it when the test ends.
func Server(t testing.TB, o lab.ServerOptions) *lab.Server {
	t.Helper()
	requireBinary(t, o.Binary, "redis-server", "redis-server")
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	s, err := lab.StartServer(ctx, o)
	checkStartErr(t, "redis-server", err)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("redis-server %s log (%s):\n%s", s.Addr, s.LogPath(), s.LogTail(tailLines))
		}
		if err := s.Stop(); err != nil {
			t.Errorf("labtest: stop redis-server %s: %v", s.Addr, err)
		}
	})
	return s
}

// TLSServer starts a redis-server with a TLS port only, its certificate
// issued to redis.internal by a new CA, and returns it, the CA, and a
// config that verifies it (a BackendTLS; RootCAs trusts the CA).
func TLSServer(t testing.TB) (*lab.Server, *tlstest.CA, func() *tls.Config) {
	t.Helper()
	ca := tlstest.NewCA(t, "test CA")
	dir := t.TempDir()
	cert, key := ca.Issue(t, "redis.internal", []string{"redis.internal"}, nil, false)
	tlstest.WriteFiles(t, dir, map[string][]byte{"ca.crt": ca.CertPEM, "redis.crt": cert, "redis.key": key})
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.CertPEM)
	verify := func() *tls.Config {
		return &tls.Config{RootCAs: pool, ServerName: "redis.internal", MinVersion: tls.VersionTLS12}
	}
	s := Server(t, lab.ServerOptions{Args: []string{
		"--tls-cert-file", filepath.Join(dir, "redis.crt"), "--tls-key-file", filepath.Join(dir, "redis.key"),
		"--tls-ca-cert-file", filepath.Join(dir, "ca.crt"), "--tls-auth-clients", "no",
	}, TLS: verify()})
	return s, ca, verify
}

// Sentinel starts a redis-sentinel (in a fresh t.TempDir() when o.Dir is
// empty) and stops it when the test ends.
func Sentinel(t testing.TB, o lab.SentinelOptions) *lab.Sentinel {
	t.Helper()
	requireBinary(t, o.Binary, "redis-sentinel", "redis-sentinel")
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	s, err := lab.StartSentinel(ctx, o)
	checkStartErr(t, "redis-sentinel", err)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("redis-sentinel %s log (%s):\n%s", s.Addr, s.LogPath(), s.LogTail(tailLines))
		}
		if err := s.Stop(); err != nil {
			t.Errorf("labtest: stop redis-sentinel %s: %v", s.Addr, err)
		}
	})
	return s
}

// Group starts a Sentinel-managed group (in a fresh t.TempDir() when o.Dir
// is empty) and stops it when the test ends.
func Group(t testing.TB, o lab.GroupOptions) *lab.Group {
	t.Helper()
	requireBinary(t, "", "redis-server", "redis-server")
	requireBinary(t, "", "redis-sentinel", "redis-sentinel")
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	g, err := lab.StartGroup(ctx, o)
	checkStartErr(t, "group", err)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("group %s logs:\n%s", g.Name, g.LogTails(tailLines))
		}
		if err := g.Stop(); err != nil {
			t.Errorf("labtest: stop group %s: %v", g.Name, err)
		}
	})
	return g
}

// Eventually polls cond every 10 ms until it returns nil; if timeout passes
// first it fails the test with cond's last error. Tests poll with this
// instead of sleeping.
func Eventually(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		err := cond()
		if err == nil {
			return
		}
		if !time.Now().Before(deadline) {
			t.Fatalf("condition not met within %v: %v", timeout, err)
		}
		<-tick.C
	}
}

// CommandCalls returns how many times node has executed cmd (lower case),
// from its own INFO commandstats: the way tests prove where commands went.
func CommandCalls(t testing.TB, node *lab.Server, cmd string) int {
	t.Helper()
	c := node.Client()
	defer c.Close()
	info, err := c.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatalf("INFO commandstats on %s: %v", node.Addr, err)
	}
	for _, l := range strings.Split(info, "\r\n") {
		if rest, ok := strings.CutPrefix(l, "cmdstat_"+cmd+":calls="); ok {
			n, _ := strconv.Atoi(rest[:strings.IndexByte(rest, ',')])
			return n
		}
	}
	return 0
}
