package router

import "bytes"

// Class says how the proxy must treat one command.
type Class uint8

const (
	// Forward is a stateless command: it may share a pipelined backend
	// connection with other clients. Unknown commands are Forward too, so
	// the master's own error reaches the client.
	Forward Class = iota
	// Blocking holds a backend connection until its reply arrives (BLPOP,
	// XREAD … BLOCK, WAIT). It needs a connection of its own for that time,
	// or it would stall every client sharing the connection.
	Blocking
	// Multi, Exec, Discard, Watch and Unwatch open and close a transaction,
	// which lives on one backend connection.
	Multi
	Exec
	Discard
	Watch
	Unwatch
	// Subscribe enters Pub/Sub: the backend connection then sends messages
	// the client did not ask for, so it becomes the client's own tunnel.
	Subscribe
	// Monitor and Tracking also make the backend push unsolicited data.
	Monitor
	Tracking
	// Session settings the proxy tracks and applies to the connections it
	// hands the client.
	Select
	Hello
	Auth
	ClientSetName
	ClientGetName
	// ClientID (CLIENT ID) makes the client's connection its own, as
	// Subscribe does, and answers that connection's ID: the one CLIENT
	// UNBLOCK and CLIENT TRACKING … REDIRECT must name to reach the
	// client.
	ClientID
	// Quit and Reset end or reset the session as Redis does.
	Quit
	Reset
	// Unsupported commands would corrupt a shared connection's state or the
	// proxy's reply accounting (CLIENT REPLY, replication handshakes). The
	// proxy refuses them with an error rather than forwarding them.
	Unsupported
)

var classNames = [...]string{
	Forward: "forward", Blocking: "blocking", Multi: "multi", Exec: "exec",
	Discard: "discard", Watch: "watch", Unwatch: "unwatch", Subscribe: "subscribe",
	Monitor: "monitor", Tracking: "tracking", Select: "select", Hello: "hello",
	Auth: "auth", ClientSetName: "client-setname", ClientGetName: "client-getname",
	ClientID: "client-id", Quit: "quit", Reset: "reset", Unsupported: "unsupported",
}

func (c Class) String() string {
	if int(c) < len(classNames) {
		return classNames[c]
	}
	return "unknown"
}

// Pinned reports whether the class opens state that ties the client to one
// backend connection beyond the command itself.
func (c Class) Pinned() bool {
	switch c {
	case Multi, Watch, Subscribe, Monitor, Tracking:
		return true
	}
	return false
}

// byName holds the commands whose class does not depend on their arguments.
// Keys are upper case.
var byName = map[string]Class{
	"BLPOP": Blocking, "BRPOP": Blocking, "BLMOVE": Blocking, "BLMPOP": Blocking,
	"BZPOPMIN": Blocking, "BZPOPMAX": Blocking, "BZMPOP": Blocking,
	"BRPOPLPUSH": Blocking, "WAIT": Blocking, "WAITAOF": Blocking,

	"MULTI": Multi, "EXEC": Exec, "DISCARD": Discard, "WATCH": Watch, "UNWATCH": Unwatch,

	"SUBSCRIBE": Subscribe, "PSUBSCRIBE": Subscribe, "SSUBSCRIBE": Subscribe,
	// Unsubscribing answers one frame per channel (pushes in RESP3), which
	// a shared connection's one-reply-per-command accounting cannot follow.
	"UNSUBSCRIBE": Subscribe, "PUNSUBSCRIBE": Subscribe, "SUNSUBSCRIBE": Subscribe,
	"MONITOR": Monitor,

	"SELECT": Select, "HELLO": Hello, "AUTH": Auth,
	"QUIT": Quit, "RESET": Reset,

	// Replication handshakes make the connection a replica stream.
	"SYNC": Unsupported, "PSYNC": Unsupported, "REPLCONF": Unsupported,
}

// maxName is longer than any Redis command name; longer names are unknown.
const maxName = 32

// Classify returns the class of the command whose arguments are args
// (args[0] is the name, in any case). It does not allocate.
func Classify(args [][]byte) Class {
	c, _ := Lookup(args)
	return c
}

// Lookup returns the command's class and its metric ID (see CommandName).
// It does not allocate.
func Lookup(args [][]byte) (Class, int) {
	c, id, _ := lookup(args)
	return c, id
}

// lookup is Lookup, and also reports whether the answer holds for every
// command of that name whatever its arguments.
func lookup(args [][]byte) (Class, int, bool) {
	if len(args) == 0 {
		return Forward, 0, false
	}
	var buf [maxName]byte
	name, ok := upper(&buf, args[0])
	if !ok {
		return Forward, 0, false
	}
	e := table[string(name)]
	id := int(e.id)
	switch string(name) {
	case "XREAD", "XREADGROUP":
		if hasBlockOption(args[1:]) {
			return Blocking, id, false
		}
		return Forward, id, false
	case "CLIENT":
		return classifyClient(args[1:]), id, false
	case "SCRIPT", "FUNCTION":
		// Redis answers SCRIPT KILL and FUNCTION KILL while a script
		// runs, but not a connection behind the script on a shared
		// pipeline: they get a connection of their own, as a blocking
		// command does.
		if len(args) == 2 && bytes.EqualFold(args[1], []byte("KILL")) {
			return Blocking, id, false
		}
		return e.class, id, false
	}
	return e.class, id, true
}

// Cache is Lookup with a memory of the last name it answered for, for one
// client: clients mostly send the same command again (a pipeline of GETs),
// and then a comparison of the name's bytes replaces the upper-casing and
// the map lookup. Names whose class depends on the arguments (CLIENT,
// XREAD) are not kept. The zero Cache is empty; it is not safe for
// concurrent use.
type Cache struct {
	name  [maxName]byte
	n     uint8 // length of the name kept; 0: none
	class Class
	id    uint16
}

// Lookup is the package's Lookup.
func (c *Cache) Lookup(args [][]byte) (Class, int) {
	if len(args) > 0 && c.n > 0 && len(args[0]) == int(c.n) && string(args[0]) == string(c.name[:c.n]) {
		return c.class, int(c.id)
	}
	class, id, kept := lookup(args)
	c.n = 0
	if kept {
		c.n = uint8(copy(c.name[:], args[0]))
		c.class, c.id = class, uint16(id)
	}
	return class, id
}

// entry is what Lookup knows of a command name: its class (Forward, the
// zero Class, unless byName says otherwise) and its metric ID (0 unless
// metricNames has it).
type entry struct {
	class Class
	id    uint16
}

// table merges byName and the metric IDs, so that a command costs one
// map lookup on the data path, not two.
var table = func() map[string]entry {
	m := make(map[string]entry, len(metricNames)+len(byName))
	for i, n := range metricNames[1:] {
		e := m[n]
		e.id = uint16(i + 1)
		m[n] = e
	}
	for n, c := range byName {
		e := m[n]
		e.class = c
		m[n] = e
	}
	return m
}()

// classifyClient sorts the CLIENT subcommands that touch the connection's
// own state.
func classifyClient(args [][]byte) Class {
	if len(args) == 0 {
		return Forward
	}
	sub := args[0]
	switch {
	case bytes.EqualFold(sub, []byte("SETNAME")):
		return ClientSetName
	case bytes.EqualFold(sub, []byte("GETNAME")):
		return ClientGetName
	case bytes.EqualFold(sub, []byte("ID")):
		return ClientID
	case bytes.EqualFold(sub, []byte("TRACKING")):
		if len(args) > 1 && bytes.EqualFold(args[1], []byte("ON")) {
			return Tracking
		}
		return Forward
	case bytes.EqualFold(sub, []byte("REPLY")),
		bytes.EqualFold(sub, []byte("NO-EVICT")),
		bytes.EqualFold(sub, []byte("NO-TOUCH")):
		// These change how a connection replies or is treated; on a
		// shared connection they would leak to other clients.
		return Unsupported
	}
	return Forward
}

// hasBlockOption reports whether XREAD/XREADGROUP options contain BLOCK
// before STREAMS (after STREAMS come key names, which may be "block").
func hasBlockOption(args [][]byte) bool {
	return blockOption(args) >= 0
}

// blockOption returns the index in args (XREAD's or XREADGROUP's, without
// the name) of the last BLOCK before STREAMS, the one Redis takes, or -1.
// Option values are skipped, as Redis parses them: GROUP's group and
// consumer names, and COUNT's and BLOCK's numbers, may be any word,
// "streams" or "block" included.
func blockOption(args [][]byte) int {
	last := -1
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case bytes.EqualFold(a, []byte("STREAMS")):
			return last
		case bytes.EqualFold(a, []byte("BLOCK")):
			last = i
			i++
		case bytes.EqualFold(a, []byte("GROUP")):
			i += 2
		case bytes.EqualFold(a, []byte("COUNT")):
			i++
		}
	}
	return last
}

// TimeoutArg returns the index in args of a blocking command's timeout,
// and whether Redis reads it in milliseconds (XREAD's and XREADGROUP's
// BLOCK, WAIT's, WAITAOF's) rather than in seconds. ok is false for a
// command without one, or whose arguments stop short of it.
func TimeoutArg(args [][]byte) (i int, millis, ok bool) {
	if len(args) < 2 {
		return 0, false, false
	}
	var buf [maxName]byte
	name, known := upper(&buf, args[0])
	if !known {
		return 0, false, false
	}
	switch string(name) {
	case "BLPOP", "BRPOP", "BLMOVE", "BRPOPLPUSH", "BZPOPMIN", "BZPOPMAX":
		return len(args) - 1, false, true
	case "BLMPOP", "BZMPOP":
		return 1, false, true
	case "WAIT", "WAITAOF":
		return len(args) - 1, true, true
	case "XREAD", "XREADGROUP":
		if b := blockOption(args[1:]); b >= 0 && b+2 < len(args) {
			return b + 2, true, true
		}
	}
	return 0, false, false
}

// upper copies name into buf in upper case. ok is false when it is too long
// to be a known command.
func upper(buf *[maxName]byte, name []byte) ([]byte, bool) {
	if len(name) > maxName {
		return nil, false
	}
	for i, c := range name {
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		buf[i] = c
	}
	return buf[:len(name)], true
}
