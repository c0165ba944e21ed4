package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Group is a Sentinel-managed replication group: one master, N replicas,
// M Sentinels, all on loopback.
type Group struct {
	Name      string    // Sentinel master name
	Master    *Server   // the master at start
	Replicas  []*Server // the replicas at start
	Sentinels []*Sentinel

	password string // --requirepass from ServerArgs, if any
}

// GroupOptions configures StartGroup.
type GroupOptions struct {
	Dir       string // required; each process gets a subdirectory (server-0 is the master, server-1…, sentinel-0…)
	Name      string // default "mymaster"
	Replicas  int    // number of replicas (0 is allowed, but then no failover can happen)
	Sentinels int    // default 3
	Quorum    int    // default majority of Sentinels

	// ServerArgs are extra arguments for every redis-server. If they contain
	// --requirepass, the group also sets --masterauth on the servers and
	// "sentinel auth-pass" on the Sentinels.
	ServerArgs []string
	// SentinelPassword makes every Sentinel require it (requirepass) and
	// use it with the others (sentinel sentinel-pass).
	SentinelPassword string

	DownAfter, FailoverTimeout time.Duration // defaults 1s, 5s (see SentinelOptions)
}

// StartGroup starts the master, the replicas (waiting for their
// replication links) and the Sentinels, then waits until every Sentinel
// sees the master as healthy, knows all replicas as connected replicas with
// a working link and knows all other Sentinels, so that a failover can
// actually happen. On error everything started is stopped.
//
// Sentinels discover each other through hello messages published every 2 s,
// so StartGroup takes at least about 2 s. If ctx has no deadline a 30 s
// timeout applies.
func StartGroup(ctx context.Context, o GroupOptions) (*Group, error) {
	if o.Dir == "" {
		return nil, errors.New("lab: GroupOptions.Dir is required")
	}
	if o.Name == "" {
		o.Name = "mymaster"
	}
	if o.Replicas < 0 || o.Sentinels < 0 {
		return nil, errors.New("lab: GroupOptions.Replicas and Sentinels must not be negative")
	}
	if o.Sentinels == 0 {
		o.Sentinels = 3
	}
	if o.Quorum <= 0 {
		o.Quorum = o.Sentinels/2 + 1
	}
	ctx, cancel := withDefaultTimeout(ctx, defaultStartTimeout)
	defer cancel()

	g := &Group{Name: o.Name}
	serverArgs := append([]string(nil), o.ServerArgs...)
	var sentinelArgs []string
	if pw, ok := argValue(serverArgs, "--requirepass"); ok {
		g.password = pw
		if _, ok := argValue(serverArgs, "--masterauth"); !ok {
			serverArgs = append(serverArgs, "--masterauth", pw)
		}
		sentinelArgs = append(sentinelArgs, fmt.Sprintf("sentinel auth-pass %s %s", o.Name, quoteConf(pw)))
	}
	if pw := o.SentinelPassword; pw != "" {
		sentinelArgs = append(sentinelArgs, "requirepass "+quoteConf(pw), "sentinel sentinel-pass "+quoteConf(pw))
	}

	fail := func(err error) (*Group, error) {
		_ = g.Stop()
		return nil, err
	}

	m, err := StartServer(ctx, ServerOptions{Dir: filepath.Join(o.Dir, "server-0"), Args: serverArgs})
	if err != nil {
		return nil, fmt.Errorf("lab: group %s: master: %w", o.Name, err)
	}
	g.Master = m

	g.Replicas = make([]*Server, o.Replicas)
	errs := make([]error, o.Replicas+o.Sentinels)
	var wg sync.WaitGroup
	for i := range o.Replicas {
		wg.Go(func() {
			r, err := StartServer(ctx, ServerOptions{
				Dir:       filepath.Join(o.Dir, "server-"+strconv.Itoa(i+1)),
				ReplicaOf: m.Addr,
				Args:      serverArgs,
			})
			g.Replicas[i], errs[i] = r, err
		})
	}
	wg.Wait()
	g.Replicas = slices.DeleteFunc(g.Replicas, func(s *Server) bool { return s == nil })
	if err := errors.Join(errs...); err != nil {
		return fail(fmt.Errorf("lab: group %s: replicas: %w", o.Name, err))
	}

	g.Sentinels = make([]*Sentinel, o.Sentinels)
	for i := range o.Sentinels {
		wg.Go(func() {
			s, err := StartSentinel(ctx, SentinelOptions{
				Dir:             filepath.Join(o.Dir, "sentinel-"+strconv.Itoa(i)),
				MasterName:      o.Name,
				MasterAddr:      m.Addr,
				Quorum:          o.Quorum,
				DownAfter:       o.DownAfter,
				FailoverTimeout: o.FailoverTimeout,
				Args:            sentinelArgs,
			})
			g.Sentinels[i], errs[o.Replicas+i] = s, err
		})
	}
	wg.Wait()
	g.Sentinels = slices.DeleteFunc(g.Sentinels, func(s *Sentinel) bool { return s == nil })
	if err := errors.Join(errs...); err != nil {
		return fail(fmt.Errorf("lab: group %s: sentinels: %w", o.Name, err))
	}

	if err := g.waitSettled(ctx); err != nil {
		return fail(err)
	}
	return g, nil
}

// waitSettled waits until every Sentinel considers the master healthy and
// knows all replicas (connected, link ok) and all other Sentinels.
func (g *Group) waitSettled(ctx context.Context) error {
	pr := newProber()
	defer pr.close()
	nRep, nSen := len(g.Replicas), len(g.Sentinels)
	err := poll(ctx, func() (bool, error) {
		for _, s := range g.Sentinels {
			v, err := pr.do(ctx, s.Addr, s.password, "SENTINEL", "MASTER", g.Name)
			if err != nil {
				return false, fmt.Errorf("sentinel %s: %w", s.Addr, err)
			}
			mm := pairsToMap(v)
			if mm["flags"] != "master" {
				return false, fmt.Errorf("sentinel %s: master flags %q", s.Addr, mm["flags"])
			}
			if mm["num-other-sentinels"] != strconv.Itoa(nSen-1) {
				return false, fmt.Errorf("sentinel %s: knows %s other sentinels, want %d", s.Addr, mm["num-other-sentinels"], nSen-1)
			}
			v, err = pr.do(ctx, s.Addr, s.password, "SENTINEL", "REPLICAS", g.Name)
			if err != nil {
				return false, fmt.Errorf("sentinel %s: %w", s.Addr, err)
			}
			ok := 0
			for _, r := range pairsList(v) {
				if r["flags"] == "slave" && r["master-link-status"] == "ok" {
					ok++
				}
			}
			if ok != nRep {
				return false, fmt.Errorf("sentinel %s: knows %d healthy replicas, want %d", s.Addr, ok, nRep)
			}
		}
		return true, nil
	})
	if err != nil {
		return g.withSentinelLogs(fmt.Errorf("lab: group %s did not settle: %w", g.Name, err))
	}
	return nil
}

// Servers returns the master and the replicas (in start order: index 0 is
// the master at start).
func (g *Group) Servers() []*Server {
	out := make([]*Server, 0, 1+len(g.Replicas))
	if g.Master != nil {
		out = append(out, g.Master)
	}
	return append(out, g.Replicas...)
}

// Server returns the group's server with the given address, or nil.
func (g *Group) Server(addr string) *Server {
	for _, s := range g.Servers() {
		if s.Addr == addr {
			return s
		}
	}
	return nil
}

// CurrentMaster returns the Server that a majority of the running Sentinels
// name as master (a paused Sentinel counts as running but does not answer).
// It does not wait; see WaitMaster.
func (g *Group) CurrentMaster(ctx context.Context) (*Server, error) {
	pr := newProber()
	defer pr.close()
	return g.currentMaster(ctx, pr)
}

func (g *Group) currentMaster(ctx context.Context, pr *prober) (*Server, error) {
	votes := map[string]int{}
	running := 0
	var errs []string
	for _, s := range g.Sentinels {
		if !s.Running() {
			continue
		}
		running++
		v, err := pr.do(ctx, s.Addr, s.password, "SENTINEL", "get-master-addr-by-name", g.Name)
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", s.Addr, err))
			continue
		}
		a, _ := v.([]any)
		if len(a) != 2 {
			errs = append(errs, fmt.Sprintf("%s: reply %v", s.Addr, v))
			continue
		}
		h, _ := a[0].(string)
		p, _ := a[1].(string)
		votes[net.JoinHostPort(h, p)]++
	}
	if running == 0 {
		return nil, fmt.Errorf("lab: group %s: no Sentinel is running", g.Name)
	}
	for addr, n := range votes {
		if n > running/2 {
			if s := g.Server(addr); s != nil {
				return s, nil
			}
			return nil, fmt.Errorf("lab: group %s: Sentinels name %s, which is not in the group", g.Name, addr)
		}
	}
	return nil, fmt.Errorf("lab: group %s: no majority of %d running Sentinels agree on a master: votes %s; errors %v",
		g.Name, running, fmtVotes(votes), errs)
}

func fmtVotes(v map[string]int) string {
	var parts []string
	for a, n := range v {
		parts = append(parts, fmt.Sprintf("%s=%d", a, n))
	}
	sort.Strings(parts)
	return "{" + strings.Join(parts, " ") + "}"
}

// role returns the first element of ROLE from s.
func (g *Group) role(ctx context.Context, pr *prober, s *Server) (string, error) {
	v, err := pr.do(ctx, s.Addr, s.password, "ROLE")
	if err != nil {
		return "", err
	}
	a, _ := v.([]any)
	if len(a) == 0 {
		return "", fmt.Errorf("ROLE reply %v", v)
	}
	r, _ := a[0].(string)
	return r, nil
}

// WaitMaster waits until a majority of the running Sentinels agree on a
// master other than not (nil: any master) and that server answers ROLE
// with "master"; it returns that server. If ctx has no deadline a 60 s
// timeout applies.
func (g *Group) WaitMaster(ctx context.Context, not *Server) (*Server, error) {
	ctx, cancel := withDefaultTimeout(ctx, defaultWaitTimeout)
	defer cancel()
	pr := newProber()
	defer pr.close()
	var found *Server
	err := poll(ctx, func() (bool, error) {
		m, err := g.currentMaster(ctx, pr)
		if err != nil {
			return false, err
		}
		if not != nil && m == not {
			return false, fmt.Errorf("Sentinels still name %s", m.Addr)
		}
		r, err := g.role(ctx, pr, m)
		if err != nil {
			return false, fmt.Errorf("ROLE on %s: %w", m.Addr, err)
		}
		if r != "master" {
			return false, fmt.Errorf("Sentinels name %s but its ROLE is %s", m.Addr, r)
		}
		found = m
		return true, nil
	})
	if err != nil {
		what := "a master"
		if not != nil {
			what = "a master other than " + not.Addr
		}
		return nil, g.withSentinelLogs(fmt.Errorf("lab: group %s: waiting for %s: %w", g.Name, what, err))
	}
	return found, nil
}

// Failover asks a Sentinel for a forced failover (SENTINEL FAILOVER), then
// waits until a majority of Sentinels name a new master and that node
// answers ROLE master, and returns it. While a Sentinel answers INPROG (a
// failover is already running) or NOGOODSLAVE (no replica is eligible yet,
// typically right after a previous failover) it keeps retrying until ctx
// ends. If ctx has no deadline a 60 s timeout applies.
func (g *Group) Failover(ctx context.Context) (*Server, error) {
	ctx, cancel := withDefaultTimeout(ctx, defaultWaitTimeout)
	defer cancel()
	old, err := g.WaitMaster(ctx, nil)
	if err != nil {
		return nil, err
	}
	pr := newProber()
	defer pr.close()
	err = poll(ctx, func() (bool, error) {
		var errs []error
		for _, s := range g.Sentinels {
			if !s.Running() {
				continue
			}
			_, err := pr.do(ctx, s.Addr, s.password, "SENTINEL", "FAILOVER", g.Name)
			if err == nil {
				return true, nil
			}
			var re respError
			if errors.As(err, &re) && !strings.HasPrefix(string(re), "INPROG") && !strings.HasPrefix(string(re), "NOGOODSLAVE") {
				return true, fmt.Errorf("sentinel %s: SENTINEL FAILOVER: %w", s.Addr, err)
			}
			errs = append(errs, fmt.Errorf("sentinel %s: %w", s.Addr, err))
		}
		if len(errs) == 0 {
			return false, errors.New("no Sentinel is running")
		}
		return false, errors.Join(errs...)
	})
	if err != nil {
		return nil, g.withSentinelLogs(fmt.Errorf("lab: group %s: failover: %w", g.Name, err))
	}
	return g.WaitMaster(ctx, old)
}

// WaitConverged waits until the group is in a steady state: a majority of
// the running Sentinels name a master that answers ROLE master, and every
// other running server answers ROLE slave, points at that master and has
// its replication link connected. It returns the master.
//
// Use it after Failover or after restarting a node when the next step needs
// exactly one master: after a failover the old master, if it is reachable,
// keeps answering ROLE master until Sentinel's convert-to-slave, which
// happens only after it has been seen reporting the wrong role for 8 s and
// at the next 10 s INFO refresh, i.e. roughly 10-20 s later. If ctx has no
// deadline a 60 s timeout applies.
func (g *Group) WaitConverged(ctx context.Context) (*Server, error) {
	ctx, cancel := withDefaultTimeout(ctx, defaultWaitTimeout)
	defer cancel()
	pr := newProber()
	defer pr.close()
	var found *Server
	err := poll(ctx, func() (bool, error) {
		m, err := g.currentMaster(ctx, pr)
		if err != nil {
			return false, err
		}
		for _, s := range g.Servers() {
			if !s.Running() {
				continue
			}
			v, err := pr.do(ctx, s.Addr, s.password, "ROLE")
			if err != nil {
				return false, fmt.Errorf("ROLE on %s: %w", s.Addr, err)
			}
			a, _ := v.([]any)
			if len(a) == 0 {
				return false, fmt.Errorf("ROLE on %s: reply %v", s.Addr, v)
			}
			r, _ := a[0].(string)
			if s == m {
				if r != "master" {
					return false, fmt.Errorf("Sentinels name %s but its ROLE is %s", s.Addr, r)
				}
				continue
			}
			if r != "slave" || len(a) < 4 {
				return false, fmt.Errorf("%s: ROLE %s, want a replica of %s", s.Addr, r, m.Addr)
			}
			h, _ := a[1].(string)
			p, _ := a[2].(int64)
			st, _ := a[3].(string)
			if net.JoinHostPort(h, strconv.FormatInt(p, 10)) != m.Addr || st != "connected" {
				return false, fmt.Errorf("%s: replica of %s:%d (%s), want of %s (connected)", s.Addr, h, p, st, m.Addr)
			}
		}
		found = m
		return true, nil
	})
	if err != nil {
		return nil, g.withSentinelLogs(fmt.Errorf("lab: group %s did not converge: %w", g.Name, err))
	}
	return found, nil
}

// Stop stops every process (Sentinels first, so that they do not react to
// the servers going away), concurrently within each kind. It is idempotent.
func (g *Group) Stop() error {
	var mu sync.Mutex
	var errs []error
	add := func(err error) {
		if err != nil {
			mu.Lock()
			errs = append(errs, err)
			mu.Unlock()
		}
	}
	var wg sync.WaitGroup
	for _, s := range g.Sentinels {
		if s != nil {
			wg.Go(func() { add(s.Stop()) })
		}
	}
	wg.Wait()
	for _, s := range g.Servers() {
		if s != nil {
			wg.Go(func() { add(s.Stop()) })
		}
	}
	wg.Wait()
	return errors.Join(errs...)
}

// PIDs returns the process ids of all current processes of the group
// (servers and Sentinels; 0 for one never started).
func (g *Group) PIDs() []int {
	var out []int
	for _, s := range g.Servers() {
		out = append(out, s.PID())
	}
	for _, s := range g.Sentinels {
		out = append(out, s.PID())
	}
	return out
}

// LogTails returns the last n lines of every process's log, labelled, for
// failure messages.
func (g *Group) LogTails(n int) string {
	var b strings.Builder
	for i, s := range g.Servers() {
		fmt.Fprintf(&b, "--- server-%d %s (running=%v) %s ---\n%s\n", i, s.Addr, s.Running(), s.logPath, s.LogTail(n))
	}
	for i, s := range g.Sentinels {
		fmt.Fprintf(&b, "--- sentinel-%d %s (running=%v) %s ---\n%s\n", i, s.Addr, s.Running(), s.logPath, s.LogTail(n))
	}
	return b.String()
}

func (g *Group) withSentinelLogs(err error) error {
	var b strings.Builder
	for i, s := range g.Sentinels {
		fmt.Fprintf(&b, "\n--- last 15 lines of sentinel-%d %s ---\n%s", i, s.Addr, s.LogTail(15))
	}
	return fmt.Errorf("%w%s", err, b.String())
}
