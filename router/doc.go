// Package router makes the proxy's per-command decisions: which commands can
// share a pipelined backend connection, which need a connection of their own
// and for how long, and which the proxy must answer itself.
//
// It is pure: no I/O, no goroutines, no allocation per call. It must never
// guess in a way that could send a command somewhere unsafe: anything it does
// not recognise is classed as a plain forward to the master.
package router
