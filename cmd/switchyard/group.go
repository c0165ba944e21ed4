package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"

	"github.com/pnats/switchyard/proxy"
	"github.com/pnats/switchyard/sentinel"
	"go.uber.org/zap"
)

// group is one running Redis group: its proxy server, its listener and,
// in Sentinel mode, the watcher that tells the proxy where the master is.
type group struct {
	cfg     groupConfig
	log     *zap.Logger
	srv     *proxy.Server
	l       net.Listener
	watcher *sentinel.Watcher // nil for a fixed upstream
}

// newGroup binds the group's listener and builds its parts; run starts them.
func newGroup(cfg groupConfig, log *zap.Logger, m *metrics) (*group, error) {
	g := &group{cfg: cfg, log: log.With(zap.String("group", cfg.Name))}
	if s := cfg.Sentinel; s != nil {
		w, err := sentinel.New(sentinel.Config{
			MasterName:   s.MasterName,
			Sentinels:    s.Addrs,
			Discover:     *s.Discover,
			PollInterval: s.PollInterval,
			DialTimeout:  cfg.DialTimeout,
			FailoverHold: s.FailoverHold,
			Username:     s.Auth.Username,
			Password:     s.Auth.Password,
			NodeUsername: cfg.Auth.Username,
			NodePassword: cfg.Auth.Password,
			Logger:       g.log,
		})
		if err != nil {
			return nil, fmt.Errorf("group %q: %w", cfg.Name, err)
		}
		g.watcher = w
	}
	pc := proxy.Config{
		Group:              cfg.Name,
		PoolSize:           cfg.PoolSize,
		DialTimeout:        cfg.DialTimeout,
		ReadTimeout:        cfg.ReadTimeout,
		WriteTimeout:       cfg.WriteTimeout,
		HoldTimeout:        cfg.HoldTimeout,
		ClientWriteTimeout: cfg.ClientWriteTimeout,
		PubSubWriteTimeout: cfg.PubSubWriteTimeout,
		MaxClients:         cfg.MaxClients,
		IdleTimeout:        cfg.IdleTimeout,
		KeepAlive:          cfg.KeepAlive,
		DialBackoff:        cfg.DialBackoff,
		MaxRequestBytes:    cfg.MaxRequestBytes,
		Username:           cfg.Auth.Username,
		Password:           cfg.Auth.Password,
		Logger:             log,
	}
	var topology func() sentinel.Topology
	if g.watcher != nil {
		pc.Recheck = g.watcher.Recheck
		topology = g.watcher.Topology
	}
	if m != nil {
		pc.Metrics = m.forGroup(cfg.Name, topology)
	}
	g.srv = proxy.New(pc)
	if cfg.Upstream != "" {
		g.srv.SetMaster(1, cfg.Upstream)
	}
	l, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("group %q: listen on %s: %w", cfg.Name, cfg.Listen, err)
	}
	g.l = l
	return g, nil
}

// run serves until ctx ends or the listener fails. It returns after the
// watcher and the bridge goroutine have exited; the caller then shuts the
// proxy server down.
func (g *group) run(ctx context.Context) error {
	g.log.Info("serving", zap.String("listen", g.l.Addr().String()), zap.String("upstream", g.describe()))
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(ctx)
	defer func() {
		cancel()
		wg.Wait()
	}()
	if g.watcher != nil {
		wg.Add(2)
		go func() {
			defer wg.Done()
			if err := g.watcher.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
				g.log.Error("sentinel watcher stopped", zap.Error(err))
			}
		}()
		go func() {
			defer wg.Done()
			g.follow(ctx)
		}()
	}
	err := g.srv.Serve(g.l)
	if errors.Is(err, proxy.ErrServerClosed) {
		return nil
	}
	return err
}

// follow applies every topology the watcher publishes to the proxy.
func (g *group) follow(ctx context.Context) {
	for {
		apply(g.srv, g.watcher.Topology())
		select {
		case <-ctx.Done():
			return
		case <-g.watcher.Changes():
		}
	}
}

// apply maps a topology onto the proxy: a verified master receives
// commands; a failover in progress, a disagreement or an unverified node
// holds them, so they wait and then fail closed rather than go to a guess.
func apply(srv *proxy.Server, t sentinel.Topology) {
	switch t.State {
	case sentinel.StateReady, sentinel.StateDegraded:
		if t.Master != "" {
			srv.SetMaster(t.Epoch, t.Master)
			return
		}
		srv.Hold()
	case sentinel.StateFailover, sentinel.StateNoMaster:
		srv.Hold()
	default:
		// Nothing decided yet: there is no master to hold on to.
	}
}

func (g *group) describe() string {
	if s := g.cfg.Sentinel; s != nil {
		return fmt.Sprintf("sentinel %s via %v", s.MasterName, s.Addrs)
	}
	return g.cfg.Upstream
}
