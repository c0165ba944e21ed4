// Package router makes the proxy's per-command decisions: which commands can
// share a pipelined backend connection, which need a connection of their own
// and for how long, which the proxy must answer itself, and which a replica
// may serve.
//
// Classify and Lookup sort commands by the connection state they touch. A
// Table holds command flags as Redis itself reports them in COMMAND: the
// proxy builds one from each master's reply, and falls back to Builtin, a
// table recorded from a real redis-server by go generate (commands_gen.go,
// regenerated with "go generate ./router/").
//
// It is pure: no I/O, no goroutines, no allocation per call. It must never
// guess in a way that could send a command somewhere unsafe: anything it does
// not recognise is classed as a plain forward to the master, and is never a
// read a replica could serve.
package router
