package lab

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// Sentinel is one redis-sentinel process.
type Sentinel struct {
	Addr string // "127.0.0.1:PORT"
	Port int
	Dir  string // its working directory (absolute); holds sentinel.conf and sentinel.log

	MasterName string // the monitored master's name

	bin      string
	confPath string
	logPath  string
	password string      // from a "requirepass" line in Args
	tls      *tls.Config // ServerOptions.TLS: listen and probe with TLS

	opMu sync.Mutex
	mu   sync.Mutex
	p    *process
}

// SentinelOptions configures StartSentinel.
type SentinelOptions struct {
	Dir        string // working dir; required; one sentinel per dir
	MasterName string // default "mymaster"
	MasterAddr string // "IP:port" of the master to monitor; required (an IP: hostnames are not resolved)
	Quorum     int    // default 1
	Port       int    // 0 = pick a free port

	DownAfter       time.Duration // default 1s  (sentinel down-after-milliseconds)
	FailoverTimeout time.Duration // default 5s  (sentinel failover-timeout)

	Args   []string // extra sentinel.conf lines, e.g. "sentinel auth-pass mymaster x"; written after the monitor lines
	Binary string   // default "redis-sentinel"
	// TLS makes the Sentinel listen with TLS only (port 0, tls-port P);
	// Args must give tls-cert-file and friends (and tls-replication yes if
	// the master speaks TLS). Probes and Client use this configuration.
	TLS *tls.Config
}

// StartSentinel writes Dir/sentinel.conf (Sentinel rewrites it, so the
// file and the directory must be writable), starts redis-sentinel on it and
// waits until it answers SENTINEL get-master-addr-by-name. With Port 0 it
// retries on another port if the chosen one turned out to be taken.
//
// If ctx has no deadline a 30 s timeout applies.
func StartSentinel(ctx context.Context, o SentinelOptions) (*Sentinel, error) {
	if o.Dir == "" {
		return nil, errors.New("lab: SentinelOptions.Dir is required")
	}
	if o.MasterName == "" {
		o.MasterName = "mymaster"
	}
	host, mport, err := net.SplitHostPort(o.MasterAddr)
	if err != nil {
		return nil, fmt.Errorf("lab: SentinelOptions.MasterAddr %q: %w", o.MasterAddr, err)
	}
	if net.ParseIP(host) == nil {
		return nil, fmt.Errorf("lab: SentinelOptions.MasterAddr %q: host must be an IP address", o.MasterAddr)
	}
	if o.Quorum <= 0 {
		o.Quorum = 1
	}
	if o.DownAfter <= 0 {
		o.DownAfter = time.Second
	}
	if o.FailoverTimeout <= 0 {
		o.FailoverTimeout = 5 * time.Second
	}
	bin, err := lookBinary(o.Binary, "redis-sentinel")
	if err != nil {
		return nil, err
	}
	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	s := &Sentinel{
		Dir:        dir,
		MasterName: o.MasterName,
		bin:        bin,
		confPath:   filepath.Join(dir, "sentinel.conf"),
		logPath:    filepath.Join(dir, "sentinel.log"),
		tls:        o.TLS,
	}
	for _, l := range o.Args {
		if f := strings.Fields(l); len(f) == 2 && strings.EqualFold(f[0], "requirepass") {
			s.password = strings.Trim(f[1], `"`)
		}
	}

	ctx, cancel := withDefaultTimeout(ctx, defaultStartTimeout)
	defer cancel()
	for attempt := 1; ; attempt++ {
		port := o.Port
		if port == 0 {
			if port, err = freePort(); err != nil {
				return nil, err
			}
		}
		s.Port = port
		s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		listen := "port " + strconv.Itoa(port)
		if s.tls != nil {
			listen = "port 0\ntls-port " + strconv.Itoa(port)
		}
		conf := []string{
			listen,
			"bind 127.0.0.1",
			"protected-mode no",
			"daemonize no",
			"dir " + quoteConf(dir),
			"logfile " + quoteConf(s.logPath),
			"sentinel resolve-hostnames no",
			"sentinel announce-ip 127.0.0.1",
			fmt.Sprintf("sentinel monitor %s %s %s %d", o.MasterName, host, mport, o.Quorum),
			fmt.Sprintf("sentinel down-after-milliseconds %s %d", o.MasterName, o.DownAfter.Milliseconds()),
			fmt.Sprintf("sentinel failover-timeout %s %d", o.MasterName, o.FailoverTimeout.Milliseconds()),
			fmt.Sprintf("sentinel parallel-syncs %s 1", o.MasterName),
		}
		conf = append(conf, o.Args...)
		if err := os.WriteFile(s.confPath, []byte(strings.Join(conf, "\n")+"\n"), 0o644); err != nil {
			return nil, fmt.Errorf("lab: write sentinel.conf: %w", err)
		}
		err = s.launch(ctx)
		if err == nil {
			return s, nil
		}
		if !errors.Is(err, errPortInUse) || o.Port != 0 || attempt >= startAttempts || ctx.Err() != nil {
			return nil, err
		}
	}
}

// quoteConf quotes a value for a Redis config file.
func quoteConf(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`)
	return `"` + r.Replace(s) + `"`
}

func (s *Sentinel) launch(ctx context.Context) error {
	off := fileSize(s.logPath)
	p, err := spawn(s.bin, []string{s.confPath}, s.Dir, s.logPath, nil)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.p = p
	s.mu.Unlock()

	pr := newProber()
	pr.tls = s.tls
	defer pr.close()
	pid := strconv.Itoa(p.pid)
	err = poll(ctx, func() (bool, error) {
		if !p.running() {
			return true, p.exitedError()
		}
		v, err := pr.do(ctx, s.Addr, s.password, "INFO", "server")
		if err != nil {
			return false, err
		}
		info, _ := v.(string)
		if got := infoField(info, "process_id"); got != pid {
			pr.drop(s.Addr)
			return false, fmt.Errorf("%s is answered by pid %s, not by ours (%s)", s.Addr, got, pid)
		}
		v, err = pr.do(ctx, s.Addr, s.password, "SENTINEL", "get-master-addr-by-name", s.MasterName)
		if err != nil {
			return false, err
		}
		if v == nil {
			return false, fmt.Errorf("SENTINEL get-master-addr-by-name %s: nil", s.MasterName)
		}
		return true, nil
	})
	if err == nil {
		return nil
	}
	_ = p.kill()
	err = fmt.Errorf("lab: redis-sentinel on %s (dir %s) not ready: %w", s.Addr, s.Dir, err)
	if isPortInUse(readFrom(s.logPath, off)) {
		err = fmt.Errorf("%w: %w", errPortInUse, err)
	}
	return withLog(err, "redis-sentinel log", s.logPath)
}

func (s *Sentinel) proc() *process {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.p
}

// PID returns the process id of the current (or last) process, 0 if none.
func (s *Sentinel) PID() int {
	if p := s.proc(); p != nil {
		return p.pid
	}
	return 0
}

// Stop sends SIGTERM (and SIGCONT), waits, and sends SIGKILL after 5 s.
// It is idempotent and safe after Kill.
func (s *Sentinel) Stop() error {
	s.opMu.Lock()
	defer s.opMu.Unlock()
	return s.proc().stop()
}

// Kill sends SIGKILL and waits for the process to be reaped.
func (s *Sentinel) Kill() error {
	s.opMu.Lock()
	defer s.opMu.Unlock()
	return s.proc().kill()
}

// Pause sends SIGSTOP.
func (s *Sentinel) Pause() error { return s.proc().signal(syscall.SIGSTOP) }

// Resume sends SIGCONT.
func (s *Sentinel) Resume() error { return s.proc().signal(syscall.SIGCONT) }

// Running reports whether the process is alive (also when paused).
func (s *Sentinel) Running() bool { return s.proc().running() }

// Restart starts the Sentinel again on the same port from its (by now
// Sentinel-rewritten) sentinel.conf, so it keeps what it had learnt: the
// current master, replicas, other Sentinels and epochs. If it is still
// running it is stopped first.
func (s *Sentinel) Restart(ctx context.Context) error {
	s.opMu.Lock()
	defer s.opMu.Unlock()
	if err := s.proc().stop(); err != nil {
		return err
	}
	ctx, cancel := withDefaultTimeout(ctx, defaultStartTimeout)
	defer cancel()
	return poll(ctx, func() (bool, error) {
		err := s.launch(ctx)
		if errors.Is(err, errPortInUse) && ctx.Err() == nil {
			return false, err
		}
		return true, err
	})
}

// Client returns a go-redis Sentinel client. The caller closes it.
func (s *Sentinel) Client() *redis.SentinelClient {
	return redis.NewSentinelClient(&redis.Options{Addr: s.Addr, Password: s.password, TLSConfig: s.tls})
}

// LogTail returns the last n lines of the Sentinel's log.
func (s *Sentinel) LogTail(n int) string { return logTail(s.logPath, n) }

// LogPath returns the path of the Sentinel's log file.
func (s *Sentinel) LogPath() string { return s.logPath }

// ConfPath returns the path of its sentinel.conf.
func (s *Sentinel) ConfPath() string { return s.confPath }

// String returns the address.
func (s *Sentinel) String() string { return s.Addr }
