package proxy_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pnats/switchyard/internal/lab"
	"github.com/pnats/switchyard/internal/lab/labtest"
	"github.com/pnats/switchyard/proxy"
	"github.com/redis/go-redis/v9"
)

// testFlags is a small honest classifier for these tests; the binary
// installs the table from Redis's own COMMAND output.
func testFlags(args [][]byte) proxy.CommandFlags {
	switch strings.ToUpper(string(args[0])) {
	case "GET", "MGET", "EXISTS", "STRLEN":
		return proxy.CmdRead
	case "PING", "ROLE", "INFO", "ECHO":
		return 0
	}
	return proxy.CmdWrite
}

type replicated struct {
	master   *lab.Server
	replicas []*lab.Server
}

func startReplicated(t *testing.T, n int) replicated {
	m := labtest.Server(t, lab.ServerOptions{})
	r := replicated{master: m}
	for i := 0; i < n; i++ {
		r.replicas = append(r.replicas, labtest.Server(t, lab.ServerOptions{ReplicaOf: m.Addr}))
	}
	return r
}

// set writes key on the master and waits until every replica has it.
func (r replicated) set(t *testing.T, key, value string) {
	t.Helper()
	ctx := ctxT(t)
	if err := r.master.Client().Set(ctx, key, value, 0).Err(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() error {
		for _, rep := range r.replicas {
			if v, _ := rep.Client().Get(ctx, key).Result(); v != value {
				return fmt.Errorf("%s not caught up", rep.Addr)
			}
		}
		return nil
	})
}

func (r replicated) addrs() []string {
	var out []string
	for _, s := range r.replicas {
		out = append(out, s.Addr)
	}
	return out
}

// TestReadPortTransactionCommands: on the read port, the transaction
// commands themselves are never taken for writes, whatever the
// classifier says of them (this one calls every unknown command a
// write): only the commands inside are checked.
func TestReadPortTransactionCommands(t *testing.T) {
	r := startReplicated(t, 1)
	srv, _, readAddr := readProxy(t, r, proxy.Config{})
	c := dialRaw(t, readAddr)
	c.send(cmd("WATCH", "k") + cmd("MULTI") + cmd("GET", "k") + cmd("DISCARD"))
	c.expect("+OK", "+OK", "+QUEUED", "+OK")
	c.send(cmd("WATCH", "k") + cmd("UNWATCH") + cmd("MULTI") + cmd("GET", "k") + cmd("EXEC"))
	c.expect("+OK", "+OK", "+OK", "+QUEUED", "*1", "$-1")

	// Redis 6.2 flags PUBLISH may_replicate: it goes to the master, after
	// WATCH as outside it, like a script is not refused for it.
	srv.SetCommandFlags(func(args [][]byte) proxy.CommandFlags {
		if strings.EqualFold(string(args[0]), "PUBLISH") {
			return proxy.CmdMayWrite | proxy.CmdPubSub
		}
		return testFlags(args)
	})
	c.send(cmd("WATCH", "k") + cmd("PUBLISH", "ch", "x") + cmd("UNWATCH"))
	c.expect("+OK", ":0", "+OK")
}

// readProxy serves the main port and a read port in front of r.
func readProxy(t *testing.T, r replicated, cfg proxy.Config) (*proxy.Server, string, string) {
	srv, main, read := readProxyTable(t, r, cfg)
	srv.SetCommandFlags(testFlags)
	return srv, main, read
}

func errorCount(t *testing.T, node *lab.Server, code string) int {
	c := node.Client()
	defer c.Close()
	info, _ := c.Info(context.Background(), "errorstats").Result()
	for _, l := range strings.Split(info, "\r\n") {
		if rest, ok := strings.CutPrefix(l, "errorstat_"+code+":count="); ok {
			n, _ := strconv.Atoi(rest)
			return n
		}
	}
	return 0
}

func TestReadsGoToReplicasWritesNever(t *testing.T) {
	r := startReplicated(t, 2)
	m := &proxy.Metrics{}
	onMaster, onReplica := &count{}, &count{}
	m.CommandDuration[commandID(t, "GET")] = onMaster
	m.ReplicaCommandDuration[commandID(t, "GET")] = onReplica
	_, _, readAddr := readProxy(t, r, proxy.Config{Metrics: m})
	ctx := ctxT(t)
	r.set(t, "rk", "v")
	masterGets := labtest.CommandCalls(t, r.master, "get")
	c := client(t, readAddr)
	for i := 0; i < 200; i++ {
		if v, err := c.Get(ctx, "rk").Result(); err != nil || v != "v" {
			t.Fatalf("GET via the read port: %q %v", v, err)
		}
	}
	if got := labtest.CommandCalls(t, r.master, "get") - masterGets; got != 0 {
		t.Fatalf("master served %d reads sent to the read port", got)
	}
	if n, _ := onReplica.get(); n != 200 {
		t.Errorf("%d GETs recorded as served by a replica, want 200", n)
	}
	if n, _ := onMaster.get(); n != 0 {
		t.Errorf("%d replica-served GETs recorded under the master", n)
	}
	for _, rep := range r.replicas {
		if n := labtest.CommandCalls(t, rep, "get"); n < 20 {
			t.Errorf("replica %s served %d of 200 reads: not balanced", rep.Addr, n)
		}
	}
	// Writes on the read port are refused like a replica refuses them,
	// without reaching any node.
	err := c.Set(ctx, "rk", "w", 0).Err()
	if err == nil || err.Error() != "READONLY You can't write against a read only replica." {
		t.Fatalf("SET on the read port: %v", err)
	}
	for _, rep := range r.replicas {
		if n := errorCount(t, rep, "READONLY"); n != 0 {
			t.Fatalf("a write reached replica %s", rep.Addr)
		}
	}
	if v, _ := r.master.Client().Get(ctx, "rk").Result(); v != "v" {
		t.Fatal("the refused write was applied")
	}
	// ROLE on the read port is a replica's.
	role, err := c.Do(ctx, "ROLE").Slice()
	if err != nil || role[0] != "slave" {
		t.Fatalf("ROLE on the read port: %v %v", role, err)
	}
}

func TestReadonlyReadwritePerConnection(t *testing.T) {
	r := startReplicated(t, 1)
	_, mainAddr, _ := readProxy(t, r, proxy.Config{})
	raw := dialRaw(t, mainAddr)
	before := labtest.CommandCalls(t, r.replicas[0], "get")
	raw.send("GET k\r\n")
	raw.line()
	if labtest.CommandCalls(t, r.replicas[0], "get") != before {
		t.Fatal("the main port read from a replica before READONLY")
	}
	raw.send("READONLY\r\nGET k\r\n")
	if l := raw.line(); l != "+OK" {
		t.Fatalf("READONLY: %q", l)
	}
	raw.line()
	if labtest.CommandCalls(t, r.replicas[0], "get") != before+1 {
		t.Fatal("READONLY did not send the read to the replica")
	}
	raw.send("SET k v\r\n")
	if l := raw.line(); l != "+OK" {
		t.Fatalf("a write after READONLY on the main port goes to the master: %q", l)
	}
	raw.send("READWRITE\r\nGET k\r\n")
	raw.line()
	raw.line()
	if labtest.CommandCalls(t, r.replicas[0], "get") != before+1 {
		t.Fatal("READWRITE did not bring reads back to the master")
	}
}

func TestReadFallbackAndReplicaPolicy(t *testing.T) {
	r := startReplicated(t, 1)
	srv, mainAddr, _ := readProxy(t, r, proxy.Config{ReadPolicy: proxy.ReadPreferReplica})
	ctx := ctxT(t)
	c := client(t, mainAddr)
	srv.SetReplicas(nil)
	before := labtest.CommandCalls(t, r.master, "get")
	if err := c.Get(ctx, "fb").Err(); err != redis.Nil {
		t.Fatalf("GET with no replica: %v", err)
	}
	if labtest.CommandCalls(t, r.master, "get") != before+1 {
		t.Fatal("prefer-replica did not fall back to the master")
	}

	srv2, main2, _ := readProxy(t, r, proxy.Config{ReadPolicy: proxy.ReadReplica})
	srv2.SetReplicas(nil)
	err := client(t, main2).Get(ctx, "fb").Err()
	if err == nil || !strings.Contains(err.Error(), "no healthy replica") {
		t.Fatalf("replica policy with no replica: %v", err)
	}
}

func TestReadYourWrites(t *testing.T) {
	r := startReplicated(t, 1)
	_, mainAddr, _ := readProxy(t, r, proxy.Config{ReadPolicy: proxy.ReadPreferReplica, ReadYourWrites: time.Hour})
	raw := dialRaw(t, mainAddr)
	before := labtest.CommandCalls(t, r.replicas[0], "get")
	raw.send("GET a\r\n")
	raw.line()
	if labtest.CommandCalls(t, r.replicas[0], "get") != before+1 {
		t.Fatal("read before any write did not go to the replica")
	}
	raw.send("SET a 1\r\nGET a\r\n")
	raw.line()
	if l := raw.line(); l != "$1" {
		t.Fatalf("read right after a write: %q (not from the master?)", l)
	}
	if labtest.CommandCalls(t, r.replicas[0], "get") != before+1 {
		t.Fatal("a read inside the read-your-writes window went to the replica")
	}
}

// TestReplicaRemovedMidReadFallsBack: a read stuck on a replica that
// leaves the read set does not cost the client an error: it is re-sent to
// the master.
func TestReplicaRemovedMidReadFallsBack(t *testing.T) {
	r := startReplicated(t, 1)
	srv, _, readAddr := readProxy(t, r, proxy.Config{})
	ctx := ctxT(t)
	r.master.Client().Set(ctx, "stuck", "from-master", 0)
	got := stuckRead(t, client(t, readAddr), r.replicas[0], "stuck")
	srv.SetReplicas(nil)
	select {
	case v := <-got:
		if v != "from-master" {
			t.Fatalf("after the replica left: %q", v)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the stuck read was not re-sent to the master")
	}
}

// TestDeadReplicaDoesNotPushReadsToMaster: a replica that stopped but is
// still in the read set (the watcher has not noticed yet) must not send
// reads to the master while another replica is healthy.
func TestDeadReplicaDoesNotPushReadsToMaster(t *testing.T) {
	r := startReplicated(t, 2)
	_, _, readAddr := readProxy(t, r, proxy.Config{ReadPolicy: proxy.ReadReplica})
	ctx := ctxT(t)
	if err := r.replicas[0].Kill(); err != nil {
		t.Fatal(err)
	}
	masterGets := labtest.CommandCalls(t, r.master, "get")
	c := client(t, readAddr)
	for i := 0; i < 50; i++ {
		if err := c.Get(ctx, "k").Err(); err != redis.Nil {
			t.Fatalf("read %d with one replica dead: %v", i, err)
		}
	}
	if got := labtest.CommandCalls(t, r.master, "get") - masterGets; got != 0 {
		t.Fatalf("%d reads went to the master while a replica was healthy", got)
	}
	if n := labtest.CommandCalls(t, r.replicas[1], "get"); n != 50 {
		t.Fatalf("the healthy replica served %d of 50 reads", n)
	}
}

// readProxyTable is readProxy with the built-in command table, as the
// binary has until the master's COMMAND output replaces it.
func readProxyTable(t *testing.T, r replicated, cfg proxy.Config) (*proxy.Server, string, string) {
	srv, main := startProxy(t, r.master.Addr, cfg)
	srv.SetReplicas(r.addrs())
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.ServeRead(l)
	return srv, main, l.Addr().String()
}

// TestReadRoutingOfScriptsPubSubAndTransactions: the commands Redis flags
// neither read nor write. PUBLISH goes to the master, where the
// subscribers are, also from a read port; a script on a read port never
// falls back to the master, which would run its writes; and a script, a
// transaction or a blocking move counts as a write for read_your_writes.
func TestReadRoutingOfScriptsPubSubAndTransactions(t *testing.T) {
	r := startReplicated(t, 1)
	srv, mainAddr, readAddr := readProxyTable(t, r, proxy.Config{ReadPolicy: proxy.ReadPreferReplica, ReadYourWrites: time.Hour})
	ctx := ctxT(t)

	t.Run("PUBLISH on the read port reaches its subscribers", func(t *testing.T) {
		sub := client(t, readAddr).Subscribe(ctx, "news")
		defer sub.Close()
		if _, err := sub.Receive(ctx); err != nil {
			t.Fatal(err)
		}
		n, err := client(t, readAddr).Publish(ctx, "news", "hi").Result()
		if err != nil || n != 1 {
			t.Fatalf("PUBLISH on the read port: %d receivers, %v", n, err)
		}
		if m, err := sub.ReceiveMessage(ctx); err != nil || m.Payload != "hi" {
			t.Fatalf("subscriber got %v %v", m, err)
		}
	})

	// Raw connections: a client library's own first commands (CLIENT
	// SETINFO) would count as writes and hide what is measured.
	for _, w := range []struct {
		name    string
		write   string
		replies int // lines of the write's replies
	}{
		{"EVAL", cmd("EVAL", "return redis.call('set', KEYS[1], '1')", "1", "ryw"), 1},
		{"MULTI/EXEC", cmd("MULTI") + cmd("SET", "ryw", "1") + cmd("EXEC"), 4},
		{"BLMOVE", cmd("BLMOVE", "ryw:none", "ryw:dst", "LEFT", "LEFT", "0.05"), 1},
	} {
		t.Run("read_your_writes after "+w.name, func(t *testing.T) {
			c := dialRaw(t, mainAddr)
			before := labtest.CommandCalls(t, r.replicas[0], "get")
			c.send(cmd("GET", "ryw"))
			c.line()
			if labtest.CommandCalls(t, r.replicas[0], "get") != before+1 {
				t.Fatal("the connection's first read did not go to the replica")
			}
			c.send(w.write)
			for range w.replies {
				c.line()
			}
			c.send(cmd("GET", "ryw"))
			c.line()
			if labtest.CommandCalls(t, r.replicas[0], "get") != before+1 {
				t.Fatalf("a read right after %s went to the replica", w.name)
			}
		})
	}

	// A transaction or a blocking command runs on the master, on a
	// connection of the client's own; on a read port its writes are
	// refused all the same, as a replica refuses them.
	t.Run("writes in a transaction on the read port are refused", func(t *testing.T) {
		c := dialRaw(t, readAddr)
		c.send(cmd("MULTI") + cmd("GET", "tx:r") + cmd("SET", "tx:r", "1") + cmd("EXEC"))
		c.expect("+OK", "+QUEUED", "-READONLY You can't write against a read only replica.",
			"-EXECABORT Transaction discarded because of previous errors.")
		c.send(cmd("WATCH", "tx:r") + cmd("SET", "tx:r", "2") + cmd("UNWATCH"))
		c.expect("+OK", "-READONLY You can't write against a read only replica.", "+OK")
		// A script would run on the master, which takes its writes.
		script := cmd("EVAL", "return redis.call('set', KEYS[1], '3')", "1", "tx:r")
		c.send(cmd("WATCH", "tx:r") + script + cmd("MULTI") + script + cmd("EXEC"))
		c.expect("+OK", "-READONLY You can't write against a read only replica.", "+OK",
			"-READONLY You can't write against a read only replica.",
			"-EXECABORT Transaction discarded because of previous errors.")
		if n, _ := r.master.Client().Exists(ctx, "tx:r").Result(); n != 0 {
			t.Fatal("a write sent to the read port inside a transaction reached the master")
		}
	})
	t.Run("blocking writes on the read port are refused", func(t *testing.T) {
		r.master.Client().RPush(ctx, "bl:src", "x")
		c := dialRaw(t, readAddr)
		c.send(cmd("BLMOVE", "bl:src", "bl:dst", "LEFT", "LEFT", "0.05") + cmd("BLPOP", "bl:src", "0.05"))
		c.expect("-READONLY You can't write against a read only replica.", "-READONLY You can't write against a read only replica.")
		if n, _ := r.master.Client().LLen(ctx, "bl:src").Result(); n != 1 {
			t.Fatal("a blocking pop on the read port took an element on the master")
		}
	})

	t.Run("a script on the read port with no replica is refused", func(t *testing.T) {
		srv.SetReplicas(nil)
		defer srv.SetReplicas(r.addrs())
		err := client(t, readAddr).Eval(ctx, "return redis.call('set', KEYS[1], 'x')", []string{"via-read-port"}).Err()
		if err == nil || !strings.Contains(err.Error(), "no healthy replica") {
			t.Fatalf("EVAL on the read port with no replica: %v", err)
		}
		if n, _ := r.master.Client().Exists(ctx, "via-read-port").Result(); n != 0 {
			t.Fatal("the read port ran a script's write on the master")
		}
	})
}

// read_your_writes counts every write the client makes: after WATCH, on a
// connection that was not reading from replicas when it wrote (READONLY
// turned on after), and from when the write was acknowledged, not from
// when it was read (one that waited out a write pause). An audit found
// each of these read back stale from a lagging replica.
func TestReadYourWritesCountsEveryWrite(t *testing.T) {
	r := startReplicated(t, 1)
	replicaGets := func() int { return labtest.CommandCalls(t, r.replicas[0], "get") }
	onMaster := func(t *testing.T, what string, c *rawConn, send string, want ...string) {
		t.Helper()
		before := replicaGets()
		c.send(send)
		c.expect(want...)
		if replicaGets() != before {
			t.Fatalf("%s: the read went to the replica", what)
		}
	}

	_, mainAddr, _ := readProxy(t, r, proxy.Config{ReadPolicy: proxy.ReadPreferReplica, ReadYourWrites: time.Hour})
	c := dialRaw(t, mainAddr)
	c.send(cmd("GET", "w"))
	c.expect("$-1")
	onMaster(t, "after WATCH", c, cmd("WATCH", "w")+cmd("SET", "w", "1")+cmd("UNWATCH")+cmd("GET", "w"), "+OK", "+OK", "+OK", "$1", "1")

	_, masterAddr, _ := readProxy(t, r, proxy.Config{ReadPolicy: proxy.ReadMaster, ReadYourWrites: time.Hour})
	m := dialRaw(t, masterAddr)
	onMaster(t, "READONLY after a write", m, cmd("SET", "ro", "1")+cmd("READONLY")+cmd("GET", "ro"), "+OK", "+OK", "$1", "1")
	// The window runs from the write's acknowledgement, also here.
	_, shortAddr, _ := readProxy(t, r, proxy.Config{ReadPolicy: proxy.ReadMaster, ReadYourWrites: 300 * time.Millisecond})
	sm := dialRaw(t, shortAddr)
	if err := r.master.Client().Do(ctxT(t), "CLIENT", "PAUSE", "700", "WRITE").Err(); err != nil {
		t.Fatal(err)
	}
	onMaster(t, "READONLY after a paused write", sm, cmd("SET", "ro2", "1")+cmd("READONLY")+cmd("GET", "ro2"), "+OK", "+OK", "$1", "1")

	// A 300 ms window, and a write acknowledged 700 ms after it was sent.
	_, pausedAddr, _ := readProxy(t, r, proxy.Config{ReadPolicy: proxy.ReadPreferReplica, ReadYourWrites: 300 * time.Millisecond})
	p := dialRaw(t, pausedAddr)
	admin := r.master.Client()
	defer admin.Close()
	if err := admin.Do(ctxT(t), "CLIENT", "PAUSE", "700", "WRITE").Err(); err != nil {
		t.Fatal(err)
	}
	p.send(cmd("SET", "late", "1"))
	p.expect("+OK")
	onMaster(t, "after a paused write", p, cmd("GET", "late"), "$1", "1")
}

// A script loaded through the proxy is found on every replica: Redis does
// not replicate SCRIPT LOAD, so the proxy sends it to each replica in the
// read set as well as to the master. An audit found EVALSHA on the read
// port answering NOSCRIPT on every replica but the one that had it, and
// EVALSHA_RO on the main port always (loaded on the master only).
func TestScriptLoadReachesEveryReplica(t *testing.T) {
	r := startReplicated(t, 2)
	srv, mainAddr, readAddr := readProxyTable(t, r, proxy.Config{ReadPolicy: proxy.ReadPreferReplica})
	srv.SetCommandFlags(func(args [][]byte) proxy.CommandFlags { // as Redis 7 flags them
		switch strings.ToUpper(string(args[0])) {
		case "EVALSHA_RO":
			return proxy.CmdRead
		case "EVALSHA":
			return proxy.CmdMayWrite
		case "SCRIPT":
			return 0
		}
		return testFlags(args)
	})
	for _, addr := range []string{readAddr, mainAddr} {
		c := dialRaw(t, addr)
		c.send(cmd("SCRIPT", "LOAD", "return '"+addr+"'"))
		c.expect("$40")
		sha := c.line()
		evalsha := "EVALSHA"
		if addr == mainAddr {
			evalsha = "EVALSHA_RO"
		}
		for range 8 {
			d := dialRaw(t, addr) // a new connection may get either replica
			d.send(cmd(evalsha, sha, "0"))
			d.expect("$"+strconv.Itoa(len(addr)), addr)
		}
	}
	for _, rep := range r.replicas {
		if n := labtest.CommandCalls(t, rep, "evalsha"); n == 0 && labtest.CommandCalls(t, rep, "evalsha_ro") == 0 {
			t.Errorf("replica %s served no EVALSHA: the test did not spread them", rep.Addr)
		}
	}
}

// With the replica-only policy, a read stuck on a replica that leaves the
// read set is answered by another healthy replica, not failed: the
// client gets an error only when no replica can answer. An audit saw
// reads in flight fail while two replicas were serving.
func TestReplicaOnlyReadMovesToAnotherReplica(t *testing.T) {
	r := startReplicated(t, 2)
	srv, _, readAddr := readProxy(t, r, proxy.Config{ReadPolicy: proxy.ReadReplica})
	ctx := ctxT(t)
	if err := r.master.Client().Set(ctx, "stuck", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() error {
		for _, rep := range r.replicas {
			if v, _ := rep.Client().Get(ctx, "stuck").Result(); v != "v" {
				return fmt.Errorf("replica %s has %q", rep.Addr, v)
			}
		}
		return nil
	})
	srv.SetReplicas([]string{r.replicas[0].Addr})
	got := stuckRead(t, client(t, readAddr), r.replicas[0], "stuck")
	srv.SetReplicas([]string{r.replicas[1].Addr})
	select {
	case v := <-got:
		if v != "v" {
			t.Fatalf("after its replica left: %q", v)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the stuck read was not re-sent")
	}
}

// A write that was never sent (no master) does not keep the client's
// reads on the master: they go on being served by replicas. A review
// found every later read failing with the write's TRYAGAIN.
func TestUnsentWriteIsNotAWrite(t *testing.T) {
	r := startReplicated(t, 1)
	if err := r.master.Client().Set(ctxT(t), "a", "A", 0).Err(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() error {
		if v, _ := r.replicas[0].Client().Get(ctxT(t), "a").Result(); v != "A" {
			return fmt.Errorf("replica has %q", v)
		}
		return nil
	})
	srv, mainAddr, _ := readProxy(t, r, proxy.Config{ReadPolicy: proxy.ReadPreferReplica, ReadYourWrites: 300 * time.Millisecond, HoldTimeout: 100 * time.Millisecond})
	srv.ClearMaster()
	c := dialRaw(t, mainAddr)
	c.send(cmd("SET", "a", "Z"))
	if l := c.line(); !strings.HasPrefix(l, "-TRYAGAIN") {
		t.Fatalf("SET with no master: %q", l)
	}
	waitFor(t, func() error { // the refusal ends once the client has sent nothing more
		c.send(cmd("GET", "a"))
		if l := c.line(); l != "$1" {
			return fmt.Errorf("GET after a write that was never sent: %q", l)
		}
		c.expect("A")
		return nil
	})
}

// A read port answers SCRIPT LOAD from a replica, as before the script
// was sent to every replica: it does not wait on a master that is stuck
// (only the main port sends it there too).
func TestScriptLoadOnReadPortWithoutMaster(t *testing.T) {
	r := startReplicated(t, 2)
	srv, _, readAddr := readProxyTable(t, r, proxy.Config{ReadTimeout: 5 * time.Second})
	srv.SetCommandFlags(func(args [][]byte) proxy.CommandFlags {
		if strings.EqualFold(string(args[0]), "SCRIPT") {
			return 0 // as Redis 7 flags SCRIPT LOAD
		}
		return testFlags(args)
	})
	if err := r.master.Pause(); err != nil {
		t.Fatal(err)
	}
	defer r.master.Resume()
	c := dialRaw(t, readAddr)
	c.nc.SetReadDeadline(time.Now().Add(2 * time.Second))
	c.send(cmd("SCRIPT", "LOAD", "return 1"))
	if l, err := c.br.ReadString('\n'); err != nil || l != "$40\r\n" {
		t.Fatalf("SCRIPT LOAD on a read port while the master is stuck: %q %v", l, err)
	}
}

// With replica-only reads, a read that times out on its replica is not run
// again on the others (a slow script would block each in turn): the
// client gets the timeout.
func TestReplicaOnlyTimeoutIsNotRetried(t *testing.T) {
	r := startReplicated(t, 2)
	srv, _, readAddr := readProxyTable(t, r, proxy.Config{ReadPolicy: proxy.ReadReplica, ReadTimeout: 300 * time.Millisecond})
	srv.SetCommandFlags(func(args [][]byte) proxy.CommandFlags {
		if strings.EqualFold(string(args[0]), "EVAL_RO") {
			return proxy.CmdRead
		}
		return testFlags(args)
	})
	calls := func() int {
		n := 0
		for _, rep := range r.replicas {
			n += labtest.CommandCalls(t, rep, "eval_ro")
		}
		return n
	}
	before := calls()
	c := dialRaw(t, readAddr)
	c.send(cmd("EVAL_RO", "local t = redis.call('TIME') while true do local n = redis.call('TIME') if (n[1]-t[1])*1000000 + (n[2]-t[2]) > 800000 then return 1 end end", "0"))
	if l := c.line(); !strings.HasPrefix(l, "-") {
		t.Fatalf("a read past read_timeout: %q", l)
	}
	waitFor(t, func() error { // the script ends on its replica
		for _, rep := range r.replicas {
			if err := rep.Client().Ping(ctxT(t)).Err(); err != nil {
				return err
			}
		}
		return nil
	})
	if n := calls() - before; n != 1 {
		t.Fatalf("the read ran %d times", n)
	}
}

// stuckRead pauses replica, which must be the one c reads from, and starts
// a GET of key on c that is stuck there; the channel gets its value, or
// "error: …".
func stuckRead(t *testing.T, c *redis.Client, replica *lab.Server, key string) <-chan string {
	t.Helper()
	ctx := ctxT(t)
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if err := replica.Pause(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { replica.Resume() })
	got := make(chan string, 1)
	go func() {
		v, err := c.Get(ctx, key).Result()
		if err != nil {
			v = "error: " + err.Error()
		}
		got <- v
	}()
	select {
	case v := <-got:
		t.Fatalf("GET answered %q while its replica is paused", v)
	case <-time.After(300 * time.Millisecond): // the read is stuck on the replica
	}
	return got
}

// A replica's connections for other settings than the default (here other
// databases) close once unused for a while, as the master's close when
// their last client leaves: a soak test found clients that had come and
// gone through a read port with 15 databases leaving 30 connections, and
// their goroutines, on each replica for as long as it stayed in the read
// set. A connection still in use stays: one read from regularly, and one
// with a read in flight for longer than the idle time.
func TestReplicaPoolsForOtherSettingsClose(t *testing.T) {
	proxy.SetReplicaPoolIdle(t, 300*time.Millisecond)
	r := startReplicated(t, 1)
	_, _, readAddr := readProxy(t, r, proxy.Config{})
	replica := r.replicas[0].Client()
	defer replica.Close()
	ctx := context.Background()
	// byDB gives the IDs of the replica's connections by database, other
	// than 0, and other than this test's own.
	byDB := func() map[string][]string {
		list, err := replica.ClientList(ctx).Result()
		if err != nil {
			t.Fatal(err)
		}
		ids := map[string][]string{}
		for _, l := range strings.Split(list, "\n") {
			var id, db string
			for _, f := range strings.Fields(l) {
				if v, ok := strings.CutPrefix(f, "id="); ok {
					id = v
				}
				if v, ok := strings.CutPrefix(f, "db="); ok {
					db = v
				}
			}
			if db != "" && db != "0" && !strings.Contains(l, "cmd=client") {
				ids[db] = append(ids[db], id)
			}
		}
		return ids
	}
	read := func(c *rawConn) {
		t.Helper()
		c.send(cmd("GET", "k"))
		c.expect("$-1")
	}

	contains := func(ids, want []string) bool {
		for _, id := range want {
			if !slices.Contains(ids, id) {
				return false
			}
		}
		return true
	}

	// A client that keeps reading from database 6 throughout.
	busy := dialRaw(t, readAddr)
	busy.send(cmd("SELECT", "6"))
	busy.expect("+OK")
	read(busy)
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		for {
			select {
			case <-stop:
				done <- nil
				return
			case <-time.After(50 * time.Millisecond):
			}
			busy.nc.SetDeadline(time.Now().Add(5 * time.Second))
			busy.nc.Write([]byte(cmd("GET", "k")))
			if l, err := busy.br.ReadString('\n'); err != nil || l != "$-1\r\n" {
				done <- fmt.Errorf("the reading client got %q, %v", l, err)
				return
			}
		}
	}()
	defer func() {
		close(stop)
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	first := byDB()["6"]

	// Clients that come and go with databases 1 to 5.
	for db := 1; db <= 5; db++ {
		c := dialRaw(t, readAddr)
		c.send(cmd("SELECT", strconv.Itoa(db)) + cmd("GET", "k"))
		c.expect("+OK", "$-1")
		c.nc.Close()
	}
	if n := byDB(); len(n) != 6 {
		t.Fatalf("replica connections by database after the reads: %v, want databases 1 to 6", n)
	}
	waitFor(t, func() error {
		if n := byDB(); len(n) != 1 || n["6"] == nil {
			return fmt.Errorf("replica connections by database: %v, want database 6's only", n)
		}
		return nil
	})
	if ids := byDB()["6"]; !contains(ids, first) {
		t.Fatalf("the reading client's connections were replaced: %v, then %v", first, ids)
	}

	// A read in database 7 waits on the paused replica for longer than
	// the idle time; its connection must not be closed under it.
	slow := dialRaw(t, readAddr)
	slow.send(cmd("SELECT", "7"))
	slow.expect("+OK")
	read(slow)
	before := byDB()["7"]
	if err := replica.Do(ctx, "CLIENT", "PAUSE", "800", "ALL").Err(); err != nil {
		t.Fatal(err)
	}
	read(slow)
	if ids := byDB()["7"]; len(before) == 0 || !contains(ids, before) {
		t.Fatalf("the connection of a read in flight was replaced: %v, then %v", before, ids)
	}
}

// A SELECT inside a pipeline moves the reads after it to the new
// database: a review found the second GET of "GET k; SELECT 1; GET k" on
// a read port sent on the replica connection the batch had taken for
// database 0.
func TestSelectInPipelineMovesReplicaReads(t *testing.T) {
	r := startReplicated(t, 1)
	_, _, readAddr := readProxy(t, r, proxy.Config{})
	setup := dialRaw(t, r.master.Addr)
	setup.send(cmd("SET", "k", "db0") + cmd("SELECT", "1") + cmd("SET", "k", "db1"))
	setup.expect("+OK", "+OK", "+OK")
	replica := dialRaw(t, r.replicas[0].Addr)
	replica.send(cmd("SELECT", "1"))
	replica.expect("+OK")
	waitFor(t, func() error {
		replica.send(cmd("GET", "k"))
		if l := replica.line(); l != "$3" {
			return fmt.Errorf("the replica has not db1's k yet: %q", l)
		}
		replica.line()
		return nil
	})
	c := dialRaw(t, readAddr)
	c.send(cmd("GET", "k") + cmd("SELECT", "1") + cmd("GET", "k"))
	c.expect("$3", "db0", "+OK", "$3", "db1")
}

// A read that follows a write in one pipeline finds its replica
// connection open, however long the write waited: a review found the
// reaper closing a pool for database 1 while a SET ahead of the read
// waited out a CLIENT PAUSE, and the read, sent on the connection the
// batch had taken, failed on a healthy replica (read_policy: replica).
func TestReplicaConnectionOutlivesAWaitingWrite(t *testing.T) {
	proxy.SetReplicaPoolIdle(t, 40*time.Millisecond)
	r := startReplicated(t, 1)
	_, mainAddr, _ := readProxy(t, r, proxy.Config{ReadPolicy: proxy.ReadReplica})
	master := dialRaw(t, r.master.Addr)
	c := dialRaw(t, mainAddr)
	c.send(cmd("SELECT", "1") + cmd("GET", "k"))
	c.expect("+OK", "$-1")
	for i := 0; i < 3; i++ {
		master.send(cmd("CLIENT", "PAUSE", "300", "WRITE"))
		master.expect("+OK")
		c.send(cmd("GET", "k") + cmd("SET", "x", "1") + cmd("GET", "k"))
		if got := []string{c.line(), c.line(), c.line()}; got[2] != "$-1" {
			t.Fatalf("round %d: replies %q, want the last read answered", i, got)
		}
	}
}

// A read port's clients are served by the event loop, as the main port's
// are: their reads go to the replicas' shared connections, which the loop
// reads, and no client gets a goroutine of its own for them (it would,
// and stay on it, after maxHandoffs moves). PING, answered by a replica
// on a read port, takes the same path.
func TestReadPortServedByTheEventLoop(t *testing.T) {
	skipWithoutLoop(t)
	var loopReads atomic.Int64
	proxy.SetLoopReadHooks(t, func() { loopReads.Add(1) }, nil)
	r := startReplicated(t, 2)
	srv, _, readAddr := readProxy(t, r, proxy.Config{})
	r.set(t, "lk", "v")
	const clients, rounds, gets = 4, 50, 10
	var cs []*rawConn
	for i := 0; i < clients; i++ {
		cs = append(cs, dialRaw(t, readAddr))
	}
	waitEventLoop(t, srv, clients)
	masterGets := labtest.CommandCalls(t, r.master, "get")
	replicaGets := 0
	for _, rep := range r.replicas {
		replicaGets += labtest.CommandCalls(t, rep, "get")
	}
	before := loopReads.Load()
	batch := strings.Repeat(cmd("GET", "lk"), gets) + cmd("PING")
	var want []string
	for i := 0; i < gets; i++ {
		want = append(want, "$1", "v")
	}
	want = append(want, "+PONG")
	for i := 0; i < rounds; i++ {
		for _, c := range cs {
			c.send(batch)
		}
		for _, c := range cs {
			c.expect(want...)
		}
	}
	if got := labtest.CommandCalls(t, r.master, "get") - masterGets; got != 0 {
		t.Fatalf("the master served %d of the read port's GETs", got)
	}
	served := -replicaGets
	for _, rep := range r.replicas {
		served += labtest.CommandCalls(t, rep, "get")
	}
	if want := clients * rounds * gets; served != want {
		t.Fatalf("the replicas served %d GETs, want %d", served, want)
	}
	if loopReads.Load() == before {
		t.Fatal("the event loop read no replica connection")
	}
	waitEventLoop(t, srv, clients)
}

// A read on the loop's fast path whose replica leaves the read set
// before answering is sent to the master, and the client stays served.
func TestReadPortLoopReadFallsBackToMaster(t *testing.T) {
	skipWithoutLoop(t)
	r := startReplicated(t, 1)
	srv, _, readAddr := readProxy(t, r, proxy.Config{})
	ctx := ctxT(t)
	if err := r.master.Client().Set(ctx, "fk", "from-master", 0).Err(); err != nil {
		t.Fatal(err)
	}
	c := dialRaw(t, readAddr)
	c.send(cmd("PING")) // opens the replica's connection
	c.expect("+PONG")
	waitEventLoop(t, srv, 1)
	if err := r.replicas[0].Pause(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.replicas[0].Resume() })
	c.send(cmd("GET", "fk") + cmd("GET", "fk"))
	c.nc.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if l, err := c.br.ReadString('\n'); err == nil {
		t.Fatalf("answered %q while the replica is paused", l)
	}
	srv.SetReplicas(nil)
	c.expect("$11", "from-master", "$11", "from-master")
	waitEventLoop(t, srv, 1)
}

// With no replica in the read set, a read port's reads go to the master
// (unless the policy keeps them off it), on the loop's fast path: a
// client is not moved to a goroutine and back for every batch while the
// replicas are away.
func TestReadPortWithoutReplicasStaysInTheLoop(t *testing.T) {
	skipWithoutLoop(t)
	var moves atomic.Int64
	proxy.SetToGoroutineHook(t, func() { moves.Add(1) })
	r := startReplicated(t, 1)
	srv, _, readAddr := readProxy(t, r, proxy.Config{})
	srv.SetReplicas(nil)
	ctx := ctxT(t)
	if err := r.master.Client().Set(ctx, "nk", "m", 0).Err(); err != nil {
		t.Fatal(err)
	}
	c := dialRaw(t, readAddr)
	c.send(cmd("GET", "nk")) // may open the master's connection first
	c.expect("$1", "m")
	waitEventLoop(t, srv, 1)
	before, masterGets := moves.Load(), labtest.CommandCalls(t, r.master, "get")
	for i := 0; i < 20; i++ {
		c.send(cmd("GET", "nk") + cmd("PING"))
		c.expect("$1", "m", "+PONG")
	}
	if n := moves.Load() - before; n != 0 {
		t.Fatalf("the client moved to a goroutine %d times in 20 batches", n)
	}
	if got := labtest.CommandCalls(t, r.master, "get") - masterGets; got != 20 {
		t.Fatalf("the master served %d of 20 reads", got)
	}
	// Replica-only reads get the error, as on a goroutine, also with the
	// master's shared connection open and the client back in the loop.
	srv2, mainAddr2, readAddr2 := readProxy(t, r, proxy.Config{ReadPolicy: proxy.ReadReplica})
	srv2.SetReplicas(nil)
	m2 := dialRaw(t, mainAddr2)
	m2.send(cmd("SET", "nk", "m"))
	m2.expect("+OK")
	m2.nc.Close()
	c2 := dialRaw(t, readAddr2)
	for i := 0; i < 3; i++ {
		waitEventLoop(t, srv2, 1)
		c2.send(cmd("GET", "nk"))
		c2.expect("-ERR switchyard: no healthy replica to read from")
	}
}

// A main port's clients that read from replicas (read_policy here) are
// served by the event loop: reads go to the replicas, writes to the
// master, a pipeline that mixes them is answered in order, and
// read_your_writes keeps the reads after a write on the master. No batch
// moves the client to a goroutine.
func TestPreferReplicaServedByTheEventLoop(t *testing.T) {
	skipWithoutLoop(t)
	var moves atomic.Int64
	proxy.SetToGoroutineHook(t, func() { moves.Add(1) })
	r := startReplicated(t, 1)
	rep := r.replicas[0]
	for _, ryw := range []time.Duration{0, time.Hour} {
		srv, mainAddr, _ := readProxy(t, r, proxy.Config{ReadPolicy: proxy.ReadPreferReplica, ReadYourWrites: ryw})
		c := dialRaw(t, mainAddr)
		c.send(cmd("PING")) // the master's connection
		c.expect("+PONG")
		c.send(cmd("GET", "none")) // the replica's
		c.expect("$-1")
		waitEventLoop(t, srv, 1)
		before := moves.Load()
		onMaster, onReplica := labtest.CommandCalls(t, r.master, "get"), labtest.CommandCalls(t, rep, "get")
		sets := labtest.CommandCalls(t, r.master, "set")
		const rounds = 10
		for i := 0; i < rounds; i++ {
			v := strconv.Itoa(i)
			c.send(cmd("GET", "none") + cmd("SET", "pk", v) + cmd("GET", "none") + cmd("PING") + cmd("GET", "none"))
			c.expect("$-1", "+OK", "$-1", "+PONG", "$-1")
		}
		if n := moves.Load() - before; n != 0 {
			t.Fatalf("read_your_writes %v: the client moved to a goroutine %d times", ryw, n)
		}
		if got := labtest.CommandCalls(t, r.master, "set") - sets; got != rounds {
			t.Fatalf("read_your_writes %v: the master took %d of %d SETs", ryw, got, rounds)
		}
		m, rp := labtest.CommandCalls(t, r.master, "get")-onMaster, labtest.CommandCalls(t, rep, "get")-onReplica
		want := map[time.Duration][2]int{0: {0, 3 * rounds}, time.Hour: {3*rounds - 1, 1}}[ryw] // only the first read comes before a write
		if m != want[0] || rp != want[1] {
			t.Fatalf("read_your_writes %v: GETs on the master %d, on the replica %d; want %d and %d", ryw, m, rp, want[0], want[1])
		}
	}
}

// A replica that stops reading holds up only the reads sent to it: the
// event loop writes to the replica connections it reads without waiting,
// so the main port's clients are answered meanwhile. Read-port clients
// with settings of their own (SELECT 1) have pools of their own, which
// the loop reads too; a connection the loop does not read (here, dialled
// for a TLS client before the loop started) has a writer goroutine of
// its own. Either way the read-port clients stay in the loop.
func TestStuckReplicaDoesNotHoldTheLoop(t *testing.T) {
	skipWithoutLoop(t)
	var moves atomic.Int64
	proxy.SetToGoroutineHook(t, func() { moves.Add(1) })
	for _, tc := range []string{"SELECT 1", "dialled before the loop"} {
		t.Run(tc, func(t *testing.T) {
			r := startReplicated(t, 1)
			r.set(t, "k", "v")
			in := &count{}
			cfg := proxy.Config{WriteTimeout: time.Minute, ReadTimeout: time.Minute, Metrics: &proxy.Metrics{BytesIn: in}}
			srv := proxy.New(cfg)
			srv.SetReplicas(r.addrs())
			srv.SetCommandFlags(testFlags)
			t.Cleanup(func() { srv.Close() })
			listen := func(read bool, l net.Listener) string {
				if read {
					go srv.ServeRead(l)
				} else {
					go srv.Serve(l)
				}
				return l.Addr().String()
			}
			plain := func() net.Listener {
				l, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				return l
			}
			mainAddr, readAddr := listen(false, plain()), listen(true, plain())
			first := ""
			if tc == "SELECT 1" {
				first = cmd("SELECT", "1")
			} else {
				cert, pool := localCert(t)
				l, err := tlsListen(&tls.Config{Certificates: []tls.Certificate{cert}})
				if err != nil {
					t.Fatal(err)
				}
				tc, err := tls.Dial("tcp", listen(true, l), &tls.Config{RootCAs: pool, ServerName: "localhost"})
				if err != nil {
					t.Fatal(err)
				}
				defer tc.Close()
				tc.Write([]byte(cmd("GET", "k")))
				if l, err := bufio.NewReader(tc).ReadString('\n'); l != "$1\r\n" {
					t.Fatalf("TLS read: %q %v", l, err)
				}
			}
			srv.SetMaster(1, r.master.Addr) // starts the loop
			m := dialRaw(t, mainAddr)
			m.send(cmd("PING"))
			m.expect("+PONG")
			const clients = 8
			var rcs []*rawConn
			for i := 0; i < clients; i++ {
				rc := dialRaw(t, readAddr)
				rc.send(first + cmd("GET", "k"))
				if first != "" {
					rc.expect("+OK", "$-1")
				} else {
					rc.expect("$1", "v")
				}
				rcs = append(rcs, rc)
			}
			if err := r.replicas[0].Pause(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { r.replicas[0].Resume() })
			// Reads of a 2 MiB key each: together more than the sockets
			// to the replica hold.
			big := []byte(cmd("EXISTS", strings.Repeat("k", 2<<20)))
			moved := moves.Load()
			sendAndWaitRead(t, rcs, big, in)
			m.send(cmd("PING"))
			m.expect("+PONG") // within 5 s, though the replica's writes wait a minute
			if n := moves.Load() - moved; n != 0 {
				t.Fatalf("%d read-port clients moved to a goroutine for their reads", n)
			}
		})
	}
}

// A replica that died but is still in the read set (until its watcher
// takes it out) is passed over on the loop's fast path, as replicaConn
// passes it over: its clients are not moved to a goroutine for every
// batch, which cut a read port's throughput to a third.
func TestDeadReplicaInReadSetIsPassedOverInTheLoop(t *testing.T) {
	skipWithoutLoop(t)
	var moves atomic.Int64
	proxy.SetToGoroutineHook(t, func() { moves.Add(1) })
	for _, policy := range []proxy.ReadPolicy{proxy.ReadReplica, proxy.ReadPreferReplica} {
		r := startReplicated(t, 2)
		r.set(t, "dk", "v")
		srv, _, readAddr := readProxy(t, r, proxy.Config{ReadPolicy: policy})
		c := dialRaw(t, readAddr)
		for i := 0; i < 4; i++ { // both replicas' connections open
			c.send(cmd("GET", "dk"))
			c.expect("$1", "v")
		}
		if err := r.replicas[0].Kill(); err != nil {
			t.Fatal(err)
		}
		// Until the dead one's connection is found lost and a dial of it
		// fails, reads may try it and move to a goroutine.
		waitFor(t, func() error {
			waitEventLoop(t, srv, 1)
			before := moves.Load()
			for i := 0; i < 4; i++ {
				c.send(cmd("GET", "dk"))
				c.expect("$1", "v")
			}
			if n := moves.Load() - before; n > 0 {
				return fmt.Errorf("%d moves to a goroutine in 4 batches", n)
			}
			return nil
		})
		waitEventLoop(t, srv, 1)
		before, gets := moves.Load(), labtest.CommandCalls(t, r.replicas[1], "get")
		const batches = 30
		for i := 0; i < batches; i++ {
			c.send(cmd("GET", "dk"))
			c.expect("$1", "v")
		}
		if n := moves.Load() - before; n > 2 {
			t.Fatalf("policy %v: the client moved to a goroutine %d times in %d batches", policy, n, batches)
		}
		if n := labtest.CommandCalls(t, r.replicas[1], "get") - gets; n != batches {
			t.Fatalf("policy %v: the live replica served %d of %d reads", policy, n, batches)
		}
	}
}

// A master that stops reading holds up only the commands sent to it, also
// for clients with settings of their own (HELLO 3, as go-redis speaks by
// default; SELECT): the event loop reads and writes those pools'
// connections without waiting, so a read port's clients, whose reads go
// to a replica, are answered meanwhile.
func TestStuckMasterDoesNotHoldTheLoop(t *testing.T) {
	skipWithoutLoop(t)
	for _, hello := range []string{cmd("HELLO", "3"), cmd("SELECT", "1")} {
		r := startReplicated(t, 1)
		r.set(t, "k", "v")
		in := &count{}
		srv, mainAddr, readAddr := readProxy(t, r, proxy.Config{WriteTimeout: time.Minute, ReadTimeout: time.Minute, Metrics: &proxy.Metrics{BytesIn: in}})
		reader := dialRaw(t, readAddr)
		reader.send(cmd("GET", "k"))
		reader.expect("$1", "v")
		const clients = 8
		var cs []*rawConn
		for i := 0; i < clients; i++ {
			c := dialRaw(t, mainAddr)
			c.send(hello + cmd("PING"))
			c.line() // HELLO's map or SELECT's +OK, and for HELLO its fields
			cs = append(cs, c)
		}
		waitEventLoop(t, srv, clients+1)
		if err := r.master.Pause(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.master.Resume() })
		// Writes of 2 MiB each: together more than the sockets to the
		// master hold.
		big := []byte(cmd("SET", "big", strings.Repeat("x", 2<<20)))
		sendAndWaitRead(t, cs, big, in)
		reader.send(cmd("GET", "k"))
		reader.expect("$1", "v") // within 5 s, though the master's writes wait a minute
		r.master.Resume()
	}
}

// With TLS to Redis the loop cannot read the master's connections, and
// it wrote to them itself, with a blocking write: a master that stopped
// reading held every client of the loop for up to write_timeout, even
// one the proxy answers itself. Those writes are a goroutine's now.
func TestStuckTLSMasterDoesNotHoldTheLoop(t *testing.T) {
	skipWithoutLoop(t)
	rs, _, verify := labtest.TLSServer(t)
	in := &count{}
	srv, addr := startProxy(t, rs.Addr, proxy.Config{BackendTLS: verify, WriteTimeout: time.Minute,
		ReadTimeout: time.Minute, Metrics: &proxy.Metrics{BytesIn: in}})
	const clients = 8
	var cs []*rawConn
	for i := 0; i < clients; i++ {
		c := dialRaw(t, addr)
		c.send(cmd("PING"))
		c.expect("+PONG")
		cs = append(cs, c)
	}
	waitEventLoop(t, srv, clients)
	if err := rs.Pause(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rs.Resume() })
	sendAndWaitRead(t, cs, []byte(cmd("SET", "big", strings.Repeat("x", 2<<20))), in)
	c := dialRaw(t, addr)
	c.send(cmd("READONLY"))
	c.expect("+OK") // within 5 s, though the master's writes wait a minute
	if err := rs.Resume(); err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		c.expect("+OK") // the writes held nothing back for good
	}
}

// Close stops at once, though a read waits on a replica that stopped
// answering: the replicas' connections close with the master's, before
// Close waits for the sessions, not after (which waited out read_timeout).
func TestCloseDoesNotWaitForAStoppedReplica(t *testing.T) {
	for name, policy := range map[string]proxy.ReadPolicy{"replica": proxy.ReadReplica, "prefer-replica": proxy.ReadPreferReplica} {
		r := startReplicated(t, 1)
		r.set(t, "k", "v")
		srv, _, readAddr := readProxy(t, r, proxy.Config{ReadTimeout: time.Minute, ReadPolicy: policy})
		c := dialRaw(t, readAddr)
		c.send(cmd("GET", "k"))
		c.expect("$1", "v")
		if err := r.replicas[0].Pause(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.replicas[0].Resume() })
		c.send(cmd("GET", "k"))
		waitFor(t, func() error {
			if srv.ReplicaOutstanding() == 0 {
				return fmt.Errorf("the read is not on its way to the replica yet")
			}
			return nil
		})
		if !closesWithin(srv, 10*time.Second) {
			t.Fatalf("read_policy %s: Close still waits for a read on a stopped replica (read_timeout is a minute)", name)
		}
		r.replicas[0].Resume()
	}
}

// The replica watcher may still call SetReplicas while Close runs (the
// binary's follow loop does until Shutdown returns). Once Close has
// taken the read set away, that installs nothing: sessions still ending
// would otherwise open connections on nodes nobody closes, which held
// Close for a minute (a reaper) or outlived it.
func TestSetReplicasAfterCloseInstallsNothing(t *testing.T) {
	r := startReplicated(t, 1)
	srv, _, _ := readProxy(t, r, proxy.Config{})
	if !closesWithin(srv, 10*time.Second) {
		t.Fatal("Close did not return")
	}
	srv.SetReplicas(r.addrs())
	if got := srv.Replicas(); len(got) != 0 {
		t.Fatalf("read set after Close: %v, want none", got)
	}
}

// sendAndWaitRead has every client send req without waiting for its
// reply (the writes may wait up to a minute on a backend that stopped
// reading), and waits until the proxy has read all of them, by in (the
// proxy's BytesIn).
func sendAndWaitRead(t *testing.T, cs []*rawConn, req []byte, in *count) {
	t.Helper()
	_, before := in.get()
	for _, c := range cs {
		go func() {
			c.nc.SetWriteDeadline(time.Now().Add(time.Minute))
			c.nc.Write(req)
		}()
	}
	waitFor(t, func() error {
		if _, n := in.get(); n < float64(len(cs)*len(req))+before {
			return fmt.Errorf("the proxy read %.0f of %d bytes", n-before, len(cs)*len(req))
		}
		return nil
	})
}

// The last client of a pool for other settings (RESP3) leaving from the
// event loop closes that pool, whose connections the loop reads: in the
// background, so the loop does not wait for itself, and keeps serving.
func TestLastClientOfAPoolLeavesFromTheLoop(t *testing.T) {
	skipWithoutLoop(t)
	_, srv, addr := setup(t, proxy.Config{})
	for i := 0; i < 3; i++ {
		c := dialRaw(t, addr)
		c.send(cmd("HELLO", "3"))
		c.line()
		waitEventLoop(t, srv, 1)
		c.send(cmd("SET", "k", "v") + cmd("GET", "k"))
		for c.line() != "$1" {
		}
		c.expect("v")
		waitEventLoop(t, srv, 1) // answered by the loop, on its own RESP3 connection
		c.nc.Close()
		// Polled off the test's goroutine: a loop waiting for itself
		// would hold the server's lock, and Stats with it.
		end := time.Now().Add(10 * time.Second)
		for {
			n := make(chan int, 1)
			go func() { n <- srv.Stats().Clients }()
			select {
			case c := <-n:
				if c == 0 {
					break
				}
				time.Sleep(10 * time.Millisecond)
				continue
			case <-time.After(time.Until(end)):
				t.Fatal("the client's session did not end: the event loop is stuck")
			}
			break
		}
	}
	c := dialRaw(t, addr)
	c.send(cmd("PING"))
	c.expect("+PONG")
}
