package proxy_test

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pnats/switchyard/proxy"
	"github.com/redis/go-redis/v9"
)

func TestPipelineRepliesInOrder(t *testing.T) {
	_, _, addr := setup(t, proxy.Config{})
	ctx := ctxT(t)
	c := client(t, addr)

	const n = 10000
	pipe := c.Pipeline()
	cmds := make([]redis.Cmder, 0, n)
	for i := 0; i < n; i++ {
		key := "pipe:" + strconv.Itoa(i/4)
		switch i % 4 {
		case 0:
			cmds = append(cmds, pipe.Set(ctx, key, i, 0))
		case 1:
			cmds = append(cmds, pipe.Get(ctx, key))
		case 2:
			cmds = append(cmds, pipe.Incr(ctx, "pipe:counter"))
		case 3:
			cmds = append(cmds, pipe.Echo(ctx, "e"+strconv.Itoa(i)))
		}
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	incr := int64(0)
	for i, cmd := range cmds {
		switch i % 4 {
		case 0:
			if err := cmd.Err(); err != nil {
				t.Fatalf("cmd %d: %v", i, err)
			}
		case 1:
			// The GET follows the SET of i-1 on the same key.
			if got := cmd.(*redis.StringCmd).Val(); got != strconv.Itoa(i-1) {
				t.Fatalf("cmd %d: GET = %q, want %d", i, got, i-1)
			}
		case 2:
			incr++
			if got := cmd.(*redis.IntCmd).Val(); got != incr {
				t.Fatalf("cmd %d: INCR = %d, want %d", i, got, incr)
			}
		case 3:
			if got := cmd.(*redis.StringCmd).Val(); got != "e"+strconv.Itoa(i) {
				t.Fatalf("cmd %d: ECHO = %q", i, got)
			}
		}
	}
}

func TestMultiExecAndWatchConflict(t *testing.T) {
	_, _, addr := setup(t, proxy.Config{PoolSize: 1})
	ctx := ctxT(t)
	c := client(t, addr)

	cmds, err := c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, "tx:a", "1", 0)
		p.Incr(ctx, "tx:a")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if v := cmds[1].(*redis.IntCmd).Val(); v != 2 {
		t.Fatalf("INCR in MULTI = %d, want 2", v)
	}

	// WATCH, a conflicting write from another client, then EXEC: the
	// transaction must abort.
	other := client(t, addr)
	err = c.Watch(ctx, func(tx *redis.Tx) error {
		if err := other.Set(ctx, "tx:a", "changed", 0).Err(); err != nil {
			return err
		}
		_, err := tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Set(ctx, "tx:a", "mine", 0)
			return nil
		})
		return err
	}, "tx:a")
	if !errors.Is(err, redis.TxFailedErr) {
		t.Fatalf("WATCH conflict: err = %v, want TxFailedErr", err)
	}
	if v := c.Get(ctx, "tx:a").Val(); v != "changed" {
		t.Fatalf("after aborted tx tx:a = %q, want changed", v)
	}

	// Without a conflict it commits.
	err = c.Watch(ctx, func(tx *redis.Tx) error {
		_, err := tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Set(ctx, "tx:a", "mine", 0)
			return nil
		})
		return err
	}, "tx:a")
	if err != nil {
		t.Fatal(err)
	}
	if v := c.Get(ctx, "tx:a").Val(); v != "mine" {
		t.Fatalf("tx:a = %q, want mine", v)
	}

	// A transaction is isolated from commands other clients send through
	// the same shared connections meanwhile.
	raw := dialRaw(t, addr)
	raw.send("MULTI\r\n")
	if l := raw.line(); l != "+OK" {
		t.Fatalf("MULTI: %q", l)
	}
	raw.send("SET tx:b queued\r\n")
	if l := raw.line(); l != "+QUEUED" {
		t.Fatalf("queued SET: %q", l)
	}
	if v, err := other.Get(ctx, "tx:b").Result(); err != redis.Nil {
		t.Fatalf("queued write visible before EXEC: %q %v", v, err)
	}
	raw.send("EXEC\r\n")
	if l := raw.line(); l != "*1" {
		t.Fatalf("EXEC: %q", l)
	}
	if l := raw.line(); l != "+OK" {
		t.Fatalf("EXEC[0]: %q", l)
	}
}

func TestPubSubRESP2AndRESP3(t *testing.T) {
	_, _, addr := setup(t, proxy.Config{})
	for _, proto := range []int{2, 3} {
		t.Run(fmt.Sprintf("resp%d", proto), func(t *testing.T) {
			ctx := ctxT(t)
			sub := client(t, addr, func(o *redis.Options) { o.Protocol = proto })
			pub := client(t, addr)
			ps := sub.Subscribe(ctx, "news")
			defer ps.Close()
			if _, err := ps.Receive(ctx); err != nil {
				t.Fatal(err)
			}
			ch := ps.Channel()
			for i := 0; i < 10; i++ {
				if err := pub.Publish(ctx, "news", "m"+strconv.Itoa(i)).Err(); err != nil {
					t.Fatal(err)
				}
			}
			for i := 0; i < 10; i++ {
				select {
				case m := <-ch:
					if m.Payload != "m"+strconv.Itoa(i) {
						t.Fatalf("message %d = %q", i, m.Payload)
					}
				case <-time.After(5 * time.Second):
					t.Fatalf("message %d not delivered", i)
				}
			}
		})
	}

	// In RESP3 a subscribed connection may run ordinary commands, and the
	// messages arrive as push frames between their replies.
	t.Run("resp3-push-between-replies", func(t *testing.T) {
		raw := dialRaw(t, addr)
		raw.send("HELLO 3\r\n")
		first := raw.line()
		if !strings.HasPrefix(first, "%") {
			t.Fatalf("HELLO 3 reply starts %q", first)
		}
		n, _ := strconv.Atoi(first[1:])
		for i := 0; i < 2*n; i++ {
			skipValue(raw)
		}
		raw.send("SUBSCRIBE ch3\r\n")
		if l := raw.line(); l != ">3" {
			t.Fatalf("subscribe reply %q, want a push", l)
		}
		for i := 0; i < 3; i++ {
			skipValue(raw)
		}
		client(t, addr).Publish(ctxT(t), "ch3", "hello")
		if l := raw.line(); l != ">3" {
			t.Fatalf("message %q, want a push", l)
		}
		for _, want := range []string{"$7", "message", "$3", "ch3", "$5", "hello"} {
			if l := raw.line(); l != want {
				t.Fatalf("message field %q, want %q", l, want)
			}
		}
		raw.send("PING\r\n")
		if l := raw.line(); l != "+PONG" {
			t.Fatalf("PING while subscribed in RESP3: %q", l)
		}
	})
}

// skipValue reads one RESP value of a simple shape (no nested aggregates).
func skipValue(c *rawConn) {
	l := c.line()
	switch l[0] {
	case '$', '=', '!':
		if l != "$-1" {
			c.line()
		}
	case '*', '~', '%', '>':
		n, _ := strconv.Atoi(l[1:])
		if l[0] == '%' {
			n *= 2
		}
		for i := 0; i < n; i++ {
			skipValue(c)
		}
	}
}

func TestBlockingCommandDoesNotStallSharedConnection(t *testing.T) {
	// One shared connection: if BLPOP were sent on it, every other client
	// would wait behind it.
	_, _, addr := setup(t, proxy.Config{PoolSize: 1})
	ctx := ctxT(t)
	blocker := client(t, addr)
	popped := make(chan string, 1)
	go func() {
		v, err := blocker.BLPop(ctx, 0, "queue").Result()
		if err != nil {
			popped <- "error: " + err.Error()
			return
		}
		popped <- v[1]
	}()

	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			c := client(t, addr)
			for j := 0; j < 20; j++ {
				key := fmt.Sprintf("bl:%d", i)
				if err := c.Set(ctx, key, j, 0).Err(); err != nil {
					errs <- err
					return
				}
				if v, err := c.Get(ctx, key).Int(); err != nil || v != j {
					errs <- fmt.Errorf("client %d: GET = %d, %v", i, v, err)
					return
				}
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	select {
	case v := <-popped:
		t.Fatalf("BLPOP returned %q before anything was pushed", v)
	default:
	}
	if err := client(t, addr).RPush(ctx, "queue", "job").Err(); err != nil {
		t.Fatal(err)
	}
	select {
	case v := <-popped:
		if v != "job" {
			t.Fatalf("BLPOP got %q", v)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("BLPOP not woken by RPUSH")
	}
}

func TestBlockedClientDisconnectReleasesBackend(t *testing.T) {
	rs, _, addr := setup(t, proxy.Config{})
	ctx := ctxT(t)
	raw := dialRaw(t, addr)
	raw.send("BLPOP gone-queue 0\r\n")
	direct := rs.Client()
	defer direct.Close()
	waitFor(t, func() error {
		n := blockedClients(t, direct)
		if n != 1 {
			return fmt.Errorf("blocked_clients = %d, want 1", n)
		}
		return nil
	})
	raw.nc.Close()
	// Redis learns that nobody waits any more: the proxy closes the
	// backend connection, so a later push is not swallowed by a ghost.
	waitFor(t, func() error {
		if n := blockedClients(t, direct); n != 0 {
			return fmt.Errorf("blocked_clients = %d after the client left", n)
		}
		return nil
	})
	direct.RPush(ctx, "gone-queue", "kept")
	if v := direct.LLen(ctx, "gone-queue").Val(); v != 1 {
		t.Fatalf("pushed value was consumed by a departed client (len %d)", v)
	}
}

func blockedClients(t testing.TB, c *redis.Client) int {
	info, err := c.Info(ctxT(t), "clients").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(l, "blocked_clients:"); ok {
			n, _ := strconv.Atoi(v)
			return n
		}
	}
	t.Fatal("no blocked_clients in INFO")
	return 0
}

func TestSelectIsolation(t *testing.T) {
	_, _, addr := setup(t, proxy.Config{PoolSize: 1})
	ctx := ctxT(t)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for db := 0; db < 8; db++ {
		wg.Add(1)
		go func(db int) {
			defer wg.Done()
			c := client(t, addr, func(o *redis.Options) { o.DB = db; o.PoolSize = 1 })
			for i := 0; i < 200; i++ {
				if err := c.Set(ctx, "shared-key", db, 0).Err(); err != nil {
					errs <- err
					return
				}
				v, err := c.Get(ctx, "shared-key").Int()
				if err != nil || v != db {
					errs <- fmt.Errorf("db %d read %d (%v): SELECT leaked between clients", db, v, err)
					return
				}
			}
		}(db)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	raw := dialRaw(t, addr)
	raw.send("SELECT 99999\r\n")
	if l := raw.line(); l != "-ERR DB index is out of range" {
		t.Fatalf("SELECT 99999: %q", l)
	}
	// Redis 7.0.15's own words, past a 32-bit index and below 0.
	raw.send("SELECT 2147483648\r\nSELECT -1\r\n")
	raw.expect("-ERR value is out of range, value must between -2147483648 and 2147483647", "-ERR DB index is out of range")
	raw.send("SELECT x\r\n")
	if l := raw.line(); l != "-ERR value is not an integer or out of range" {
		t.Fatalf("SELECT x: %q", l)
	}
	raw.send("GET shared-key\r\n")
	if raw.line() != "$1" || raw.line() != "0" {
		t.Fatal("a failed SELECT changed the database")
	}
}

func TestEvalAndFunction(t *testing.T) {
	_, _, addr := setup(t, proxy.Config{})
	ctx := ctxT(t)
	c := client(t, addr)
	v, err := c.Eval(ctx, "redis.call('SET', KEYS[1], ARGV[1]); return redis.call('GET', KEYS[1])", []string{"ev"}, "x").Result()
	if err != nil || v != "x" {
		t.Fatalf("EVAL = %v, %v", v, err)
	}
	sha, err := c.ScriptLoad(ctx, "return ARGV[1]..'!'").Result()
	if err != nil {
		t.Fatal(err)
	}
	if v, err := c.EvalSha(ctx, sha, nil, "hi").Result(); err != nil || v != "hi!" {
		t.Fatalf("EVALSHA = %v, %v", v, err)
	}
	lib := "#!lua name=proxytest\nredis.register_function('echo2', function(keys, args) return args[1]..args[1] end)"
	if err := c.FunctionLoadReplace(ctx, lib).Err(); err != nil {
		t.Fatal(err)
	}
	if v, err := c.FCall(ctx, "echo2", nil, "ab").Result(); err != nil || v != "abab" {
		t.Fatalf("FCALL = %v, %v", v, err)
	}
}

func TestLargeValue(t *testing.T) {
	_, _, addr := setup(t, proxy.Config{})
	ctx := ctxT(t)
	c := client(t, addr, func(o *redis.Options) { o.ReadTimeout = 30 * time.Second; o.WriteTimeout = 30 * time.Second })
	big := bytes.Repeat([]byte("0123456789abcdef"), 4<<20) // 64 MiB
	big[len(big)/2] = 'X'
	if err := c.Set(ctx, "big", big, 0).Err(); err != nil {
		t.Fatal(err)
	}
	got, err := c.Get(ctx, "big").Bytes()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, big) {
		t.Fatalf("64 MiB value came back different (len %d)", len(got))
	}
	if v := c.Ping(ctx).Val(); v != "PONG" {
		t.Fatalf("PING after large value: %q", v)
	}
}

func TestInlineCommands(t *testing.T) {
	_, _, addr := setup(t, proxy.Config{})
	raw := dialRaw(t, addr)
	raw.send("PING\r\n")
	if l := raw.line(); l != "+PONG" {
		t.Fatalf("inline PING: %q", l)
	}
	raw.send("\r\n\r\nSET inl \"two words\"\r\nGET inl\n")
	if l := raw.line(); l != "+OK" {
		t.Fatalf("inline SET: %q", l)
	}
	if raw.line() != "$9" || raw.line() != "two words" {
		t.Fatal("inline GET did not return the quoted value")
	}
	raw.send("ECHO 'it''s'\r\n")
	if l := raw.line(); l != "-ERR Protocol error: unbalanced quotes in request" {
		t.Fatalf("unbalanced quotes: %q", l)
	}
	if !raw.closed() {
		t.Fatal("connection left open after a protocol error")
	}
}

func TestConcurrentClients(t *testing.T) {
	_, srv, addr := setup(t, proxy.Config{})
	ctx := ctxT(t)
	const n = 1000
	var wg sync.WaitGroup
	errs := make(chan error, n)
	start := make(chan struct{})
	clients := make([]*redis.Client, n)
	for i := range clients {
		clients[i] = client(t, addr, func(o *redis.Options) { o.PoolSize = 1 })
	}
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			<-start
			c := clients[i]
			key := "cc:" + strconv.Itoa(i)
			for j := 0; j < 10; j++ {
				if err := c.Set(ctx, key, j, 0).Err(); err != nil {
					errs <- err
					return
				}
				if v, err := c.Get(ctx, key).Int(); err != nil || v != j {
					errs <- fmt.Errorf("client %d: %d %v", i, v, err)
					return
				}
			}
		}(i)
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got := srv.Clients(); got < n/2 {
		t.Fatalf("server counts %d clients, expected about %d connected", got, n)
	}
}
