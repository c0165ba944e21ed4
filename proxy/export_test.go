package proxy

import (
	"net"
	"sync"
	"testing"
	"time"
)

// SetHandoffHooks makes started and ended run, once each, as the first
// goroutine that takes over a partial backend write starts and ends, for
// the rest of t. Call it before starting a Server.
func SetHandoffHooks(t *testing.T, started, ended func()) {
	var once, onceEnd sync.Once
	handoffStarted = func() { once.Do(started) }
	handoffEnded = func() { onceEnd.Do(ended) }
	t.Cleanup(func() { handoffStarted, handoffEnded = nil, nil })
}

// SetLoopReadHooks makes beforeRead run each time the event loop starts
// reading a backend connection, on the loop's goroutine, and closed each
// time a backend connection is closed, for the rest of t. Call it before
// starting a Server.
func SetLoopReadHooks(t *testing.T, beforeRead, closed func()) {
	loopReadHook, closeHook = beforeRead, closed
	t.Cleanup(func() { loopReadHook, closeHook = nil, nil })
}

// SetToGoroutineHook makes f run, on the event loop's goroutine, each
// time the loop hands a client to a goroutine, for the rest of t. Call it
// before starting a Server.
func SetToGoroutineHook(t *testing.T, f func()) {
	toGoroutine = f
	t.Cleanup(func() { toGoroutine = nil })
}

// SetResumeHook makes f run, on the event loop's goroutine, each time
// the loop is about to write what a released failover hold held back on
// a connection, for the rest of t. Call it before starting a Server.
func SetResumeHook(t *testing.T, f func()) {
	resumeHook = f
	t.Cleanup(func() { resumeHook = nil })
}

// SetHoldWaitHook makes f run, on the client's goroutine, each time a
// command is about to wait for a master (the end of a failover hold),
// for the rest of t. Call it before starting a Server.
func SetHoldWaitHook(t *testing.T, f func()) {
	holdWaitHook = f
	t.Cleanup(func() { holdWaitHook = nil })
}

// SetReplacedHook makes f run, on a goroutine of its own, before the
// connections of a replaced master are closed, for the rest of t. Call it
// before starting a Server.
func SetReplacedHook(t *testing.T, f func()) {
	replacedHook = f
	t.Cleanup(func() { replacedHook = nil })
}

// SetDialHook makes f run at the start of each background dial of a
// pool's shared connection, on the dial's goroutine, for the rest of t.
// Call it before starting a Server.
func SetDialHook(t *testing.T, f func()) {
	dialHook = f
	t.Cleanup(func() { dialHook = nil })
}

// SetReplicaPoolIdle makes replicas' pools for other settings than the
// default close after d unused, for the rest of t.
func SetReplicaPoolIdle(t *testing.T, d time.Duration) {
	old := replicaPoolIdle
	replicaPoolIdle = d
	t.Cleanup(func() { replicaPoolIdle = old })
}

// TuneClient is tuneClient, for a test of the socket options it sets.
func TuneClient(nc net.Conn, keepAlive time.Duration) { tuneClient(nc, keepAlive) }

// RawSocketOf is rawSocketOf, for the same test: a TLS listener's
// connections are rawSockets (RawSocketListener).
func RawSocketOf(nc net.Conn) net.Conn { return rawSocketOf(nc) }

// ReplicaOutstanding returns the segments sent to the read set's replicas
// and not yet answered.
func (s *Server) ReplicaOutstanding() int64 {
	var n int64
	if set := s.replicas.Load(); set != nil {
		for _, node := range set.nodes {
			n += node.outstanding.Load()
		}
	}
	return n
}

// LoadingFrom is loadingFrom, for tests.
func LoadingFrom(b []byte, offsets []int) (int, bool) { return loadingFrom(b, offsets) }
