package router

// metricNames are the commands metrics label by name; every other command
// is counted as "other", so a client sending random names cannot grow the
// label set. ID 0 is "other".
var metricNames = [...]string{
	"other",
	// strings
	"GET", "SET", "SETEX", "PSETEX", "SETNX", "GETSET", "GETDEL", "GETEX", "MGET", "MSET",
	"INCR", "INCRBY", "INCRBYFLOAT", "DECR", "DECRBY", "APPEND", "STRLEN", "GETRANGE", "SETRANGE",
	// keys
	"DEL", "UNLINK", "EXISTS", "EXPIRE", "PEXPIRE", "EXPIREAT", "TTL", "PTTL", "PERSIST",
	"TYPE", "RENAME", "SCAN", "KEYS", "DBSIZE",
	// hashes
	"HGET", "HSET", "HMGET", "HMSET", "HGETALL", "HDEL", "HINCRBY", "HEXISTS", "HLEN", "HKEYS", "HVALS", "HSCAN",
	// lists
	"LPUSH", "RPUSH", "LPOP", "RPOP", "LRANGE", "LLEN", "LINDEX", "LREM", "LTRIM", "LMOVE",
	"BLPOP", "BRPOP", "BLMOVE", "BRPOPLPUSH",
	// sets
	"SADD", "SREM", "SMEMBERS", "SISMEMBER", "SCARD", "SPOP", "SSCAN",
	// sorted sets
	"ZADD", "ZREM", "ZRANGE", "ZRANGEBYSCORE", "ZREVRANGE", "ZSCORE", "ZINCRBY", "ZCARD", "ZRANK", "ZCOUNT", "ZPOPMIN", "BZPOPMIN",
	// streams
	"XADD", "XREAD", "XREADGROUP", "XACK", "XLEN", "XRANGE",
	// scripting, transactions, pub/sub
	"EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO", "FCALL", "FCALL_RO", "SCRIPT", "FUNCTION",
	"MULTI", "EXEC", "DISCARD", "WATCH", "UNWATCH",
	"PUBLISH", "SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE", "UNSUBSCRIBE", "PUNSUBSCRIBE",
	// connection and server
	"PING", "ECHO", "SELECT", "HELLO", "AUTH", "CLIENT", "INFO", "ROLE", "COMMAND", "CONFIG", "QUIT", "RESET", "WAIT",
}

// NumCommandIDs is the number of command IDs, "other" included.
const NumCommandIDs = len(metricNames)

// CommandName returns the metric label of a command ID.
func CommandName(id int) string {
	if id < 0 || id >= len(metricNames) {
		return metricNames[0]
	}
	return metricNames[id]
}
