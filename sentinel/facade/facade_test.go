package facade

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pnats/switchyard/internal/lab/labtest"
	"github.com/pnats/switchyard/tls/tlstest"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"
)

// fakeGroups is a hand-written set of groups whose addresses and health
// a test changes: the facade only ever reads them through the Group funcs.
type fakeGroups struct {
	mu     sync.Mutex
	addr   map[string]string
	read   map[string]string
	down   map[string]bool
	order  []string
	called atomic.Int64
}

func newFakeGroups() *fakeGroups {
	return &fakeGroups{
		addr:  map[string]string{"platform-kv-master": "203.0.113.7:6379", "cache-kv-master": "203.0.113.7:6380"},
		read:  map[string]string{"cache-kv-master": "203.0.113.7:6381"},
		down:  map[string]bool{},
		order: []string{"platform-kv-master", "cache-kv-master"},
	}
}

func (f *fakeGroups) set(name, addr string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.addr[name] = addr
}

func (f *fakeGroups) setDown(name string, down bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.down[name] = down
}

func (f *fakeGroups) groups() []Group {
	f.called.Add(1)
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Group
	for _, n := range f.order {
		out = append(out, Group{
			Name: n,
			Addr: func() string { f.mu.Lock(); defer f.mu.Unlock(); return f.addr[n] },
			ReadAddr: func() string {
				f.mu.Lock()
				defer f.mu.Unlock()
				return f.read[n]
			},
			Up: func() bool { f.mu.Lock(); defer f.mu.Unlock(); return !f.down[n] },
		})
	}
	return out
}

// startFacade serves a facade on a loopback port until the test ends and
// checks that Serve then returns ErrServerClosed.
func startFacade(t *testing.T, cfg Config) (*Server, string) {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = zaptest.NewLogger(t)
	}
	s := New(cfg)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(l) }()
	t.Cleanup(func() {
		s.Close()
		select {
		case err := <-done:
			if !errors.Is(err, ErrServerClosed) {
				t.Errorf("Serve returned %v, want ErrServerClosed", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Serve did not return after Close")
		}
	})
	return s, l.Addr().String()
}

func TestReplies(t *testing.T) {
	f := newFakeGroups()
	f.setDown("cache-kv-master", false)
	s, addr := startFacade(t, Config{Groups: f.groups, Announce: "203.0.113.7:26379"})
	tests := []struct {
		name  string
		hello string // "3" to switch to RESP3 first
		cmd   []string
		want  string
	}{
		{"master address", "", []string{"SENTINEL", "get-master-addr-by-name", "platform-kv-master"}, "*2\r\n$11\r\n203.0.113.7\r\n$4\r\n6379\r\n"},
		{"subcommand case", "", []string{"sentinel", "GET-MASTER-ADDR-BY-NAME", "cache-kv-master"}, "*2\r\n$11\r\n203.0.113.7\r\n$4\r\n6380\r\n"},
		{"unknown master address RESP2", "", []string{"SENTINEL", "get-master-addr-by-name", "nope"}, "*-1\r\n"},
		{"unknown master address RESP3", "3", []string{"SENTINEL", "get-master-addr-by-name", "nope"}, "_\r\n"},
		{"unknown master", "", []string{"SENTINEL", "master", "nope"}, "-ERR No such master with that name\r\n"},
		{"unknown master replicas", "", []string{"SENTINEL", "replicas", "nope"}, "-ERR No such master with that name\r\n"},
		{"unknown master slaves", "", []string{"SENTINEL", "slaves", "nope"}, "-ERR No such master with that name\r\n"},
		{"unknown master sentinels", "", []string{"SENTINEL", "sentinels", "nope"}, "-ERR No such master with that name\r\n"},
		{"unknown master ckquorum", "", []string{"SENTINEL", "ckquorum", "nope"}, "-ERR No such master with that name\r\n"},
		{"no replicas", "", []string{"SENTINEL", "replicas", "platform-kv-master"}, "*0\r\n"},
		{"sentinels", "", []string{"SENTINEL", "sentinels", "platform-kv-master"}, "*0\r\n"},
		{"ckquorum", "", []string{"SENTINEL", "ckquorum", "platform-kv-master"}, "+OK 1 usable Sentinels. Quorum and failover authorization can be reached\r\n"},
		{"myid", "", []string{"SENTINEL", "myid"}, "$40\r\n" + s.myid + "\r\n"},
		{"unknown subcommand", "", []string{"SENTINEL", "foo"}, "-ERR unknown subcommand 'foo'. Try SENTINEL HELP.\r\n"},
		{"no subcommand", "", []string{"SENTINEL"}, "-ERR wrong number of arguments for 'sentinel' command\r\n"},
		{"subcommand arity", "", []string{"SENTINEL", "master"}, "-ERR wrong number of arguments for 'sentinel|master' command\r\n"},
		{"masters arity", "", []string{"SENTINEL", "masters", "x"}, "-ERR wrong number of arguments for 'sentinel|masters' command\r\n"},
		{"failover refused", "", []string{"SENTINEL", "failover", "platform-kv-master"}, "-ERR switchyard: SENTINEL FAILOVER is not supported by the Sentinel facade; send it to the real Sentinels\r\n"},
		{"role", "", []string{"ROLE"}, "*2\r\n$8\r\nsentinel\r\n*2\r\n$18\r\nplatform-kv-master\r\n$15\r\ncache-kv-master\r\n"},
		{"role arity", "", []string{"ROLE", "x"}, "-ERR wrong number of arguments for 'role' command\r\n"},
		{"ping", "", []string{"PING"}, "+PONG\r\n"},
		{"ping message", "", []string{"PING", "hi"}, "$2\r\nhi\r\n"},
		{"ping arity", "", []string{"PING", "a", "b"}, "-ERR wrong number of arguments for 'ping' command\r\n"},
		{"unknown command", "", []string{"GET", "x"}, "-ERR unknown command 'GET', with args beginning with: 'x' \r\n"},
		{"unknown command no args", "", []string{"FOO"}, "-ERR unknown command 'FOO', with args beginning with: \r\n"},
		{"unknown command newline", "", []string{"FOO", "a\r\nb"}, "-ERR unknown command 'FOO', with args beginning with: 'a  b' \r\n"},
		{"getname unset RESP2", "", []string{"CLIENT", "GETNAME"}, "$-1\r\n"},
		{"getname unset RESP3", "3", []string{"CLIENT", "GETNAME"}, "_\r\n"},
		{"setname", "", []string{"CLIENT", "SETNAME", "app-1"}, "+OK\r\n"},
		{"setname space", "", []string{"CLIENT", "SETNAME", "a b"}, "-ERR Client names cannot contain spaces, newlines or special characters.\r\n"},
		{"setname arity", "", []string{"CLIENT", "SETNAME"}, "-ERR wrong number of arguments for 'client|setname' command\r\n"},
		{"setinfo", "", []string{"CLIENT", "SETINFO", "LIB-NAME", "go-redis"}, "+OK\r\n"},
		{"client unknown", "", []string{"CLIENT", "FOO"}, "-ERR unknown subcommand 'FOO'. Try CLIENT HELP.\r\n"},
		{"client unanswered", "", []string{"CLIENT", "LIST"}, "-ERR switchyard: CLIENT LIST is not supported by the Sentinel facade\r\n"},
		{"client unanswered arity", "", []string{"CLIENT", "KILL"}, "-ERR wrong number of arguments for 'client|kill' command\r\n"},
		{"auth without password", "", []string{"AUTH", "x"}, "-ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?\r\n"},
		{"auth other user", "", []string{"AUTH", "a", "b"}, "-WRONGPASS invalid username-password pair or user is disabled.\r\n"},
		{"auth default user", "", []string{"AUTH", "default", "anything"}, "+OK\r\n"},
		{"hello bad version", "", []string{"HELLO", "x"}, "-ERR Protocol version is not an integer or out of range\r\n"},
		{"hello 4", "", []string{"HELLO", "4"}, "-NOPROTO unsupported protocol version\r\n"},
		{"hello bad option", "", []string{"HELLO", "3", "SETNAME"}, "-ERR Syntax error in HELLO option 'SETNAME'\r\n"},
		{"info unknown section", "", []string{"INFO", "foo"}, "$0\r\n\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dialRaw(t, addr)
			if tt.hello != "" {
				c.do("HELLO", tt.hello)
			}
			if got := c.do(tt.cmd...); got != tt.want {
				t.Fatalf("%v:\n got %q\nwant %q", tt.cmd, got, tt.want)
			}
		})
	}
}

// TestEntries checks the master and replica entries field by field, in
// both protocols and with the group up and down.
func TestEntries(t *testing.T) {
	f := newFakeGroups()
	_, addr := startFacade(t, Config{Groups: f.groups})
	for _, proto := range []string{"2", "3"} {
		c := dialRaw(t, addr)
		c.do("HELLO", proto)
		mapType := byte('*')
		if proto == "3" {
			mapType = '%'
		}
		v, err := parse(c.do("SENTINEL", "master", "cache-kv-master"))
		if err != nil || v.kind != mapType {
			t.Fatalf("RESP%s master: %v, type %q", proto, err, v.kind)
		}
		keys, m := v.pairs()
		if len(keys) != 20 {
			t.Fatalf("RESP%s master: %d fields, want 20: %v", proto, len(keys), keys)
		}
		for k, want := range map[string]string{"name": "cache-kv-master", "ip": "203.0.113.7", "port": "6380", "flags": "master", "num-slaves": "1", "num-other-sentinels": "0", "quorum": "1"} {
			if m[k].str != want || m[k].kind != '$' {
				t.Errorf("RESP%s master %s = %q (%q), want bulk %q", proto, k, m[k].str, m[k].kind, want)
			}
		}
		v, _ = parse(c.do("SENTINEL", "slaves", "cache-kv-master"))
		if v.kind != '*' || len(v.elems) != 1 || v.elems[0].kind != mapType {
			t.Fatalf("RESP%s slaves: %+v", proto, v)
		}
		keys, m = v.elems[0].pairs()
		if len(keys) != 21 || m["ip"].str != "203.0.113.7" || m["port"].str != "6381" || m["flags"].str != "slave" ||
			m["master-host"].str != "203.0.113.7" || m["master-port"].str != "6380" || m["master-link-status"].str != "ok" {
			t.Fatalf("RESP%s replica entry: %v", proto, m)
		}
		v, _ = parse(c.do("SENTINEL", "masters"))
		if len(v.elems) != 2 || v.elems[0].elems[1].str != "platform-kv-master" || v.elems[1].elems[1].str != "cache-kv-master" {
			t.Fatalf("RESP%s masters: %+v", proto, v)
		}
	}

	f.setDown("platform-kv-master", true)
	c := dialRaw(t, addr)
	v, _ := parse(c.do("SENTINEL", "master", "platform-kv-master"))
	if _, m := v.pairs(); m["flags"].str != "s_down,o_down,master" {
		t.Fatalf("down master flags %q", m["flags"].str)
	}
	if got := c.do("SENTINEL", "ckquorum", "platform-kv-master"); !strings.HasPrefix(got, "-NOQUORUM ") {
		t.Fatalf("ckquorum of a group without a verified master: %q", got)
	}
	if got := c.do("INFO", "sentinel"); !strings.Contains(got, "master0:name=platform-kv-master,status=odown,address=203.0.113.7:6379,slaves=0,sentinels=1\r\n") ||
		!strings.Contains(got, "master1:name=cache-kv-master,status=ok,address=203.0.113.7:6380,slaves=1,sentinels=1\r\n") {
		t.Fatalf("INFO sentinel: %q", got)
	}
}

func TestHello(t *testing.T) {
	_, addr := startFacade(t, Config{Groups: newFakeGroups().groups})
	c := dialRaw(t, addr)
	v, err := parse(c.do("HELLO", "3", "SETNAME", "svc"))
	if err != nil || v.kind != '%' {
		t.Fatalf("HELLO 3: %v %q", err, v.kind)
	}
	keys, m := v.pairs()
	if strings.Join(keys, ",") != "server,version,proto,id,mode,modules" || m["proto"].str != "3" || m["mode"].str != "sentinel" || m["id"].kind != ':' {
		t.Fatalf("HELLO 3 reply: %v %v", keys, m)
	}
	if got := c.do("CLIENT", "GETNAME"); got != "$3\r\nsvc\r\n" {
		t.Fatalf("name after HELLO SETNAME: %q", got)
	}
	// HELLO without a version reports the current protocol.
	if v, _ := parse(c.do("HELLO")); v.kind != '%' {
		t.Fatalf("HELLO keeps RESP3: %q", v.kind)
	}
	if v, _ := parse(c.do("HELLO", "2")); v.kind != '*' || len(v.elems) != 12 {
		t.Fatalf("HELLO 2: %+v", v)
	}
}

func TestAuth(t *testing.T) {
	_, addr := startFacade(t, Config{Groups: newFakeGroups().groups, Password: "s3cret"})
	tests := []struct {
		name string
		cmds [][]string
		want []string
	}{
		{"commands need auth", [][]string{{"PING"}, {"SENTINEL", "masters"}, {"SUBSCRIBE", "x"}, {"CLIENT", "SETNAME", "a"}},
			[]string{"-NOAUTH Authentication required.\r\n", "-NOAUTH Authentication required.\r\n", "-NOAUTH Authentication required.\r\n", "-NOAUTH Authentication required.\r\n"}},
		{"hello needs auth", [][]string{{"HELLO", "3"}},
			[]string{"-" + errHelloNoAuth + "\r\n"}},
		{"wrong password", [][]string{{"AUTH", "nope"}, {"AUTH", "default", "nope"}, {"HELLO", "2", "AUTH", "default", "nope"}, {"PING"}},
			[]string{"-" + errWrongPass + "\r\n", "-" + errWrongPass + "\r\n", "-" + errWrongPass + "\r\n", "-NOAUTH Authentication required.\r\n"}},
		{"auth", [][]string{{"AUTH", "s3cret"}, {"PING"}}, []string{"+OK\r\n", "+PONG\r\n"}},
		{"auth default user", [][]string{{"AUTH", "default", "s3cret"}, {"PING"}}, []string{"+OK\r\n", "+PONG\r\n"}},
		{"hello auth", [][]string{{"HELLO", "3", "AUTH", "default", "s3cret"}, {"PING"}}, []string{"", "+PONG\r\n"}},
		{"quit without auth", [][]string{{"QUIT"}}, []string{"+OK\r\n"}},
		// As Redis: these errors come before the request to authenticate.
		{"unknown command before auth", [][]string{{"NOSUCH", "a"}, {"SENTINEL"}, {"PING"}},
			[]string{"-ERR unknown command 'NOSUCH', with args beginning with: 'a' \r\n", "-ERR wrong number of arguments for 'sentinel' command\r\n", "-NOAUTH Authentication required.\r\n"}},
		{"unknown subcommand before auth", [][]string{{"SENTINEL", "NOSUCH"}, {"SENTINEL", "GET-MASTER-ADDR-BY-NAME"}, {"SENTINEL", "RESET", "x"}, {"SENTINEL", "MYID"}},
			[]string{"-ERR unknown subcommand 'NOSUCH'. Try SENTINEL HELP.\r\n", "-ERR wrong number of arguments for 'sentinel|get-master-addr-by-name' command\r\n",
				"-NOAUTH Authentication required.\r\n", "-NOAUTH Authentication required.\r\n"}},
		// Checked against redis-sentinel 7.0.15 with requirepass.
		{"client subcommand before auth", [][]string{{"CLIENT", "NOSUCH"}, {"CLIENT", "SETNAME"}, {"CLIENT", "ID", "x"}, {"CLIENT", "KILL"}, {"CLIENT", "LIST"}, {"CLIENT", "SETNAME", "a"}},
			[]string{"-ERR unknown subcommand 'NOSUCH'. Try CLIENT HELP.\r\n", "-ERR wrong number of arguments for 'client|setname' command\r\n",
				"-ERR wrong number of arguments for 'client|id' command\r\n", "-ERR wrong number of arguments for 'client|kill' command\r\n",
				"-NOAUTH Authentication required.\r\n", "-NOAUTH Authentication required.\r\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dialRaw(t, addr)
			for i, cmd := range tt.cmds {
				got := c.do(cmd...)
				if tt.want[i] != "" && got != tt.want[i] {
					t.Fatalf("%v: got %q, want %q", cmd, got, tt.want[i])
				}
			}
		})
	}
}

func TestQuitCloses(t *testing.T) {
	_, addr := startFacade(t, Config{Groups: newFakeGroups().groups})
	c := dialRaw(t, addr)
	if got := c.do("QUIT"); got != "+OK\r\n" {
		t.Fatalf("QUIT: %q", got)
	}
	c.c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.br.ReadByte(); err != io.EOF {
		t.Fatalf("after QUIT: %v, want EOF", err)
	}
}

func TestPipelineAndInline(t *testing.T) {
	_, addr := startFacade(t, Config{Groups: newFakeGroups().groups})
	c := dialRaw(t, addr)
	c.c.Write(append(append(encode("PING"), "ping hello\r\n"...), encode("SENTINEL", "get-master-addr-by-name", "nope")...))
	for _, want := range []string{"+PONG\r\n", "$5\r\nhello\r\n", "*-1\r\n"} {
		if got := c.read(); got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
}

// TestSubscribe covers the subscription replies of both protocols and the
// subscribed-mode restrictions of RESP2.
func TestSubscribe(t *testing.T) {
	_, addr := startFacade(t, Config{Groups: newFakeGroups().groups})
	tests := []struct {
		name  string
		hello string
		steps [][2]string // command (space-separated), wanted raw replies concatenated
	}{
		{"RESP2", "2", [][2]string{
			{"SUBSCRIBE +switch-master +sdown", "*3\r\n$9\r\nsubscribe\r\n$14\r\n+switch-master\r\n:1\r\n*3\r\n$9\r\nsubscribe\r\n$6\r\n+sdown\r\n:2\r\n"},
			{"PSUBSCRIBE *", "*3\r\n$10\r\npsubscribe\r\n$1\r\n*\r\n:3\r\n"},
			{"PING", "*2\r\n$4\r\npong\r\n$0\r\n\r\n"},
			{"SENTINEL myid", "-ERR Can't execute 'sentinel|myid': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context\r\n"},
			{"GET x", "-ERR unknown command 'GET', with args beginning with: 'x' \r\n"},
			{"UNSUBSCRIBE nothere", "*3\r\n$11\r\nunsubscribe\r\n$7\r\nnothere\r\n:3\r\n"},
			{"UNSUBSCRIBE", "*3\r\n$11\r\nunsubscribe\r\n$14\r\n+switch-master\r\n:2\r\n*3\r\n$11\r\nunsubscribe\r\n$6\r\n+sdown\r\n:1\r\n"},
			{"PUNSUBSCRIBE", "*3\r\n$12\r\npunsubscribe\r\n$1\r\n*\r\n:0\r\n"},
			{"UNSUBSCRIBE", "*3\r\n$11\r\nunsubscribe\r\n$-1\r\n:0\r\n"},
			{"PING", "+PONG\r\n"},
		}},
		{"RESP3", "3", [][2]string{
			{"SUBSCRIBE +switch-master", ">3\r\n$9\r\nsubscribe\r\n$14\r\n+switch-master\r\n:1\r\n"},
			{"PING", "+PONG\r\n"},
			{"SENTINEL get-master-addr-by-name nope", "_\r\n"},
			{"UNSUBSCRIBE", ">3\r\n$11\r\nunsubscribe\r\n$14\r\n+switch-master\r\n:0\r\n"},
			{"UNSUBSCRIBE", ">3\r\n$11\r\nunsubscribe\r\n_\r\n:0\r\n"},
		}},
		{"arity", "2", [][2]string{
			{"PSUBSCRIBE", "-ERR wrong number of arguments for 'psubscribe' command\r\n"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dialRaw(t, addr)
			c.do("HELLO", tt.hello)
			for _, st := range tt.steps {
				c.send(strings.Fields(st[0])...)
				var got string
				for len(got) < len(st[1]) {
					got += c.read()
				}
				if got != st[1] {
					t.Fatalf("%s:\n got %q\nwant %q", st[0], got, st[1])
				}
			}
		})
	}
}

// TestCheckPublishesSwitch: a changed advertised address reaches channel
// and pattern subscribers in their protocol; an unchanged one publishes
// nothing.
func TestCheckPublishesSwitch(t *testing.T) {
	f := newFakeGroups()
	s, addr := startFacade(t, Config{Groups: f.groups})
	ch2 := dialRaw(t, addr)
	ch2.do("SUBSCRIBE", SwitchChannel)
	ch3 := dialRaw(t, addr)
	ch3.do("HELLO", "3")
	ch3.do("SUBSCRIBE", SwitchChannel)
	pat := dialRaw(t, addr)
	pat.do("PSUBSCRIBE", "*")
	other := dialRaw(t, addr)
	other.do("SUBSCRIBE", "+sdown")

	s.Check() // nothing changed: nothing published
	f.set("platform-kv-master", "198.51.100.1:7000")
	s.Check()
	msg := "platform-kv-master 203.0.113.7 6379 198.51.100.1 7000"
	if got, want := ch2.read(), "*3\r\n$7\r\nmessage\r\n$14\r\n+switch-master\r\n$53\r\n"+msg+"\r\n"; got != want {
		t.Fatalf("RESP2 subscriber: got %q, want %q", got, want)
	}
	if got, want := ch3.read(), ">3\r\n$7\r\nmessage\r\n$14\r\n+switch-master\r\n$53\r\n"+msg+"\r\n"; got != want {
		t.Fatalf("RESP3 subscriber: got %q, want %q", got, want)
	}
	if got, want := pat.read(), "*4\r\n$8\r\npmessage\r\n$1\r\n*\r\n$14\r\n+switch-master\r\n$53\r\n"+msg+"\r\n"; got != want {
		t.Fatalf("pattern subscriber: got %q, want %q", got, want)
	}
	// Nothing was queued for the unrelated channel, nor before the change:
	// the next reply on each connection is the PING's.
	for _, c := range []*rawConn{ch2, other} {
		if got := c.do("PING"); got != "*2\r\n$4\r\npong\r\n$0\r\n\r\n" {
			t.Fatalf("next reply %q, want the PING's", got)
		}
	}
	v, _ := parse(dialRaw(t, addr).do("SENTINEL", "master", "platform-kv-master"))
	if _, m := v.pairs(); m["config-epoch"].str != "1" || m["port"].str != "7000" {
		t.Fatalf("after the switch: %v", m)
	}
}

func TestCloseEndsClients(t *testing.T) {
	s := New(Config{Groups: newFakeGroups().groups, Logger: zaptest.NewLogger(t)})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(l) }()
	sub := dialRaw(t, l.Addr().String())
	sub.do("SUBSCRIBE", SwitchChannel)
	idle := dialRaw(t, l.Addr().String())
	idle.do("PING")
	s.Close()
	if err := <-done; !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve: %v", err)
	}
	for _, c := range []*rawConn{sub, idle} {
		c.c.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, err := c.br.ReadByte(); err == nil {
			t.Fatal("connection still open after Close")
		}
	}
	if err := s.Serve(l); !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve after Close: %v", err)
	}
}

func TestRequestTooLarge(t *testing.T) {
	_, addr := startFacade(t, Config{Groups: newFakeGroups().groups, MaxRequestBytes: 1024})
	c := dialRaw(t, addr)
	c.c.Write([]byte("*2\r\n$4\r\nPING\r\n$100000\r\n"))
	c.c.Write(make([]byte, 4096))
	c.c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.ReadAll(c.br); err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatal("connection not closed after an oversized request")
		}
	}
}

// TestConcurrentCheck runs publications against clients that subscribe,
// query and leave, for the race detector.
func TestConcurrentCheck(t *testing.T) {
	f := newFakeGroups()
	s, addr := startFacade(t, Config{Groups: f.groups})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				c, err := net.Dial("tcp", addr)
				if err != nil {
					return
				}
				c.Write(append(encode("SUBSCRIBE", SwitchChannel), encode("PING")...))
				c.Write(encode("UNSUBSCRIBE"))
				c.Write(encode("SENTINEL", "masters"))
				c.Close()
			}
		}()
	}
	for i := 0; i < 200; i++ {
		f.set("platform-kv-master", net.JoinHostPort("203.0.113.7", []string{"6379", "7379"}[i%2]))
		s.Check()
	}
	close(stop)
	wg.Wait()
}

// TestManySubscriptions: a client subscribing to many channels in one
// command costs a set insert each. Each was a scan of those before it:
// an audit tied up a CPU for 19 s with one SUBSCRIBE of 90,000 names,
// slowing the data ports beside the facade. Unsubscribing them all was
// quadratic the same way.
func TestManySubscriptions(t *testing.T) {
	_, addr := startFacade(t, Config{Groups: newFakeGroups().groups})
	const n = 60000
	args := []string{"SUBSCRIBE"}
	for i := range n {
		args = append(args, fmt.Sprintf("c%05d", i))
	}
	c := dialRaw(t, addr)
	c.send(args...)
	c.send("UNSUBSCRIBE")
	// A quadratic facade takes tens of seconds here (about 17 s for
	// 60,000 on the audit's machine); a set takes well under one.
	deadline := time.Now().Add(10 * time.Second)
	c.c.SetReadDeadline(deadline)
	for i := range 2 * n {
		s, err := readRaw(c.br)
		if err != nil {
			t.Fatalf("ack %d of %d: %v (the deadline is %v)", i, 2*n, err, 10*time.Second)
		}
		kind, want := "subscribe", i+1
		if i >= n {
			kind, want = "unsubscribe", 2*n-i-1
		}
		name := fmt.Sprintf("c%05d", i%n)
		if s != fmt.Sprintf("*3\r\n$%d\r\n%s\r\n$6\r\n%s\r\n:%d\r\n", len(kind), kind, name, want) {
			t.Fatalf("ack %d: %q", i, s)
		}
	}
}

// TestPublishDoesNotWaitForClients: Check returns at once, and reaches a
// subscriber, while another client of the facade is stuck in a write to
// it (it sent a pipeline of INFO and reads nothing). Publishing used to
// take each client's lock in turn and write under it, so such clients
// held up the binary's main loop (reload, SIGTERM) for WriteTimeout each.
func TestPublishDoesNotWaitForClients(t *testing.T) {
	f := newFakeGroups()
	s, addr := startFacade(t, Config{Groups: f.groups, WriteTimeout: time.Minute})
	sub := dialRaw(t, addr)
	sub.do("SUBSCRIBE", SwitchChannel)
	stuck := dialRaw(t, addr)
	stuck.c.(*net.TCPConn).SetReadBuffer(4096)
	var pipeline []byte
	for range 100000 {
		pipeline = append(pipeline, "INFO\r\n"...)
	}
	go stuck.c.Write(pipeline[:len(pipeline)/2]) // within MaxRequestBytes
	// Wait until the facade is blocked writing INFO replies to it: they
	// fill the socket, and its serve goroutine holds its lock through
	// the write (locked at every look for a while, not between two
	// pipelines).
	var sc *client
	held := 0
	for start := time.Now(); held < 5; time.Sleep(10 * time.Millisecond) {
		if time.Since(start) > 10*time.Second {
			t.Fatal("the facade never blocked writing to a client that does not read")
		}
		s.mu.Lock()
		for c := range s.clients {
			if c.nc.RemoteAddr().String() == stuck.c.LocalAddr().String() {
				sc = c
			}
		}
		s.mu.Unlock()
		switch {
		case sc == nil:
		case sc.mu.TryLock():
			sc.mu.Unlock()
			held = 0
		default:
			held++
		}
	}

	f.set("platform-kv-master", "198.51.100.1:7000")
	done := make(chan struct{})
	go func() { s.Check(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Check waited for a client that does not read")
	}
	if got := sub.read(); !strings.Contains(got, "platform-kv-master 203.0.113.7 6379 198.51.100.1 7000") {
		t.Fatalf("subscriber got %q", got)
	}
}

// TestTLSHandshakeTimeout: a client of the facade's TLS listener that
// never sends a ClientHello is closed after HandshakeTimeout, not kept
// with its goroutine for as long as it stays connected.
func TestTLSHandshakeTimeout(t *testing.T) {
	ca := tlstest.NewCA(t, "test CA")
	certPEM, keyPEM := ca.Issue(t, "facade", []string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)}, false)
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	s := New(Config{Groups: newFakeGroups().groups, HandshakeTimeout: 200 * time.Millisecond, Logger: zaptest.NewLogger(t)})
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(l)
	t.Cleanup(func() { s.Close() })

	silent, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	silent.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.Copy(io.Discard, silent); err != nil {
		t.Fatalf("a client that never started its handshake was not closed: %v", err)
	}

	// A real TLS client still gets answers.
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.CertPEM)
	tc, err := tls.Dial("tcp", l.Addr().String(), &tls.Config{RootCAs: pool, ServerName: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	tc.SetDeadline(time.Now().Add(5 * time.Second))
	tc.Write([]byte("PING\r\n"))
	b := make([]byte, 7)
	if _, err := io.ReadFull(tc, b); err != nil || string(b) != "+PONG\r\n" {
		t.Fatalf("TLS client: %q, %v", b, err)
	}
}

// Clients over max_clients are told so and closed, as Sentinel does; the
// others keep being served, and a place that frees up is taken again. A
// storm of refusals is logged at most once a second, and the lines
// account for every refusal, the end of the storm included.
func TestMaxClients(t *testing.T) {
	core, logs := observer.New(zap.WarnLevel)
	_, addr := startFacade(t, Config{Groups: newFakeGroups().groups, MaxClients: 2, Logger: zap.New(core)})
	a, b := dialRaw(t, addr), dialRaw(t, addr)
	for _, c := range []*rawConn{a, b} {
		if got := c.do("PING"); got != "+PONG\r\n" {
			t.Fatalf("PING: %q", got)
		}
	}
	over := dialRaw(t, addr)
	over.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if got, err := io.ReadAll(over.br); string(got) != "-ERR max number of clients reached\r\n" || err != nil {
		t.Fatalf("client over the limit read %q (%v)", got, err)
	}
	if got := a.do("PING"); got != "+PONG\r\n" {
		t.Fatalf("PING after a refusal: %q", got)
	}
	for range 9 {
		c := dialRaw(t, addr)
		c.c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if got, _ := io.ReadAll(c.br); string(got) != "-ERR max number of clients reached\r\n" {
			t.Fatalf("client over the limit read %q", got)
		}
	}
	labtest.Eventually(t, 5*time.Second, func() error {
		var n int64
		lines := logs.FilterMessage("facade: client refused: max clients reached").All()
		for _, l := range lines {
			n += l.ContextMap()["refused_since_last_line"].(int64)
		}
		if n != 10 {
			return fmt.Errorf("%d log lines count %d refusals, want 10", len(lines), n)
		}
		return nil
	})
	b.c.Close()
	labtest.Eventually(t, 5*time.Second, func() error {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(time.Second))
		c.Write(encode("PING"))
		got, err := readRaw(bufio.NewReader(c))
		if got != "+PONG\r\n" {
			return fmt.Errorf("PING once a place is free: %q (%v)", got, err)
		}
		return nil
	})
}
