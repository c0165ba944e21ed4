package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	// stopGrace is how long stop waits after SIGTERM before SIGKILL.
	stopGrace = 5 * time.Second
	// pollInterval is how often readiness conditions are re-checked.
	pollInterval = 20 * time.Millisecond
)

// child is one proxy process the tool started (switchyard or haproxy). Its
// stdout and stderr go to logPath. It runs in its own process group, so
// that Ctrl-C in the terminal reaches only this program, which then stops
// the child in order; and it gets SIGKILL from the kernel if this program
// dies without stopping it (parent-death signal).
type child struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed once the process has been reaped
	err     error         // Wait's result; valid after done is closed
}

// startChild starts bin with args in dir, logging to dir/name.log.
func startChild(name, dir, bin string, args ...string) (*child, error) {
	logPath := filepath.Join(dir, name+".log")
	f, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("%s: open log: %w", name, err)
	}
	defer f.Close() // the child has its own descriptor

	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
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
		return c.withLog(fmt.Errorf("%s exited with status 0", c.name))
	}
	return c.withLog(fmt.Errorf("%s exited: %w", c.name, c.err))
}

// stop sends SIGTERM to the process group, and SIGKILL after stopGrace.
// It returns once the process has been reaped; it is idempotent and safe
// on a nil child.
func (c *child) stop() error {
	if c == nil || c.exited() {
		return nil
	}
	pid := c.cmd.Process.Pid
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	t := time.NewTimer(stopGrace)
	defer t.Stop()
	select {
	case <-c.done:
		return nil
	case <-t.C:
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		<-c.done
		return fmt.Errorf("%s: did not stop within %v of SIGTERM; killed", c.name, stopGrace)
	}
}

// withLog appends the last lines of the child's log to err.
func (c *child) withLog(err error) error {
	b, _ := os.ReadFile(c.logPath)
	return fmt.Errorf("%w\n--- %s (tail) ---\n%s", err, c.logPath, lastLines(string(b), 20))
}

// spawnThread runs every process start on one locked OS thread. Linux
// delivers Pdeathsig when the *thread* that forked the child exits, and Go
// may retire threads, which would kill a healthy child at a random moment.
var spawnThread struct {
	once sync.Once
	reqs chan func()
}

func onSpawnThread(f func()) {
	spawnThread.once.Do(func() {
		spawnThread.reqs = make(chan func())
		go func() {
			runtime.LockOSThread() // never unlocked: the thread lives as long as the program
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
				last = errors.New("condition not met")
			}
			return fmt.Errorf("gave up after %v: %w (last: %w)", timeout, ctx.Err(), last)
		case <-t.C:
		}
	}
}

// sleep waits for d or until ctx ends. It is for measurement windows (the
// warm-up, the time written after the switch), never for readiness.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
