//go:build !linux

package proxy

// peek cannot look without Linux's MSG_DONTWAIT: it reports nothing. A
// connection Redis closed while idle is then found when the next request
// fails, and a refusing session stops refusing at the end of each batch.
func peek(uintptr) (data, closed bool) { return false, false }

// hungUp cannot see a hangup without reading: it reports none, and a
// full watcher waits for its deadline.
func hungUp(uintptr) bool { return false }
