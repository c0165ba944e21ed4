package proxy

import (
	"crypto/tls"
	"time"

	"github.com/pnats/switchyard/resp"
	"go.uber.org/zap"
)

// Config configures the front end of one Redis group. A zero field means
// the default its comment gives.
type Config struct {
	// Group names the group in logs and errors. Default "default".
	Group string

	// PoolSize is the number of pipelined connections the proxy keeps to
	// the master for each distinct set of session settings (database,
	// protocol, user). Default 2.
	PoolSize int
	// MaxIdleDedicated is how many idle dedicated connections (for
	// transactions and blocking commands) are kept per pool for reuse.
	// Default 8.
	MaxIdleDedicated int

	// DialTimeout bounds connecting to a backend and its handshake
	// (AUTH, HELLO, SELECT). Default 2s.
	DialTimeout time.Duration
	// DialBackoff is how long a pool fails fast after a failed dial before
	// it dials again. Default 100ms.
	DialBackoff time.Duration
	// ReadTimeout is the longest the proxy waits for progress on a reply to
	// a non-blocking command before it declares the backend connection
	// dead. Blocking commands and Pub/Sub wait without limit. Default 10s.
	ReadTimeout time.Duration
	// WriteTimeout bounds writes to a backend. Default 5s.
	WriteTimeout time.Duration
	// KeepAlive is the TCP keepalive period for client and backend
	// connections. Default 15s; negative turns keepalive off.
	KeepAlive time.Duration

	// ClientWriteTimeout is how long a write to a client may make no
	// progress (less than 256 KiB taken). A client that reads nothing for
	// this long is disconnected, so a stalled client holds at most one
	// batch of replies; one that reads slowly but steadily gets them all.
	// Default 30s.
	ClientWriteTimeout time.Duration
	// PubSubWriteTimeout is the same bound for clients in Pub/Sub,
	// MONITOR or tracking mode, whose messages the proxy never buffers
	// beyond 64 KiB: a slow consumer is disconnected after this long.
	// Default: ClientWriteTimeout.
	PubSubWriteTimeout time.Duration
	// MaxClients is the most clients connected at once, across all of the
	// server's listeners; more are refused with Redis's own
	// "-ERR max number of clients reached". Default 10000; negative means
	// no limit.
	MaxClients int
	// IdleTimeout closes a client that sends nothing for this long, as
	// Redis's timeout setting does; subscribed and blocked clients are
	// exempt. Default 0: never.
	IdleTimeout time.Duration
	// StallTimeout: when a failover starts, connections to the master on
	// which requests have waited this long without any reply are closed,
	// so a stalled master that wakes up after the promotion cannot
	// acknowledge them. Default 250ms.
	StallTimeout time.Duration
	// HoldTimeout is how long a command waits for a verified master when
	// none is known (for example during a failover) before it gets
	// -TRYAGAIN. Default 2s.
	HoldTimeout time.Duration

	// NoEventLoop gives every client a goroutine of its own instead of
	// serving plain-TCP clients from the event loop (Linux only; see
	// loop_linux.go). The loop is faster and holds less memory per idle
	// client; this is the way back if it misbehaves.
	NoEventLoop bool
	// NoIOUring makes the event loop read and write each client with a
	// system call of its own, as it does where io_uring is unavailable
	// (uring_linux.go).
	NoIOUring bool

	// ClientBufferSize is the initial read buffer of a client connection,
	// in bytes; it grows for large requests and shrinks back. Default 1024:
	// sixteen pipelined small commands fit, and an idle connection costs
	// 5 KiB less heap than with 4096 (BenchmarkIdleConnMemory).
	ClientBufferSize int
	// BackendBufferSize is the read and write buffer of a backend
	// connection, in bytes. Default 65536.
	BackendBufferSize int
	// ClientOutputLimit bounds the replies the proxy holds for one
	// client, bytes: once they pass it, the client is disconnected after
	// them, as Redis's client-output-buffer-limit does, and the replies
	// still to come are read and dropped. A reply is held whatever its
	// size while the ones before it are within the limit, so a single
	// large reply (up to Redis's 512 MiB) always gets through, in a
	// pipeline or transaction too; the limit stops a pipeline of large
	// replies (up to 64 per client) from costing their sum. Default
	// 256 MiB; negative: no limit.
	ClientOutputLimit int64
	// MaxRequestBytes is the largest request a client may send, bytes; a
	// larger one is a protocol error. Default 1 GiB, Redis's
	// client-query-buffer-limit. It overrides Limits.MaxFrameLen.
	MaxRequestBytes int64
	// Limits bounds what clients may send. Zero fields take Redis's
	// defaults (see resp.Limits).
	Limits resp.Limits

	// Username and Password authenticate the proxy's own backend
	// connections. Default none. A client's own AUTH replaces them for its
	// session.
	Username string
	Password string

	// Authenticate, if set, makes clients authenticate to the proxy itself:
	// before AUTH (or HELLO … AUTH) succeeds they may only send AUTH, HELLO
	// and QUIT, under Redis's pre-authentication size limits. It reports
	// whether user ("default" for AUTH <password>) has that password; it
	// must compare in constant time. Backend connections then use Username
	// and Password. If nil (the default), clients' own AUTH is passed
	// through: their credentials are used for their backend connections
	// and replayed after every reconnect and failover.
	Authenticate func(user, password string) bool
	// AuthFailureDelay is the delay before answering the third failed AUTH
	// on a connection; it doubles with each further failure, up to 20
	// times itself, and the tenth failure drops the connection.
	// Default 100ms.
	AuthFailureDelay time.Duration
	// BackendTLS, if set, returns the TLS configuration for each backend
	// dial (called per dial, so reloaded CAs take effect). Default: plain.
	BackendTLS func() *tls.Config
	// HandshakeTimeout bounds a client's TLS handshake. Default 10s.
	HandshakeTimeout time.Duration

	// ReadPolicy says where the main listener's reads go. Default
	// ReadMaster. Read ports (ServeRead) always read from replicas,
	// falling back to the master unless the policy is ReadReplica.
	ReadPolicy ReadPolicy
	// ReadYourWrites, if positive, sends a client's reads to the master
	// for this long after it wrote, so it sees its own writes even while
	// replicas lag. Default 0: off.
	ReadYourWrites time.Duration

	// Recheck is called when the data path has reason to doubt the
	// master: it answered -READONLY (it was demoted) or it cannot be
	// reached. The owner should re-check the topology at once. It must not
	// block. Default: nothing.
	Recheck func()

	// Metrics receives counters and histograms. Default: none recorded.
	Metrics *Metrics

	// Logger receives events (not individual commands). Default: discard.
	Logger *zap.Logger
}

func (c *Config) setDefaults() {
	if c.Group == "" {
		c.Group = "default"
	}
	if c.PoolSize <= 0 {
		c.PoolSize = 2
	}
	if c.MaxIdleDedicated <= 0 {
		c.MaxIdleDedicated = 8
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = 2 * time.Second
	}
	if c.DialBackoff <= 0 {
		c.DialBackoff = 100 * time.Millisecond
	}
	if c.ReadTimeout <= 0 {
		c.ReadTimeout = 10 * time.Second
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 5 * time.Second
	}
	if c.KeepAlive == 0 {
		c.KeepAlive = 15 * time.Second
	}
	if c.ClientWriteTimeout <= 0 {
		c.ClientWriteTimeout = 30 * time.Second
	}
	if c.PubSubWriteTimeout <= 0 {
		c.PubSubWriteTimeout = c.ClientWriteTimeout
	}
	if c.AuthFailureDelay <= 0 {
		c.AuthFailureDelay = 100 * time.Millisecond
	}
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = 10 * time.Second
	}
	if c.MaxClients == 0 {
		c.MaxClients = 10000
	}
	if c.StallTimeout <= 0 {
		c.StallTimeout = 250 * time.Millisecond
	}
	if c.HoldTimeout <= 0 {
		c.HoldTimeout = 2 * time.Second
	}
	if c.ClientBufferSize <= 0 {
		c.ClientBufferSize = 1024
	}
	if c.BackendBufferSize <= 0 {
		c.BackendBufferSize = 64 << 10
	}
	if c.ClientOutputLimit == 0 {
		c.ClientOutputLimit = 256 << 20
	}
	if c.MaxRequestBytes > 0 {
		c.Limits.MaxFrameLen = c.MaxRequestBytes
	}
	c.Limits = c.Limits.WithDefaults()
	if c.Metrics == nil {
		c.Metrics = &Metrics{}
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
}
