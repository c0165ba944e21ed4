package sentinel

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"time"

	"go.uber.org/zap"
)

// Defaults applied by Config.withDefaults.
const (
	DefaultPollInterval = 500 * time.Millisecond
	DefaultDialTimeout  = time.Second
	DefaultFailoverHold = 15 * time.Second
)

// MaxSentinels bounds how many Sentinels one Watcher talks to, so that a
// Sentinel announcing junk in SENTINEL sentinels cannot make the Watcher
// open connections without end.
const MaxSentinels = 32

var (
	// ErrInvalidConfig is wrapped by every error New returns for a bad
	// Config; the message names the field and the value.
	ErrInvalidConfig = errors.New("sentinel: invalid config")
	// ErrNoSentinels means Config.Sentinels is empty.
	ErrNoSentinels = fmt.Errorf("%w: Config.Sentinels is empty", ErrInvalidConfig)
	// ErrNoMasterName means Config.MasterName is empty.
	ErrNoMasterName = fmt.Errorf("%w: Config.MasterName is empty", ErrInvalidConfig)
	// ErrRunning is returned by Run when the Watcher is already running
	// (or has run): a Watcher is run once.
	ErrRunning = errors.New("sentinel: Run called twice on the same Watcher")
	// ErrUnknownMaster is the error of a Sentinel that does not monitor
	// Config.MasterName (its get-master-addr-by-name reply is nil).
	ErrUnknownMaster = errors.New("sentinel: Sentinel does not monitor this master name")
)

// Config configures a Watcher. Zero values mean the documented default.
type Config struct {
	// MasterName is Sentinel's name for the group, e.g.
	// "platform-kv-master". Required.
	MasterName string

	// Sentinels are the seed Sentinel addresses (host:port). Required. One
	// address may be a Kubernetes Service that load-balances over all the
	// Sentinels; set Discover then, so that a majority can still be formed.
	Sentinels []string

	// Username and Password authenticate to the Sentinels. Default: none.
	Username, Password string

	// NodeUsername and NodePassword authenticate the ROLE checks on Redis
	// nodes and the INFO reads of the master and the replicas (the user
	// needs +role and +info). Default: none.
	NodeUsername, NodePassword string
	// TLS, if set, returns the TLS configuration for each connection to a
	// Sentinel; NodeTLS the same for ROLE checks and INFO reads on Redis
	// nodes. Called per dial. Default: plain TCP.
	TLS, NodeTLS func() *tls.Config

	// PollInterval is how often each Sentinel is polled, the master is
	// re-checked with ROLE and each replica is asked for INFO. A Sentinel
	// counts as reachable while its last poll succeeded within
	// 2×PollInterval+DialTimeout. Default 500ms.
	PollInterval time.Duration

	// DialTimeout bounds each connection attempt and each query (Sentinel
	// poll, ROLE, a round of INFO reads). Default 1s.
	DialTimeout time.Duration

	// FailoverHold is the longest a detected failover may hold writes
	// without a promotion before it is treated as aborted. Default 15s.
	FailoverHold time.Duration

	// Discover also makes the Watcher talk to the Sentinels that SENTINEL
	// sentinels <MasterName> names, so that a single Service address still
	// yields a majority. Sentinels are counted once per Sentinel run id, so
	// reaching one through both addresses does not give it two votes.
	// Default false: only the seed addresses are used.
	Discover bool

	// Logger receives events (switches, failovers, lost Sentinels, fail
	// closed). Default zap.NewNop().
	Logger *zap.Logger
}

// withDefaults returns a copy of c with every zero field set to its
// default. It is the only place defaults are applied.
func (c Config) withDefaults() Config {
	if c.PollInterval == 0 {
		c.PollInterval = DefaultPollInterval
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.FailoverHold == 0 {
		c.FailoverHold = DefaultFailoverHold
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	c.Sentinels = append([]string(nil), c.Sentinels...)
	return c
}

// validate checks a Config that already has its defaults.
func (c Config) validate() error {
	if c.MasterName == "" {
		return ErrNoMasterName
	}
	if len(c.Sentinels) == 0 {
		return ErrNoSentinels
	}
	if len(c.Sentinels) > MaxSentinels {
		return fmt.Errorf("%w: Config.Sentinels has %d addresses, at most %d are supported", ErrInvalidConfig, len(c.Sentinels), MaxSentinels)
	}
	seen := map[string]bool{}
	for i, a := range c.Sentinels {
		host, port, err := net.SplitHostPort(a)
		if err != nil || host == "" || port == "" {
			return fmt.Errorf("%w: Config.Sentinels[%d] %q is not host:port", ErrInvalidConfig, i, a)
		}
		if seen[a] {
			return fmt.Errorf("%w: Config.Sentinels[%d] %q is listed twice", ErrInvalidConfig, i, a)
		}
		seen[a] = true
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"PollInterval", c.PollInterval},
		{"DialTimeout", c.DialTimeout},
		{"FailoverHold", c.FailoverHold},
	} {
		if d.v < 0 {
			return fmt.Errorf("%w: Config.%s %v is negative", ErrInvalidConfig, d.name, d.v)
		}
	}
	return nil
}

// reachWindow is how long after its last successful poll a Sentinel still
// counts as reachable: two missed polls, plus the time one poll may take.
func (c Config) reachWindow() time.Duration {
	return 2*c.PollInterval + c.DialTimeout
}
