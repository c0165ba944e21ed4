package main

import (
	"context"
	stdtls "crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/pnats/switchyard/proxy"
	"github.com/pnats/switchyard/sentinel"
	sytls "github.com/pnats/switchyard/tls"
	"go.uber.org/zap"
)

// group is one running Redis group: its proxy server, its listener and,
// in Sentinel mode, the watcher that tells the proxy where the master is.
type group struct {
	cfg   groupConfig
	log   *zap.Logger
	srv   *proxy.Server
	l     net.Listener  // the main listener: plain, or TLS when there is no plain one
	tlsL  net.Listener  // the TLS listener, if any (may be l)
	readL net.Listener  // the read port, if any
	certs *sytls.Server // the TLS listener's certificates, reloaded by run
	// clientCerts are backend_tls's and sentinel.tls's files, reloaded by
	// watch too.
	clientCerts []*sytls.Client
	watcher     *sentinel.Watcher // nil for a fixed upstream

	// socks are the sockets under l, tlsL and readL; taken are those
	// newGroup had from a reload's spare ones rather than bound itself.
	socks []*socket
	taken map[*socket]bool
	// accepting is closed once run's accept loops have all returned: a
	// socket passed on may then be accepted on by another group.
	accepting chan struct{}
	// unwatch stops what watch started; nil until then.
	unwatch func()

	maxLag int64 // max_replica_lag_bytes
}

// release closes the group's sockets, for a group that will not run or
// has stopped.
func (g *group) release() {
	for _, s := range g.socks {
		s.release()
	}
}

// offer puts the group's sockets in sp, for the groups a reload builds.
func (g *group) offer(sp spare) {
	for _, s := range g.socks {
		sp[s.addr] = s
	}
}

// keep takes the group's sockets back out of sp, for a group that keeps
// running after all. It reports false, taking none, if a new group has
// taken one of them.
func (g *group) keep(sp spare) bool {
	for _, s := range g.socks {
		if sp[s.addr] != s {
			return false
		}
	}
	for _, s := range g.socks {
		delete(sp, s.addr)
	}
	return true
}

// keepable reports whether g could keep running after all in place of
// successor, a group a reload built to replace it: each of g's sockets
// is in sp or was taken by successor, which gives it back (discard).
func (g *group) keepable(sp spare, successor *group) bool {
	for _, s := range g.socks {
		if sp[s.addr] != s && !successor.taken[s] {
			return false
		}
	}
	return true
}

// discard ends a group that will not serve after all (it failed to build,
// or a reload keeps the group it was to replace): what watch started
// stops, the sockets it took from sp go back there, and those it bound
// itself are closed.
func (g *group) discard(sp spare) {
	if g.unwatch != nil {
		g.unwatch()
	}
	for _, s := range g.socks {
		if g.taken[s] {
			sp[s.addr] = s
		} else {
			s.release()
		}
	}
	if g.srv != nil {
		// A fixed upstream's master is set before the listeners are
		// bound, which starts the server's loop and dials.
		g.srv.Close()
	}
}

// listen returns a socket bound to addr: the one sp holds for it, if any,
// or a new one.
func (g *group) listen(addr string, sp spare) (*socket, error) {
	s := sp[addr]
	if s != nil {
		delete(sp, addr)
		g.taken[s] = true
	} else {
		var err error
		if s, err = bind(addr); err != nil {
			return nil, &bindError{addr: addr, err: err}
		}
	}
	g.socks = append(g.socks, s)
	return s, nil
}

// bindError is a failure to bind one of a group's addresses.
type bindError struct {
	addr string
	err  error
}

func (e *bindError) Error() string { return e.err.Error() }
func (e *bindError) Unwrap() error { return e.err }

// newGroup binds the group's listeners and builds its parts; run starts
// them. It takes the sockets for its addresses from sp (which may be
// nil) where sp has them, and gives them back if it fails.
func newGroup(cfg groupConfig, log *zap.Logger, m *metrics, sp spare) (g *group, err error) {
	g = &group{cfg: cfg, log: log.With(zap.String("group", cfg.Name)), maxLag: cfg.MaxReplicaLagBytes, taken: map[*socket]bool{}, accepting: make(chan struct{})}
	if g.maxLag == 0 {
		g.maxLag = 1 << 20
	}
	// built, not g: the error returns below set g to nil before this runs.
	defer func(built *group) {
		if err != nil {
			built.discard(sp)
			err = fmt.Errorf("group %q: %w", cfg.Name, err)
		}
	}(g)
	backendTLS, err := cfg.BackendTLS.build(g.log)
	if err != nil {
		return nil, err
	}
	var sentinelTLS *sytls.Client
	if s := cfg.Sentinel; s != nil {
		if sentinelTLS, err = s.TLS.build(g.log); err != nil {
			return nil, err
		}
	}
	for _, c := range []*sytls.Client{backendTLS, sentinelTLS} {
		if c != nil {
			g.clientCerts = append(g.clientCerts, c)
		}
	}
	if s := cfg.Sentinel; s != nil {
		sc := sentinel.Config{
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
		}
		if sentinelTLS != nil {
			sc.TLS = sentinelTLS.Config
		}
		if backendTLS != nil {
			sc.NodeTLS = backendTLS.Config
		}
		w, err := sentinel.New(sc)
		if err != nil {
			return nil, err
		}
		g.watcher = w
	}
	policy, _ := parseReadPolicy(cfg.ReadPolicy)
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
		ClientOutputLimit:  cfg.ClientOutputLimit,
		Username:           cfg.Auth.Username,
		Password:           cfg.Auth.Password,
		ReadPolicy:         policy,
		ReadYourWrites:     cfg.ReadYourWrites,
		NoEventLoop:        cfg.EventLoop != nil && !*cfg.EventLoop,
		NoIOUring:          cfg.IOUring != nil && !*cfg.IOUring,
		Logger:             log,
	}
	if backendTLS != nil {
		pc.BackendTLS = backendTLS.Config
	}
	if cfg.ClientAuth != nil {
		pc.Authenticate = cfg.ClientAuth.authenticator()
	}
	if cfg.TLS != nil {
		pc.HandshakeTimeout = cfg.TLS.HandshakeTimeout
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
	if cfg.Listen != "" {
		l, err := g.listen(cfg.Listen, sp)
		if err != nil {
			return nil, fmt.Errorf("listen on %s: %w", cfg.Listen, err)
		}
		g.l = l
	}
	if t := cfg.TLS; t != nil {
		if g.certs, err = t.build(g.log); err != nil {
			return nil, err
		}
		l, err := g.listen(t.Listen, sp)
		if err != nil {
			return nil, fmt.Errorf("tls.listen on %s: %w", t.Listen, err)
		}
		// Its clients are served by goroutines: see proxy.RawSocketListener.
		g.tlsL = stdtls.NewListener(proxy.RawSocketListener(l), g.certs.Config())
		if g.l == nil {
			g.l = g.tlsL
		}
	}
	if cfg.ReadListen != "" {
		l, err := g.listen(cfg.ReadListen, sp)
		if err != nil {
			return nil, fmt.Errorf("read_listen on %s: %w", cfg.ReadListen, err)
		}
		g.readL = l
	}
	return g, nil
}

// run serves until ctx ends or the listener fails. It returns after the
// watcher and the bridge goroutine have exited; the caller then shuts the
// proxy server down.
func (g *group) run(ctx context.Context) error {
	g.watch(ctx)
	defer g.unwatch()
	for _, s := range g.socks {
		s.resume() // one passed on by a reload stopped accepting in the group before
	}
	g.log.Info("serving", zap.String("listen", g.l.Addr().String()), zap.String("upstream", g.describe()))
	// Every listener serves until the server is closed; the first real
	// failure is the group's.
	serve := map[net.Listener]func(net.Listener) error{}
	for _, l := range []net.Listener{g.l, g.tlsL} {
		if l != nil {
			serve[l] = g.srv.Serve // g.l may be the TLS listener: once only
		}
	}
	if g.readL != nil {
		serve[g.readL] = g.srv.ServeRead
	}
	errs := make(chan error, len(serve))
	for l, fn := range serve {
		go func() { errs <- fn(l) }()
	}
	var first error
	for range len(serve) {
		if err := <-errs; err != nil && !errors.Is(err, proxy.ErrServerClosed) && first == nil {
			first = err
			g.srv.Close()
		}
	}
	close(g.accepting)
	return first
}

// watch starts what runs beside the listeners: the Sentinel watcher and
// what applies its topology to the proxy, and certificate reloads, until
// ctx ends or unwatch. run starts them, unless a reload did so before,
// to have the master verified before the group serves. Only the
// goroutine that built or runs the group calls it.
func (g *group) watch(ctx context.Context) {
	if g.unwatch != nil {
		return
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	g.unwatch = func() {
		cancel()
		wg.Wait()
	}
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
	if g.certs != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g.certs.Run(ctx) // reloads rotated certificates until ctx ends
		}()
	}
	for _, c := range g.clientCerts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.Run(ctx) // a rotated CA bundle or client certificate
		}()
	}
}

// up reports whether the Sentinel facade may present the group as up: it
// has a verified master, and does not fail closed (no-master) now. A
// failover in progress is up: the facade names the proxy, where commands
// wait for the new master.
func (g *group) up() bool {
	if g.watcher == nil {
		_, _, ok := g.srv.Master()
		return ok
	}
	t := g.watcher.Topology()
	switch t.State {
	case sentinel.StateReady, sentinel.StateDegraded, sentinel.StateFailover:
		return t.Master != ""
	}
	return false
}

// follow applies every topology the watcher publishes to the proxy.
func (g *group) follow(ctx context.Context) {
	for {
		t := g.watcher.Topology()
		apply(g.srv, t)
		g.srv.SetReplicas(healthyReplicas(t, g.maxLag, g.staleAfter(), time.Now()))
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
		srv.Hold(t.Reason)
	case sentinel.StateFailover:
		srv.Hold("failover in progress: " + t.Reason)
	case sentinel.StateNoMaster:
		srv.Hold("no verified master: " + t.Reason)
	default:
		// Nothing decided yet: there is no master to hold on to.
	}
}

// healthyReplicas are the replicas that may serve reads: Replica.Healthy
// with the group's lag bound and staleness.
func healthyReplicas(t sentinel.Topology, maxLag int64, staleAfter time.Duration, now time.Time) []string {
	var out []string
	for _, r := range t.Replicas {
		if r.Addr != t.Master && r.Healthy(maxLag, staleAfter, now) {
			out = append(out, r.Addr)
		}
	}
	return out
}

// staleAfter is how old a replica's last health check may be: three poll
// intervals, never under 2s, so one slow answer does not flap it, and
// two rounds that each wait dial_timeout for a replica that does not
// answer (the others' checks come that late then). A replica that does
// not answer leaves the read set at its first failed probe anyway
// (Replica.NoAnswer).
func (g *group) staleAfter() time.Duration {
	poll := sentinel.DefaultPollInterval
	if s := g.cfg.Sentinel; s != nil && s.PollInterval > 0 {
		poll = s.PollInterval
	}
	dial := g.cfg.DialTimeout
	if dial <= 0 {
		dial = 2 * time.Second
	}
	return max(3*poll, 2*time.Second, 2*(poll+dial))
}

func (g *group) describe() string {
	if s := g.cfg.Sentinel; s != nil {
		return fmt.Sprintf("sentinel %s via %v", s.MasterName, s.Addrs)
	}
	return g.cfg.Upstream
}
