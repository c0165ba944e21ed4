// Package proxy is Switchyard's data path: listeners, client sessions,
// backend connection pools, pinning, and fencing when the master changes.
//
// A Server fronts one Redis group. Clients' stateless commands share a few
// pipelined backend connections per node; a session reads every command its
// client has buffered, forwards them as one segment, waits for their replies
// and writes them back with one syscall. Raw request bytes are forwarded as
// they arrived: the proxy decodes only the command name and the arguments it
// must inspect.
//
// Commands that carry connection state (MULTI/WATCH, blocking commands,
// Pub/Sub, MONITOR, CLIENT TRACKING) get a backend connection of their own
// for as long as that state lasts.
//
// The master is a generation: SetMaster publishes a new one and closes the
// old one, which closes every backend connection to the old node at once.
// Pinned sessions on it end, so their clients see the failover; stateless
// sessions move to the new generation on their next command. When no master
// is known, commands wait up to Config.HoldTimeout and then fail with
// -TRYAGAIN: the proxy never guesses a destination.
//
// This package must never block one client on another's slowness, never
// send a command to a node outside the current generation, and never
// acknowledge a command it did not see acknowledged by Redis.
package proxy
