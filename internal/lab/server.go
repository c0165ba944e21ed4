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
	"sync"
	"syscall"

	"github.com/redis/go-redis/v9"
)

// Server is one redis-server process.
type Server struct {
	Addr string // "127.0.0.1:PORT"
	Port int
	Dir  string // its working directory (absolute)

	bin       string
	extra     []string // ServerOptions.Args
	replicaOf string
	password  string // from --requirepass in Args, used by probes and Client
	tls       *tls.Config
	logPath   string

	opMu sync.Mutex // serialises Stop/Kill/Restart
	mu   sync.Mutex // guards p
	p    *process
}

// ServerOptions configures StartServer.
type ServerOptions struct {
	Dir       string   // working dir; required (caller gives a temp dir); one server per dir
	Port      int      // 0 = pick a free port
	ReplicaOf string   // "host:port" or "" for a master
	Args      []string // extra config directives, e.g. {"--requirepass", "x"} or {"--save", ""}; they come after (and so override) the defaults
	Binary    string   // default: "redis-server" from PATH
	// TLS makes the server listen with TLS only, on its port (--port 0
	// --tls-port P); Args must give --tls-cert-file and friends. Probes and
	// Client use this configuration.
	TLS *tls.Config
}

// StartServer starts redis-server and waits until it answers (its own
// process, not whatever else might listen on the port) and, for a replica,
// until master_link_status is up. With Port 0 it retries on another port if
// the chosen one turned out to be taken.
//
// Default arguments: --port P --bind 127.0.0.1 --dir D --logfile D/redis.log
// --daemonize no --save "" --appendonly no --protected-mode no
// --repl-diskless-sync-delay 0 (Redis 7 otherwise delays every initial
// replica sync by 5 s), then --replicaof, then o.Args.
//
// If ctx has no deadline a 30 s timeout applies.
func StartServer(ctx context.Context, o ServerOptions) (*Server, error) {
	if o.Dir == "" {
		return nil, errors.New("lab: ServerOptions.Dir is required")
	}
	bin, err := lookBinary(o.Binary, "redis-server")
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
	if o.ReplicaOf != "" {
		if _, _, err := net.SplitHostPort(o.ReplicaOf); err != nil {
			return nil, fmt.Errorf("lab: ReplicaOf %q: %w", o.ReplicaOf, err)
		}
	}
	s := &Server{
		Dir:       dir,
		bin:       bin,
		extra:     append([]string(nil), o.Args...),
		replicaOf: o.ReplicaOf,
		tls:       o.TLS,
		logPath:   filepath.Join(dir, "redis.log"),
	}
	s.password, _ = argValue(o.Args, "--requirepass")

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
		err = s.launch(ctx, o.ReplicaOf != "")
		if err == nil {
			return s, nil
		}
		if !errors.Is(err, errPortInUse) || o.Port != 0 || attempt >= startAttempts || ctx.Err() != nil {
			return nil, err
		}
	}
}

func (s *Server) args() []string {
	a := []string{"--port", strconv.Itoa(s.Port)}
	if s.tls != nil {
		a = []string{"--port", "0", "--tls-port", strconv.Itoa(s.Port)}
	}
	a = append(a,
		"--bind", "127.0.0.1",
		"--dir", s.Dir,
		"--logfile", s.logPath,
		"--daemonize", "no",
		"--save", "",
		"--appendonly", "no",
		"--protected-mode", "no",
		"--repl-diskless-sync-delay", "0",
	)
	if s.replicaOf != "" {
		h, p, _ := net.SplitHostPort(s.replicaOf)
		a = append(a, "--replicaof", h, p)
	}
	return append(a, s.extra...)
}

// launch starts the process and waits for readiness. On failure the
// process is killed and the error carries the log tail; errPortInUse is
// wrapped if the server could not listen.
func (s *Server) launch(ctx context.Context, waitLink bool) error {
	off := fileSize(s.logPath)
	p, err := spawn(s.bin, s.args(), s.Dir, s.logPath, nil)
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
		v, err := pr.do(ctx, s.Addr, s.password, "INFO", "server", "replication")
		if err != nil {
			return false, err
		}
		info, _ := v.(string)
		if got := infoField(info, "process_id"); got != pid {
			// Someone else answers on this port; ours will fail to bind.
			pr.drop(s.Addr)
			return false, fmt.Errorf("%s is answered by pid %s, not by ours (%s)", s.Addr, got, pid)
		}
		if waitLink {
			if st := infoField(info, "master_link_status"); st != "up" {
				return false, fmt.Errorf("master_link_status:%s", st)
			}
		}
		return true, nil
	})
	if err == nil {
		return nil
	}
	_ = p.kill()
	err = fmt.Errorf("lab: redis-server on %s (dir %s) not ready: %w", s.Addr, s.Dir, err)
	if isPortInUse(readFrom(s.logPath, off)) {
		err = fmt.Errorf("%w: %w", errPortInUse, err)
	}
	return withLog(err, "redis-server log", s.logPath)
}

func (s *Server) proc() *process {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.p
}

// PID returns the process id of the current (or last) process, 0 if none.
func (s *Server) PID() int {
	if p := s.proc(); p != nil {
		return p.pid
	}
	return 0
}

// Stop sends SIGTERM (and SIGCONT, in case it is paused), waits, and sends
// SIGKILL after 5 s. It is idempotent and safe after Kill.
func (s *Server) Stop() error {
	s.opMu.Lock()
	defer s.opMu.Unlock()
	return s.proc().stop()
}

// Kill sends SIGKILL and waits for the process to be reaped.
func (s *Server) Kill() error {
	s.opMu.Lock()
	defer s.opMu.Unlock()
	return s.proc().kill()
}

// Pause sends SIGSTOP: the process keeps its sockets but stops answering
// (a "zombie master").
func (s *Server) Pause() error { return s.proc().signal(syscall.SIGSTOP) }

// Resume sends SIGCONT.
func (s *Server) Resume() error { return s.proc().signal(syscall.SIGCONT) }

// Running reports whether the process is alive (also when paused).
func (s *Server) Running() bool { return s.proc().running() }

// Restart starts the server again on the same port and dir with the same
// arguments, i.e. in its original role: a former master comes back as a
// master (with an empty data set) and Sentinel will reconfigure it as a
// replica. If it is still running it is stopped first. Restart waits only
// until the server answers, not for a replication link, because the
// original master may be gone. It retries while the port is still taken.
func (s *Server) Restart(ctx context.Context) error {
	s.opMu.Lock()
	defer s.opMu.Unlock()
	if err := s.proc().stop(); err != nil {
		return err
	}
	ctx, cancel := withDefaultTimeout(ctx, defaultStartTimeout)
	defer cancel()
	return poll(ctx, func() (bool, error) {
		err := s.launch(ctx, false)
		if errors.Is(err, errPortInUse) && ctx.Err() == nil {
			return false, err
		}
		return true, err
	})
}

// RestartAsMaster restarts the server without its --replicaof, as a pod
// whose configuration does not keep the REPLICAOF Sentinel gave it: it
// loads the RDB its last full sync left in its dir and starts as a
// master. Sentinel converts it back later.
func (s *Server) RestartAsMaster(ctx context.Context) error {
	s.opMu.Lock()
	s.replicaOf = ""
	s.opMu.Unlock()
	return s.Restart(ctx)
}

// Client returns a go-redis client for the server (using the
// --requirepass from Args, if any). The caller closes it.
func (s *Server) Client() *redis.Client {
	return redis.NewClient(&redis.Options{Addr: s.Addr, Password: s.password, TLSConfig: s.tls})
}

// LogTail returns the last n lines of the server's log (which also receives
// its stdout and stderr), for failure messages.
func (s *Server) LogTail(n int) string { return logTail(s.logPath, n) }

// LogPath returns the path of the server's log file.
func (s *Server) LogPath() string { return s.logPath }

// String returns the address.
func (s *Server) String() string { return s.Addr }
