package router

import "strings"

// Flags are a command's flags as the server's COMMAND reports them.
type Flags uint32

// The flags Redis reports, in the order Redis 7 lists them (server.c,
// addReplyCommandFlags), then the two that Redis 6 still reported. A flag
// the server reports that has no bit here is kept by name in
// CommandInfo.FlagNames.
const (
	// FlagWrite: the command may modify the data set. A replica refuses it.
	FlagWrite Flags = 1 << iota
	// FlagReadonly: the command reads keys and never modifies them; with FlagWrite
	// unset, a replica can serve it.
	FlagReadonly
	// FlagDenyoom: refused when the server is over its maxmemory.
	FlagDenyoom
	// FlagModule: implemented by a module.
	FlagModule
	// FlagAdmin: administrative (CONFIG, DEBUG, ...).
	FlagAdmin
	// FlagPubSub: Pub/Sub related (SUBSCRIBE, PUBLISH, PUBSUB, ...).
	FlagPubSub
	// FlagNoScript: not allowed from scripts.
	FlagNoScript
	// FlagBlocking: may block the client (BLPOP, XREAD, WAIT, ...).
	FlagBlocking
	// FlagLoading: allowed while the server loads its data set.
	FlagLoading
	// FlagStale: allowed on a replica with a broken or syncing link when
	// replica-serve-stale-data is no.
	FlagStale
	// FlagSkipMonitor: not shown to MONITOR.
	FlagSkipMonitor
	// FlagSkipSlowlog: not logged in SLOWLOG.
	FlagSkipSlowlog
	// FlagAsking: allowed on an importing slot in Cluster mode.
	FlagAsking
	// FlagFast: O(1) or O(log N) and never delayed.
	FlagFast
	// FlagNoAuth: allowed before authentication (AUTH, HELLO).
	FlagNoAuth
	// FlagMayReplicate: may be propagated to replicas though it is not a
	// write. Redis 6.2 reports it; Redis 7 hides it (PUBLISH, EVAL and
	// PFCOUNT have it internally).
	FlagMayReplicate
	// FlagNoMandatoryKeys: takes keys, but may be called with none.
	FlagNoMandatoryKeys
	// FlagNoAsyncLoading: refused while a replica loads its data set
	// asynchronously (repl-diskless-load swapdb).
	FlagNoAsyncLoading
	// FlagNoMulti: not allowed inside MULTI.
	FlagNoMulti
	// FlagMovableKeys: the key positions cannot be read from first/last/step.
	FlagMovableKeys
	// FlagAllowBusy: allowed while a script or function runs too long.
	FlagAllowBusy
	// FlagModuleNoCluster: a module command refused in Cluster mode (Redis 7.2).
	FlagModuleNoCluster
	// FlagRandom and FlagSortForScript are Redis 6 flags; Redis 7 reports them as
	// tips (nondeterministic_output, nondeterministic_output_order).
	FlagRandom
	FlagSortForScript
)

// flagNames are the names COMMAND uses, by bit.
var flagNames = [...]string{
	"write", "readonly", "denyoom", "module", "admin", "pubsub", "noscript",
	"blocking", "loading", "stale", "skip_monitor", "skip_slowlog", "asking",
	"fast", "no_auth", "may_replicate", "no_mandatory_keys", "no_async_loading", "no_multi",
	"movablekeys", "allow_busy", "module_no_cluster", "random", "sort_for_script",
}

var flagByName = func() map[string]Flags {
	m := make(map[string]Flags, len(flagNames))
	for i, n := range flagNames {
		m[n] = 1 << i
	}
	return m
}()

// parseFlag returns the bit of a flag name (in any case), 0 if it has none.
func parseFlag(name string) Flags {
	return flagByName[strings.ToLower(name)]
}

// Has reports whether every flag in g is set in f.
func (f Flags) Has(g Flags) bool { return f&g == g }

// String returns the flag names as COMMAND reports them, joined by '|',
// e.g. "readonly|fast"; "" for none.
func (f Flags) String() string {
	var b strings.Builder
	for i, n := range flagNames {
		if f&(1<<i) == 0 {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('|')
		}
		b.WriteString(n)
	}
	return b.String()
}
