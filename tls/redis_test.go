package tls

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pnats/switchyard/tls/tlstest"
)

// TestRedisTLS connects a Client to a real redis-server serving TLS only,
// through a loopback IP its certificate does not list, as happens with
// addresses from Sentinel.
func TestRedisTLS(t *testing.T) {
	bin := redisWithTLS(t)
	ca := tlstest.NewCA(t, "redis CA")
	dir := t.TempDir()
	redisCert, redisKey := ca.Issue(t, "redis", []string{"redis.internal"}, nil, false)
	tlstest.WriteFiles(t, dir, map[string][]byte{"redis.crt": redisCert, "redis.key": redisKey, "ca.pem": ca.CertPEM})
	pairFiles(t, ca, dir, "client.crt", "client.key", true)
	otherCA := tlstest.NewCA(t, "other CA")
	pairFiles(t, otherCA, dir, "stranger.crt", "stranger.key", true)

	// The readiness probe needs a client certificate for "yes".
	probe, err := NewClient(ClientConfig{
		CAFile: filepath.Join(dir, "ca.pem"), ServerName: "redis.internal",
		CertFile: filepath.Join(dir, "client.crt"), KeyFile: filepath.Join(dir, "client.key"),
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	addrs := map[string]string{}
	for _, mode := range []string{"optional", "yes"} {
		addrs[mode] = startTLSRedis(t, bin, filepath.Join(dir, mode), probe,
			"--tls-cert-file", filepath.Join(dir, "redis.crt"),
			"--tls-key-file", filepath.Join(dir, "redis.key"),
			"--tls-ca-cert-file", filepath.Join(dir, "ca.pem"),
			"--tls-auth-clients", mode)
	}

	tests := []struct {
		mode       string // redis tls-auth-clients
		cert       string // client certificate file prefix, "" for none
		serverName string
		wantOK     bool
		errHas     string // if set, a refusal must say this
	}{
		{"optional", "", "redis.internal", true, ""},
		{"optional", "client", "redis.internal", true, ""},
		{"optional", "stranger", "redis.internal", false, ""},
		{"optional", "", "", false, "127.0.0.1"}, // verified against the dialled IP
		{"yes", "client", "redis.internal", true, ""},
		{"yes", "", "redis.internal", false, ""},
		{"yes", "stranger", "redis.internal", false, ""},
	}
	for _, tt := range tests {
		name := fmt.Sprintf("auth-clients %s/cert %q/ServerName %q", tt.mode, tt.cert, tt.serverName)
		t.Run(name, func(t *testing.T) {
			cfg := ClientConfig{CAFile: filepath.Join(dir, "ca.pem"), ServerName: tt.serverName}
			if tt.cert != "" {
				cfg.CertFile, cfg.KeyFile = filepath.Join(dir, tt.cert+".crt"), filepath.Join(dir, tt.cert+".key")
			}
			c, err := NewClient(cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			err = ping(addrs[tt.mode], c)
			switch {
			case tt.wantOK && err != nil:
				t.Fatalf("PING failed: %v", err)
			case !tt.wantOK && err == nil:
				t.Fatal("PING answered, want a refusal")
			case !tt.wantOK && !strings.Contains(err.Error(), tt.errHas):
				t.Fatalf("PING failed with %v, want an error containing %q", err, tt.errHas)
			}
		})
	}
}

// ping sends PING over TLS and wants +PONG.
func ping(addr string, c *Client) error {
	conn, err := dial(addr, c.Config())
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(ioTimeout)); err != nil {
		return err
	}
	if _, err := conn.Write([]byte("*1\r\n$4\r\nPING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "+PONG\r\n" {
		return fmt.Errorf("PING answered %q", line)
	}
	return nil
}

// redisWithTLS returns the redis-server binary, or skips the test if
// there is none or it was built without TLS.
func redisWithTLS(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server not found in PATH")
	}
	// A build with TLS parses the tls-* options and then exits because it
	// is told to listen nowhere; one without rejects the option.
	out, _ := exec.Command(bin, "--port", "0", "--tls-port", "0", "--tls-auth-clients", "optional").CombinedOutput()
	switch {
	case bytes.Contains(out, []byte("Configured to not listen anywhere")):
		return bin
	case bytes.Contains(out, []byte("Bad directive")), bytes.Contains(out, []byte("not supported")):
		t.Skipf("%s was built without TLS support: %s", bin, lastLine(out))
	}
	t.Fatalf("cannot tell whether %s supports TLS; it said:\n%s", bin, out)
	return ""
}

// startTLSRedis starts redis-server listening on TLS only, on a free
// loopback port, and stops it when the test ends. lab.StartServer cannot
// be used here: it checks readiness over plain TCP.
func startTLSRedis(t *testing.T, bin, dir string, probe *Client, tlsArgs ...string) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	// The port is picked by listening and closing, so another process may
	// take it before redis binds it; then redis exits and we try another.
	for attempt := 1; ; attempt++ {
		port := freePort(t)
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		logFile := filepath.Join(dir, "redis.log")
		args := append([]string{
			"--port", "0", "--tls-port", strconv.Itoa(port), "--bind", "127.0.0.1",
			"--dir", dir, "--logfile", logFile, "--daemonize", "no",
			"--save", "", "--appendonly", "no", "--protected-mode", "no",
		}, tlsArgs...)
		cmd := exec.Command(bin, args...)
		cmd.Dir = dir
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }() // ends when the process does
		t.Cleanup(func() { stopProcess(t, cmd, exited) })

		err := waitRedisTLS(addr, exited, probe)
		if err == nil {
			return addr
		}
		log, _ := os.ReadFile(logFile)
		if bytes.Contains(log, []byte("Address already in use")) && attempt < 3 {
			continue
		}
		t.Fatalf("redis-server on %s not ready: %v\nlog:\n%s", addr, err, log)
	}
}

// waitRedisTLS polls addr with TLS PINGs until one is answered, the
// process exits, or ioTimeout passes.
func waitRedisTLS(addr string, exited <-chan struct{}, probe *Client) error {
	deadline := time.Now().Add(ioTimeout)
	for {
		select {
		case <-exited:
			return fmt.Errorf("redis-server exited")
		default:
		}
		err := ping(addr, probe)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// stopProcess sends SIGTERM, and SIGKILL if the process has not exited
// after 10s, and waits for it to be reaped.
func stopProcess(t *testing.T, cmd *exec.Cmd, exited <-chan struct{}) {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
		return
	case <-time.After(10 * time.Second):
	}
	t.Errorf("redis-server pid %d ignored SIGTERM; killing it", cmd.Process.Pid)
	_ = cmd.Process.Kill()
	<-exited
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func lastLine(b []byte) string {
	s := strings.TrimSpace(string(b))
	return s[strings.LastIndexByte(s, '\n')+1:]
}
