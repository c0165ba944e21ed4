package proxy_test

import (
	"fmt"
	"math/rand"
	"strconv"
	"strings"
)

// The differential test's workload: seeded pseudo-random commands of the
// kinds real clients send, generated with a model of each connection's
// session (database, protocol, transaction) so that the test knows how
// many replies each command gets, how to compare them, and whether the
// proxy is documented to answer it differently.

// diffStep is one command of a batch.
type diffStep struct {
	text    string // for failure reports
	proxy   []byte // sent to the proxy
	direct  []byte // sent to Redis
	replies int    // reply frames: 0 for an empty command, or one after the connection closed
	norm    normalizer
	doc     *documentedDiff // the proxy's reply is documented to differ
	want    string          // then, the proxy's documented reply
	inline  bool
	state   string // the session before the batch, on its first command
	closes  bool   // Redis closes the connection after this reply
	// malformed: a protocol error, which Redis answers before closing.
	malformed bool
}

// connModel is what the generator knows of one connection's session.
type connModel struct {
	own       []string // keys only this connection touches in a concurrent round
	db, proto int
	multi     bool
	watch     bool
	queued    []normalizer // what MULTI queued, for EXEC's reply
	authFails int
}

func newConnModel(i int) *connModel {
	m := &connModel{proto: 2}
	for _, k := range []string{"a", "b", "c", "d", "e"} {
		m.own = append(m.own, fmt.Sprintf("c%d:%s", i, k))
	}
	return m
}

func (m *connModel) String() string {
	s := fmt.Sprintf("db %d, RESP%d", m.db, m.proto)
	if m.multi {
		s += ", in MULTI"
	}
	if m.watch {
		s += ", after WATCH"
	}
	return s
}

// reset is the session as a fresh connection or RESET leaves it.
func (m *connModel) reset() {
	m.db, m.proto, m.multi, m.watch, m.queued = 0, 2, false, false, nil
}

type diffGen struct {
	r *rand.Rand
	// streamMs makes every XADD's explicit ID larger than the last.
	streamMs int64
	// shared is true in a sequential round, where commands may also use
	// other connections' keys and whole-database commands.
	shared bool
	keys   []string
	// handoffs numbers the keys of handoff rounds.
	handoffs int
	// Counts for the test's log.
	documented, inline, closes, split int
}

// standIn is sent to Redis in place of a command the proxy is documented
// to refuse: an unknown command, which Redis refuses without effect and,
// inside MULTI, when queued, so that the transaction ends in EXECABORT as
// the proxy's does.
const standIn = "SWITCHYARD-DIFF-STANDIN"

func (g *diffGen) key() string { return g.keys[g.r.Intn(len(g.keys))] }

func (g *diffGen) pick(s ...string) string { return s[g.r.Intn(len(s))] }

func (g *diffGen) n(lo, hi int) string { return strconv.Itoa(lo + g.r.Intn(hi-lo+1)) }

// value returns a short value, sometimes numeric, binary or large.
func (g *diffGen) value() string {
	switch p := g.r.Intn(100); {
	case p < 30:
		return g.n(-5, 100)
	case p < 35:
		return g.pick("1.5", "-0.25", "3e2", "inf", "nan", "12345678901234567890")
	case p < 40:
		return g.pick("", "a b", "x\r\ny", "\x00\xff", "\"q'")
	case p < 41:
		return strings.Repeat(string(rune('a'+g.r.Intn(26))), 1000+g.r.Intn(70000))
	}
	return g.pick("v", "w", "foo", "bar", "hello", "zz") + g.n(0, 9)
}

// field returns a hash field or set member: few, so that they repeat.
func (g *diffGen) field() string { return g.pick("f1", "f2", "f3", "m1", "m2", "7", "8", "x y") }

func (g *diffGen) score() string { return g.pick("1", "2", "-3", "1.5", "0", "+inf", "-inf", "2.25") }

func (g *diffGen) ttl() string { return g.n(1000, 100000) }

// batch returns a pipeline of 1 to 64 commands for m's connection.
func (g *diffGen) batch(m *connModel) []diffStep {
	n := 1 + g.r.Intn(8)
	if g.r.Intn(4) == 0 {
		n = 1 + g.r.Intn(64)
	}
	var steps []diffStep
	closed := false
	state := m.String()
	for i := 0; i < n; i++ {
		st := g.step(m)
		if closed {
			st.replies = 0 // sent after QUIT: Redis never reads it
		}
		steps = append(steps, st)
		if st.closes {
			g.closes++
			if st.malformed || g.r.Intn(2) == 0 {
				break // after a protocol error the rest would be garbage
			}
			closed = true // what follows QUIT is never read
		}
	}
	if g.shared && !closed && (m.multi || m.watch) {
		// A sequential round may have watched or queued other
		// connections' keys: the transaction ends before they run
		// concurrently again, which would make its outcome a race.
		steps = append(steps, g.command(m, "EXEC"))
		if m.watch {
			steps = append(steps, g.command(m, "UNWATCH"))
		}
	}
	steps[0].state = state
	return steps
}

// step returns one command, and updates m as Redis would.
func (g *diffGen) step(m *connModel) diffStep {
	switch p := g.r.Intn(1000); {
	case p < 8:
		return g.raw(g.pick("*0\r\n", "\r\n", "   \r\n", "*-1\r\n"), 0)
	case p < 10:
		return g.protocolError()
	case p < 13:
		st := g.command(m, []string{"QUIT", "now"}[:1+g.r.Intn(2)]...)
		st.closes = true
		return st
	}
	args := g.args(m)
	return g.command(m, args...)
}

func (g *diffGen) raw(b string, replies int) diffStep {
	return diffStep{text: fmt.Sprintf("raw %q", b), proxy: []byte(b), direct: []byte(b), replies: replies}
}

// protocolError returns a malformed request that Redis answers with an
// error before it closes the connection.
func (g *diffGen) protocolError() diffStep {
	st := g.raw(g.pick(
		"*1\r\n+PING\r\n",      // expected '$'
		"*x\r\n",               // invalid multibulk length
		"*1\r\n$-3\r\n",        // invalid bulk length
		"SET \"unbalanced\r\n", // unbalanced quotes
	), 1)
	st.closes, st.malformed = true, true
	return st
}

// command encodes args, decides how its reply compares, and updates m.
func (g *diffGen) command(m *connModel, args ...string) diffStep {
	st := diffStep{text: strings.Join(quoteArgs(args), " "), replies: 1}
	if len(st.text) > 200 {
		st.text = fmt.Sprintf("%s…(%d arguments)", st.text[:150], len(args))
	}
	st.inline = g.r.Intn(8) == 0 && inlineSafe(args)
	st.proxy = g.encode(args, st.inline)
	st.direct = st.proxy
	if st.inline {
		g.inline++
	}
	if d, want := documentedFor(m, args); d != nil {
		g.documented++
		st.doc, st.want = d, want
		st.direct = []byte(cmd(standIn))
		if m.multi {
			m.queued = append(m.queued, nil) // refused when queued: EXECABORT
		}
		return st
	}
	name := strings.ToUpper(args[0])
	st.norm = normFor(name)
	if m.multi {
		switch name {
		case "EXEC", "DISCARD":
			if name == "DISCARD" && len(args) != 1 {
				break // refused for its arity: the transaction goes on (EXEC's ends it)
			}
			if name == "EXEC" {
				st.norm = execOf(m.queued)
			}
			m.multi, m.watch, m.queued = false, false, nil
		case "MULTI", "WATCH", "QUIT", "RESET":
		default:
			m.queued = append(m.queued, st.norm)
		}
	} else {
		switch name {
		case "MULTI":
			if len(args) == 1 {
				m.multi, m.queued = true, nil
			}
		case "WATCH":
			if len(args) > 1 {
				m.watch = true
			}
		case "UNWATCH":
			m.watch = false
		}
	}
	switch name {
	case "RESET":
		if len(args) == 1 {
			m.reset()
		}
	case "SELECT":
		if len(args) != 2 {
			break
		}
		if db, err := strconv.Atoi(args[1]); err == nil && db >= 0 && db < 16 {
			m.db = db
		}
	case "HELLO":
		// Only the forms the workload sends that succeed: a protocol,
		// then AUTH default <password> or SETNAME <a valid name>.
		ok := len(args) == 2 || len(args) == 5 && args[3] == "default" || len(args) == 4 && args[2] == "SETNAME" && args[3] != "bad name"
		if ok && len(args) >= 2 && (args[1] == "2" || args[1] == "3") {
			m.proto = int(args[1][0] - '0')
		}
	}
	return st
}

// normFor is how a command's reply compares outside a transaction.
func normFor(name string) normalizer {
	switch name {
	case "TTL", "PTTL":
		return positive
	case "SMEMBERS", "SUNION", "SINTER", "SDIFF", "HKEYS", "HVALS", "KEYS":
		return unordered
	case "HGETALL":
		return unorderedPairs
	case "HELLO":
		return helloID
	}
	return nil
}

// args returns a random command for m's connection.
func (g *diffGen) args(m *connModel) []string {
	k := g.key
	v := g.value
	r := g.r
	name := func(s string) string {
		if r.Intn(5) == 0 {
			return strings.ToLower(s)
		}
		return s
	}
	switch p := r.Intn(100); {
	case p < 14: // strings and counters
		switch r.Intn(16) {
		case 0:
			return []string{name("SET"), k(), v()}
		case 1:
			return append([]string{name("SET"), k(), v()}, strings.Fields(g.pick("NX", "XX", "GET", "KEEPTTL", "EX "+g.ttl(), "PX 100000000", "NX GET", "XX EX "+g.ttl()))...)
		case 2:
			return []string{name("GET"), k()}
		case 3:
			return []string{name("MSET"), k(), v(), k(), v()}
		case 4:
			return []string{name("MGET"), k(), k(), k()}
		case 5:
			return []string{name("INCR"), k()}
		case 6:
			return []string{name("INCRBY"), k(), g.n(-10, 10)}
		case 7:
			return []string{name("DECR"), k()}
		case 8:
			return []string{name("INCRBYFLOAT"), k(), g.pick("1.5", "-0.1", "3", "abc")}
		case 9:
			return []string{name("APPEND"), k(), v()}
		case 10:
			return []string{name("STRLEN"), k()}
		case 11:
			return []string{name("GETRANGE"), k(), g.n(-5, 5), g.n(-5, 10)}
		case 12:
			return []string{name("SETRANGE"), k(), g.n(0, 20), v()}
		case 13:
			return []string{name("GETDEL"), k()}
		case 14:
			return []string{name("GETEX"), k(), "EX", g.ttl()}
		default:
			return []string{name("SETNX"), k(), v()}
		}
	case p < 24: // lists
		switch r.Intn(12) {
		case 0, 1:
			return []string{name(g.pick("LPUSH", "RPUSH")), k(), v(), v()}
		case 2:
			return []string{name(g.pick("LPOP", "RPOP")), k()}
		case 3:
			return []string{name(g.pick("LPOP", "RPOP")), k(), g.n(0, 3)}
		case 4:
			return []string{name("LRANGE"), k(), g.n(-3, 2), g.n(-2, 10)}
		case 5:
			return []string{name("LLEN"), k()}
		case 6:
			return []string{name("LINDEX"), k(), g.n(-3, 3)}
		case 7:
			return []string{name("LSET"), k(), g.n(-2, 2), v()}
		case 8:
			return []string{name("LREM"), k(), g.n(-1, 1), v()}
		case 9:
			return []string{name("LTRIM"), k(), g.n(0, 2), g.n(-1, 5)}
		case 10:
			return []string{name("LMOVE"), k(), k(), g.pick("LEFT", "RIGHT"), g.pick("LEFT", "RIGHT")}
		default:
			return []string{name("LPOS"), k(), v()}
		}
	case p < 33: // hashes
		switch r.Intn(10) {
		case 0, 1:
			return []string{name("HSET"), k(), g.field(), g.n(0, 9), g.field(), "v"}
		case 2:
			return []string{name("HGET"), k(), g.field()}
		case 3:
			return []string{name("HMGET"), k(), g.field(), g.field()}
		case 4:
			return []string{name("HDEL"), k(), g.field()}
		case 5:
			return []string{name(g.pick("HLEN", "HKEYS", "HVALS")), k()}
		case 6:
			return []string{name("HGETALL"), k()}
		case 7:
			return []string{name("HINCRBY"), k(), g.field(), g.n(-3, 3)}
		case 8:
			return []string{name("HINCRBYFLOAT"), k(), g.field(), "0.5"}
		default:
			return []string{name("HEXISTS"), k(), g.field()}
		}
	case p < 41: // sets
		switch r.Intn(8) {
		case 0, 1:
			return []string{name("SADD"), k(), g.field(), g.field()}
		case 2:
			return []string{name("SREM"), k(), g.field()}
		case 3:
			return []string{name("SISMEMBER"), k(), g.field()}
		case 4:
			return []string{name("SMEMBERS"), k()}
		case 5:
			return []string{name(g.pick("SUNION", "SINTER", "SDIFF")), k(), k()}
		case 6:
			return []string{name("SMISMEMBER"), k(), g.field(), g.field()}
		default:
			return []string{name("SCARD"), k()}
		}
	case p < 49: // sorted sets
		switch r.Intn(9) {
		case 0, 1:
			return append([]string{name("ZADD"), k()}, append(g.zaddFlags(), g.score(), g.field())...)
		case 2:
			return []string{name("ZSCORE"), k(), g.field()}
		case 3:
			return []string{name("ZRANGE"), k(), "0", "-1", "WITHSCORES"}
		case 4:
			return []string{name("ZRANGE"), k(), "-inf", "+inf", "BYSCORE", "LIMIT", "0", g.n(1, 3)}
		case 5:
			return []string{name("ZINCRBY"), k(), g.score(), g.field()}
		case 6:
			return []string{name(g.pick("ZRANK", "ZREVRANK", "ZREM")), k(), g.field()}
		case 7:
			return []string{name(g.pick("ZPOPMIN", "ZPOPMAX")), k(), g.n(1, 2)}
		default:
			return []string{name(g.pick("ZCARD")), k()}
		}
	case p < 55: // streams
		switch r.Intn(6) {
		case 0, 1, 2:
			g.streamMs++
			id := fmt.Sprintf("%d-%d", g.streamMs, r.Intn(3))
			if r.Intn(10) == 0 {
				id = "1-1" // smaller than the last: an error once the stream has entries
			}
			return []string{name("XADD"), k(), id, "f", v()}
		case 3:
			return []string{name(g.pick("XRANGE", "XREVRANGE")), k(), g.pick("-", "+"), g.pick("+", "-"), "COUNT", g.n(1, 5)}
		case 4:
			return []string{name("XREAD"), "COUNT", g.n(1, 3), "STREAMS", k(), "0-0"}
		default:
			if r.Intn(2) == 0 {
				return []string{name("XLEN"), k()}
			}
			return []string{name("XTRIM"), k(), "MAXLEN", g.n(0, 5)}
		}
	case p < 63: // keys
		switch r.Intn(11) {
		case 0:
			return []string{name("DEL"), k(), k()}
		case 1:
			return []string{name("EXISTS"), k(), k()}
		case 2:
			return []string{name("TYPE"), k()}
		case 3:
			return append([]string{name("EXPIRE"), k(), g.ttl()}, strings.Fields(g.pick("", "NX", "XX"))...)
		case 4:
			return []string{name(g.pick("TTL", "PTTL")), k()}
		case 5:
			return []string{name("PERSIST"), k()}
		case 6:
			return []string{name(g.pick("RENAME", "RENAMENX")), k(), k()}
		case 7:
			return append([]string{name("COPY"), k(), k()}, strings.Fields(g.pick("", "REPLACE", "DB 1", "DB x"))...)
		case 8:
			return []string{name("COPY"), k(), k(), "DB", g.n(0, 3), "REPLACE"}
		case 9:
			return []string{name("OBJECT"), "ENCODING", k()}
		default:
			if g.shared {
				return []string{name("DBSIZE")}
			}
			return []string{name("KEYS"), strings.SplitN(k(), ":", 2)[0] + ":*"}
		}
	case p < 68: // transactions
		switch r.Intn(8) {
		case 0, 1:
			return []string{name("MULTI")}
		case 2, 3:
			return []string{name("EXEC")}
		case 4:
			return []string{name("DISCARD")}
		case 5:
			return []string{name("WATCH"), k(), k()}
		case 6:
			return []string{name("UNWATCH")}
		default:
			return []string{name(g.pick("MULTI", "WATCH", "EXEC", "DISCARD")), "extra"}[:1+r.Intn(2)]
		}
	case p < 73: // session settings
		switch r.Intn(10) {
		case 0, 1:
			return []string{name("SELECT"), g.pick("0", "1", "2", "0", "16", "-1", "x")}
		case 2, 3:
			return []string{name("HELLO"), g.pick("2", "3", "3", "2", "4", "x")}
		case 4:
			return []string{name("HELLO")}
		case 5:
			switch r.Intn(3) {
			case 0:
				return []string{name("HELLO"), g.pick("2", "3"), "AUTH", g.pick("default", "default", "nobody"), "pw"}
			case 1:
				return []string{name("HELLO"), g.pick("2", "3"), "AUTH", "default"}
			}
			return []string{name("HELLO"), g.pick("2", "3"), "SETNAME", g.pick("n1", "n2", "bad name")}
		case 6:
			return []string{name("CLIENT"), "SETNAME", g.pick("n1", "n2", "", "bad name")}
		case 7:
			return []string{name("CLIENT"), "GETNAME"}
		case 8:
			if m.authFails >= 2 {
				// The proxy paces AUTH failures from the third on one
				// connection (see authPacingDoc): the workload stays below.
				return []string{name("AUTH"), "default", "anything"}
			}
			if r.Intn(2) == 0 {
				m.authFails++
				return []string{name("AUTH"), g.pick("wrong", "default")}
			}
			m.authFails = 0
			return []string{name("AUTH"), "default", "anything"}
		default:
			return []string{name("RESET"), "x"}[:1+r.Intn(2)]
		}
	case p < 77: // connection
		switch r.Intn(6) {
		case 5:
			return []string{name(g.pick("READONLY", "READWRITE")), "x"}[:1+r.Intn(4)/3]
		case 0:
			return []string{name("PING")}
		case 1:
			return []string{name("PING"), v()}
		case 2:
			return []string{name("ECHO"), v()}
		case 3:
			return []string{name("PUBLISH"), "diff:ch", v()}
		default:
			return []string{name("CLIENT"), g.pick("NO-EVICT", "REPLY", "NO-TOUCH"), g.pick("on", "off", "ON")}
		}
	case p < 82: // scripts
		return g.eval()
	case p < 85: // blocking commands, which time out at once or find data
		switch r.Intn(5) {
		case 0:
			return []string{name(g.pick("BLPOP", "BRPOP")), k(), k(), "0.01"}
		case 1:
			return []string{name("BZPOPMIN"), k(), "0.01"}
		case 2:
			return []string{name("BLMOVE"), k(), k(), "LEFT", "RIGHT", "0.01"}
		case 3:
			return []string{name("XREAD"), "BLOCK", "10", "COUNT", "2", "STREAMS", k(), g.pick("0-0", "$")}
		default:
			return append([]string{name("WAIT")}, strings.Fields(g.pick("0 0", "1 5", "0 5"))...)
		}
	case p < 87: // big commands
		if r.Intn(2) == 0 {
			return append([]string{name("COMMAND")}, strings.Fields(g.pick("COUNT", "INFO get SET", "INFO nosuch"))...)
		}
		a := []string{name("MSET")}
		for i := r.Intn(600); i >= 0; i-- {
			a = append(a, k(), g.n(0, 1000))
		}
		return a
	case p < 92: // mistakes
		switch r.Intn(6) {
		case 0:
			return []string{g.pick("NOSUCHCOMMAND", "gett", "CLIENTX", ""), k()}
		case 1:
			return []string{name(g.pick("GET", "ECHO", "EXPIRE", "HSET", "LPUSH", "XADD", "EVAL", "WATCH"))}
		case 2:
			return []string{name(g.pick("GET", "ECHO", "PING", "TYPE", "LLEN")), k(), k(), v()}
		case 3:
			return []string{name("OBJECT"), g.pick("NOSUCH", "ENCODING")}
		case 4:
			return append([]string{name("CLIENT")}, strings.Fields(g.pick("NOSUCH", "SETNAME", "GETNAME extra", "SETNAME a b"))...)
		default:
			return []string{name("INCR"), k(), "extra"}
		}
	}
	return []string{name("GET"), k()}
}

func (g *diffGen) zaddFlags() []string {
	switch g.r.Intn(6) {
	case 0:
		return []string{g.pick("NX", "XX", "GT", "LT", "CH")}
	case 1:
		return []string{"INCR"}
	}
	return nil
}

// eval returns an EVAL of a small script, over the connection's keys.
func (g *diffGen) eval() []string {
	scripts := []string{
		"return 1",
		"return redis.call('GET', KEYS[1])",
		"return redis.call('INCR', KEYS[1])",
		"return {1, 'two', {3, 'four'}, false}",
		"return redis.status_reply('FINE')",
		"return redis.error_reply('MYERR custom')",
		"return redis.pcall('LPUSH', KEYS[1], ARGV[1])",
		"redis.setresp(3); return redis.call('HGET', KEYS[1], 'f1')",
		"return tonumber(ARGV[1])",
		"return {double = 3.5}",
		"return redis.call('SET', KEYS[1], ARGV[1])",
		"return (",
	}
	s := scripts[g.r.Intn(len(scripts))]
	if g.r.Intn(20) == 0 {
		return []string{"EVAL", s, "2", g.key()} // more keys than arguments
	}
	return []string{g.pick("EVAL", "eval"), s, "1", g.key(), g.n(0, 50)}
}

// encode returns args as a multibulk, or as an inline line in which
// arguments that need it are quoted as Redis's sdssplitargs reads them.
func (g *diffGen) encode(args []string, inline bool) []byte {
	if !inline {
		return []byte(cmd(args...))
	}
	var b strings.Builder
	for i, a := range args {
		if i > 0 {
			b.WriteString(g.pick(" ", " ", "  ", "\t"))
		}
		switch {
		case a != "" && !strings.ContainsAny(a, " \t\r\n\"'\\") && printable(a) && g.r.Intn(4) != 0:
			b.WriteString(a)
		case !strings.ContainsAny(a, "'\\") && printable(a) && g.r.Intn(2) == 0:
			b.WriteString("'" + a + "'")
		default:
			b.WriteByte('"')
			for _, c := range []byte(a) {
				switch {
				case c == '"' || c == '\\':
					b.WriteString("\\" + string(c))
				case c == '\n':
					b.WriteString(`\n`)
				case c == '\r':
					b.WriteString(`\r`)
				case c < ' ' || c > '~' || g.r.Intn(20) == 0:
					fmt.Fprintf(&b, `\x%02x`, c)
				default:
					b.WriteByte(c)
				}
			}
			b.WriteByte('"')
		}
	}
	b.WriteString(g.pick("\r\n", "\n"))
	return []byte(b.String())
}

func printable(s string) bool {
	return strings.IndexFunc(s, func(r rune) bool { return r < ' ' || r > '~' }) < 0
}

// inlineSafe reports whether args fit an inline line: Redis refuses one
// of 64 KiB.
func inlineSafe(args []string) bool {
	n := 0
	for _, a := range args {
		n += 4*len(a) + 3
	}
	return n < 16<<10
}

func quoteArgs(args []string) []string {
	q := make([]string, len(args))
	for i, a := range args {
		if len(a) > 40 {
			a = fmt.Sprintf("%s…(%d bytes)", a[:10], len(a))
		}
		q[i] = strconv.Quote(a)
		if a != "" && strings.IndexFunc(a, func(r rune) bool { return r <= ' ' || r == '"' || r > '~' }) < 0 {
			q[i] = a
		}
	}
	return q
}
