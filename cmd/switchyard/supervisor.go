package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"reflect"
	"slices"
	"sort"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"
)

// supervisor owns the running groups. It starts them, stops them, and on
// reload applies a new configuration by group name: unchanged groups are
// not touched, so their clients keep their connections.
type supervisor struct {
	log     *zap.Logger
	metrics *metrics
	drain   time.Duration
	failed  chan error // a group's listener failed

	// draining counts the drains of groups reloads replaced or removed,
	// which run in the background.
	draining sync.WaitGroup
	// reloading is held by reload, and by a drain that ends while it
	// drops the series of names no longer running.
	reloading sync.Mutex

	// mu guards running and drains.
	mu      sync.Mutex
	running map[string]*runningGroup
	// drains are the groups stopped by a reload or shutdown whose clients
	// have not all gone yet: they still count in /status and the
	// connection gauges.
	drains map[*group]struct{}
}

type runningGroup struct {
	g      *group
	ctx    context.Context // ends the group's run
	cancel context.CancelFunc
	done   chan struct{}
	// cfg is the configuration the group is presented with: g.cfg, with
	// the facade's fields (announce addresses, facade_name) of the last
	// reload, which change without a restart. Guarded by the
	// supervisor's mu.
	cfg groupConfig
}

func newSupervisor(log *zap.Logger, m *metrics, drain time.Duration) *supervisor {
	return &supervisor{log: log, metrics: m, drain: drain, failed: make(chan error, 16),
		running: map[string]*runningGroup{}, drains: map[*group]struct{}{}}
}

// start binds every group of cfg before serving any, so a bad listen
// address stops start-up instead of leaving half the groups up.
func (s *supervisor) start(groups []groupConfig) error {
	var built []*group
	for _, gc := range groups {
		g, err := newGroup(gc, s.log, s.metrics, nil)
		if err != nil {
			for _, b := range built {
				b.release()
			}
			return err
		}
		built = append(built, g)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, g := range built {
		s.launch(g)
	}
	return nil
}

// launch runs g in the background. s.mu is held.
func (s *supervisor) launch(g *group) {
	s.serve(s.enlist(g))
}

// enlist makes g the running group of its name, which the admin server
// and the Sentinel facade report on, before it serves. s.mu is held.
func (s *supervisor) enlist(g *group) *runningGroup {
	rg := newRunning(g)
	s.running[g.cfg.Name] = rg
	return rg
}

// newRunning makes g a runningGroup, not yet enlisted.
func newRunning(g *group) *runningGroup {
	ctx, cancel := context.WithCancel(context.Background())
	return &runningGroup{g: g, ctx: ctx, cancel: cancel, done: make(chan struct{}), cfg: g.cfg}
}

// serve runs an enlisted group in the background.
func (s *supervisor) serve(rg *runningGroup) {
	g, ctx := rg.g, rg.ctx
	go func() {
		defer close(rg.done)
		if err := g.run(ctx); err != nil {
			select {
			case s.failed <- fmt.Errorf("group %q: %w", g.cfg.Name, err):
			default:
			}
		}
	}()
}

// groups returns the running groups in name order, for the admin server.
func (s *supervisor) groups() []*group {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*group, 0, len(s.running))
	for _, rg := range s.running {
		out = append(out, rg.g)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].cfg.Name < out[j].cfg.Name })
	return out
}

// drainingGroups returns the stopped groups still draining, in name order.
func (s *supervisor) drainingGroups() []*group {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*group, 0, len(s.drains))
	for g := range s.drains {
		if rg := s.running[g.cfg.Name]; rg != nil && rg.g == g {
			continue // still named, until a reload's retried group takes over (reload)
		}
		out = append(out, g)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].cfg.Name < out[j].cfg.Name })
	return out
}

// configs returns the configurations the running groups are presented
// with, by name (see runningGroup.cfg).
func (s *supervisor) configs() map[string]groupConfig {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]groupConfig, len(s.running))
	for name, rg := range s.running {
		out[name] = rg.cfg
	}
	return out
}

// served is gc without what only the Sentinel facade presents (announce
// addresses, facade_name): two configurations with equal served parts
// serve the same, and the group need not restart to go from one to the
// other.
func served(gc groupConfig) groupConfig {
	gc.Announce, gc.FacadeName = "", ""
	if gc.TLS != nil {
		t := *gc.TLS
		t.Announce = ""
		gc.TLS = &t
	}
	return gc
}

// reload applies cfg: groups no longer there are drained and stopped,
// changed groups are replaced, new groups are started; a group whose
// change is only in what the facade presents is updated in place, its
// clients untouched.
//
// A changed group is replaced without its ports refusing a connection:
// the new group is built first, on the old one's sockets where the
// addresses match (socket), the old one stops accepting, and the new one
// accepts from then on while the old one drains, in the background. A
// group that cannot be built is reported and the others stay as they
// are; a changed one keeps running with its old configuration, its
// clients untouched. Only when one of a new group's addresses is in use
// on a port a stopping group holds (under another spelling, say) is it
// built again once the stopping groups have closed their sockets; a
// changed group that still cannot start then goes back to its old
// configuration.
func (s *supervisor) reload(cfg *config) error {
	// A drain that ends meanwhile must not take a name that is briefly out
	// of running for one that no longer runs (halt).
	s.reloading.Lock()
	defer s.reloading.Unlock()
	want := map[string]groupConfig{}
	for _, gc := range cfg.Groups {
		want[gc.Name] = gc
	}
	s.mu.Lock()
	var stop []*runningGroup
	var start []groupConfig
	old := map[string]*runningGroup{} // changed groups, by name
	unchanged, presented := 0, 0
	for name, rg := range s.running {
		gc, ok := want[name]
		switch {
		case !ok:
			stop = append(stop, rg)
		case reflect.DeepEqual(gc, rg.cfg):
			unchanged++
		case reflect.DeepEqual(served(gc), served(rg.g.cfg)):
			rg.cfg = gc
			presented++
		default:
			start = append(start, gc)
			old[name] = rg
		}
	}
	for name, gc := range want {
		if _, ok := s.running[name]; !ok {
			start = append(start, gc)
		}
	}
	s.mu.Unlock()

	// The sockets of every group that may stop, for the groups that
	// listen at their addresses.
	sp := spare{}
	for _, rg := range stop {
		rg.g.offer(sp)
	}
	for _, rg := range old {
		rg.g.offer(sp)
	}
	offered := map[string]bool{} // their ports
	for _, sock := range sp {
		_, port, _ := net.SplitHostPort(sock.addr)
		offered[port] = true
	}
	var errs []error
	var built []*group
	var retry []groupConfig // to build again once the stopped groups have let go of their sockets
	for _, gc := range start {
		g, err := newGroup(gc, s.log, s.metrics, sp)
		if err == nil {
			built = append(built, g)
			if rg := old[gc.Name]; rg != nil {
				stop = append(stop, rg)
			}
			continue
		}
		rg := old[gc.Name]
		if heldByStopping(err, offered) {
			retry = append(retry, gc)
			if rg != nil {
				stop = append(stop, rg)
			}
			continue
		}
		errs = append(errs, err)
		if rg == nil {
			s.forget(gc.Name) // nothing of it runs: its series go too
		}
	}
	// A changed group whose new configuration did not build keeps running,
	// unless a new group took one of its sockets (two groups swapping
	// ports, say).
	for name, rg := range old {
		if contains(built, name) || containsConfig(retry, name) {
			continue
		}
		if rg.g.keep(sp) {
			s.log.Warn("group kept its previous configuration: the new one did not start", zap.String("group", name))
			delete(old, name)
			continue
		}
		errs = append(errs, fmt.Errorf("group %q stopped: its new configuration did not start, and a new group took its port", name))
		stop = append(stop, rg)
	}

	// The new groups look for their masters before they replace the old
	// ones, so that the Sentinel facade and /readyz never see a group
	// without one for a reload's sake, and the first clients are not
	// held for it. Not for long: a reload may be what fixes the
	// Sentinels' addresses.
	deadline := time.Now().Add(verifyBeforeServing)
	for _, g := range built {
		g.watch(context.Background())
	}
	var unverified []*group
	for _, g := range built {
		if !g.srv.AwaitMaster(time.Until(deadline)) {
			unverified = append(unverified, g)
		}
	}
	// A changed group whose new configuration verified no master keeps
	// its old one while that serves a master: a mistyped master_name, or
	// any change pushed while the Sentinels are unreachable, would
	// otherwise fail the group closed on every instance it reaches at
	// once. A group that serves no master now is replaced all the same:
	// the reload may be what fixes its Sentinels' addresses.
	for _, g := range unverified {
		name := g.cfg.Name
		rg := old[name]
		if rg == nil || !rg.g.up() || !rg.g.keepable(sp, g) {
			continue
		}
		why := "no master verified"
		if g.watcher != nil {
			why = g.watcher.Topology().Reason
		}
		g.discard(sp)
		rg.g.keep(sp)
		built = slices.DeleteFunc(built, func(b *group) bool { return b == g })
		stop = slices.DeleteFunc(stop, func(r *runningGroup) bool { return r == rg })
		delete(old, name)
		s.log.Warn("group kept its previous configuration: the new one verified no master", zap.String("group", name),
			zap.Duration("waited", verifyBeforeServing), zap.String("reason", why))
		errs = append(errs, fmt.Errorf("group %q kept its previous configuration: the new one verified no master within %s (%s)", name, verifyBeforeServing, why))
	}

	// The new groups take the old ones' names in the same step, so that
	// the facade and /readyz never find a name without a group; they
	// accept once the old ones have stopped.
	// A changed group that is built again once the stopped groups have
	// closed their sockets (retry) keeps its name meanwhile, halted, and
	// hands it over once its successor has verified a master.
	named := map[*runningGroup]bool{}
	for _, gc := range retry {
		if rg := old[gc.Name]; rg != nil {
			named[rg] = true
		}
	}
	s.mu.Lock()
	for _, rg := range stop {
		if s.running[rg.g.cfg.Name] == rg && !named[rg] {
			delete(s.running, rg.g.cfg.Name)
		}
		s.drains[rg.g] = struct{}{} // counted without a gap (halt)
	}
	var enlisted []*runningGroup
	for _, g := range built {
		enlisted = append(enlisted, s.enlist(g))
	}
	s.mu.Unlock()
	// The stopped groups stop accepting before the new ones accept on
	// the same sockets; connections that arrive meanwhile wait in the
	// sockets' backlog. A socket nobody took is closed at once, so its
	// port refuses connections while the old group drains, rather than
	// queueing them for nobody.
	drained := s.halt(stop)
	for _, sock := range sp {
		sock.release()
	}
	for _, rg := range enlisted {
		s.serve(rg)
	}
	// The retried groups accept at once (their clients wait for a master
	// like any group's first clients), and take their names once they
	// have verified one, within the same bound as the others.
	unname := func(name string) {
		s.mu.Lock()
		if rg := old[name]; rg != nil && s.running[name] == rg {
			delete(s.running, name)
		}
		s.mu.Unlock()
	}
	deadline = time.Now().Add(verifyBeforeServing)
	var retried []*runningGroup
	for _, gc := range retry {
		g, err := newGroup(gc, s.log, s.metrics, nil)
		if err != nil {
			errs = append(errs, err)
			rg := old[gc.Name]
			if rg == nil {
				s.forget(gc.Name)
				continue
			}
			if g, err = newGroup(rg.cfg, s.log, s.metrics, nil); err != nil {
				errs = append(errs, fmt.Errorf("restoring its previous configuration: %w", err))
				unname(gc.Name)
				s.forget(gc.Name)
				continue
			}
			s.log.Warn("group kept its previous configuration: the new one did not start", zap.String("group", gc.Name))
		}
		built = append(built, g)
		rg := newRunning(g)
		g.watch(context.Background())
		s.serve(rg)
		retried = append(retried, rg)
	}
	for _, rg := range retried {
		rg.g.srv.AwaitMaster(time.Until(deadline))
		s.mu.Lock()
		s.running[rg.g.cfg.Name] = rg
		s.mu.Unlock()
	}
	s.log.Info("configuration reloaded", zap.Int("unchanged", unchanged), zap.Int("presented_anew", presented), zap.Int("stopped", len(stop)),
		zap.Int("started", len(built)), zap.Errors("errors", errs))
	// The old groups drain in the background, so that signals (a
	// SIGTERM, another SIGHUP) are not kept waiting; shutdown waits for
	// them.
	s.draining.Add(1)
	go func() {
		defer s.draining.Done()
		drained()
	}()
	return errors.Join(errs...)
}

// heldByStopping reports whether err is a failure to bind an address
// whose port is in ports: a group being stopped may hold it under
// another spelling (":6379" and "0.0.0.0:6379"), and it is free once
// that group has let go of its sockets.
func heldByStopping(err error, ports map[string]bool) bool {
	var be *bindError
	if !errors.As(err, &be) || !errors.Is(err, syscall.EADDRINUSE) {
		return false
	}
	_, port, _ := net.SplitHostPort(be.addr)
	return ports[port]
}

// verifyBeforeServing bounds how long a reload waits for its new groups
// to verify their masters before they replace the old ones.
const verifyBeforeServing = 2 * time.Second

// forget drops the series of a group that no longer runs.
func (s *supervisor) forget(name string) {
	if s.metrics != nil {
		s.metrics.forget(name)
	}
}

func contains(gs []*group, name string) bool {
	for _, g := range gs {
		if g.cfg.Name == name {
			return true
		}
	}
	return false
}

func containsConfig(gcs []groupConfig, name string) bool {
	for _, gc := range gcs {
		if gc.Name == name {
			return true
		}
	}
	return false
}

// halt makes the groups stop accepting and drain, each within the drain
// timeout. It returns once none of them accepts any more; drained then
// waits for the drains to end and drops the series of groups whose name
// no longer runs.
func (s *supervisor) halt(groups []*runningGroup) (drained func()) {
	ctx, cancel := context.WithTimeout(context.Background(), s.drain)
	s.mu.Lock()
	for _, rg := range groups {
		s.drains[rg.g] = struct{}{}
	}
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, rg := range groups {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rg.g.srv.Shutdown(ctx)
		}()
	}
	for _, rg := range groups {
		// The listeners were the first thing Shutdown closed.
		<-rg.g.accepting
	}
	return func() {
		wg.Wait()
		cancel()
		for _, rg := range groups {
			rg.cancel()
			<-rg.done
		}
		s.reloading.Lock()
		defer s.reloading.Unlock()
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, rg := range groups {
			delete(s.drains, rg.g)
			if _, running := s.running[rg.g.cfg.Name]; !running {
				s.forget(rg.g.cfg.Name)
			}
		}
	}
}

// shutdown drains every group.
func (s *supervisor) shutdown() {
	s.mu.Lock()
	var all []*runningGroup
	for name, rg := range s.running {
		all = append(all, rg)
		delete(s.running, name)
		s.drains[rg.g] = struct{}{} // counted without a gap (halt)
	}
	s.mu.Unlock()
	drained := s.halt(all)
	for _, rg := range all {
		rg.g.release()
	}
	drained()
	s.draining.Wait() // the groups reloads replaced
}
