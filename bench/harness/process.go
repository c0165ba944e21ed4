package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	// stopGrace is how long stop waits after SIGTERM before SIGKILL.
	stopGrace = 5 * time.Second
	// pollInterval is how often readiness checks are repeated.
	pollInterval = 20 * time.Millisecond
)

// child is one process the harness started (switchyard, haproxy,
// nutcracker). Its stdout and stderr go to logPath. It runs in its own
// process group and gets SIGKILL if the harness dies without stopping it.
type child struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed once the process has been reaped
	err     error         // Wait's result; valid after done is closed
}

// startChild starts bin in dir. env nil means the harness's environment.
func startChild(name, dir string, env []string, bin string, args ...string) (*child, error) {
	logPath := filepath.Join(dir, name+".log")
	f, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("%s: open log: %w", name, err)
	}
	defer f.Close() // the child has its own descriptor

	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = childAttr()
	onSpawnThread(func() { err = cmd.Start() })
	if err != nil {
		return nil, fmt.Errorf("%s: start %s: %w", name, bin, err)
	}
	c := &child{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		close(c.done)
	}()
	return c, nil
}

func (c *child) pid() int { return c.cmd.Process.Pid }

func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// exitError describes how the process ended; call it only after exited.
func (c *child) exitError() error {
	if c.err == nil {
		return fmt.Errorf("%s exited with status 0", c.name)
	}
	return fmt.Errorf("%s exited: %w", c.name, c.err)
}

// stop sends SIGTERM to the process group, and SIGKILL after stopGrace.
// It returns once the process has been reaped; it is idempotent.
func (c *child) stop() error {
	if c == nil || c.exited() {
		return nil
	}
	_ = syscall.Kill(-c.pid(), syscall.SIGTERM)
	t := time.NewTimer(stopGrace)
	defer t.Stop()
	select {
	case <-c.done:
	case <-t.C:
		_ = syscall.Kill(-c.pid(), syscall.SIGKILL)
		<-c.done
		return fmt.Errorf("%s: did not stop within %v of SIGTERM; killed", c.name, stopGrace)
	}
	return nil
}

// withLog appends the last lines of the child's log to err.
func (c *child) withLog(err error) error {
	b, _ := os.ReadFile(c.logPath)
	return fmt.Errorf("%w\n--- %s (tail) ---\n%s", err, c.logPath, lastLines(string(b), 20))
}

// childAttr puts a child in its own process group (so Ctrl-C in the
// terminal reaches only the harness, which then stops the child in order)
// and asks the kernel to SIGKILL it if the harness dies first.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// spawnThread runs every process start on one locked OS thread. Linux
// delivers Pdeathsig when the thread that forked the child exits, and Go
// may retire threads, which would kill a healthy child at a random moment.
var spawnThread struct {
	once sync.Once
	reqs chan func()
}

func onSpawnThread(f func()) {
	spawnThread.once.Do(func() {
		spawnThread.reqs = make(chan func())
		go func() {
			runtime.LockOSThread() // never unlocked: the thread lives as long as the harness
			for f := range spawnThread.reqs {
				f()
			}
		}()
	})
	done := make(chan struct{})
	spawnThread.reqs <- func() { defer close(done); f() }
	<-done
}

// poll calls f every pollInterval until it reports done, ctx ends or
// timeout passes; the last error f returned is part of the timeout error.
func poll(ctx context.Context, timeout time.Duration, f func() (done bool, err error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	var last error
	for {
		done, err := f()
		if done {
			return err
		}
		last = err
		select {
		case <-ctx.Done():
			if last == nil {
				last = errors.New("no answer")
			}
			return fmt.Errorf("gave up after %v: %w (last: %v)", timeout, ctx.Err(), last)
		case <-t.C:
		}
	}
}

// waitPONG waits until addr answers PING with +PONG, failing early if c
// (when not nil) exits.
func waitPONG(ctx context.Context, c *child, addr string, timeout time.Duration) error {
	return poll(ctx, timeout, func() (bool, error) {
		if c != nil && c.exited() {
			return true, c.exitError()
		}
		err := pingOnce(addr)
		return err == nil, err
	})
}

// pingOnce opens a connection to addr, sends PING and expects +PONG.
func pingOnce(addr string) error {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Second))
	return ping(conn)
}

// ping sends PING on conn, as a RESP array (twemproxy does not accept
// inline commands), and reads the reply.
func ping(conn net.Conn) error {
	if _, err := conn.Write([]byte("*1\r\n$4\r\nPING\r\n")); err != nil {
		return fmt.Errorf("PING: %w", err)
	}
	buf := make([]byte, 64)
	n, err := conn.Read(buf)
	if err != nil {
		return fmt.Errorf("PING: %w", err)
	}
	if got := string(buf[:n]); got != "+PONG\r\n" {
		return fmt.Errorf("PING: reply %.60q", got)
	}
	return nil
}

// handed remembers the ports freePort returned, so that two endpoints
// started one after the other never get the same one.
var handed = struct {
	mu    sync.Mutex
	ports map[int]bool
}{ports: map[int]bool{}}

// freePort returns a loopback port that is free right now, chosen below
// the kernel's ephemeral range so that the many client connections of the
// run cannot take it between the check and the listener's bind.
func freePort() (int, error) {
	handed.mu.Lock()
	defer handed.mu.Unlock()
	hi := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) > 0 {
			if n, err := strconv.Atoi(f[0]); err == nil && n > 12000 {
				hi = n
			}
		}
	}
	for range 200 {
		p := 10000 + rand.IntN(hi-10000)
		if handed.ports[p] {
			continue
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err == nil {
			_ = l.Close()
			handed.ports[p] = true
			return p, nil
		}
	}
	return 0, errors.New("no free loopback port found below the ephemeral range")
}
