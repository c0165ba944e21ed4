//go:build !linux

package proxy

import "sync/atomic"

// peek cannot look without Linux's MSG_DONTWAIT: it reports nothing. A
// connection Redis closed while idle is then found when the next request
// fails, and a refusing session stops refusing at the end of each batch.
func peek(uintptr) (data, closed bool) { return false, false }

// waitHangup cannot wait for a hangup without reading: it reports none.
func waitHangup(uintptr, *atomic.Bool) bool { return false }
