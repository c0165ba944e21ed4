package lab

import (
	"fmt"
	"path/filepath"
	"syscall"
)

// Process is a child process the lab owns that is neither a redis-server
// nor a Sentinel: a proxy under test (Switchyard, HAProxy, twemproxy) in
// the demo, the benchmarks and the tests. Like the servers it runs in its
// own process group, so Ctrl-C in a terminal reaches only its owner, which
// stops it in order; it gets SIGKILL if the owner dies without stopping it;
// and it is always reaped.
type Process struct {
	Name    string
	LogPath string // its stdout and stderr
	p       *process
}

// StartProcess starts bin with args in dir, with env added to the
// inherited environment, logging to dir/name.log.
func StartProcess(name, dir string, env []string, bin string, args ...string) (*Process, error) {
	logPath := filepath.Join(dir, name+".log")
	p, err := spawn(bin, args, dir, logPath, env)
	if err != nil {
		return nil, fmt.Errorf("lab: %s: %w", name, err)
	}
	return &Process{Name: name, LogPath: logPath, p: p}, nil
}

// PID returns the process id.
func (p *Process) PID() int { return p.p.pid }

// Running reports whether the process has not exited yet.
func (p *Process) Running() bool { return p != nil && p.p.running() }

// Signal sends sig to the process group.
func (p *Process) Signal(sig syscall.Signal) error { return p.p.signal(sig) }

// Stop sends SIGTERM, and SIGKILL after 5 s; it returns once the process
// is reaped. It is idempotent and safe on a nil Process.
func (p *Process) Stop() error {
	if p == nil {
		return nil
	}
	return p.p.stop()
}

// Kill sends SIGKILL and waits for the process to be reaped.
func (p *Process) Kill() error {
	if p == nil {
		return nil
	}
	return p.p.kill()
}

// ExitError says how the process ended, with its log tail. It waits for
// the process to exit.
func (p *Process) ExitError() error {
	return p.WithLog(fmt.Errorf("%s exited: %w", p.Name, p.p.exitedError()))
}

// WithLog appends the last lines of the process's log to err.
func (p *Process) WithLog(err error) error {
	return withLog(err, p.Name+" log", p.LogPath)
}
