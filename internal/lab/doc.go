// Package lab starts, manipulates and stops real redis-server and
// redis-sentinel processes on free loopback ports in caller-supplied
// directories. It exists for integration and fault tests (through the
// labtest subpackage), for the `make demo` program and for the benchmark
// harness, all of which need real Redis and Sentinel processes that can be
// killed, paused (SIGSTOP), resumed and restarted.
//
// Package lab deliberately does not import "testing", so that the demo and
// bench programs can use it. It must never be imported by non-test
// production packages other than those two programs.
//
// Everything lab starts listens on 127.0.0.1 only. Processes are started in
// their own process group (so signals also reach forked children such as an
// RDB child), are always reaped, and are started with a parent-death signal
// of SIGKILL so that they do not outlive the Go process even if it dies
// without running its cleanups (for example on a `go test -timeout` panic).
//
// Nothing in lab sleeps for a fixed time: every wait polls (every 15 ms)
// until its condition holds or the context is done. Calls that start or wait
// for something apply a default timeout when the context has no deadline.
// Errors from start and wait calls include the tail of the relevant logs.
//
// Sentinel timing, as observed with Redis 7.0 and the defaults here
// (down-after 1 s, failover-timeout 5 s):
//
//   - StartGroup takes about 2 s: Sentinels find each other through hello
//     messages published every 2 s.
//   - A SIGKILLed master is replaced after about 2-4 s; a forced failover
//     (Group.Failover) takes about 1-2 s.
//   - After a failover a reachable old master keeps answering ROLE master
//     until Sentinel converts it, which happens only after it has been seen
//     in the wrong role for 8 s and at the next 10 s INFO refresh, i.e.
//     roughly 10-20 s later. The same holds for a restarted former master.
//     Use Group.WaitConverged when a test needs exactly one master.
//   - On a switch, Sentinel resets its per-master state, including the
//     "no new failover for 2 x failover-timeout" guard, and starts the new
//     master's down-after timer afresh. A stall of >= down-after right after
//     a failover (a starved CPU; Sentinel also throttles reconnects to one
//     per second) can therefore trigger a second, immediate failover. Tests
//     should not assume the master WaitMaster returned is still the master
//     later; ask CurrentMaster or WaitConverged again.
//   - SENTINEL FAILOVER answers NOGOODSLAVE or INPROG for a moment after a
//     previous failover; Group.Failover retries.
//
// Requirements: redis-server and redis-sentinel (Redis >= 6.2; developed
// against 7.0) on PATH, or explicit paths in the options. When a binary is
// missing the error wraps ErrNotInstalled.
package lab
