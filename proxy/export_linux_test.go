//go:build linux

package proxy

import "testing"

// SetRingHook makes f run on the event loop's goroutine before each
// submission through its io_uring ring, with the number of calls in it;
// f returning false fails that submission.
func SetRingHook(t *testing.T, f func(calls int) bool) {
	ringHook = f
	t.Cleanup(func() { ringHook = nil })
}

// RingAvailable reports why the event loop could not use io_uring here,
// or nil if it can.
func RingAvailable() error {
	r, err := newRing()
	if err == nil {
		r.close()
	}
	return err
}
