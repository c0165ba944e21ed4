package proxy_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pnats/switchyard/internal/lab"
	"github.com/pnats/switchyard/internal/lab/labtest"
	"github.com/pnats/switchyard/proxy"
	"github.com/redis/go-redis/v9"
)

// TestDifferential runs one seeded workload against two identical
// redis-servers, one directly and one through the proxy, and compares
// the replies byte for byte, command by command. Every difference is a
// failure unless the documented table below names it.
//
// By default it runs a fixed budget of commands with one seed. To run
// longer:
//
//	SWITCHYARD_DIFF_SEED=17 SWITCHYARD_DIFF_SEEDS=200 SWITCHYARD_DIFF_ROUNDS=400 go test -run 'TestDifferential$' ./proxy
//
// (SEEDS: how many seeds from SEED; ROUNDS: rounds per seed, 250 by
// default, about 4 s; SWITCHYARD_DIFF_CONNS: connections, 4 by default.)
// A failure prints the seed, the connection's batches and both replies;
// the same seed replays the same commands.
func TestDifferential(t *testing.T) {
	seed := diffEnv(t, "SWITCHYARD_DIFF_SEED", 1)
	seeds := diffEnv(t, "SWITCHYARD_DIFF_SEEDS", 1)
	rounds := diffEnv(t, "SWITCHYARD_DIFF_ROUNDS", 250)
	conns := diffEnv(t, "SWITCHYARD_DIFF_CONNS", 4)

	direct := labtest.Server(t, lab.ServerOptions{})
	behind, _, addr := setup(t, proxy.Config{})
	admin := []*redis.Client{direct.Client(), behind.Client()}
	for _, c := range admin {
		defer c.Close()
	}
	commands := 0
	for s := seed; s < seed+seeds; s++ {
		for _, c := range admin {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err := c.FlushAll(ctx).Err()
			cancel()
			if err != nil {
				t.Fatal(err)
			}
		}
		// A failed seed is reported; the next one starts afresh.
		commands += runDiffSeed(t, s, int(rounds), int(conns), direct.Addr, addr, admin)
	}
	t.Logf("%d seeds from %d, %d commands", seeds, seed, commands)
}

func diffEnv(t *testing.T, name string, def int64) int64 {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

// documentedDiff is a way the proxy is documented to answer differently
// from Redis. The workload sends the proxy the command itself and Redis a
// stand-in (see standIn) that leaves both servers in the same state; the
// proxy's reply must then be exactly the documented one.
type documentedDiff struct {
	name string
	doc  string // where README.md or docs/ say so
	// reply returns the proxy's reply to args in m's session, or "" when
	// the entry does not apply.
	reply func(m *connModel, args []string) string
}

// documented lists the documented differences the workload meets; the
// doc references are to README.md's section "Client-visible differences
// from a direct connection", quoted so that it can be found. Two more
// are handled where they arise: HELLO's id (helloID; README.md, "The
// `id` in `HELLO`'s reply is that of a shared connection, not the
// client's"), and AUTH failures, paced by the proxy from the third on one
// connection (README.md, "Pipelined `AUTH` and `HELLO … AUTH` failures
// passed through to Redis are paced (delayed from the third on one
// connection, closed at the tenth)"), which the workload stays below.
var documented = []*documentedDiff{
	{
		name: "SELECT, HELLO or AUTH inside MULTI or after WATCH",
		doc: "README.md: \"`SELECT`, `HELLO` and `AUTH` inside `MULTI` or after " +
			"`WATCH`; ... are refused (the transaction then ends in `EXECABORT`, as Redis does for a refused command)\"",
		reply: func(m *connModel, args []string) string {
			if !(m.multi || m.watch) || !isName(args, "SELECT", "HELLO", "AUTH") {
				return ""
			}
			return "-ERR switchyard: " + strings.ToUpper(args[0]) + " inside MULTI or after WATCH is not supported; send it before\r\n"
		},
	},
	{
		name: "CLIENT SETNAME or GETNAME inside MULTI",
		doc: "README.md: \"... `CLIENT SETNAME`/`GETNAME` and the commands above " +
			"inside `MULTI`, are refused (the transaction then ends in `EXECABORT` ...)\"",
		reply: func(m *connModel, args []string) string {
			if !m.multi || !isClient(args, "SETNAME", "GETNAME") {
				return ""
			}
			return "-ERR switchyard: CLIENT " + strings.ToUpper(args[1]) + " inside MULTI is not supported; send it before or after the transaction\r\n"
		},
	},
	{
		name: "CLIENT REPLY, NO-EVICT and NO-TOUCH",
		doc: "README.md: \"`CLIENT REPLY`, `CLIENT NO-EVICT`, `CLIENT NO-TOUCH` ... " +
			"get `-ERR switchyard: … is not supported through the proxy`\"; inside MULTI, refused as above",
		reply: func(m *connModel, args []string) string {
			if !isClient(args, "REPLY", "NO-EVICT", "NO-TOUCH") {
				return ""
			}
			name := "CLIENT " + strings.ToUpper(args[1])
			if m.multi {
				return "-ERR switchyard: " + name + " inside MULTI is not supported; send it before or after the transaction\r\n"
			}
			return "-ERR switchyard: '" + name + "' is not supported through the proxy\r\n"
		},
	},
	{
		name: "READONLY and READWRITE",
		doc: "docs/configuration.md (read_policy): \"A client can opt in on its own connection with `READONLY` " +
			"and out with `READWRITE`, as in Redis Cluster.\" (Redis without cluster support refuses both.)",
		reply: func(m *connModel, args []string) string {
			if m.multi || m.watch || len(args) != 1 || !isName(args, "READONLY", "READWRITE") {
				return "" // after WATCH or in MULTI they go to Redis
			}
			return "+OK\r\n"
		},
	},
}

// documentedFor returns the entry of documented that applies to args in
// m's session, and the proxy's reply.
func documentedFor(m *connModel, args []string) (*documentedDiff, string) {
	for _, d := range documented {
		if r := d.reply(m, args); r != "" {
			return d, r
		}
	}
	return nil, ""
}

func isName(args []string, names ...string) bool {
	return slices.ContainsFunc(names, func(n string) bool { return strings.EqualFold(args[0], n) })
}

func isClient(args []string, subs ...string) bool {
	return len(args) > 1 && isName(args, "CLIENT") && isName(args[1:], subs...)
}

// diffPair is one connection to Redis and one to the proxy, sent the
// same commands.
type diffPair struct {
	i             int
	model         *connModel
	direct, proxy *diffSide
	history       []string // the last batches, for failure reports
}

type diffSide struct {
	nc net.Conn
	br *bufio.Reader
}

func dialSide(addr string) (*diffSide, error) {
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	return &diffSide{nc: nc, br: bufio.NewReader(nc)}, nil
}

func (p *diffPair) connect(directAddr, proxyAddr string) error {
	p.close()
	var err error
	if p.direct, err = dialSide(directAddr); err != nil {
		return err
	}
	p.proxy, err = dialSide(proxyAddr)
	p.model.reset()
	p.model.authFails = 0
	return err
}

func (p *diffPair) close() {
	for _, s := range []*diffSide{p.direct, p.proxy} {
		if s != nil {
			s.nc.Close()
		}
	}
}

// runDiffSeed runs rounds of the workload of seed. Most rounds send a
// batch on every connection at once, each on keys of its own, so that
// the outcome does not depend on how they interleave; the others send a
// few batches one after another, on any connection's keys, so that
// clients also see each other's writes (WATCH conflicts, DBSIZE).
func runDiffSeed(t *testing.T, seed int64, rounds, conns int, directAddr, proxyAddr string, admin []*redis.Client) (commands int) {
	r := rand.New(rand.NewSource(seed))
	g := &diffGen{r: r}
	pairs := make([]*diffPair, conns)
	all := []string{"s:a", "s:b"}
	for i := range pairs {
		pairs[i] = &diffPair{i: i, model: newConnModel(i)}
		all = append(all, pairs[i].model.own...)
		if err := pairs[i].connect(directAddr, proxyAddr); err != nil {
			t.Fatal(err)
		}
		defer pairs[i].close()
	}
	fail := func(p *diffPair, round int, msg string) {
		t.Errorf("seed %d, round %d, connection %d: %s\nearlier batches on this connection, oldest first:\n%s\nreplay: SWITCHYARD_DIFF_SEED=%d SWITCHYARD_DIFF_ROUNDS=%d go test -run 'TestDifferential$' ./proxy",
			seed, round, p.i, msg, strings.Join(p.history, "\n"), seed, round+1)
	}
	for round := 0; round < rounds; round++ {
		if r.Intn(4) != 0 {
			g.shared = false
			batches := make([][]diffStep, len(pairs))
			splits := make([][]int, len(pairs))
			for i, p := range pairs {
				g.keys = p.model.own
				batches[i] = g.batch(p.model)
				splits[i] = g.splits(batches[i])
				commands += len(batches[i])
			}
			errs := make([]string, len(pairs))
			var wg sync.WaitGroup
			for i, p := range pairs {
				wg.Go(func() { errs[i] = p.run(batches[i], splits[i], directAddr, proxyAddr) })
			}
			wg.Wait()
			for i, e := range errs {
				if e != "" {
					fail(pairs[i], round, e)
					return commands
				}
			}
			continue
		}
		g.shared, g.keys = true, all
		if r.Intn(3) == 0 {
			before := g.handoffs
			if e, p := g.handoff(pairs, directAddr, proxyAddr, admin); e != "" {
				fail(p, round, e)
				return commands
			}
			commands += 2 * (g.handoffs - before)
			continue
		}
		for n := 1 + r.Intn(3); n > 0; n-- {
			p := pairs[r.Intn(len(pairs))]
			steps := g.batch(p.model)
			commands += len(steps)
			if e := p.run(steps, g.splits(steps), directAddr, proxyAddr); e != "" {
				fail(p, round, e)
				return commands
			}
		}
	}
	t.Logf("seed %d: %d commands (%d inline, %d documented differences), %d batches split, %d closes, %d handoffs",
		seed, commands, g.inline, g.documented, g.split, g.closes, g.handoffs)
	// Nothing more is due on any connection, on either side.
	for _, p := range pairs {
		end := diffStep{text: "ECHO end", proxy: []byte(cmd("ECHO", "end")), replies: 1}
		end.direct, end.state = end.proxy, p.model.String()
		if e := p.run([]diffStep{end}, nil, directAddr, proxyAddr); e != "" {
			fail(p, rounds, e)
			return commands
		}
	}
	return commands
}

// handoff has one connection block on a new key and another feed it,
// once the first is blocked on both servers: a blocked command's reply
// comes after other clients' commands. Either order gives the same
// replies, so the check for blocking only makes the test meaningful.
func (g *diffGen) handoff(pairs []*diffPair, directAddr, proxyAddr string, admin []*redis.Client) (string, *diffPair) {
	a := pairs[g.r.Intn(len(pairs))]
	var feeders []*diffPair
	for _, p := range pairs {
		if p != a && p.model.db == a.model.db && !p.model.multi {
			feeders = append(feeders, p)
		}
	}
	if a.model.multi || len(feeders) == 0 {
		return "", a // queued, it would not block; or none can feed its database
	}
	b := feeders[g.r.Intn(len(feeders))]
	g.handoffs++
	key := fmt.Sprintf("s:q%d", g.handoffs)
	var block, feed []string
	switch g.r.Intn(5) {
	case 0:
		block, feed = []string{"BLPOP", "s:none", key, "5"}, []string{"RPUSH", key, "x", "y"}
	case 1:
		block, feed = []string{"BRPOP", key, "5"}, []string{"LPUSH", key, "x"}
	case 2:
		block, feed = []string{"BLMOVE", key, key + ":to", "RIGHT", "LEFT", "5"}, []string{"RPUSH", key, "x"}
	case 3:
		block, feed = []string{"BZPOPMIN", key, "5"}, []string{"ZADD", key, "1", "m", "2", "n"}
	default:
		block, feed = []string{"XREAD", "BLOCK", "5000", "STREAMS", key, "0-0"}, []string{"XADD", key, "1-1", "f", "v"}
	}
	bs := []diffStep{g.command(a.model, block...)}
	bs[0].state = a.model.String()
	fs := []diffStep{g.command(b.model, feed...)}
	fs[0].state = b.model.String()
	wait := a.send(bs, nil)
	defer wait()
	for k, c := range admin {
		if err := waitBlocked(c); err != nil {
			return a.report(bs, nil, 0, fmt.Sprintf("%s (server %d of redis, proxy)", err, k)), a
		}
	}
	if e := b.run(fs, nil, directAddr, proxyAddr); e != "" {
		return e, b
	}
	return a.receive(bs, nil, directAddr, proxyAddr), a
}

// waitBlocked waits until a client of c's server is blocked.
func waitBlocked(c *redis.Client) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		n, err := c.Info(ctx, "clients").Result()
		if err != nil {
			return err
		}
		if !strings.Contains(n, "blocked_clients:0\r\n") {
			return nil
		}
		select {
		case <-ctx.Done():
			return errors.New("no client blocked within 5s")
		case <-time.After(5 * time.Millisecond): // polling
		}
	}
}

// splits returns where to cut a batch's bytes to the proxy into
// separate writes, or nil to send it in one.
func (g *diffGen) splits(steps []diffStep) []int {
	if g.r.Intn(3) != 0 {
		return nil
	}
	g.split++
	n := 0
	for _, st := range steps {
		n += len(st.proxy)
	}
	if n < 2 {
		return nil
	}
	var cuts []int
	for k := 1 + g.r.Intn(4); k > 0; k-- {
		cuts = append(cuts, 1+g.r.Intn(n-1))
	}
	slices.Sort(cuts)
	return slices.Compact(cuts)
}

// run sends a batch to both sides and compares the replies. It returns a
// description of the first difference, or "".
func (p *diffPair) run(steps []diffStep, cuts []int, directAddr, proxyAddr string) string {
	wait := p.send(steps, cuts)
	defer wait()
	return p.receive(steps, cuts, directAddr, proxyAddr)
}

// send writes a batch to both sides without reading; the returned func
// waits for the writes.
func (p *diffPair) send(steps []diffStep, cuts []int) (wait func()) {
	var toDirect, toProxy []byte
	for _, st := range steps {
		toDirect = append(toDirect, st.direct...)
		toProxy = append(toProxy, st.proxy...)
	}
	p.remember(steps, cuts)
	deadline := time.Now().Add(10 * time.Second)
	var wg sync.WaitGroup
	wg.Go(func() { write(p.direct.nc, toDirect, nil, deadline) })
	wg.Go(func() { write(p.proxy.nc, toProxy, cuts, deadline) })
	p.direct.nc.SetReadDeadline(deadline)
	p.proxy.nc.SetReadDeadline(deadline)
	return wg.Wait
}

// receive reads and compares the replies to a batch sent.
func (p *diffPair) receive(steps []diffStep, cuts []int, directAddr, proxyAddr string) string {
	closes := false
	for _, st := range steps {
		closes = closes || st.closes
	}
	for i, st := range steps {
		for k := 0; k < st.replies; k++ {
			draw, df, derr := readDiffFrame(p.direct.br)
			if derr != nil {
				return p.report(steps, cuts, i, fmt.Sprintf("the direct connection to Redis failed: %v (after %q); the workload is wrong", derr, draw))
			}
			praw, pf, perr := readDiffFrame(p.proxy.br)
			if perr != nil {
				return p.report(steps, cuts, i, fmt.Sprintf("redis: %q\nproxy: read failed: %v (after %q)", draw, perr, praw))
			}
			if msg := compareReplies(st, draw, df, praw, pf); msg != "" {
				return p.report(steps, cuts, i, msg)
			}
		}
		if st.closes {
			break
		}
	}
	if closes {
		if err := expectClosed(p.direct); err != nil {
			return p.report(steps, cuts, -1, "Redis did not close the connection: "+err.Error())
		}
		if err := expectClosed(p.proxy); err != nil {
			return p.report(steps, cuts, -1, "the proxy did not close the connection as Redis did: "+err.Error())
		}
		if err := p.connect(directAddr, proxyAddr); err != nil {
			return err.Error()
		}
	}
	return ""
}

// compareReplies compares one reply from each side.
func compareReplies(st diffStep, draw []byte, df *diffFrame, praw []byte, pf *diffFrame) string {
	if st.doc != nil {
		if string(praw) != st.want {
			return fmt.Sprintf("documented difference %q (%s):\nproxy: %q\nwant:  %q", st.doc.name, st.doc.doc, praw, st.want)
		}
		return ""
	}
	if bytes.Equal(draw, praw) {
		return ""
	}
	if st.norm != nil {
		st.norm(df)
		st.norm(pf)
		if bytes.Equal(df.bytes(), pf.bytes()) {
			return ""
		}
	}
	return fmt.Sprintf("redis: %q\nproxy: %q", clip(draw), clip(praw))
}

func clip(b []byte) []byte {
	if len(b) > 600 {
		return append(b[:300:300], fmt.Sprintf("…(%d bytes)…", len(b)-600)+string(b[len(b)-300:])...)
	}
	return b
}

// expectClosed reads until the peer closes; any byte is a reply too many.
func expectClosed(s *diffSide) error {
	b, err := io.ReadAll(s.br)
	if len(b) > 0 {
		return fmt.Errorf("%q more before the close", clip(b))
	}
	if err != nil && !errors.Is(err, syscall.ECONNRESET) {
		return err // a timeout: still open
	}
	return nil
}

// write sends b, cut at cuts into separate writes.
func write(nc net.Conn, b []byte, cuts []int, deadline time.Time) {
	nc.SetWriteDeadline(deadline)
	from := 0
	for _, c := range append(cuts, len(b)) {
		if _, err := nc.Write(b[from:c]); err != nil {
			return // closed by QUIT or a protocol error: the replies tell
		}
		from = c
		if c < len(b) {
			// Long enough for the proxy to read this part alone; not a
			// wait for a condition.
			time.Sleep(200 * time.Microsecond)
		}
	}
}

// remember keeps the last batches of the connection for reports.
func (p *diffPair) remember(steps []diffStep, cuts []int) {
	const keep = 12
	p.history = append(p.history, describe(steps, cuts, -1))
	if len(p.history) > keep {
		p.history = p.history[1:]
	}
}

// report describes a difference at steps[at] (at < 0: after the batch).
func (p *diffPair) report(steps []diffStep, cuts []int, at int, msg string) string {
	if len(p.history) > 0 {
		p.history = p.history[:len(p.history)-1] // the failing batch is printed in full below
	}
	where := fmt.Sprintf("command %d of this batch differs", at)
	if at < 0 {
		where = "after this batch"
	}
	return fmt.Sprintf("%s:\n%s\n%s", where, describe(steps, cuts, at), msg)
}

func describe(steps []diffStep, cuts []int, at int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "  batch of %d, written in %d parts, from %s:", len(steps), len(cuts)+1, steps[0].state)
	for i, st := range steps {
		mark := "   "
		if i == at {
			mark = ">>>"
		}
		fmt.Fprintf(&b, "\n  %s %2d %s", mark, i, st.text)
		if !bytes.Equal(st.direct, st.proxy) {
			b.WriteString("   (Redis gets " + standIn + ")")
		}
		if st.inline {
			fmt.Fprintf(&b, "   (inline: %q)", clip(st.proxy))
		}
	}
	return b.String()
}
