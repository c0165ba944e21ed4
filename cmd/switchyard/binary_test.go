package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pnats/switchyard/internal/lab"
	"github.com/pnats/switchyard/internal/lab/labtest"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap/zaptest"
)

// buildBinary compiles switchyard once per test run.
var buildOnce struct {
	sync.Once
	path string
	err  error
}

func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "switchyard-bin-")
		if err != nil {
			buildOnce.err = err
			return
		}
		buildOnce.path = filepath.Join(dir, "switchyard")
		out, err := exec.Command("go", "build", "-o", buildOnce.path, ".").CombinedOutput()
		if err != nil {
			buildOnce.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildOnce.err != nil {
		t.Fatal(buildOnce.err)
	}
	return buildOnce.path
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// proc is a running switchyard binary with its output captured.
type proc struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  bytes.Buffer
	done chan error
}

func (p *proc) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.Write(b)
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

func startBinary(t *testing.T, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(binary(t), args...), done: make(chan error, 1)}
	p.cmd.Stdout, p.cmd.Stderr = p, p
	p.cmd.Env = append(os.Environ(), "SWITCHYARD_LOG_FORMAT=json")
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
	return p
}

// exitsCleanly waits for the process to exit 0 within 10 s of a SIGTERM.
func (p *proc) exitsCleanly(t *testing.T) {
	t.Helper()
	select {
	case err := <-p.done:
		p.done <- err // for the cleanup
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no exit within 10s of SIGTERM")
	}
}

func ping(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	c.Write([]byte("PING\r\n"))
	buf := make([]byte, 7)
	n, err := c.Read(buf)
	if err != nil || string(buf[:n]) != "+PONG\r\n" {
		return fmt.Errorf("PING via %s: %q %v", addr, buf[:n], err)
	}
	return nil
}

func TestBinaryReloadAndDrain(t *testing.T) {
	skipShort(t)
	rs := labtest.Server(t, lab.ServerOptions{Args: []string{"--enable-debug-command", "yes"}})
	a, b, fac, admin := freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t)
	cfgPath := filepath.Join(t.TempDir(), "switchyard.yaml")
	write := func(groups ...string) {
		cfg := "drain_timeout: 5s\nadmin_listen: '" + admin + "'\nsentinel_facade: {listen: '" + fac + "'}\ngroups:\n"
		for _, g := range groups {
			cfg += g
		}
		if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	groupA := fmt.Sprintf("  - {name: a, listen: '%s', upstream: '%s', facade_name: a-master}\n", a, rs.Addr)
	groupB := fmt.Sprintf("  - {name: b, listen: '%s', upstream: '%s', facade_name: b-master}\n", b, rs.Addr)
	write(groupA)
	p := startBinary(t, "-config", cfgPath)
	labtest.Eventually(t, 10*time.Second, func() error { return ping(a) })

	kept := dial(t, a)
	kept.send("PING\r\n")
	kept.expect("+PONG")

	// Add group b: a's client keeps its connection.
	write(groupA, groupB)
	p.cmd.Process.Signal(syscall.SIGHUP)
	labtest.Eventually(t, 10*time.Second, func() error { return ping(b) })
	kept.send("PING\r\n")
	kept.expect("+PONG")

	// A new announce address is the facade's alone: the facade names it at
	// once, and a's client keeps its connection (the group used to
	// restart for it).
	sc := redis.NewSentinelClient(&redis.Options{Addr: fac})
	defer sc.Close()
	write(strings.Replace(groupA, "}", ", announce: '203.0.113.9:6379'}", 1), groupB)
	p.cmd.Process.Signal(syscall.SIGHUP)
	labtest.Eventually(t, 10*time.Second, func() error {
		addr, err := sc.GetMasterAddrByName(context.Background(), "a-master").Result()
		if err != nil || net.JoinHostPort(addr[0], addr[1]) != "203.0.113.9:6379" {
			return fmt.Errorf("the facade names a-master at %v (%v)", addr, err)
		}
		return nil
	})
	kept.send("PING\r\n")
	kept.expect("+PONG")
	write(groupA, groupB)
	p.cmd.Process.Signal(syscall.SIGHUP)
	labtest.Eventually(t, 10*time.Second, func() error {
		addr, err := sc.GetMasterAddrByName(context.Background(), "a-master").Result()
		if err != nil || net.JoinHostPort(addr[0], addr[1]) != a {
			return fmt.Errorf("the facade names a-master at %v (%v), want %s again", addr, err, a)
		}
		return nil
	})
	kept.send("PING\r\n")
	kept.expect("+PONG")

	// An invalid file changes nothing.
	write(groupA, groupB, "  - {name: c, listen: 'not-an-address'}\n")
	p.cmd.Process.Signal(syscall.SIGHUP)
	labtest.Eventually(t, 10*time.Second, func() error {
		if !strings.Contains(p.output(), "reload failed") {
			return errors.New("no 'reload failed' in the log")
		}
		return nil
	})
	if err := ping(b); err != nil {
		t.Fatalf("after a failed reload: %v", err)
	}

	// A group that cannot start (its port is taken) is reported, and the
	// others keep serving.
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	write(groupA, groupB, fmt.Sprintf("  - {name: c, listen: '%s', upstream: '%s', facade_name: c-master}\n", taken.Addr(), rs.Addr))
	p.cmd.Process.Signal(syscall.SIGHUP)
	labtest.Eventually(t, 10*time.Second, func() error {
		if !strings.Contains(p.output(), "some groups did not start") {
			return errors.New("no 'some groups did not start' in the log")
		}
		return nil
	})
	for _, addr := range []string{a, b} {
		if err := ping(addr); err != nil {
			t.Fatalf("after a group failed to start: %v", err)
		}
	}
	// The facade does not send clients to the port it could not take.
	if addr, err := sc.GetMasterAddrByName(context.Background(), "c-master").Result(); !errors.Is(err, redis.Nil) {
		t.Fatalf("the facade names c-master, which did not start, at %v (%v)", addr, err)
	}
	if _, metrics := get(t, "http://"+admin+"/metrics"); strings.Contains(metrics, `group="c"`) {
		t.Fatal("/metrics has series for group c, which did not start")
	}

	// A changed group that cannot start (its new port is taken) keeps its
	// previous configuration, and its clients their connections.
	keptB := dial(t, b)
	keptB.send("PING\r\n")
	keptB.expect("+PONG")
	write(groupA, fmt.Sprintf("  - {name: b, listen: '%s', upstream: '%s', facade_name: b-master, announce: '203.0.113.5:6380'}\n", taken.Addr(), rs.Addr))
	p.cmd.Process.Signal(syscall.SIGHUP)
	labtest.Eventually(t, 10*time.Second, func() error {
		if !strings.Contains(p.output(), "group kept its previous configuration") {
			return errors.New("no 'group kept its previous configuration' in the log")
		}
		return ping(b)
	})
	keptB.send("PING\r\n")
	keptB.expect("+PONG")
	// The Sentinel facade names the address b still serves, not the new
	// announce address of the configuration that did not start.
	if addr, err := sc.GetMasterAddrByName(context.Background(), "b-master").Result(); err != nil || net.JoinHostPort(addr[0], addr[1]) != b {
		t.Fatalf("the facade names b-master at %v (%v) after its reload failed, want %s", addr, err, b)
	}
	write(groupA, groupB) // what runs again
	p.cmd.Process.Signal(syscall.SIGHUP)

	// Remove group b.
	write(groupA)
	p.cmd.Process.Signal(syscall.SIGHUP)
	labtest.Eventually(t, 10*time.Second, func() error {
		if ping(b) == nil {
			return errors.New("group b still serving")
		}
		return nil
	})
	kept.send("PING\r\n")
	kept.expect("+PONG")

	// SIGTERM: the command in flight is answered, then the process exits 0.
	kept.send("DEBUG SLEEP 1\r\n")
	awaitAsleep(t, rs.Addr)
	if code, body := get(t, "http://"+admin+"/readyz"); code != 200 {
		t.Fatalf("/readyz before SIGTERM: %d %s", code, body)
	}
	start := time.Now()
	p.cmd.Process.Signal(syscall.SIGTERM)
	// While the command in flight drains, the instance is not ready.
	labtest.Eventually(t, 5*time.Second, func() error {
		if code, body := get(t, "http://"+admin+"/readyz"); code != 503 || !strings.Contains(body, "draining") {
			return fmt.Errorf("/readyz while draining: %d %s", code, body)
		}
		return nil
	})
	kept.expect("+OK")
	p.exitsCleanly(t)
	if d := time.Since(start); d > 4*time.Second {
		t.Fatalf("drain took %v", d)
	}
}

// awaitAsleep returns once the Redis at addr has started a DEBUG SLEEP:
// Redis is single-threaded, so it stops answering a direct PING.
func awaitAsleep(t *testing.T, addr string) {
	t.Helper()
	labtest.Eventually(t, 5*time.Second, func() error {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(100 * time.Millisecond))
		c.Write([]byte("PING\r\n"))
		if _, err := c.Read(make([]byte, 16)); err == nil {
			return errors.New("Redis still answering: DEBUG SLEEP not started")
		}
		return nil
	})
}

// reloadable runs the binary with one group a (extra adds to its
// settings) in front of a Redis that takes DEBUG SLEEP, and returns a
// function that rewrites the file with another hold_timeout: a change
// that replaces the group.
func reloadable(t *testing.T, extra string) (p *proc, rs *lab.Server, a string, write func(hold string)) {
	t.Helper()
	rs = labtest.Server(t, lab.ServerOptions{Args: []string{"--enable-debug-command", "yes"}})
	a = freeAddr(t)
	cfgPath := filepath.Join(t.TempDir(), "switchyard.yaml")
	write = func(hold string) {
		cfg := fmt.Sprintf("drain_timeout: 10s\ngroups:\n  - {name: a, listen: '%s', %supstream: '%s', hold_timeout: %s}\n", a, extra, rs.Addr, hold)
		if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("2s")
	p = startBinary(t, "-config", cfgPath)
	labtest.Eventually(t, 10*time.Second, func() error { return ping(a) })
	return p, rs, a, write
}

// A reload that changes a group hands its port to the new configuration
// without refusing a connection, even while the old one drains a slow
// command, and the connections that arrive meanwhile are served by the
// new one.
func TestBinaryReloadKeepsPortOpen(t *testing.T) {
	skipShort(t)
	ra := freeAddr(t)
	p, rs, a, write := reloadable(t, "read_listen: '"+ra+"', ")

	// A command in flight keeps the old configuration draining for a
	// second after the reload.
	busy := dial(t, a)
	busy.send("DEBUG SLEEP 1\r\n")
	awaitAsleep(t, rs.Addr)
	write("3s")
	p.cmd.Process.Signal(syscall.SIGHUP)

	answered := make(chan struct{})
	go func() {
		defer close(answered)
		busy.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		busy.br.ReadString('\n')
	}()
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for dials := 0; ; dials++ {
		select {
		case <-answered:
		default:
			for _, addr := range []string{a, ra} {
				c, err := net.DialTimeout("tcp", addr, time.Second)
				if err != nil {
					t.Fatalf("dial %d to %s during the reload: %v", dials, addr, err)
				}
				conns = append(conns, c)
			}
			time.Sleep(2 * time.Millisecond) // pace the dials: what is tested is that none is refused
			continue
		}
		if dials < 10 {
			t.Fatalf("only %d dials while the old configuration drained", dials)
		}
		break
	}
	labtest.Eventually(t, 5*time.Second, func() error {
		if n := strings.Count(p.output(), `"msg":"serving"`); n != 2 || !strings.Contains(p.output(), "configuration reloaded") {
			return fmt.Errorf("%d 'serving' lines in the log, and no 'configuration reloaded'", n)
		}
		return nil
	})
	// The last connections, made after the drain, are the new group's.
	for _, c := range conns[len(conns)-2:] {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		c.Write([]byte("PING\r\n"))
		buf := make([]byte, 7)
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "+PONG\r\n" {
			t.Fatalf("PING on a connection made during the reload: %q %v", buf, err)
		}
	}
}

// Signals are not kept waiting while a reload's old groups drain: the
// reload is done, and more SIGHUPs and a SIGTERM are taken, while the
// replaced group still drains a slow command; the SIGTERM then stops the
// process once that command is answered. The drain used to block the
// signal loop, and a SIGTERM after two more SIGHUPs was lost.
func TestBinaryTermDuringReloadDrain(t *testing.T) {
	skipShort(t)
	p, rs, a, write := reloadable(t, "")
	busy := dial(t, a)
	busy.send("DEBUG SLEEP 2\r\n")
	awaitAsleep(t, rs.Addr)
	for i, hold := range []string{"3s", "4s", "5s"} {
		write(hold)
		p.cmd.Process.Signal(syscall.SIGHUP)
		labtest.Eventually(t, 5*time.Second, func() error {
			if n := strings.Count(p.output(), "configuration reloaded"); n < i+1 {
				return fmt.Errorf("%d reloads done, want %d", n, i+1)
			}
			return nil
		})
	}
	// Redis still sleeps: the first replaced group still drains.
	c, err := net.Dial("tcp", rs.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(100 * time.Millisecond))
	c.Write([]byte("PING\r\n"))
	if _, err := c.Read(make([]byte, 16)); err == nil {
		t.Fatal("the reloads were done only after the drain")
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	// A SIGHUP during the shutdown's drain is not the second signal
	// that means "exit at once".
	labtest.Eventually(t, 5*time.Second, func() error {
		if !strings.Contains(p.output(), `"msg":"draining"`) {
			return errors.New("not draining yet")
		}
		return nil
	})
	p.cmd.Process.Signal(syscall.SIGHUP)
	busy.expect("+OK")
	p.exitsCleanly(t)
}

func TestBinaryCheckConfigAndVersion(t *testing.T) {
	out, err := exec.Command(binary(t), "version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "switchyard ") {
		t.Fatalf("version: %q %v", out, err)
	}
	out, err = exec.Command(binary(t), "-h").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "check-config  validate") || !strings.Contains(string(out), "-config") {
		t.Fatalf("-h: %q %v", out, err)
	}
	cmd := exec.Command(binary(t), "check-config", "-config", "../../deploy/switchyard.example.yaml")
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "configuration OK: 2 group(s)") {
		t.Fatalf("check-config on the example: %q %v", out, err)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("groups:\n  - {name: a, listen: '127.0.0.1:1', upstream: 'x:1', pool_size: -3}\n"), 0o600)
	out, err = exec.Command(binary(t), "check-config", "-config", bad).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "pool_size=-3") {
		t.Fatalf("check-config on a bad file: %q %v", out, err)
	}
	noAdmin := filepath.Join(t.TempDir(), "noadmin.yaml")
	os.WriteFile(noAdmin, []byte("groups:\n  - {name: a, listen: '127.0.0.1:1', upstream: 'x:1'}\n"), 0o600)
	out, err = exec.Command(binary(t), "status", "-config", noAdmin).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "no admin_listen") {
		t.Fatalf("status with no admin_listen: %q %v", out, err)
	}
}

// A group that cannot bind its port stops start-up with an error naming
// the group, not a crash.
func TestBinaryStartupPortTaken(t *testing.T) {
	skipShort(t)
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	cfgPath := filepath.Join(t.TempDir(), "switchyard.yaml")
	cfg := fmt.Sprintf("groups:\n  - {name: a, listen: '%s', upstream: '127.0.0.1:1'}\n", taken.Addr())
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startBinary(t, "-config", cfgPath)
	select {
	case err := <-p.done:
		p.done <- err // for the cleanup
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 {
			t.Fatalf("exit: %v, want status 1", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("still running with its port taken")
	}
	out := p.output()
	if !strings.Contains(out, `group "a"`) || !strings.Contains(out, "address already in use") || strings.Contains(out, "panic") {
		t.Fatalf("output does not name the group and the cause, or shows a crash:\n%s", out)
	}
}

// A group that fails to start leaves nothing running: a fixed upstream's
// master is set before the ports are bound, which starts the proxy's
// connections to it, and a failed reload must not leak them each time.
func TestFailedGroupLeavesNoConnections(t *testing.T) {
	skipShort(t)
	rs := labtest.Server(t, lab.ServerOptions{})
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	for i := 0; i < 3; i++ {
		if _, err := newGroup(groupConfig{Name: "a", Listen: taken.Addr().String(), Upstream: rs.Addr}, zaptest.NewLogger(t), nil, nil); err == nil {
			t.Fatal("a group on a taken port started")
		}
	}
	// Whatever a failed start dialled is closed; nothing dials later.
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); {
		if n := proxyConns(t, rs); n != 0 {
			t.Fatalf("%d proxy connections to Redis after failed starts", n)
		}
		time.Sleep(20 * time.Millisecond) // between polls
	}
}
