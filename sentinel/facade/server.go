package facade

import (
	"crypto/sha1"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pnats/switchyard/internal/repeat"
	"github.com/tidwall/redcon"
	"go.uber.org/zap"
)

// ErrServerClosed is returned by Serve after Close.
var ErrServerClosed = errors.New("facade: server closed")

// Group is one Redis group as the facade presents it.
type Group struct {
	// Name is the Sentinel master name clients ask for, e.g.
	// "platform-kv-master".
	Name string
	// Addr returns the advertised host:port of the group's main port,
	// e.g. the shared IP and 6379. Called on every query, so a reload is
	// seen at once.
	Addr func() string
	// ReadAddr returns the advertised host:port of a read port, given as
	// the group's one replica; "" or nil: no replica.
	ReadAddr func() string
	// Up reports whether the group has a verified master. When it has
	// not, the master is flagged s_down,o_down and ckquorum fails, so a
	// client that checks looks elsewhere or waits instead of guessing.
	// nil: always up.
	Up func() bool
	// Quorum returns what the group's Sentinels answer SENTINEL
	// CKQUORUM ("OK …" or "NOQUORUM …"; sentinel.Topology.Quorum), for
	// the facade to pass on; "" or nil: unknown, and the facade answers
	// for itself.
	Quorum func() string
}

// Config configures a Server.
type Config struct {
	// Groups returns the current groups; it is called on every query (the
	// configuration can be reloaded). Required.
	Groups func() []Group
	// Announce is the facade's own advertised host:port, shown in INFO.
	// It also seeds SENTINEL myid, so every Switchyard instance behind
	// one address gives the same id. Default: none ("").
	Announce string
	// Password, if set, must be given with AUTH (or HELLO … AUTH) before
	// any other command. Default: none.
	Password string
	// Logger receives connection-level events. Default: zap.NewNop().
	Logger *zap.Logger
	// WriteTimeout bounds each write to a client; a client that reads
	// nothing for this long is disconnected. Default 10s.
	WriteTimeout time.Duration
	// HandshakeTimeout bounds a TLS client's handshake. Default 10s.
	HandshakeTimeout time.Duration
	// MaxClients is the most clients at once; more are told "-ERR max
	// number of clients reached" and closed, as Sentinel tells them.
	// TLS clients count from their TCP connection. Default 10000
	// (Sentinel's maxclients); -1: no limit.
	MaxClients int
	// MaxRequestBytes bounds the bytes of one pipeline of commands; a
	// client that sends more is disconnected. Sentinel queries are tiny.
	// Default 1 MiB.
	MaxRequestBytes int
}

func (c *Config) init() {
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 10 * time.Second
	}
	if c.MaxRequestBytes <= 0 {
		c.MaxRequestBytes = 1 << 20
	}
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = 10 * time.Second
	}
	if c.MaxClients == 0 {
		c.MaxClients = 10000
	}
	if c.Groups == nil {
		c.Groups = func() []Group { return nil }
	}
}

// Server answers Sentinel queries on the listeners given to Serve.
type Server struct {
	cfg   Config
	log   *zap.Logger
	myid  string
	start time.Time
	ids   atomic.Int64 // client ids, as CLIENT ID

	// refused logs clients refused at MaxClients: at most one line a
	// second, so that a connection storm at the limit does not flood the
	// log, each with the number of refusals it stands for.
	refused *repeat.Line

	// mu guards the fields below.
	mu        sync.Mutex
	closed    bool
	listeners map[net.Listener]struct{}
	clients   map[*client]struct{}
	conns     sync.WaitGroup // connection and delivery goroutines

	// pubMu guards published and orders publications. Lock order: pubMu,
	// then mu, then a client's pubMu (publish); a client's mu, then
	// epochMu.
	pubMu     sync.Mutex
	published map[string]string // group name → last advertised address

	// epochMu guards epochs. It is separate from pubMu because replies
	// (under a client's mu) read epochs, and Check holds pubMu.
	epochMu sync.Mutex
	epochs  map[string]int64 // group name → config-epoch, +1 per switch
}

// New returns a Server for cfg. It records each group's current address
// as the published one, so the first Check publishes nothing.
func New(cfg Config) *Server {
	cfg.init()
	id := sha1.Sum([]byte("switchyard-facade " + cfg.Announce))
	s := &Server{
		cfg:       cfg,
		log:       cfg.Logger,
		myid:      hex.EncodeToString(id[:]),
		start:     time.Now(),
		listeners: map[net.Listener]struct{}{},
		clients:   map[*client]struct{}{},
		published: map[string]string{},
		epochs:    map[string]int64{},
	}
	s.refused = repeat.New(time.Second, func(n int64) {
		s.log.Warn("facade: client refused: max clients reached", zap.Int("max_clients", s.cfg.MaxClients),
			zap.Int64("refused_since_last_line", n))
	})
	s.Check()
	return s
}

// Serve accepts connections on l until Close, then returns
// ErrServerClosed. Another accept error ends it with that error.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		l.Close()
		return ErrServerClosed
	}
	s.listeners[l] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, l)
		s.mu.Unlock()
	}()
	var backoff time.Duration
	for {
		nc, err := l.Accept()
		if err != nil {
			if s.isClosed() {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporary(err) {
				// Out of file descriptors and the like: wait rather than spin.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.log.Warn("facade: accept failed; retrying", zap.Error(err), zap.Duration("backoff", backoff))
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		s.accept(nc)
	}
}

func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// accept registers nc and serves it on a goroutine of its own that Close
// waits for.
func (s *Server) accept(nc net.Conn) {
	c := &client{
		srv:    s,
		id:     s.ids.Add(1),
		nc:     nc,
		authed: s.cfg.Password == "",
	}
	c.lr = &limitedReader{r: nc, max: s.cfg.MaxRequestBytes}
	c.rd = redcon.NewReader(c.lr)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		nc.Close()
		return
	}
	if s.cfg.MaxClients > 0 && len(s.clients) >= s.cfg.MaxClients {
		s.mu.Unlock()
		s.refused.Hit()
		// On its own goroutine, so a slow client cannot stall Accept; the
		// deadline bounds it, a TLS client's handshake included.
		go func() {
			nc.SetDeadline(time.Now().Add(min(s.cfg.WriteTimeout, s.cfg.HandshakeTimeout)))
			nc.Write([]byte("-ERR max number of clients reached\r\n"))
			nc.Close()
		}()
		return
	}
	s.clients[c] = struct{}{}
	s.conns.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.conns.Done()
		if c.handshake() {
			c.serve()
		}
		nc.Close()
		s.mu.Lock()
		delete(s.clients, c)
		s.mu.Unlock()
	}()
}

// Close stops every listener, closes every client connection and returns
// once their goroutines have ended.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	for l := range s.listeners {
		l.Close()
	}
	for c := range s.clients {
		c.nc.Close()
	}
	s.mu.Unlock()
	s.conns.Wait()
	s.refused.Stop()
	return nil
}

// groups returns the current groups, and find one by name.
func (s *Server) groups() []Group { return s.cfg.Groups() }

func (s *Server) group(name string) (Group, bool) {
	for _, g := range s.groups() {
		if g.Name == name {
			return g, true
		}
	}
	return Group{}, false
}

// client is one connection to the facade.
type client struct {
	srv *Server
	id  int64
	nc  net.Conn
	lr  *limitedReader
	rd  *redcon.Reader

	// mu guards the fields below. Replies are written under it because
	// a publication (Check, on another goroutine) writes to subscribers.
	mu       sync.Mutex
	out      reply
	authed   bool
	name     string
	channels subs // SUBSCRIBE
	patterns subs // PSUBSCRIBE
	quit     bool

	// hasSubs mirrors subscribed() for publish, which must not wait for
	// mu (held through a write to a slow client).
	hasSubs atomic.Bool
	// pubMu guards pubs and sending: publications queued for deliver,
	// and whether a deliver goroutine runs.
	pubMu   sync.Mutex
	pubs    []publication
	sending bool
}

// handshake completes a TLS client's handshake within HandshakeTimeout:
// one that never sends a ClientHello must not hold its goroutine for
// ever. A plain client has none.
func (c *client) handshake() bool {
	tc, ok := c.nc.(*tls.Conn)
	if !ok {
		return true
	}
	tc.SetDeadline(time.Now().Add(c.srv.cfg.HandshakeTimeout))
	if err := tc.Handshake(); err != nil {
		c.srv.log.Debug("facade: TLS handshake failed", zap.String("client", c.nc.RemoteAddr().String()), zap.Error(err))
		return false
	}
	tc.SetDeadline(time.Time{})
	return true
}

// serve reads pipelines of commands, answers each whole pipeline and
// flushes once, until the client goes away or QUITs.
func (c *client) serve() {
	for {
		cmds, err := c.rd.ReadCommands()
		if err != nil {
			if strings.HasPrefix(err.Error(), "Protocol error") {
				// redcon's protocol errors are unexported; like Redis,
				// tell the client before closing.
				c.mu.Lock()
				c.out.err("ERR " + err.Error())
				c.flush()
				c.mu.Unlock()
			} else if errors.Is(err, errTooLarge) {
				c.srv.log.Debug("facade: request too large; closing", zap.String("client", c.nc.RemoteAddr().String()))
			}
			return
		}
		c.lr.n = 0
		c.mu.Lock()
		for _, cmd := range cmds {
			if len(cmd.Args) == 0 {
				continue
			}
			c.srv.dispatch(c, cmd.Args)
			if c.quit {
				break
			}
			if len(c.out.b) >= maxKeptBuffer {
				// A long pipeline (a MiB of INFO) is answered as it
				// goes, not held whole for a client that may not read.
				if err = c.flush(); err != nil {
					break
				}
			}
		}
		if err == nil {
			err = c.flush()
		}
		quit := c.quit
		c.mu.Unlock()
		if err != nil || quit {
			return
		}
	}
}

// flush writes the pending replies within the write timeout. c.mu is held.
func (c *client) flush() error {
	if len(c.out.b) == 0 {
		return nil
	}
	c.nc.SetWriteDeadline(time.Now().Add(c.srv.cfg.WriteTimeout))
	_, err := c.nc.Write(c.out.b)
	c.out.reset()
	if err != nil {
		// A client that stopped reading must not hold up a publication.
		c.nc.Close()
	}
	return err
}

var errTooLarge = errors.New("facade: request larger than MaxRequestBytes")

// limitedReader fails once a pipeline grows past max bytes; serve resets
// n after each pipeline. redcon's reader would otherwise buffer whatever
// a client sends.
type limitedReader struct {
	r      io.Reader
	n, max int
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.n >= l.max {
		return 0, errTooLarge
	}
	if len(p) > l.max-l.n {
		p = p[:l.max-l.n]
	}
	n, err := l.r.Read(p)
	l.n += n
	return n, err
}
