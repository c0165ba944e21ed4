package main

import (
	"context"
	stdtls "crypto/tls"
	"errors"
	"fmt"
	"net"
	"reflect"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pnats/switchyard/sentinel/facade"
	sytls "github.com/pnats/switchyard/tls"
	"go.uber.org/zap"
)

// facadeCheckInterval is how often the facade compares each group's
// advertised address with the one it last published. A comparison of a
// few strings: cheap.
const facadeCheckInterval = time.Second

// fallbackAnnounceHost is the announce host when nothing better is
// configured: right for a local sidecar, wrong for a shared IP, which
// must then be configured.
const fallbackAnnounceHost = "127.0.0.1"

// validateFacade checks sentinel_facade and the group fields that only
// the facade reads. Called from validate.
func (c *config) validateFacade() error {
	f := c.SentinelFacade
	if f == nil {
		return nil
	}
	if f.Listen == "" && f.TLS == nil {
		return errors.New("sentinel_facade.listen is empty: give host:port, e.g. 0.0.0.0:26379, or tls.listen")
	}
	if f.Listen != "" {
		if err := checkAddr("sentinel_facade.listen", f.Listen); err != nil {
			return err
		}
	}
	if f.MaxClients < -1 {
		return fmt.Errorf("sentinel_facade.max_clients=%d: want a positive number, 0 for the default (10000) or -1 for no limit", f.MaxClients)
	}
	if f.TLS != nil {
		if err := f.TLS.validate("sentinel_facade"); err != nil {
			return err
		}
		if f.TLS.Listen == f.Listen {
			return fmt.Errorf("sentinel_facade.tls.listen=%q: already used by sentinel_facade.listen", f.Listen)
		}
	}
	for _, l := range []struct{ name, addr string }{{"listen", f.Listen}, {"tls.listen", f.tlsListen()}} {
		if l.addr == "" {
			continue
		}
		for i, g := range c.Groups {
			if l.addr == g.Listen || l.addr == g.tlsListen() || l.addr == g.ReadListen {
				return fmt.Errorf("sentinel_facade.%s=%q: already used by groups[%d] (%s)", l.name, l.addr, i, g.Name)
			}
		}
		if c.AdminListen != "" && c.AdminListen == l.addr {
			return fmt.Errorf("sentinel_facade.%s=%q: already used by admin_listen", l.name, l.addr)
		}
	}
	if f.Announce != "" {
		if f.Listen == "" {
			return fmt.Errorf("sentinel_facade.announce=%q: there is no plain listen to announce; the TLS listener's is tls.announce", f.Announce)
		}
		if err := checkAnnounce("sentinel_facade.announce", f.Announce); err != nil {
			return err
		}
	}
	names := map[string]string{}
	for i, g := range c.Groups {
		name := g.facadeName()
		if name == "" {
			continue
		}
		if other, dup := names[name]; dup {
			return fmt.Errorf("groups[%d] (%s): Sentinel facade name %q already used by group %q; set facade_name on a fixed-upstream group to tell them apart", i, g.Name, name, other)
		}
		names[name] = g.Name
	}
	if len(names) == 0 {
		return errors.New("sentinel_facade: no group to present; Sentinel groups are presented under sentinel.master_name, fixed-upstream groups need facade_name")
	}
	return nil
}

func (f *facadeConfig) tlsListen() string {
	if f.TLS == nil {
		return ""
	}
	return f.TLS.Listen
}

func (f *facadeConfig) tlsAnnounce() string {
	if f.TLS == nil {
		return ""
	}
	return f.TLS.Announce
}

// checkAnnounce: an advertised address needs a host clients can dial and
// a real port.
func checkAnnounce(field, addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%s=%q: want host:port", field, addr)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("%s=%q: port must be 1-65535", field, addr)
	}
	if unspecified(host) {
		return fmt.Errorf("%s=%q: clients cannot dial %q; give the address they reach Switchyard on", field, addr, host)
	}
	return nil
}

func unspecified(host string) bool {
	if host == "" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsUnspecified()
}

// facadeName is the Sentinel master name the facade answers to for g, or
// "" if g is not presented.
func (g groupConfig) facadeName() string {
	if g.Sentinel != nil {
		return g.Sentinel.MasterName
	}
	return g.FacadeName
}

// announceHost is the host that replaces an unspecified one (0.0.0.0, ::,
// empty) in a default advertised address: the host of
// sentinel_facade.announce, else of sentinel_facade.tls.announce, else of
// the first group with an announce, else 127.0.0.1.
func (c *config) announceHost() string {
	if f := c.SentinelFacade; f != nil {
		for _, a := range []string{f.Announce, f.tlsAnnounce()} {
			if h, _, err := net.SplitHostPort(a); err == nil && a != "" {
				return h
			}
		}
	}
	for _, g := range c.Groups {
		if g.Announce != "" {
			if h, _, err := net.SplitHostPort(g.Announce); err == nil {
				return h
			}
		}
	}
	return fallbackAnnounceHost
}

// advertise turns a listening address into one clients can dial.
func advertise(listen, host string) string {
	h, p, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	if unspecified(h) {
		h = host
	}
	return net.JoinHostPort(h, p)
}

// facadeRunner runs the Sentinel facade next to the admin server: a
// server per listener (plain, TLS), and the ticker that calls Check. Each
// server keeps its own subscribers and published addresses, because each
// names the groups' addresses for its own kind of client (groupFacade).
type facadeRunner struct {
	srv     *facade.Server // plain; nil without listen
	addr    string         // the address it listens on
	tlsSrv  *facade.Server // nil without tls
	tlsAddr string
	certs   *sytls.Server
	log     *zap.Logger

	cfg     atomic.Pointer[config] // the running configuration's groups
	running func() []*group

	stop   chan struct{}
	cancel context.CancelFunc // ends the certificate reloads
	wg     sync.WaitGroup
}

// startFacade serves cfg.SentinelFacade. With none it returns a runner
// that serves nothing, so that a reload can say a restart is needed.
func startFacade(cfg *config, running func() []*group, log *zap.Logger) (r *facadeRunner, err error) {
	r = &facadeRunner{log: log.Named("facade"), running: running, stop: make(chan struct{})}
	snapshot := *cfg // the caller updates its configuration in place
	r.cfg.Store(&snapshot)
	fc := cfg.SentinelFacade
	if fc == nil {
		return r, nil
	}
	var pl, tl net.Listener
	defer func() {
		if err != nil {
			for _, l := range []net.Listener{pl, tl} {
				if l != nil {
					l.Close()
				}
			}
		}
	}()
	if fc.Listen != "" {
		if pl, err = net.Listen("tcp", fc.Listen); err != nil {
			return nil, fmt.Errorf("sentinel_facade.listen %q: %w", fc.Listen, err)
		}
		r.addr = pl.Addr().String()
	}
	if t := fc.TLS; t != nil {
		if r.certs, err = t.build(r.log); err != nil {
			return nil, fmt.Errorf("sentinel_facade.tls: %w", err)
		}
		l, err := net.Listen("tcp", t.Listen)
		if err != nil {
			return nil, fmt.Errorf("sentinel_facade.tls.listen %q: %w", t.Listen, err)
		}
		r.tlsAddr = l.Addr().String()
		tl = stdtls.NewListener(l, r.certs.Config())
	}
	serve := func(l net.Listener, announce string, overTLS bool) *facade.Server {
		fcfg := facade.Config{
			Groups:     func() []facade.Group { return r.groups(overTLS) },
			Announce:   announce,
			Password:   fc.Password,
			MaxClients: fc.MaxClients,
			Logger:     r.log,
		}
		if overTLS {
			fcfg.HandshakeTimeout = fc.TLS.HandshakeTimeout
		}
		srv := facade.New(fcfg)
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			if err := srv.Serve(l); err != nil && !errors.Is(err, facade.ErrServerClosed) {
				r.log.Error("sentinel facade stopped", zap.String("addr", l.Addr().String()), zap.Error(err))
			}
		}()
		r.log.Info("sentinel facade listening", zap.String("addr", l.Addr().String()), zap.Bool("tls", overTLS), zap.String("announce", announce))
		return srv
	}
	host := cfg.announceHost()
	if pl != nil {
		announce := fc.Announce
		if announce == "" {
			announce = advertise(r.addr, host)
		}
		r.srv = serve(pl, announce, false)
	}
	if tl != nil {
		announce := fc.TLS.Announce
		if announce == "" {
			announce = advertise(r.tlsAddr, host)
		}
		r.tlsSrv = serve(tl, announce, true)
		ctx, cancel := context.WithCancel(context.Background())
		r.cancel = cancel
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			r.certs.Run(ctx) // reloads rotated certificates until Close
		}()
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		r.tick()
	}()
	return r, nil
}

// servers are the running facade servers.
func (r *facadeRunner) servers() []*facade.Server {
	var out []*facade.Server
	for _, s := range []*facade.Server{r.srv, r.tlsSrv} {
		if s != nil {
			out = append(out, s)
		}
	}
	return out
}

// tick calls Check every facadeCheckInterval until Close.
func (r *facadeRunner) tick() {
	t := time.NewTicker(facadeCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
			for _, s := range r.servers() {
				s.Check()
			}
		}
	}
}

// update follows a reloaded configuration: groups and their announce
// addresses change at once (and +switch-master is published for each
// moved address); the facade's own listen, announce and password need a
// restart.
func (r *facadeRunner) update(cfg *config) {
	// A copy: the caller keeps updating its configuration in place.
	next := *cfg
	old := r.cfg.Load().SentinelFacade
	if !reflect.DeepEqual(old, next.SentinelFacade) {
		r.log.Warn("sentinel_facade changes only with a restart; its groups follow the reload")
		next.SentinelFacade = old
	}
	r.cfg.Store(&next)
	for _, s := range r.servers() {
		s.Check()
	}
}

// Close stops the ticker, the servers and the certificate reloads, and
// waits for them.
func (r *facadeRunner) Close() {
	if r.srv == nil && r.tlsSrv == nil {
		return
	}
	close(r.stop)
	for _, s := range r.servers() {
		s.Close()
	}
	if r.cancel != nil {
		r.cancel()
	}
	r.wg.Wait()
}

// groups is the facade's view of the configured groups: names, advertised
// addresses, and whether the running group has a verified master. overTLS
// is for clients of the TLS listener (groupFacade).
func (r *facadeRunner) groups(overTLS bool) []facade.Group {
	cfg := r.cfg.Load()
	running := map[string]*group{}
	for _, g := range r.running() {
		running[g.cfg.Name] = g
	}
	host := cfg.announceHost()
	var out []facade.Group
	for _, gc := range cfg.Groups {
		name := gc.facadeName()
		if name == "" {
			continue
		}
		g := running[gc.Name]
		addr, readAddr := groupFacade(gc, g, host, overTLS)
		out = append(out, facade.Group{
			Name:     name,
			Addr:     func() string { return addr },
			ReadAddr: func() string { return readAddr },
			Up:       func() bool { return g != nil && g.up() },
			Quorum: func() string {
				if g == nil || g.watcher == nil {
					return ""
				}
				return g.watcher.Topology().Quorum()
			},
		})
	}
	return out
}

// groupFacade is the address the facade names as gc's master, and as its
// replica (its read port, "" without one), to a client that reached the
// facade over TLS (overTLS) or in plain text. g is the running group, nil
// if it is not running; its bound addresses stand in for a listen port
// of 0.
//
// Like a Sentinel, which names one address per master whatever the
// client speaks, each group has one answer per kind of client, and a
// client that speaks the other must be configured for it:
//   - plain: announce, else the plain listener;
//   - TLS: tls.announce, else the TLS listener; a group without one is
//     named as in plain text;
//   - a TLS-only group has one address for both: announce or
//     tls.announce (each kind of client preferring its own), else the
//     TLS listener.
//
// The read port has no TLS listener, so only plain-text clients are
// given it: a client that reached the facade over TLS speaks TLS to the
// replicas too (go-redis, ioredis), and with no replica named, reads go
// to the master.
func groupFacade(gc groupConfig, g *group, host string, overTLS bool) (addr, readAddr string) {
	bound := func(l net.Listener, configured string) string {
		if g != nil && l != nil {
			return l.Addr().String()
		}
		return configured
	}
	var tlsL, plainL net.Listener
	if g != nil {
		tlsL, plainL = g.tlsL, g.l // g.l is the TLS listener of a TLS-only group
	}
	tlsAnnounce := ""
	if gc.TLS != nil {
		tlsAnnounce = gc.TLS.Announce
	}
	tlsOnly := gc.Listen == ""
	switch {
	case overTLS && tlsAnnounce != "":
		addr = tlsAnnounce
	case overTLS && gc.TLS != nil && !tlsOnly:
		addr = advertise(bound(tlsL, gc.TLS.Listen), host)
	case gc.Announce != "":
		addr = gc.Announce
	case tlsOnly && tlsAnnounce != "":
		addr = tlsAnnounce
	case tlsOnly:
		addr = advertise(bound(plainL, gc.tlsListen()), host)
	default:
		addr = advertise(bound(plainL, gc.Listen), host)
	}
	if gc.ReadListen != "" && !overTLS {
		var l net.Listener
		if g != nil {
			l = g.readL
		}
		readAddr = advertise(bound(l, gc.ReadListen), host)
	}
	return addr, readAddr
}
