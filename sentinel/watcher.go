package sentinel

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// Watcher follows one Redis group through its Sentinels. Create it with
// New, start it with Run; Topology, Changes and Recheck may be called at
// any time from any goroutine, before, during and after Run.
type Watcher struct {
	cfg Config
	log *zap.Logger

	topo    atomic.Pointer[Topology]
	changes chan struct{} // capacity 1; see Changes
	recheck chan struct{} // capacity 1; see Recheck
	wake    chan struct{} // capacity 1: a link or the health loop reported something new
	// healthNow (capacity 1) asks the health loop for a round at once: the
	// master or the set of replicas changed.
	healthNow chan struct{}
	ran       atomic.Bool
	// dropEvents makes event discard what the links receive: tests use it
	// to stand for lost Sentinel events (a subscription reconnecting).
	dropEvents atomic.Bool

	// mu guards the fields below, written by the link goroutines and the
	// health loop and read by the decide goroutine. It is never held
	// during I/O.
	mu     sync.Mutex
	links  map[string]*linkState
	order  []string // link addresses in the order they were added
	events []event  // received since the last decision
	urgent bool     // something material changed: skip the ROLE cache
	// health is each replica's own health, from the last health round;
	// it holds the replicas of that round only.
	health map[string]replicaHealth
	// lastMaster is the master's last answered replication INFO, and
	// lastMasterAddr the master it came from: only the health loop uses
	// them (healthRound).
	lastMaster     probe
	lastMasterAddr string
	// masterInfoRefused: the master's INFO was last refused with an
	// error reply, which was logged (healthRound; the health loop's own).
	masterInfoRefused bool
	// healthAging: a replica did not answer since the decide goroutine
	// last looked, so its Checked is getting old.
	healthAging bool
	// promoted holds the replicas of promotedOf, the published master
	// of the last health round, whose own INFO says they were promoted
	// out of it, with when each was first seen so (notePromotions).
	promoted   map[string]time.Time
	promotedOf string
	// notPromoted: the replicas whose INFO in that round said they were
	// not promoted out of promotedOf.
	notPromoted map[string]bool
	// replicaRunID: the run_id of each replica of the last health round
	// when last seen answering as a replica.
	replicaRunID map[string]string
	// noRunIDWarned: a replica's INFO without run_id was logged.
	noRunIDWarned bool
}

// linkState is what one link last reported.
type linkState struct {
	l           *link
	cancel      context.CancelFunc // ends l's goroutines
	seed        bool               // from Config.Sentinels, never forgotten
	added       time.Time
	id          string
	attempted   bool
	lastOK      time.Time
	master      string
	masterDown  bool
	failingOver bool
	flagsAsked  time.Time
	quorum      string
	replicas    []Replica
	err         string
	idRefused   bool // err is a refused SENTINEL MYID
	discovered  []string
}

// New checks cfg and returns a Watcher that has not started yet. An
// invalid Config yields an error wrapping ErrInvalidConfig that names the
// field and its value.
func New(cfg Config) (*Watcher, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	w := &Watcher{
		cfg:       cfg,
		log:       cfg.Logger.With(zap.String("master_name", cfg.MasterName)),
		changes:   make(chan struct{}, 1),
		recheck:   make(chan struct{}, 1),
		wake:      make(chan struct{}, 1),
		links:     map[string]*linkState{},
		health:    map[string]replicaHealth{},
		healthNow: make(chan struct{}, 1),
	}
	w.topo.Store(&Topology{State: StateUnknown, Reason: "not started"})
	return w, nil
}

// Topology returns the latest topology with one atomic load. The slices
// are shared: callers must not modify them.
func (w *Watcher) Topology() Topology { return *w.topo.Load() }

// Changes returns a channel that receives a value when the Topology
// changes. Sends never block: a reader that falls behind sees one pending
// value and must read Topology for the latest state.
//
// A change to anything that decides where requests may go is signalled at
// once: the epoch, state or master, the Sentinels' statuses, the set of
// replicas, or a replica's Flags, Down, MasterLinkStatus, LinkUp or
// Loading. Changes to the replicas' offsets, LagBytes and Checked alone,
// which under write load come with every poll, are published in Topology
// at once but signalled at most once per PollInterval. While a replica
// does not answer, a signal also comes once per PollInterval, so that a
// reader calling Replica.Healthy on every signal sees Checked go stale
// within one PollInterval of staleAfter. Expect about one signal per
// PollInterval while any replica is known; rebuilding a read set from a
// handful of replicas that often is cheap.
func (w *Watcher) Changes() <-chan struct{} { return w.changes }

// Recheck asks for an immediate poll of every Sentinel and ROLE check of
// the master, e.g. after a -READONLY reply. It never blocks; requests made
// while one is pending are merged.
func (w *Watcher) Recheck() {
	select {
	case w.recheck <- struct{}{}:
	default:
	}
}

// Run follows the group until ctx ends and returns ctx.Err() after every
// goroutine it started has ended. A Watcher runs once; a second call
// returns ErrRunning.
func (w *Watcher) Run(ctx context.Context) error {
	if !w.ran.CompareAndSwap(false, true) {
		return ErrRunning
	}
	ctx, cancel := context.WithCancel(ctx)
	n := newNodes(w.cfg)
	defer n.close() // after wg.Wait: the health goroutines use the clients
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()

	for _, a := range w.cfg.Sentinels {
		w.addLink(ctx, &wg, a, true)
	}
	wg.Go(func() { w.healthLoop(ctx, n) })
	w.decideLoop(ctx, &wg, n)
	return ctx.Err()
}

// addLink starts a link to addr, owned by Run through wg; seed says addr
// is one of Config.Sentinels.
func (w *Watcher) addLink(ctx context.Context, wg *sync.WaitGroup, addr string, seed bool) {
	var l *link
	l = newLink(addr, w.cfg,
		func(r pollResult, err error) { w.report(l, r, err) },
		func(ev event) { w.event(l, ev) })
	ctx, cancel := context.WithCancel(ctx)
	w.mu.Lock()
	w.links[addr] = &linkState{l: l, cancel: cancel, seed: seed, added: time.Now()}
	w.order = append(w.order, addr)
	w.mu.Unlock()
	wg.Go(func() { l.run(ctx) })
}

// report records a poll result from a link.
func (w *Watcher) report(l *link, r pollResult, err error) {
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.links[l.addr]
	if s == nil || s.l != l {
		return // a forgotten link's last poll (see forget)
	}
	before := *s
	s.attempted = true
	s.idRefused = errors.Is(err, errMyIDRefused)
	if err != nil {
		s.err = err.Error()
	} else {
		s.err = ""
		s.lastOK = now
		s.id = r.ID
		s.master = r.Master
		s.masterDown = r.MasterDown
		s.quorum = r.Quorum
		s.failingOver = r.FailingOver
		s.flagsAsked = r.FlagsAsked
		s.replicas = r.Replicas
		s.discovered = r.Discovered
	}
	material := !before.attempted || before.err != s.err || before.master != s.master || before.id != s.id ||
		before.masterDown != s.masterDown || before.failingOver != s.failingOver
	if !material && before.quorum == s.quorum && slices.EqualFunc(before.replicas, s.replicas, sameReplica) && slices.Equal(before.discovered, s.discovered) {
		return // nothing new, or only offsets: the next tick picks them up
	}
	if material {
		w.urgent = true
	}
	w.poke()
}

// event queues an event from a link for the next decision.
func (w *Watcher) event(l *link, ev event) {
	if w.dropEvents.Load() {
		return
	}
	w.mu.Lock()
	if s := w.links[l.addr]; s == nil || s.l != l {
		w.mu.Unlock()
		return // a forgotten link's last words (see forget)
	}
	w.events = append(w.events, ev)
	w.urgent = true
	w.mu.Unlock()
	w.poke()
}

func (w *Watcher) poke() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}
