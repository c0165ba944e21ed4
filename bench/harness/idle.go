package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"syscall"
	"time"
)

// idleDialers is how many goroutines open the idle connections. Enough to
// be quick, few enough not to overflow a listen backlog.
const idleDialers = 32

// idleSample is the memory an endpoint process needs for n idle clients.
type idleSample struct {
	conns         int
	before, after int64 // VmRSS in KiB
}

// perConn is the RSS growth per connection in KiB.
func (s idleSample) perConn() float64 {
	if s.conns == 0 {
		return 0
	}
	return float64(s.after-s.before) / float64(s.conns)
}

// measureIdle opens n connections to ep, sends one PING on each and reads
// the reply (so the endpoint has accepted the connection and served it
// once), lets them sit idle for settle, then compares the endpoint's VmRSS
// with the value before. Measuring right after the burst would count what
// every endpoint needs while it serves all n at once, not what an idle
// connection costs. All connections are closed before it returns.
func measureIdle(ctx context.Context, ep endpoint, n int, settle time.Duration) (idleSample, error) {
	before, err := rssKiB(ep.pid)
	if err != nil {
		return idleSample{}, err
	}
	conns := make([]net.Conn, n)
	defer func() {
		for _, c := range conns {
			if c != nil {
				_ = c.Close()
			}
		}
	}()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	next := make(chan int)
	errs := make([]error, idleDialers)
	var wg sync.WaitGroup
	for w := range idleDialers {
		wg.Go(func() {
			d := net.Dialer{Timeout: 5 * time.Second}
			for i := range next {
				c, err := d.DialContext(ctx, "tcp", ep.addr)
				if err == nil {
					conns[i] = c
					_ = c.SetDeadline(time.Now().Add(10 * time.Second))
					err = ping(c)
					_ = c.SetDeadline(time.Time{})
				}
				if err != nil {
					errs[w] = fmt.Errorf("connection %d: %w", i+1, err)
					cancel()
					return
				}
			}
		})
	}
feed:
	for i := range n {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return idleSample{}, fmt.Errorf("idle connections to %s (%s): %w", ep.name, ep.addr, err)
	}
	if err := ctx.Err(); err != nil {
		return idleSample{}, err
	}
	select {
	case <-time.After(settle):
	case <-ctx.Done():
		return idleSample{}, ctx.Err()
	}
	after, err := rssKiB(ep.pid)
	if err != nil {
		return idleSample{}, err
	}
	return idleSample{conns: n, before: before, after: after}, nil
}

// raiseFileLimit lifts RLIMIT_NOFILE to at least want (for the harness
// and, inherited, for the proxies it starts). It returns the limit in
// effect, which is lower than want when an unprivileged process cannot
// raise its hard limit.
func raiseFileLimit(want uint64) (uint64, error) {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 0, fmt.Errorf("getrlimit NOFILE: %w", err)
	}
	if r.Cur >= want {
		return r.Cur, nil
	}
	n := r
	n.Cur = want
	if n.Max < want {
		n.Max = want
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &n); err == nil {
		return want, nil
	}
	// Not root: go as high as the hard limit allows.
	n = r
	n.Cur = r.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &n); err != nil {
		return r.Cur, fmt.Errorf("setrlimit NOFILE to %d: %w", n.Cur, err)
	}
	return n.Cur, nil
}
