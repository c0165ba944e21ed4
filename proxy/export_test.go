package proxy

import (
	"sync"
	"testing"
)

// SetHandoffHooks makes started and ended run, once each, as the first
// goroutine that takes over a partial backend write starts and ends, for
// the rest of t. Call it before starting a Server.
func SetHandoffHooks(t *testing.T, started, ended func()) {
	var once, onceEnd sync.Once
	handoffStarted = func() { once.Do(started) }
	handoffEnded = func() { onceEnd.Do(ended) }
	t.Cleanup(func() { handoffStarted, handoffEnded = func() {}, func() {} })
}
