//go:build !linux

package proxy

// peekClosed cannot look without Linux's MSG_DONTWAIT: a connection Redis
// closed while idle is found when the next request fails.
func peekClosed(uintptr) bool { return false }
