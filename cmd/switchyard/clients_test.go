package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	stdtls "crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pnats/switchyard/internal/lab"
	"github.com/pnats/switchyard/internal/lab/labtest"
	"github.com/pnats/switchyard/tls/tlstest"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap/zaptest"
)

// matrixTimeout bounds each client's phases.
const matrixTimeout = 60 * time.Second

// TestClientMatrix runs the connection guide's flow with real client
// libraries through Switchyard and its Sentinel facade, standard and
// Sentinel-aware, then fails the group over underneath with SENTINEL
// FAILOVER and has every client write and read again, starting while
// Switchyard holds commands for the failover. What each client wrote then
// must be on the promoted master.
//
// The clients run in parallel, each under its own key namespace. A
// missing interpreter or library skips that client locally and fails the
// test under CI=true, as labtest does for redis-server.
func TestClientMatrix(t *testing.T) {
	skipShort(t)
	started := time.Now()
	g := labtest.Group(t, lab.GroupOptions{Name: "platform-kv-master", Replicas: 2, Sentinels: 3})
	// With a read port, which the facade names as the group's replica:
	// redis-py's slave_for reads through it.
	// And with TLS beside plain text, on the group and on the facade:
	// clients that speak TLS to Sentinel reach the TLS port through it.
	certs := matrixCerts(t)
	grp := runGroup(t, g, func(gc *groupConfig) {
		gc.Name, gc.ReadListen = "platform-kv", "127.0.0.1:0"
		gc.TLS = certs.listener()
	})
	fac := runFacadeConfig(t, &facadeConfig{Listen: "127.0.0.1:0", TLS: certs.listener()}, grp)
	host, port, _ := net.SplitHostPort(grp.l.Addr().String())
	_, readPort, _ := net.SplitHostPort(grp.readL.Addr().String())
	_, tlsPort, _ := net.SplitHostPort(grp.tlsL.Addr().String())
	env := []string{
		"REDIS_HOST=" + host,
		"REDIS_PORT=" + port,
		"REDIS_SENTINEL_HOSTS=" + fac.addr,
		"REDIS_SENTINEL_MASTER=" + g.Name,
		"REDIS_SOCKET_TIMEOUT=0.1", // the guide's value
		"MATRIX_READ_PORT=" + readPort,
		"MATRIX_TLS_SENTINEL=" + fac.tlsAddr,
		"MATRIX_TLS_PORT=" + tlsPort,
		"MATRIX_TLS_CA=" + certs.caFile,
	}

	var clients []*matrixClient
	skipped := map[string]string{}
	for _, spec := range scriptClients(t) {
		if reason := spec.check(); reason != "" {
			skipped[spec.name] = reason
			continue
		}
		clients = append(clients, startScript(t, spec, env))
	}
	clients = append(clients, startGoRedis(t, "go-redis", grp.l.Addr().String(), fac, certs.config(t), g.Name))
	t.Logf("setup %v", time.Since(started).Round(time.Millisecond))

	for _, c := range clients {
		select {
		case <-c.ready:
		case err := <-c.done:
			c.done <- err
		case <-time.After(matrixTimeout):
			c.done <- fmt.Errorf("no READY within %v", matrixTimeout)
		}
	}
	old := g.Master
	fo := time.Now()
	// Phase 2 starts as soon as Switchyard holds commands for the
	// failover, so the clients' commands meet the hold (and their own
	// timeouts); failing that, once the failover is over.
	foDone := make(chan struct{})
	heldAt := make(chan time.Duration, 1)
	go func() {
		for {
			select {
			case <-foDone:
				return
			default:
			}
			if grp.srv.Stats().Held {
				heldAt <- time.Since(fo)
				for _, c := range clients {
					c.proceed()
				}
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	newM, err := g.Failover(context.Background())
	close(foDone)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range clients {
		c.proceed()
	}
	select {
	case d := <-heldAt:
		t.Logf("SENTINEL FAILOVER: %s → %s in %v; phase 2 started when Switchyard began holding, after %v",
			old.Addr, newM.Addr, time.Since(fo).Round(time.Millisecond), d.Round(time.Millisecond))
	default:
		t.Logf("SENTINEL FAILOVER: %s → %s in %v; no hold seen, phase 2 started after it",
			old.Addr, newM.Addr, time.Since(fo).Round(time.Millisecond))
	}
	for _, c := range clients {
		c := c
		t.Run(c.name, func(t *testing.T) {
			var err error
			select {
			case err = <-c.done:
			case <-time.After(matrixTimeout):
				err = errors.New("phase 2 did not finish")
			}
			for _, l := range c.lines() {
				t.Log(l)
			}
			if err != nil {
				t.Fatalf("%v\n%s", err, c.stderr())
			}
			modes := map[string]bool{}
			for _, p := range c.phase2() {
				modes[p.mode] = true
				if v, err := getOn(newM, p.key); v != "after" {
					t.Errorf("%s: %s = %q on the promoted master %s (%v)", p.mode, p.key, v, newM.Addr, err)
				}
			}
			if tlsClients[c.name] && !modes["sentinel-tls"] {
				t.Errorf("no sentinel-tls mode ran: the client did not go through the facade's TLS listener")
			}
		})
	}
	for name, reason := range skipped {
		t.Run(name, func(t *testing.T) { missingClient(t, reason) })
	}
	if addr, _, _ := grp.srv.Master(); addr != newM.Addr {
		t.Errorf("Switchyard follows %s, Sentinels promoted %s", addr, newM.Addr)
	}
	t.Logf("matrix %v", time.Since(started).Round(time.Millisecond))
}

func getOn(s *lab.Server, key string) (string, error) {
	c := s.Client()
	defer c.Close()
	return c.Get(context.Background(), key).Result()
}

// missingClient skips, or under CI=true fails: CI must run every client.
func missingClient(t *testing.T, reason string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatal(reason + " (CI=true: not skipping; .ci/run installs the clients)")
	}
	t.Skip(reason)
}

// runFacade serves the Sentinel facade for grp on a free loopback port,
// as serve does next to the admin server.
func runFacade(t *testing.T, grps ...*group) *facadeRunner {
	t.Helper()
	return runFacadeConfig(t, &facadeConfig{Listen: "127.0.0.1:0"}, grps...)
}

// runFacadeConfig is runFacade with the facade's own configuration.
func runFacadeConfig(t *testing.T, fc *facadeConfig, grps ...*group) *facadeRunner {
	t.Helper()
	cfg := &config{SentinelFacade: fc}
	for _, g := range grps {
		cfg.Groups = append(cfg.Groups, g.cfg)
	}
	r, err := startFacade(cfg, func() []*group { return grps }, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

// scriptClient is one client library driven by a script in
// testdata/clients.
type scriptClient struct {
	name  string
	check func() string // "" when runnable, else why not
	cmd   func() *exec.Cmd
}

func scriptClients(t *testing.T) []scriptClient {
	dir, _ := filepath.Abs("testdata/clients")
	// Debian's python3-redis is installed for /usr/bin/python3, which
	// may not be the first python3 on PATH (pyenv, venvs).
	python := "/usr/bin/python3"
	var nodeModules string
	return []scriptClient{
		{
			name: "redis-py",
			check: func() string {
				return probe("redis-py: apt-get install python3-redis", python, "-c", "import redis")
			},
			cmd: func() *exec.Cmd { return exec.Command(python, filepath.Join(dir, "python_redis.py")) },
		},
		{
			name: "redis-rb",
			check: func() string {
				return probe("redis-rb: apt-get install ruby-redis", "ruby", "-e", "require 'redis'")
			},
			cmd: func() *exec.Cmd { return exec.Command("ruby", filepath.Join(dir, "ruby_redis.rb")) },
		},
		{
			name: "predis",
			check: func() string {
				return probe("Predis: apt-get install php-cli php-predis", "php", "-r", "require 'Predis/autoload.php';")
			},
			cmd: func() *exec.Cmd { return exec.Command("php", filepath.Join(dir, "php_predis.php")) },
		},
		{
			name: "ioredis",
			check: func() string {
				if r := probe("ioredis: apt-get install nodejs npm", "node", "--version"); r != "" {
					return r
				}
				var err error
				if nodeModules, err = installIORedis(t, filepath.Join(dir, "node")); err != nil {
					return "ioredis: npm ci: " + err.Error()
				}
				return ""
			},
			cmd: func() *exec.Cmd {
				c := exec.Command("node", filepath.Join(dir, "node", "ioredis.js"))
				c.Env = append(c.Env, "NODE_PATH="+nodeModules)
				return c
			},
		},
	}
}

// probe runs a command that shows whether a client is installed.
func probe(missing string, name string, args ...string) string {
	if _, err := exec.LookPath(name); err != nil {
		return missing + " (" + name + " not found)"
	}
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		return fmt.Sprintf("%s (%v: %s)", missing, err, strings.TrimSpace(string(out)))
	}
	return ""
}

// installIORedis runs npm ci for testdata/clients/node's lock file into a
// cache directory named after the lock file's hash, once, and returns its
// node_modules.
func installIORedis(t *testing.T, src string) (string, error) {
	lock, err := os.ReadFile(filepath.Join(src, "package-lock.json"))
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(lock)
	base, err := os.UserCacheDir()
	if err != nil {
		base = os.TempDir()
	}
	dir := filepath.Join(base, "switchyard-test", "ioredis-"+hex.EncodeToString(sum[:8]))
	mods := filepath.Join(dir, "node_modules")
	if _, err := os.Stat(filepath.Join(mods, "ioredis", "package.json")); err == nil {
		return mods, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	for _, f := range []string{"package.json", "package-lock.json"} {
		b, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			return "", err
		}
	}
	start := time.Now()
	cmd := exec.Command("npm", "ci", "--no-audit", "--no-fund", "--loglevel=error")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("%v: %s", err, out)
	}
	t.Logf("npm ci ioredis into %s in %v", dir, time.Since(start).Round(time.Millisecond))
	return mods, nil
}

// matrixClient is one client running the two phases.
type matrixClient struct {
	name    string
	ready   chan struct{} // closed after phase 1
	done    chan error    // the outcome, once; capacity 1
	proceed func()        // start phase 2

	mu     sync.Mutex
	out    []string // stdout lines
	errOut strings.Builder
}

func (c *matrixClient) addLine(l string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.out = append(c.out, l)
}

func (c *matrixClient) lines() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.out...)
}

func (c *matrixClient) Write(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.errOut.Write(b)
}

func (c *matrixClient) stderr() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.errOut.String()
}

type phase2Result struct{ mode, key string }

var phase2Line = regexp.MustCompile(`^phase2 (\S+) key=(\S+) `)

// phase2 lists what the client wrote after the failover.
func (c *matrixClient) phase2() []phase2Result {
	var out []phase2Result
	for _, l := range c.lines() {
		if m := phase2Line.FindStringSubmatch(l); m != nil {
			out = append(out, phase2Result{m[1], m[2]})
		}
	}
	return out
}

// startScript runs spec's script with env; the process is killed at the
// end of the test if it is still running.
func startScript(t *testing.T, spec scriptClient, env []string) *matrixClient {
	t.Helper()
	c := &matrixClient{name: spec.name, ready: make(chan struct{}), done: make(chan error, 1)}
	cmd := spec.cmd()
	cmd.Env = append(append(os.Environ(), env...), cmd.Env...)
	cmd.Env = append(cmd.Env, "MATRIX_PREFIX=myapp:"+spec.name)
	cmd.Stderr = c
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	c.proceed = func() { once.Do(func() { io.WriteString(stdin, "go\n") }) }
	go func() {
		sc := bufio.NewScanner(stdout)
		sawDone := false
		for sc.Scan() {
			l := sc.Text()
			c.addLine(l)
			switch l {
			case "READY":
				close(c.ready)
			case "DONE":
				sawDone = true
			}
		}
		err := cmd.Wait()
		if err == nil && !sawDone {
			err = errors.New("exited without DONE")
		}
		c.done <- err
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		stdin.Close()
	})
	return c
}

// tlsClients are the matrix's clients that also run a sentinel-tls mode:
// TLS to the facade's TLS listener, then to the group's TLS port.
var tlsClients = map[string]bool{"go-redis": true, "redis-py": true, "ioredis": true}

// matrixTLS is the matrix's certificate: a CA, and a server certificate
// for 127.0.0.1 that the group and the facade both present.
type matrixTLS struct{ caFile, certFile, keyFile string }

func matrixCerts(t *testing.T) matrixTLS {
	ca := tlstest.NewCA(t, "matrix CA")
	dir := t.TempDir()
	crt, key := ca.Issue(t, "switchyard", []string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)}, false)
	tlstest.WriteFiles(t, dir, map[string][]byte{"ca.crt": ca.CertPEM, "tls.crt": crt, "tls.key": key})
	return matrixTLS{filepath.Join(dir, "ca.crt"), filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")}
}

func (m matrixTLS) listener() *listenerTLS {
	return &listenerTLS{Listen: "127.0.0.1:0", CertFile: m.certFile, KeyFile: m.keyFile}
}

// config is a client's TLS configuration trusting the CA.
func (m matrixTLS) config(t *testing.T) *stdtls.Config {
	b, err := os.ReadFile(m.caFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(b)
	return &stdtls.Config{RootCAs: roots, MinVersion: stdtls.VersionTLS12}
}

// startGoRedis runs the guide's go-redis flow in-process: NewClient on
// Switchyard's port, and NewFailoverClient through the facade, in plain
// text and with TLS (tlsCfg) to the facade's TLS listener.
func startGoRedis(t *testing.T, name, addr string, fac *facadeRunner, tlsCfg *stdtls.Config, master string) *matrixClient {
	c := &matrixClient{name: name, ready: make(chan struct{}), done: make(chan error, 1)}
	go2 := make(chan struct{})
	var once sync.Once
	c.proceed = func() { once.Do(func() { close(go2) }) }
	standard := redis.NewClient(&redis.Options{Addr: addr})
	failover := redis.NewFailoverClient(&redis.FailoverOptions{MasterName: master, SentinelAddrs: []string{fac.addr}})
	failoverTLS := redis.NewFailoverClient(&redis.FailoverOptions{MasterName: master, SentinelAddrs: []string{fac.tlsAddr}, TLSConfig: tlsCfg})
	t.Cleanup(func() {
		c.proceed()
		standard.Close()
		failover.Close()
		failoverTLS.Close()
	})
	modes := []struct {
		mode string
		c    *redis.Client
	}{{"sentinel", failover}, {"sentinel-tls", failoverTLS}, {"standard", standard}}
	prefix := "myapp:" + name
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*matrixTimeout)
		defer cancel()
		for _, m := range modes {
			if err := goRedisFlow(ctx, m.c, prefix+":"+m.mode); err != nil {
				c.done <- fmt.Errorf("%s: %w", m.mode, err)
				return
			}
			c.addLine("ok " + m.mode)
		}
		close(c.ready)
		<-go2
		for _, m := range modes {
			start := time.Now()
			key := prefix + ":" + m.mode + ":after"
			errs, err := retryGo(ctx, func() error { return m.c.Set(ctx, key, "after", 0).Err() })
			if err == nil {
				var v string
				var n int
				n, err = retryGo(ctx, func() (err error) { v, err = m.c.Get(ctx, key).Result(); return err })
				errs += n
				if err == nil && v != "after" {
					err = fmt.Errorf("GET %s = %q", key, v)
				}
			}
			if err != nil {
				c.done <- fmt.Errorf("%s after the failover: %w", m.mode, err)
				return
			}
			c.addLine(fmt.Sprintf("phase2 %s key=%s errors=%d ms=%d", m.mode, key, errs, time.Since(start).Milliseconds()))
		}
		c.done <- nil
	}()
	return c
}

// goRedisFlow is the connection guide's Go example.
func goRedisFlow(ctx context.Context, c *redis.Client, k string) error {
	if pong, err := c.Ping(ctx).Result(); err != nil || pong != "PONG" {
		return fmt.Errorf("PING: %q %v", pong, err)
	}
	if err := c.Set(ctx, k+":test-key", "test-value", 0).Err(); err != nil {
		return err
	}
	if v, err := c.Get(ctx, k+":test-key").Result(); err != nil || v != "test-value" {
		return fmt.Errorf("GET: %q %v", v, err)
	}
	if err := c.SetEx(ctx, k+":cache:result", "data", time.Hour).Err(); err != nil {
		return err
	}
	if ttl, err := c.TTL(ctx, k+":cache:result").Result(); err != nil || ttl <= 0 || ttl > time.Hour {
		return fmt.Errorf("TTL: %v %v", ttl, err)
	}
	if err := c.Set(ctx, k+":user:123", "user-data", 0).Err(); err != nil {
		return err
	}
	if v, err := c.Get(ctx, k+":user:123").Result(); err != nil || v != "user-data" {
		return fmt.Errorf("GET: %q %v", v, err)
	}
	return nil
}

// retryGo retries f on errors other than a wrong reply for 30 s, like the
// scripts, and counts the retries.
func retryGo(ctx context.Context, f func() error) (int, error) {
	deadline := time.Now().Add(30 * time.Second)
	for n := 0; ; n++ {
		err := f()
		if err == nil || errors.Is(err, redis.Nil) || time.Now().After(deadline) || ctx.Err() != nil {
			return n, err
		}
		time.Sleep(100 * time.Millisecond)
	}
}
