package main

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"
	"github.com/pnats/switchyard/sentinel"
	"go.uber.org/zap"
	"go.yaml.in/yaml/v3"
)

// config is everything the binary runs: global settings and the groups.
// It comes from a YAML file (SWITCHYARD_CONFIG or -config) or, with no
// file, from the single-group environment variables the sidecar uses.
type config struct {
	// AdminListen serves /healthz, /readyz and /metrics; empty turns it
	// off. Default 127.0.0.1:9190.
	AdminListen string `yaml:"admin_listen"`
	// DrainTimeout bounds a graceful shutdown. Default 10s.
	DrainTimeout time.Duration `yaml:"drain_timeout"`
	Log          logConfig     `yaml:"log"`
	Groups       []groupConfig `yaml:"groups"`
	// SentinelFacade answers Sentinel queries naming Switchyard as each
	// group's master. nil: off.
	SentinelFacade *facadeConfig `yaml:"sentinel_facade"`

	// warnings are things the configuration did that its author may not
	// expect; serve logs them and check-config prints them.
	warnings []string
}

// facadeConfig is the Sentinel facade (package sentinel/facade).
type facadeConfig struct {
	// Listen is the facade's host:port, e.g. 0.0.0.0:26379. Required
	// unless TLS is set.
	Listen string `yaml:"listen"`
	// TLS adds a TLS listener beside (or instead of) the plain one. Over
	// it, the facade names each group's TLS address (see groupFacade).
	TLS *listenerTLS `yaml:"tls"`
	// Announce is the facade's own advertised host:port. Default: Listen,
	// with an unspecified host replaced by the announce host (see
	// config.announceHost).
	Announce string `yaml:"announce"`
	// Password, or PasswordFile, makes clients AUTH first. Default: none.
	Password     string `yaml:"password"`
	PasswordFile string `yaml:"password_file"`
	// MaxClients is the most clients at once on each of the facade's
	// listeners. Default 10000; -1: no limit.
	MaxClients int `yaml:"max_clients"`
}

type logConfig struct {
	// Level is debug, info, warn or error. Default info.
	Level string `yaml:"level"`
	// Format is json or console. Default json.
	Format string `yaml:"format"`
}

// groupConfig is one Redis group behind one listener.
type groupConfig struct {
	// Name labels the group in logs and metrics. Required.
	Name string `yaml:"name"`
	// Listen is the client address, host:port. Required.
	Listen string `yaml:"listen"`
	// Upstream is a fixed master host:port; exclusive with Sentinel.
	Upstream string `yaml:"upstream"`
	// Sentinel makes the group follow Sentinel; exclusive with Upstream.
	Sentinel *sentinelConfig `yaml:"sentinel"`

	// PoolSize is the pipelined connections per settings key. Default 2.
	PoolSize int `yaml:"pool_size"`
	// DialTimeout bounds connecting to Redis. Default 2s.
	DialTimeout time.Duration `yaml:"dial_timeout"`
	// ReadTimeout bounds waiting for a non-blocking reply. Default 10s.
	ReadTimeout time.Duration `yaml:"read_timeout"`
	// WriteTimeout bounds writes to Redis. Default 5s.
	WriteTimeout time.Duration `yaml:"write_timeout"`
	// HoldTimeout is how long a command waits for a verified master,
	// during a failover for example, before -TRYAGAIN. Default 2s.
	HoldTimeout time.Duration `yaml:"hold_timeout"`
	// ClientWriteTimeout disconnects clients that stop reading. Default 30s.
	ClientWriteTimeout time.Duration `yaml:"client_write_timeout"`
	// PubSubWriteTimeout does the same for subscribed and MONITOR
	// clients. Default: client_write_timeout.
	PubSubWriteTimeout time.Duration `yaml:"pubsub_write_timeout"`
	// MaxClients is the most clients at once. Default 10000; -1: no limit.
	MaxClients int `yaml:"max_clients"`
	// IdleTimeout closes clients silent for this long (subscribed and
	// blocked clients excepted). Default 0: never.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// ClientOutputLimit disconnects a client whose held replies pass it,
	// bytes, after them: a single reply of any size gets through. Default
	// 256 MiB; -1: none.
	ClientOutputLimit int64 `yaml:"client_output_limit"`
	// MaxRequestBytes is the largest request a client may send, bytes.
	// Default 1 GiB (Redis's client-query-buffer-limit); a single bulk
	// string is also limited to 512 MiB, as in Redis.
	MaxRequestBytes int64 `yaml:"max_request_bytes"`
	// KeepAlive is the TCP keepalive period, clients and backends.
	// Default 15s; -1s turns it off.
	KeepAlive time.Duration `yaml:"keepalive"`
	// DialBackoff is how long a failed dial is not retried. Default 100ms.
	DialBackoff time.Duration `yaml:"dial_backoff"`
	// EventLoop serves plain-TCP clients from an event loop rather than a
	// goroutine each (Linux; docs/operations.md). Default true.
	EventLoop *bool `yaml:"event_loop"`
	// IOUring lets the event loop read and write many clients in one
	// system call through io_uring where the kernel and the seccomp
	// profile allow it (docs/operations.md). Default true.
	IOUring *bool `yaml:"io_uring"`

	// Auth authenticates the proxy's connections to Redis (and its ROLE
	// checks). Default: none.
	Auth credentials `yaml:"auth"`

	// Announce is the host:port clients outside should dial for this
	// group, given by the Sentinel facade as its master. Default: the
	// listen address, with an unspecified host replaced by the announce
	// host (see config.announceHost).
	Announce string `yaml:"announce"`
	// FacadeName is the Sentinel master name the facade answers to for a
	// group with a fixed upstream. Sentinel groups answer to
	// sentinel.master_name. Default: none (not in the facade).
	FacadeName string `yaml:"facade_name"`

	// TLS listener, client authentication, backend TLS and replica reads.
	groupExtras `yaml:",inline"`
}

// credentials are a username and a password given inline or, better, in
// a file (a mounted Secret). They are never logged or shown in /status.
type credentials struct {
	// Username is an ACL user; empty means the default user.
	Username string `yaml:"username"`
	// Password, or PasswordFile whose content (trailing newline removed)
	// is the password. Not both.
	Password     string `yaml:"password"`
	PasswordFile string `yaml:"password_file"`
}

// resolve reads PasswordFile into Password. An empty file means no
// password, as an unset one does: these are the proxy's own credentials,
// and Redis or Sentinel refuses them if it wants one.
func (c *credentials) resolve(field string) (err error) {
	c.Password, err = readPassword(field, c.Password, c.PasswordFile, false)
	c.PasswordFile = ""
	return err
}

// readPassword returns the inline password, or the content of file
// (trailing newline removed). Not both. A password that guards clients
// (required) must not be empty: an empty file would otherwise let anyone
// in with AUTH "" (a user), or turn authentication off (a default one).
func readPassword(field, inline, file string, required bool) (string, error) {
	if file == "" {
		return inline, nil
	}
	if inline != "" {
		return "", fmt.Errorf("%s: set password or password_file, not both", field)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("%s.password_file: %w", field, err)
	}
	pw := strings.TrimRight(string(b), "\r\n")
	if required && pw == "" {
		return "", fmt.Errorf("%s.password_file %q is empty", field, file)
	}
	return pw, nil
}

type sentinelConfig struct {
	// MasterName is Sentinel's name for the group. Required.
	MasterName string `yaml:"master_name"`
	// Addrs are Sentinel host:port addresses (at least one).
	Addrs []string `yaml:"addrs"`
	// Discover also follows the Sentinels that the given ones know of, so
	// one Service address still yields a majority. Default true.
	Discover *bool `yaml:"discover"`
	// PollInterval is how often Sentinels are queried and the master's
	// ROLE re-checked. Default 500ms.
	PollInterval time.Duration `yaml:"poll_interval"`
	// FailoverHold is the longest a detected failover holds writes
	// without a promotion before it counts as aborted. Default 15s.
	FailoverHold time.Duration `yaml:"failover_hold"`
	// Auth authenticates to the Sentinels. Default: none.
	Auth credentials `yaml:"auth"`
	// TLS to the Sentinels. Default: plain.
	TLS *clientTLS `yaml:"tls"`
}

// envGlobal is the part of the environment that applies with a
// configuration file too (the variables the docs mark †), and overrides
// it.
type envGlobal struct {
	ConfigFile   string        `env:"SWITCHYARD_CONFIG"`
	AdminListen  string        `env:"SWITCHYARD_ADMIN_LISTEN"`
	LogLevel     string        `env:"SWITCHYARD_LOG_LEVEL"`
	LogFormat    string        `env:"SWITCHYARD_LOG_FORMAT"`
	DrainTimeout time.Duration `env:"SWITCHYARD_DRAIN_TIMEOUT"`
}

// envConfig is the sidecar's contract: the variables its pods already
// have. Without a file, it is the whole configuration.
type envConfig struct {
	envGlobal
	Listen string `env:"SWITCHYARD_LISTEN" envDefault:"127.0.0.1:6379"`

	RedisHost      string   `env:"REDIS_HOST"`
	RedisPort      int      `env:"REDIS_PORT" envDefault:"6379"`
	SentinelHosts  []string `env:"REDIS_SENTINEL_HOSTS" envSeparator:","`
	SentinelMaster string   `env:"REDIS_SENTINEL_MASTER"`
	// SocketTimeout is in seconds, as the seed gives it ("0.1").
	SocketTimeout  float64 `env:"REDIS_SOCKET_TIMEOUT"`
	MaxConnections int     `env:"REDIS_MAX_CONNECTIONS"`

	RedisUsername        string `env:"REDIS_USERNAME"`
	RedisPassword        string `env:"REDIS_PASSWORD"`
	RedisPasswordFile    string `env:"REDIS_PASSWORD_FILE"`
	SentinelUsername     string `env:"REDIS_SENTINEL_USERNAME"`
	SentinelPassword     string `env:"REDIS_SENTINEL_PASSWORD"`
	SentinelPasswordFile string `env:"REDIS_SENTINEL_PASSWORD_FILE"`
	EventLoop            *bool  `env:"SWITCHYARD_EVENT_LOOP"`
	IOUring              *bool  `env:"SWITCHYARD_IO_URING"`

	// SentinelListen turns the Sentinel facade on; Announce is the
	// group's advertised address.
	SentinelListen string `env:"SWITCHYARD_SENTINEL_LISTEN"`
	Announce       string `env:"SWITCHYARD_ANNOUNCE"`

	// TLS on SWITCHYARD_LISTEN, mTLS, and a password for clients.
	TLSCertFile     string `env:"SWITCHYARD_TLS_CERT_FILE"`
	TLSKeyFile      string `env:"SWITCHYARD_TLS_KEY_FILE"`
	TLSClientCAFile string `env:"SWITCHYARD_TLS_CLIENT_CA_FILE"`
	Password        string `env:"SWITCHYARD_PASSWORD"`
	PasswordFile    string `env:"SWITCHYARD_PASSWORD_FILE"`
}

// envError names the variables, with their values, in env's parse
// errors, which name the Go fields they fill.
func envError(err error) error {
	var agg env.AggregateError
	if !errors.As(err, &agg) {
		return err
	}
	t := reflect.TypeFor[envConfig]()
	var out []error
	for _, e := range agg.Errors {
		var pe env.ParseError
		if !errors.As(e, &pe) {
			out = append(out, e)
			continue
		}
		f, ok := t.FieldByName(pe.Name)
		if !ok {
			out = append(out, e)
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("env"), ",")
		out = append(out, fmt.Errorf("%s=%q: want %s", name, os.Getenv(name), want(pe.Type.String())))
	}
	return errors.Join(out...)
}

// loadConfig reads the file named by path (or SWITCHYARD_CONFIG), else
// the environment, applies defaults and validates.
func loadConfig(path string) (*config, error) {
	// With a file, only the global variables are read: the others are
	// not used, so a malformed one must not stop the proxy.
	var e envConfig
	if err := env.Parse(&e.envGlobal); err != nil {
		return nil, fmt.Errorf("environment: %w", envError(err))
	}
	if path == "" {
		path = e.ConfigFile
	}
	var c *config
	var err error
	if path != "" {
		c, err = readFile(path)
	} else {
		if err := env.Parse(&e); err != nil {
			return nil, fmt.Errorf("environment: %w", envError(err))
		}
		c, err = fromEnv(e)
	}
	if err != nil {
		return nil, err
	}
	// Global environment variables override the file.
	if e.AdminListen != "" {
		c.AdminListen = e.AdminListen
	}
	if e.LogLevel != "" {
		c.Log.Level = e.LogLevel
	}
	if e.LogFormat != "" {
		c.Log.Format = e.LogFormat
	}
	if e.DrainTimeout != 0 {
		c.DrainTimeout = e.DrainTimeout
	}
	c.setDefaults()
	if err := c.validate(); err != nil {
		return nil, err
	}
	for i := range c.Groups {
		g := &c.Groups[i]
		if err := g.Auth.resolve(fmt.Sprintf("groups[%d] (%s).auth", i, g.Name)); err != nil {
			return nil, err
		}
		if g.Sentinel != nil {
			if err := g.Sentinel.Auth.resolve(fmt.Sprintf("groups[%d] (%s).sentinel.auth", i, g.Name)); err != nil {
				return nil, err
			}
		}
		if err := g.groupExtras.resolve(fmt.Sprintf("groups[%d] (%s)", i, g.Name)); err != nil {
			return nil, err
		}
	}
	if f := c.SentinelFacade; f != nil {
		var err error
		if f.Password, err = readPassword("sentinel_facade", f.Password, f.PasswordFile, true); err != nil {
			return nil, err
		}
		f.PasswordFile = ""
	}
	if err := c.checkTLS(); err != nil {
		return nil, err
	}
	return c, nil
}

func readFile(path string) (*config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config file: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true) // a misspelt setting must not be silently ignored
	var c config
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("config file %s: %w", path, yamlError(b, err))
	}
	return &c, nil
}

// yamlTypeError is how yaml.v3 reports a value of the wrong type.
var yamlTypeError = regexp.MustCompile("^line ([0-9]+): cannot unmarshal !![a-z]+ `(.*)` into (.+)$")

// yamlError names the setting, its value and what is allowed in yaml's
// type errors, which give a line and a Go type: "line 5: hold_timeout=2:
// want a duration such as 5s".
func yamlError(src []byte, err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return err
	}
	lines := strings.Split(string(src), "\n")
	var out []string
	for _, e := range te.Errors {
		m := yamlTypeError.FindStringSubmatch(e)
		if m == nil {
			out = append(out, e)
			continue
		}
		n, _ := strconv.Atoi(m[1])
		setting := "value " + strconv.Quote(m[2])
		if n >= 1 && n <= len(lines) {
			key := regexp.MustCompile(`([A-Za-z_]+):[ \t]*["']?` + regexp.QuoteMeta(m[2]) + `["']?[ \t]*(?:[,}#]|$)`)
			if k := key.FindStringSubmatch(lines[n-1]); k != nil {
				setting = k[1] + "=" + m[2]
			}
		}
		out = append(out, fmt.Sprintf("line %s: %s: want %s", m[1], setting, want(m[3])))
	}
	return errors.New(strings.Join(out, "; "))
}

// want says what a value of a setting's Go type looks like.
func want(goType string) string {
	switch goType {
	case "time.Duration":
		return "a duration such as 5s"
	case "int", "int64":
		return "a whole number"
	case "float64":
		return "a number"
	case "bool", "*bool":
		return "true or false"
	}
	return goType
}

// fromEnv builds the single group the sidecar variables describe.
// minSocketDial is the least REDIS_SOCKET_TIMEOUT that becomes the dial
// timeout (fromEnv).
const minSocketDial = time.Second

func fromEnv(e envConfig) (*config, error) {
	g := groupConfig{Name: "default", Listen: e.Listen}
	var warnings []string
	switch {
	case e.RedisHost != "" && len(e.SentinelHosts) == 0 && e.SentinelMaster != "" && e.SentinelListen != "":
		// A fixed upstream that the facade presents under the name
		// REDIS_SENTINEL_MASTER.
		if e.RedisPort < 1 || e.RedisPort > 65535 {
			return nil, fmt.Errorf("REDIS_PORT=%d: want 1-65535", e.RedisPort)
		}
		g.Upstream = net.JoinHostPort(e.RedisHost, strconv.Itoa(e.RedisPort))
		g.FacadeName = e.SentinelMaster
	case len(e.SentinelHosts) > 0 || e.SentinelMaster != "":
		if len(e.SentinelHosts) == 0 || e.SentinelMaster == "" {
			return nil, errors.New("REDIS_SENTINEL_HOSTS and REDIS_SENTINEL_MASTER must be set together")
		}
		g.Name = e.SentinelMaster
		hosts := make([]string, 0, len(e.SentinelHosts))
		for _, h := range e.SentinelHosts {
			if h = strings.TrimSpace(h); h != "" {
				hosts = append(hosts, h)
			}
		}
		g.Sentinel = &sentinelConfig{MasterName: e.SentinelMaster, Addrs: hosts}
		if e.RedisHost != "" {
			// The connection guide lists both sets, and a pod given all of
			// them (envFrom) should follow Sentinel, which is the point.
			warnings = append(warnings, fmt.Sprintf("REDIS_HOST=%s is ignored: REDIS_SENTINEL_HOSTS and REDIS_SENTINEL_MASTER are set, and Switchyard follows the master the Sentinels name", e.RedisHost))
		}
	case e.RedisHost != "":
		if e.RedisPort < 1 || e.RedisPort > 65535 {
			return nil, fmt.Errorf("REDIS_PORT=%d: want 1-65535", e.RedisPort)
		}
		g.Upstream = net.JoinHostPort(e.RedisHost, strconv.Itoa(e.RedisPort))
	default:
		return nil, errors.New("no upstream: set REDIS_SENTINEL_HOSTS and REDIS_SENTINEL_MASTER, or REDIS_HOST and REDIS_PORT, or SWITCHYARD_CONFIG to a config file")
	}
	if e.SocketTimeout < 0 {
		return nil, fmt.Errorf("REDIS_SOCKET_TIMEOUT=%v: want seconds, zero or more", e.SocketTimeout)
	}
	if e.SocketTimeout > 0 {
		// The app's socket timeout bounds connecting, as it does for the
		// app, if it leaves room for that. It is not the read timeout: the
		// app enforces its patience on its own connection, while on the
		// proxy's shared connections a timeout fails every client's
		// commands in flight there (read_timeout keeps its default). Below
		// a second (the guide's 0.1) it is too short for the proxy's own
		// work under it: a connect with its AUTH and SELECT, a Sentinel
		// poll of four queries, a ROLE check.
		d := time.Duration(e.SocketTimeout * float64(time.Second))
		if d < minSocketDial {
			warnings = append(warnings, fmt.Sprintf("REDIS_SOCKET_TIMEOUT=%v is the app's per-command timeout; below %v it is not used as Switchyard's dial_timeout, which keeps its default", e.SocketTimeout, minSocketDial))
		} else {
			g.DialTimeout = d
		}
	}
	if e.MaxConnections < 0 {
		return nil, fmt.Errorf("REDIS_MAX_CONNECTIONS=%d: want zero or more", e.MaxConnections)
	}
	g.Auth = credentials{Username: e.RedisUsername, Password: e.RedisPassword, PasswordFile: e.RedisPasswordFile}
	if g.Sentinel != nil {
		g.Sentinel.Auth = credentials{Username: e.SentinelUsername, Password: e.SentinelPassword, PasswordFile: e.SentinelPasswordFile}
	} else if e.SentinelPassword != "" || e.SentinelPasswordFile != "" {
		return nil, errors.New("REDIS_SENTINEL_PASSWORD is set but REDIS_SENTINEL_HOSTS is not")
	}
	g.Announce = e.Announce
	g.EventLoop = e.EventLoop
	g.IOUring = e.IOUring
	if e.TLSCertFile != "" || e.TLSKeyFile != "" || e.TLSClientCAFile != "" {
		// TLS replaces plain text on SWITCHYARD_LISTEN.
		g.TLS = &listenerTLS{Listen: g.Listen, CertFile: e.TLSCertFile, KeyFile: e.TLSKeyFile, ClientCAFile: e.TLSClientCAFile}
		if e.TLSClientCAFile != "" {
			g.TLS.ClientAuth = "require"
		}
		g.Listen = ""
	}
	if e.Password != "" || e.PasswordFile != "" {
		g.ClientAuth = &clientAuth{Password: e.Password, PasswordFile: e.PasswordFile}
	}
	c := &config{AdminListen: "127.0.0.1:9190", Groups: []groupConfig{g}, warnings: warnings}
	if e.SentinelListen != "" {
		c.SentinelFacade = &facadeConfig{Listen: e.SentinelListen}
	}
	return c, nil
}

func (c *config) setDefaults() {
	if c.DrainTimeout == 0 {
		c.DrainTimeout = 10 * time.Second
	}
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.Log.Format == "" {
		c.Log.Format = "json"
	}
	for i := range c.Groups {
		if s := c.Groups[i].Sentinel; s != nil && s.Discover == nil {
			t := true
			s.Discover = &t
		}
	}
}

// validate stops start-up on the first invalid value, naming the field,
// the value and what is allowed.
func (c *config) validate() error {
	if c.AdminListen != "" {
		if err := checkAddr("admin_listen", c.AdminListen); err != nil {
			return err
		}
	}
	if c.DrainTimeout < 0 {
		return fmt.Errorf("drain_timeout=%v: must not be negative", c.DrainTimeout)
	}
	switch strings.ToLower(c.Log.Level) {
	case "", "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("log.level=%q: want debug, info, warn or error", c.Log.Level)
	}
	switch c.Log.Format {
	case "json", "console":
	default:
		return fmt.Errorf("log.format=%q: want json or console", c.Log.Format)
	}
	if len(c.Groups) == 0 {
		return errors.New("groups: at least one group is required")
	}
	names := map[string]bool{}
	listens := map[string]string{}
	for i, g := range c.Groups {
		field := fmt.Sprintf("groups[%d]", i)
		if g.Name == "" {
			return fmt.Errorf("%s.name is empty: every group needs a name", field)
		}
		field = fmt.Sprintf("groups[%d] (%s)", i, g.Name)
		if names[g.Name] {
			return fmt.Errorf("%s.name=%q: names must be unique", field, g.Name)
		}
		names[g.Name] = true
		if g.Listen == "" && g.TLS == nil {
			return fmt.Errorf("%s.listen is empty: give listen, tls.listen or both", field)
		}
		if err := g.groupExtras.validate(field); err != nil {
			return err
		}
		for _, l := range []struct{ name, addr string }{{"listen", g.Listen}, {"tls.listen", g.tlsListen()}, {"read_listen", g.ReadListen}} {
			if l.addr == "" {
				continue
			}
			if err := checkAddr(field+"."+l.name, l.addr); err != nil {
				return err
			}
			if other, dup := listens[l.addr]; dup {
				return fmt.Errorf("%s.%s=%q: already used by group %q", field, l.name, l.addr, other)
			}
			listens[l.addr] = g.Name
		}
		switch {
		case g.Upstream != "" && g.Sentinel != nil:
			return fmt.Errorf("%s: set either upstream or sentinel, not both", field)
		case g.Upstream != "":
			if err := checkAddr(field+".upstream", g.Upstream); err != nil {
				return err
			}
		case g.Sentinel != nil:
			s := g.Sentinel
			if s.MasterName == "" {
				return fmt.Errorf("%s.sentinel.master_name is empty", field)
			}
			if len(s.Addrs) == 0 {
				return fmt.Errorf("%s.sentinel.addrs is empty: give at least one Sentinel host:port", field)
			}
			if len(s.Addrs) > sentinel.MaxSentinels {
				return fmt.Errorf("%s.sentinel.addrs: %d addresses, at most %d are supported", field, len(s.Addrs), sentinel.MaxSentinels)
			}
			seen := map[string]bool{}
			for j, a := range s.Addrs {
				f := fmt.Sprintf("%s.sentinel.addrs[%d]", field, j)
				if err := checkAddr(f, a); err != nil {
					return err
				}
				if host, _, _ := net.SplitHostPort(a); host == "" {
					return fmt.Errorf("%s=%q: want host:port, with a host", f, a)
				}
				if seen[a] {
					return fmt.Errorf("%s=%q: listed twice", f, a)
				}
				seen[a] = true
			}
			if s.PollInterval < 0 {
				return fmt.Errorf("%s.sentinel.poll_interval=%v: must not be negative", field, s.PollInterval)
			}
			if s.FailoverHold < 0 {
				return fmt.Errorf("%s.sentinel.failover_hold=%v: must not be negative", field, s.FailoverHold)
			}
			if err := s.TLS.validate(field + ".sentinel.tls"); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%s: no upstream: set upstream (host:port) or sentinel (master_name, addrs)", field)
		}
		if g.MaxClients < -1 {
			return fmt.Errorf("%s.max_clients=%d: want a positive number, 0 for the default (10000) or -1 for no limit", field, g.MaxClients)
		}
		if g.ClientOutputLimit < -1 {
			return fmt.Errorf("%s.client_output_limit=%d: want bytes, or -1 for no limit (0 for the default, 256 MiB)", field, g.ClientOutputLimit)
		}
		if g.MaxRequestBytes < 0 {
			return fmt.Errorf("%s.max_request_bytes=%d: must not be negative", field, g.MaxRequestBytes)
		}
		if g.PoolSize < 0 || g.PoolSize > 64 {
			return fmt.Errorf("%s.pool_size=%d: want 1-64 (0 for the default, 2)", field, g.PoolSize)
		}
		if g.Announce != "" {
			if err := checkAnnounce(field+".announce", g.Announce); err != nil {
				return err
			}
		}
		if g.FacadeName != "" && g.Sentinel != nil {
			return fmt.Errorf("%s.facade_name=%q: only for a fixed upstream; a Sentinel group answers to sentinel.master_name (%q)", field, g.FacadeName, g.Sentinel.MasterName)
		}
		for name, d := range map[string]time.Duration{
			"dial_timeout": g.DialTimeout, "read_timeout": g.ReadTimeout, "write_timeout": g.WriteTimeout,
			"hold_timeout": g.HoldTimeout, "client_write_timeout": g.ClientWriteTimeout,
			"pubsub_write_timeout": g.PubSubWriteTimeout, "idle_timeout": g.IdleTimeout, "dial_backoff": g.DialBackoff,
		} {
			if d < 0 {
				return fmt.Errorf("%s.%s=%v: must not be negative", field, name, d)
			}
		}
	}
	return c.validateFacade()
}

func checkAddr(field, addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%s=%q: want host:port", field, addr)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%s=%q: port must be 0-65535", field, addr)
	}
	_ = host
	return nil
}

// checkTLS loads every certificate, key and CA file the configuration
// names, and checks how they combine, so that a missing or bad one fails
// the configuration (check-config, start-up, a reload, which then changes
// nothing) instead of the group's start: by then a reload has stopped the
// group it changed. Building them starts nothing.
func (c *config) checkTLS() error {
	nop := zap.NewNop()
	for i := range c.Groups {
		g := &c.Groups[i]
		field := fmt.Sprintf("groups[%d] (%s)", i, g.Name)
		if g.TLS != nil {
			if _, err := g.TLS.build(nop); err != nil {
				return fmt.Errorf("%s.tls: %w", field, err)
			}
		}
		if _, err := g.BackendTLS.build(nop); err != nil {
			return fmt.Errorf("%s.backend_tls: %w", field, err)
		}
		if s := g.Sentinel; s != nil {
			if _, err := s.TLS.build(nop); err != nil {
				return fmt.Errorf("%s.sentinel.tls: %w", field, err)
			}
		}
	}
	if f := c.SentinelFacade; f != nil && f.TLS != nil {
		if _, err := f.TLS.build(nop); err != nil {
			return fmt.Errorf("sentinel_facade.tls: %w", err)
		}
	}
	return nil
}
