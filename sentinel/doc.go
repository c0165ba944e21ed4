// Package sentinel follows one Sentinel-managed Redis group and publishes
// where its master is.
//
// A Watcher talks to every Sentinel of the group. For each one it keeps a
// connection subscribed to Sentinel's event channels (+switch-master, the
// failover progress events, +sdown, …) and polls SENTINEL
// get-master-addr-by-name and SENTINEL replicas every PollInterval as a
// fallback and as a heartbeat. From those it decides the master:
//
//   - the address named by more than half of the Sentinels it can reach, or
//     during a failover the replica that the elected Sentinel promoted (or a
//     +switch-master naming a new master for the current one);
//   - and only once that node itself answers ROLE with "master".
//
// The result is a Topology with an Epoch that grows by one on every master
// change. The data path reads it with Topology (one atomic load) and learns
// of changes from Changes (a capacity-1 channel that is never blocked on).
//
// For reads from replicas, the Topology lists the replicas the Sentinels
// report for the master (never the master itself), each with what its own
// INFO said in the last round: link up, loading, offset, and lag behind the
// master's offset read in the same round. Replica.Healthy turns that into
// a yes or no for a given lag bound; a replica that stops answering keeps
// its last values and turns unhealthy as its Checked time ages.
//
// What this package must never do:
//
//   - guess: when the Sentinels disagree, or the named node does not say it
//     is master, the state is StateNoMaster and the proxy fails closed;
//   - let a failover through unannounced: from the first failover event for
//     the current master until the promoted node is verified (or the
//     failover is known to have failed) the state is StateFailover, so the
//     proxy holds writes instead of sending them to a master being demoted;
//   - block its callers: Topology, Changes and Recheck return at once, and
//     no lock is shared with the data path;
//   - outlive Run: every goroutine it starts ends before Run returns;
//   - call a replica healthy on old or partial news: a replica never read,
//     read too long ago, or whose lag is unknown is not healthy;
//   - log a password.
//
// It imports nothing else from this module.
package sentinel
