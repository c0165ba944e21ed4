package main

import (
	"errors"
	"fmt"
	"net"
	"reflect"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pnats/switchyard/sentinel/facade"
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
	if f.Listen == "" {
		return errors.New("sentinel_facade.listen is empty: give host:port, e.g. 0.0.0.0:26379")
	}
	if err := checkAddr("sentinel_facade.listen", f.Listen); err != nil {
		return err
	}
	for i, g := range c.Groups {
		if g.Listen == f.Listen {
			return fmt.Errorf("sentinel_facade.listen=%q: already used by groups[%d] (%s)", f.Listen, i, g.Name)
		}
	}
	if c.AdminListen != "" && c.AdminListen == f.Listen {
		return fmt.Errorf("sentinel_facade.listen=%q: already used by admin_listen", f.Listen)
	}
	if f.Announce != "" {
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
// sentinel_facade.announce, else of the first group with an announce,
// else 127.0.0.1.
func (c *config) announceHost() string {
	if f := c.SentinelFacade; f != nil && f.Announce != "" {
		if h, _, err := net.SplitHostPort(f.Announce); err == nil {
			return h
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

// facadeRunner runs the Sentinel facade next to the admin server: the
// server, its listener, and the ticker that calls Check.
type facadeRunner struct {
	srv  *facade.Server
	addr string // the address it listens on
	log  *zap.Logger

	cfg     atomic.Pointer[config] // the running configuration's groups
	running func() []*group

	stop chan struct{}
	wg   sync.WaitGroup
}

// startFacade serves cfg.SentinelFacade. With none it returns a runner
// that serves nothing, so that a reload can say a restart is needed.
func startFacade(cfg *config, running func() []*group, log *zap.Logger) (*facadeRunner, error) {
	r := &facadeRunner{log: log.Named("facade"), running: running, stop: make(chan struct{})}
	snapshot := *cfg // the caller updates its configuration in place
	r.cfg.Store(&snapshot)
	fc := cfg.SentinelFacade
	if fc == nil {
		return r, nil
	}
	l, err := net.Listen("tcp", fc.Listen)
	if err != nil {
		return nil, fmt.Errorf("sentinel_facade.listen %q: %w", fc.Listen, err)
	}
	r.addr = l.Addr().String()
	announce := fc.Announce
	if announce == "" {
		announce = advertise(r.addr, cfg.announceHost())
	}
	r.srv = facade.New(facade.Config{
		Groups:   r.groups,
		Announce: announce,
		Password: fc.Password,
		Logger:   r.log,
	})
	r.wg.Add(2)
	go func() {
		defer r.wg.Done()
		if err := r.srv.Serve(l); err != nil && !errors.Is(err, facade.ErrServerClosed) {
			r.log.Error("sentinel facade stopped", zap.Error(err))
		}
	}()
	go func() {
		defer r.wg.Done()
		r.tick()
	}()
	r.log.Info("sentinel facade listening", zap.String("addr", r.addr), zap.String("announce", announce))
	return r, nil
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
			r.srv.Check()
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
	if r.srv != nil {
		r.srv.Check()
	}
}

// Close stops the ticker and the server and waits for both.
func (r *facadeRunner) Close() {
	if r.srv == nil {
		return
	}
	close(r.stop)
	r.srv.Close()
	r.wg.Wait()
}

// groups is the facade's view of the configured groups: names, advertised
// addresses, and whether the running group has a verified master.
func (r *facadeRunner) groups() []facade.Group {
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
		addr := gc.Announce
		if addr == "" {
			listen := gc.Listen
			if g != nil {
				listen = g.l.Addr().String() // the bound address, for a listen port of 0
			}
			addr = advertise(listen, host)
		}
		readAddr := ""
		if gc.ReadListen != "" {
			listen := gc.ReadListen
			if g != nil && g.readL != nil {
				listen = g.readL.Addr().String()
			}
			readAddr = advertise(listen, host)
		}
		out = append(out, facade.Group{
			Name:     name,
			Addr:     func() string { return addr },
			ReadAddr: func() string { return readAddr },
			Up: func() bool {
				if g == nil {
					return false
				}
				_, _, ok := g.srv.Master()
				return ok
			},
		})
	}
	return out
}
