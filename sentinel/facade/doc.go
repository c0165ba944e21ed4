// Package facade is a Sentinel-compatible endpoint that names Switchyard
// itself as the master of each group.
//
// Sentinel-aware clients (redis-py Sentinel, ioredis sentinels:, go-redis
// NewFailoverClient, JedisSentinelPool, redis-rb, Predis) first ask a
// Sentinel where the master is and then dial that address. From outside
// the cluster they can reach neither the Sentinels nor the pod addresses
// those announce. A Server answers the queries those clients make, with
// replies shaped like a Redis 7 Sentinel's, and gives each group's
// advertised Switchyard address as the master (and its read port, if any,
// as the one replica). Switchyard then follows the real Sentinels behind
// that address, so a client of the facade never has to move.
//
// It answers SENTINEL get-master-addr-by-name, masters, master,
// replicas/slaves, sentinels (always empty: the facade is the only
// Sentinel a client sees), ckquorum and myid; PING, ROLE, INFO, HELLO
// (RESP2 and RESP3), AUTH, CLIENT SETNAME/GETNAME/ID/SETINFO, QUIT and
// SUBSCRIBE/PSUBSCRIBE/UNSUBSCRIBE/PUNSUBSCRIBE. Every other command gets
// the error a Sentinel gives an unknown command; an unknown group gets the
// reply a Sentinel gives an unknown master name.
//
// The advertised address normally never changes: a failover happens
// behind it. Check compares each group's address with the last one
// published and, when it changed (a reload with a new announce address),
// publishes +switch-master so that subscribed clients move.
//
// The server is built on tidwall/redcon's RESP reader and encoders, with
// its own accept loop and connection registry instead of redcon.Server:
// redcon forgets a connection once it is detached for Pub/Sub, so Close
// could not end subscribed clients, and its PubSub speaks only RESP2.
//
// What this package must never do:
//
//   - report a node address of its own invention: every address comes from
//     the Group funcs the caller supplies;
//   - block the caller of Check on a client that stopped reading: every
//     write has a deadline, after which that client is closed;
//   - outlive Close: Serve returns and every connection goroutine has
//     ended when Close returns;
//   - log a password.
package facade
