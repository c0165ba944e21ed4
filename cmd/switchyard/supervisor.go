package main

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"sync"
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

	// mu guards running.
	mu      sync.Mutex
	running map[string]*runningGroup
}

type runningGroup struct {
	g      *group
	cancel context.CancelFunc
	done   chan struct{}
	// cfg is the configuration the group is presented with: g.cfg, with
	// the facade's fields (announce addresses, facade_name) of the last
	// reload, which change without a restart. Guarded by the
	// supervisor's mu.
	cfg groupConfig
}

func newSupervisor(log *zap.Logger, m *metrics, drain time.Duration) *supervisor {
	return &supervisor{log: log, metrics: m, drain: drain, failed: make(chan error, 16), running: map[string]*runningGroup{}}
}

// start binds every group of cfg before serving any, so a bad listen
// address stops start-up instead of leaving half the groups up.
func (s *supervisor) start(groups []groupConfig) error {
	var built []*group
	for _, gc := range groups {
		g, err := newGroup(gc, s.log, s.metrics)
		if err != nil {
			for _, b := range built {
				b.closeListeners()
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
	ctx, cancel := context.WithCancel(context.Background())
	rg := &runningGroup{g: g, cancel: cancel, done: make(chan struct{}), cfg: g.cfg}
	s.running[g.cfg.Name] = rg
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
// changed groups are restarted, new groups are started; a group whose
// change is only in what the facade presents is updated in place, its
// clients untouched. A group that
// cannot start is reported and the others stay as they are; a changed
// one that cannot start goes back to its old configuration, which it was
// stopped from only to free its ports.
func (s *supervisor) reload(cfg *config) error {
	want := map[string]groupConfig{}
	for _, gc := range cfg.Groups {
		want[gc.Name] = gc
	}
	s.mu.Lock()
	var stop []*runningGroup
	var start []groupConfig
	old := map[string]groupConfig{} // changed groups' running configuration
	unchanged, presented := 0, 0
	for name, rg := range s.running {
		gc, ok := want[name]
		switch {
		case !ok:
			stop = append(stop, rg)
			delete(s.running, name)
		case reflect.DeepEqual(gc, rg.cfg):
			unchanged++
		case reflect.DeepEqual(served(gc), served(rg.g.cfg)):
			rg.cfg = gc
			presented++
		default:
			stop = append(stop, rg)
			delete(s.running, name)
			start = append(start, gc)
			old[name] = rg.cfg
		}
	}
	for name, gc := range want {
		if _, ok := s.running[name]; !ok && !contains(start, name) {
			start = append(start, gc)
		}
	}
	s.mu.Unlock()

	// Stop first: a changed group usually keeps its listen address.
	s.stopAll(stop)
	var errs []error
	started := 0
	for _, gc := range start {
		g, err := newGroup(gc, s.log, s.metrics)
		if err != nil {
			errs = append(errs, err)
			prev, changed := old[gc.Name]
			if !changed {
				// Nothing of it runs: its series go too.
				s.metrics.forget(gc.Name)
				continue
			}
			if g, err = newGroup(prev, s.log, s.metrics); err != nil {
				errs = append(errs, fmt.Errorf("restoring its previous configuration: %w", err))
				s.metrics.forget(gc.Name)
				continue
			}
			s.log.Warn("group kept its previous configuration: the new one did not start", zap.String("group", gc.Name))
		}
		s.mu.Lock()
		s.launch(g)
		s.mu.Unlock()
		started++
	}
	s.log.Info("configuration reloaded", zap.Int("unchanged", unchanged), zap.Int("presented_anew", presented), zap.Int("stopped", len(stop)),
		zap.Int("started", started), zap.Errors("errors", errs))
	return errors.Join(errs...)
}

func contains(gcs []groupConfig, name string) bool {
	for _, gc := range gcs {
		if gc.Name == name {
			return true
		}
	}
	return false
}

// stopAll drains the groups in parallel, each within the drain timeout.
func (s *supervisor) stopAll(groups []*runningGroup) {
	ctx, cancel := context.WithTimeout(context.Background(), s.drain)
	defer cancel()
	var wg sync.WaitGroup
	for _, rg := range groups {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rg.g.srv.Shutdown(ctx)
			rg.cancel()
			<-rg.done
			if s.metrics != nil {
				s.metrics.forget(rg.g.cfg.Name)
			}
		}()
	}
	wg.Wait()
}

// shutdown drains every group.
func (s *supervisor) shutdown() {
	s.mu.Lock()
	var all []*runningGroup
	for name, rg := range s.running {
		all = append(all, rg)
		delete(s.running, name)
	}
	s.mu.Unlock()
	s.stopAll(all)
}
