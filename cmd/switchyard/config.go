package main

import (
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/caarlos0/env/v11"
	"github.com/pnats/switchyard/proxy"
)

// config is the single-group environment configuration the sidecar uses.
type config struct {
	// Listen is the client address. Default 127.0.0.1:6379.
	Listen string `env:"SWITCHYARD_LISTEN" envDefault:"127.0.0.1:6379"`
	// AdminListen serves /healthz, /readyz and /metrics; empty turns it off.
	// Default 127.0.0.1:9190.
	AdminListen string `env:"SWITCHYARD_ADMIN_LISTEN" envDefault:"127.0.0.1:9190"`

	// RedisHost and RedisPort name a fixed upstream.
	RedisHost string `env:"REDIS_HOST"`
	RedisPort int    `env:"REDIS_PORT" envDefault:"6379"`

	// SocketTimeout, in seconds as the seed gives it, bounds dialing and
	// waiting for a reply from the upstream. 0 keeps the proxy defaults.
	SocketTimeout float64 `env:"REDIS_SOCKET_TIMEOUT"`
	// PoolSize is the pipelined connections per settings key. Default 2.
	PoolSize int `env:"SWITCHYARD_POOL_SIZE" envDefault:"2"`
	// HoldTimeout is how long a command waits for a master. Default 2s.
	HoldTimeout time.Duration `env:"SWITCHYARD_HOLD_TIMEOUT" envDefault:"2s"`
	// DrainTimeout bounds a graceful shutdown. Default 10s.
	DrainTimeout time.Duration `env:"SWITCHYARD_DRAIN_TIMEOUT" envDefault:"10s"`

	LogLevel  string `env:"SWITCHYARD_LOG_LEVEL" envDefault:"info"`
	LogFormat string `env:"SWITCHYARD_LOG_FORMAT" envDefault:"json"`
}

func loadConfig() (*config, error) {
	var c config
	if err := env.Parse(&c); err != nil {
		return nil, fmt.Errorf("configuration: %w", err)
	}
	return &c, c.validate()
}

func (c *config) validate() error {
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("SWITCHYARD_LISTEN=%q: want host:port (%v)", c.Listen, err)
	}
	if c.AdminListen != "" {
		if _, _, err := net.SplitHostPort(c.AdminListen); err != nil {
			return fmt.Errorf("SWITCHYARD_ADMIN_LISTEN=%q: want host:port or empty (%v)", c.AdminListen, err)
		}
	}
	if c.RedisHost == "" {
		return fmt.Errorf("REDIS_HOST is empty: set REDIS_HOST (and REDIS_PORT) to the upstream Redis")
	}
	if c.RedisPort < 1 || c.RedisPort > 65535 {
		return fmt.Errorf("REDIS_PORT=%d: want 1-65535", c.RedisPort)
	}
	if _, err := durationSeconds("REDIS_SOCKET_TIMEOUT", c.SocketTimeout); err != nil {
		return err
	}
	if c.PoolSize < 1 || c.PoolSize > 64 {
		return fmt.Errorf("SWITCHYARD_POOL_SIZE=%d: want 1-64", c.PoolSize)
	}
	if c.HoldTimeout < 0 {
		return fmt.Errorf("SWITCHYARD_HOLD_TIMEOUT=%v: must not be negative", c.HoldTimeout)
	}
	if c.DrainTimeout < 0 {
		return fmt.Errorf("SWITCHYARD_DRAIN_TIMEOUT=%v: must not be negative", c.DrainTimeout)
	}
	return nil
}

func (c *config) upstream() string {
	return net.JoinHostPort(c.RedisHost, strconv.Itoa(c.RedisPort))
}

func (c *config) proxyConfig() proxy.Config {
	timeout, _ := durationSeconds("REDIS_SOCKET_TIMEOUT", c.SocketTimeout)
	return proxy.Config{
		Group:       c.upstream(),
		PoolSize:    c.PoolSize,
		DialTimeout: timeout,
		ReadTimeout: timeout,
		HoldTimeout: c.HoldTimeout,
	}
}
