package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ErrNotInstalled is returned (wrapped, with the binary name) when
// redis-server or redis-sentinel cannot be found.
var ErrNotInstalled = errors.New("lab: binary not installed")

// errPortInUse marks a start attempt that failed because the port was
// taken; the caller retries with another port.
var errPortInUse = errors.New("lab: port already in use")

const (
	// stopGrace is how long Stop waits after SIGTERM before SIGKILL.
	stopGrace = 5 * time.Second
	// defaultStartTimeout applies to start/restart calls whose context has
	// no deadline.
	defaultStartTimeout = 30 * time.Second
	// defaultWaitTimeout applies to WaitMaster/Failover calls whose context
	// has no deadline.
	defaultWaitTimeout = 60 * time.Second
	// startAttempts bounds retries with a fresh port.
	startAttempts = 5
	// logTailOnError is how many log lines error messages include.
	logTailOnError = 30
)

func withDefaultTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d)
}

// lookBinary resolves name (default def) on PATH.
func lookBinary(name, def string) (string, error) {
	if name == "" {
		name = def
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%w: %s", ErrNotInstalled, name)
	}
	return p, nil
}

// process is one started child. It is reaped by a goroutine; done is
// closed once Wait has returned.
type process struct {
	cmd  *exec.Cmd
	pid  int
	done chan struct{}
	err  error // Wait's result; valid after done is closed
}

// spawner runs every exec.Cmd.Start on one OS thread that never exits.
// Children are started with Pdeathsig=SIGKILL, and Linux delivers that
// signal when the *thread* that forked the child exits, not the process.
// Go may retire threads (for example when a goroutine that called
// runtime.LockOSThread exits), so starting from an arbitrary goroutine could
// kill a healthy child at a random moment.
var spawner struct {
	once sync.Once
	reqs chan func()
}

func onSpawnerThread(f func()) {
	spawner.once.Do(func() {
		spawner.reqs = make(chan func())
		go func() {
			runtime.LockOSThread() // never unlocked: the thread lives as long as the process
			for f := range spawner.reqs {
				f()
			}
		}()
	})
	done := make(chan struct{})
	spawner.reqs <- func() { defer close(done); f() }
	<-done
}

// spawn starts bin with args in dir; stdout and stderr are appended to
// logPath (the same file the process logs to, so fatal startup messages
// printed before logging is set up end up there too).
func spawn(bin string, args []string, dir, logPath string, env []string) (*process, error) {
	f, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lab: open log: %w", err)
	}
	defer f.Close() // the child has its own descriptor

	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	cmd.Stdin = nil
	cmd.Stdout = f
	cmd.Stderr = f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	onSpawnerThread(func() { err = cmd.Start() })
	if err != nil {
		return nil, fmt.Errorf("lab: start %s: %w", bin, err)
	}
	p := &process{cmd: cmd, pid: cmd.Process.Pid, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

func (p *process) running() bool {
	if p == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// signal sends sig to the whole process group while the leader has not
// been reaped (after that the pid could in theory be reused).
func (p *process) signal(sig syscall.Signal) error {
	if !p.running() {
		return nil
	}
	if err := syscall.Kill(-p.pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("lab: signal %v to pid %d: %w", sig, p.pid, err)
	}
	return nil
}

// reapGroup kills whatever is left of the process group (e.g. a forked
// RDB child) right after the leader exited.
func (p *process) reapGroup() {
	_ = syscall.Kill(-p.pid, syscall.SIGKILL)
}

func (p *process) kill() error {
	if p == nil {
		return nil
	}
	err := p.signal(syscall.SIGKILL)
	<-p.done
	p.reapGroup()
	return err
}

func (p *process) stop() error {
	if p == nil || !p.running() {
		return nil
	}
	err := p.signal(syscall.SIGTERM)
	// A stopped (paused) process would not act on SIGTERM until continued.
	if err2 := p.signal(syscall.SIGCONT); err == nil {
		err = err2
	}
	t := time.NewTimer(stopGrace)
	defer t.Stop()
	select {
	case <-p.done:
		p.reapGroup()
		return err
	case <-t.C:
		return errors.Join(err, p.kill())
	}
}

// exitedError describes how the process ended, for error messages.
func (p *process) exitedError() error {
	<-p.done
	if p.err == nil {
		return errors.New("process exited with status 0")
	}
	return p.err
}

// ---- ports ----

var ports struct {
	mu     sync.Mutex
	handed map[int]bool
}

// freePort returns a loopback TCP port that is free right now. It prefers
// ports below the kernel's ephemeral range: a port from inside that range can
// be taken, between a Kill and a Restart, by the local end of any outgoing
// connection (a Sentinel's, a replica's, a client's), which would make
// Restart on the same port fail. Ports handed out earlier by this process are
// never handed out again. The bind-and-close check is racy by nature;
// callers retry with another port when the server then fails to bind.
func freePort() (int, error) {
	ports.mu.Lock()
	defer ports.mu.Unlock()
	if ports.handed == nil {
		ports.handed = map[int]bool{}
	}
	lo, hi := 10000, ephemeralLow()
	for range 200 {
		if hi-lo < 1000 {
			break
		}
		p := lo + rand.IntN(hi-lo)
		if ports.handed[p] || !canBind(p) {
			continue
		}
		ports.handed[p] = true
		return p, nil
	}
	// Fallback: let the kernel choose.
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("lab: find free port: %w", err)
		}
		p := l.Addr().(*net.TCPAddr).Port
		_ = l.Close()
		if !ports.handed[p] {
			ports.handed[p] = true
			return p, nil
		}
	}
	return 0, errors.New("lab: no free port found")
}

func canBind(port int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	_ = l.Close()
	return true
}

// ephemeralLow is the lower bound of the local ephemeral port range
// (32768 when it cannot be read).
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	f := strings.Fields(string(b))
	if len(f) < 1 {
		return 32768
	}
	n, err := strconv.Atoi(f[0])
	if err != nil || n <= 0 {
		return 32768
	}
	return n
}

// ---- logs ----

// fileSize returns the size of path, 0 if it does not exist.
func fileSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}

// readFrom returns the content of path from offset on.
func readFrom(path string, off int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return ""
	}
	b, _ := io.ReadAll(io.LimitReader(f, 1<<20))
	return string(b)
}

// logTail returns the last n lines of path.
func logTail(path string, n int) string {
	if n <= 0 {
		return ""
	}
	const maxRead = 256 << 10
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	defer f.Close()
	off := max(fileSize(path)-maxRead, 0)
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return ""
	}
	b, _ := io.ReadAll(f)
	b = bytes.TrimRight(b, "\n")
	lines := bytes.Split(b, []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

func withLog(err error, what, path string) error {
	return fmt.Errorf("%w\n--- last %d lines of %s (%s) ---\n%s\n---", err, logTailOnError, what, path, logTail(path, logTailOnError))
}

// isPortInUse reports whether the log text shows a failed listen.
func isPortInUse(logText string) bool {
	return strings.Contains(logText, "Address already in use")
}

// poll calls f every pollInterval until it returns true or an error that
// is not retryable, or until ctx is done. f returns (done, lastErr): lastErr
// is remembered and reported if the context ends first.
func poll(ctx context.Context, f func() (bool, error)) error {
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
			if last != nil {
				return fmt.Errorf("%w (last: %v)", ctx.Err(), last)
			}
			return ctx.Err()
		case <-t.C:
		}
	}
}

// argValue returns the value following flag in args ("--requirepass x"),
// also accepting a single "--requirepass x" element.
func argValue(args []string, flag string) (string, bool) {
	for i, a := range args {
		if a == flag && i+1 < len(args) {
			return args[i+1], true
		}
		if v, ok := strings.CutPrefix(a, flag+" "); ok {
			return strings.TrimSpace(v), true
		}
	}
	return "", false
}
