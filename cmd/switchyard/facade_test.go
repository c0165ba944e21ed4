package main

import (
	"context"
	stdtls "crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pnats/switchyard/internal/lab"
	"github.com/pnats/switchyard/internal/lab/labtest"
	"github.com/pnats/switchyard/tls/tlstest"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap/zaptest"
)

// setFacadeEnv is setEnv that also clears the facade's variables.
func TestFacadeConfigErrors(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	os.WriteFile(pw, []byte("x\n"), 0o600)
	sentinelGroup := "  - {name: a, listen: '127.0.0.1:6379', sentinel: {master_name: a-master, addrs: ['s:26379']}}\n"
	tests := []struct {
		name string
		file string
		env  map[string]string
		want []string
	}{
		{name: "no listen", file: "sentinel_facade: {announce: '10.0.0.1:26379'}\ngroups:\n" + sentinelGroup,
			want: []string{"sentinel_facade.listen is empty"}},
		{name: "bad listen", file: "sentinel_facade: {listen: 'nope'}\ngroups:\n" + sentinelGroup,
			want: []string{"sentinel_facade.listen=\"nope\"", "host:port"}},
		{name: "listen taken by a group", file: "sentinel_facade: {listen: '127.0.0.1:6379'}\ngroups:\n" + sentinelGroup,
			want: []string{"sentinel_facade.listen=\"127.0.0.1:6379\"", "groups[0] (a)"}},
		{name: "unspecified announce", file: "sentinel_facade: {listen: ':26379', announce: '0.0.0.0:26379'}\ngroups:\n" + sentinelGroup,
			want: []string{"sentinel_facade.announce=\"0.0.0.0:26379\"", "cannot dial"}},
		{name: "announce port 0", file: "sentinel_facade: {listen: ':26379'}\ngroups:\n  - {name: a, listen: ':1', upstream: 'x:1', facade_name: m, announce: 'h:0'}\n",
			want: []string{"groups[0] (a).announce=\"h:0\"", "1-65535"}},
		{name: "bad group announce", file: "groups:\n  - {name: a, listen: ':1', upstream: 'x:1', announce: 'nonsense'}\n",
			want: []string{"groups[0] (a).announce=\"nonsense\"", "host:port"}},
		{name: "facade_name on a Sentinel group", file: "groups:\n  - {name: a, listen: ':1', facade_name: m, sentinel: {master_name: a-master, addrs: ['s:1']}}\n",
			want: []string{"groups[0] (a).facade_name=\"m\"", "sentinel.master_name (\"a-master\")"}},
		{name: "duplicate names", file: "sentinel_facade: {listen: ':26379'}\ngroups:\n" + sentinelGroup + "  - {name: b, listen: ':2', upstream: 'x:1', facade_name: a-master}\n",
			want: []string{"groups[1] (b)", "\"a-master\" already used by group \"a\""}},
		{name: "nothing to present", file: "sentinel_facade: {listen: ':26379'}\ngroups:\n  - {name: a, listen: ':1', upstream: 'x:1'}\n",
			want: []string{"sentinel_facade: no group to present", "facade_name"}},
		{name: "max_clients below -1", file: "sentinel_facade: {listen: ':26379', max_clients: -2}\ngroups:\n" + sentinelGroup,
			want: []string{"sentinel_facade.max_clients=-2", "-1 for no limit"}},
		{name: "password and file", file: "sentinel_facade: {listen: ':26379', password: p, password_file: '" + pw + "'}\ngroups:\n" + sentinelGroup,
			want: []string{"sentinel_facade: set password or password_file, not both"}},
		{name: "announce without a plain listen", file: "sentinel_facade: {announce: '10.0.0.1:26379', tls: {listen: ':26380', cert_file: c, key_file: k}}\ngroups:\n" + sentinelGroup,
			want: []string{"sentinel_facade.announce=\"10.0.0.1:26379\"", "tls.announce"}},
		{name: "tls without a certificate", file: "sentinel_facade: {tls: {listen: ':26380'}}\ngroups:\n" + sentinelGroup,
			want: []string{"sentinel_facade.tls: cert_file and key_file are required"}},
		{name: "tls listen taken by a read port", file: "sentinel_facade: {listen: ':26379', tls: {listen: '127.0.0.1:7000', cert_file: c, key_file: k}}\ngroups:\n" +
			"  - {name: a, listen: '127.0.0.1:6379', read_listen: '127.0.0.1:7000', sentinel: {master_name: a-master, addrs: ['s:26379']}}\n",
			want: []string{"sentinel_facade.tls.listen=\"127.0.0.1:7000\"", "groups[0] (a)"}},
		{name: "tls listen taken by a group's tls", file: "sentinel_facade: {tls: {listen: '127.0.0.1:7000', cert_file: c, key_file: k}}\ngroups:\n" +
			"  - {name: a, tls: {listen: '127.0.0.1:7000', cert_file: c, key_file: k}, sentinel: {master_name: a-master, addrs: ['s:26379']}}\n",
			want: []string{"sentinel_facade.tls.listen=\"127.0.0.1:7000\"", "groups[0] (a)"}},
		{name: "tls listen same as listen", file: "sentinel_facade: {listen: ':26379', tls: {listen: ':26379', cert_file: c, key_file: k}}\ngroups:\n" + sentinelGroup,
			want: []string{"sentinel_facade.tls.listen=\":26379\"", "sentinel_facade.listen"}},
		{name: "tls missing certificate file", file: "sentinel_facade: {tls: {listen: ':26380', cert_file: '" + filepath.Join(dir, "none.crt") + "', key_file: '" + filepath.Join(dir, "none.key") + "'}}\ngroups:\n" + sentinelGroup,
			want: []string{"sentinel_facade.tls", "none.crt"}},
		{name: "bad tls announce", file: "sentinel_facade: {tls: {listen: ':26380', cert_file: c, key_file: k, announce: '0.0.0.0:26380'}}\ngroups:\n" + sentinelGroup,
			want: []string{"sentinel_facade.tls.announce=\"0.0.0.0:26380\"", "cannot dial"}},
		{name: "bad group tls announce", file: "groups:\n  - {name: a, listen: ':1', upstream: 'x:1', tls: {listen: ':2', cert_file: c, key_file: k, announce: 'h'}}\n",
			want: []string{"groups[0] (a).tls.announce=\"h\"", "host:port"}},
		{name: "env facade for a fixed upstream needs a name", env: map[string]string{"REDIS_HOST": "h", "SWITCHYARD_SENTINEL_LISTEN": "127.0.0.1:26379"},
			want: []string{"sentinel_facade: no group to present"}},
		{name: "env bad announce", env: map[string]string{"REDIS_HOST": "h", "SWITCHYARD_ANNOUNCE": "::"},
			want: []string{"announce=\"::\""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			setEnv(t, tt.env)
			loadFails(t, tt.file, tt.want)
		})
	}
}

func TestFacadeEnv(t *testing.T) {
	tests := []struct {
		name                     string
		env                      map[string]string
		facadeName, listen, anno string
	}{
		{"sentinel", map[string]string{
			"REDIS_SENTINEL_HOSTS": "s:26379", "REDIS_SENTINEL_MASTER": "platform-kv-master",
			"SWITCHYARD_SENTINEL_LISTEN": "0.0.0.0:26379", "SWITCHYARD_ANNOUNCE": "203.0.113.7:6379",
		}, "platform-kv-master", "0.0.0.0:26379", "203.0.113.7:6379"},
		{"fixed upstream named by REDIS_SENTINEL_MASTER", map[string]string{
			"REDIS_HOST": "10.0.0.5", "REDIS_SENTINEL_MASTER": "kv-master", "SWITCHYARD_SENTINEL_LISTEN": "127.0.0.1:26379",
		}, "kv-master", "127.0.0.1:26379", ""},
		{"off", map[string]string{"REDIS_SENTINEL_HOSTS": "s:26379", "REDIS_SENTINEL_MASTER": "m"}, "m", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			setEnv(t, tt.env)
			c, err := loadConfig("")
			if err != nil {
				t.Fatal(err)
			}
			g := c.Groups[0]
			if g.facadeName() != tt.facadeName || g.Announce != tt.anno {
				t.Fatalf("facade name %q announce %q", g.facadeName(), g.Announce)
			}
			if (c.SentinelFacade == nil) != (tt.listen == "") || c.SentinelFacade != nil && c.SentinelFacade.Listen != tt.listen {
				t.Fatalf("sentinel_facade %+v, want listen %q", c.SentinelFacade, tt.listen)
			}
		})
	}
	t.Run("REDIS_SENTINEL_MASTER alone still needs the facade", func(t *testing.T) {
		setEnv(t, map[string]string{"REDIS_HOST": "h", "REDIS_SENTINEL_MASTER": "m"})
		if _, err := loadConfig(""); err == nil || !strings.Contains(err.Error(), "REDIS_SENTINEL_HOSTS and REDIS_SENTINEL_MASTER") {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestAnnounceDefaults(t *testing.T) {
	f := func(announce string) *facadeConfig { return &facadeConfig{Listen: ":26379", Announce: announce} }
	tests := []struct {
		name   string
		cfg    config
		listen string
		want   string
	}{
		{"specific listen kept", config{}, "10.1.2.3:6379", "10.1.2.3:6379"},
		{"nothing configured", config{}, "0.0.0.0:6379", "127.0.0.1:6379"},
		{"empty host", config{}, ":6380", "127.0.0.1:6380"},
		{"IPv6 unspecified", config{}, "[::]:6380", "127.0.0.1:6380"},
		{"facade announce host", config{SentinelFacade: f("203.0.113.7:26379")}, "0.0.0.0:6379", "203.0.113.7:6379"},
		{"first group announce host", config{Groups: []groupConfig{{Name: "a"}, {Name: "b", Announce: "kv.example.com:7000"}}}, "0.0.0.0:6380", "kv.example.com:6380"},
		{"TLS-only facade announce host", config{SentinelFacade: &facadeConfig{TLS: &listenerTLS{Listen: ":26390", Announce: "203.0.113.8:26390"}},
			Groups: []groupConfig{{Name: "b", Announce: "kv.example.com:7000"}}}, "0.0.0.0:6390", "203.0.113.8:6390"},
		{"plain facade announce first", config{SentinelFacade: &facadeConfig{Listen: ":26379", Announce: "203.0.113.7:26379",
			TLS: &listenerTLS{Listen: ":26390", Announce: "203.0.113.8:26390"}}}, "0.0.0.0:6390", "203.0.113.7:6390"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := advertise(tt.listen, tt.cfg.announceHost()); got != tt.want {
				t.Fatalf("advertise(%q) = %q, want %q", tt.listen, got, tt.want)
			}
		})
	}
}

// runFixedGroup runs the binary's wiring for a fixed-upstream group.
func runFixedGroup(t *testing.T, gc groupConfig) *group {
	t.Helper()
	grp, err := newGroup(gc, zaptest.NewLogger(t), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- grp.run(ctx) }()
	t.Cleanup(func() {
		cancel()
		grp.srv.Close()
		<-done
	})
	return grp
}

// TestFacadeWiring: the facade names each group's advertised address,
// reports a group without a running proxy as down, and publishes
// +switch-master when a reload moves a group's announce address.
func TestFacadeWiring(t *testing.T) {
	skipShort(t)
	rs := labtest.Server(t, lab.ServerOptions{})
	a := runFixedGroup(t, groupConfig{Name: "a", Listen: "127.0.0.1:0", Upstream: rs.Addr, FacadeName: "a-master"})
	b := runFixedGroup(t, groupConfig{Name: "b", Listen: "127.0.0.1:0", Upstream: rs.Addr, FacadeName: "b-master", Announce: "kv.example.com:6380"})
	fac := runFacade(t, a, b)
	ctx := context.Background()

	sc := redis.NewSentinelClient(&redis.Options{Addr: fac.addr})
	defer sc.Close()
	addr, err := sc.GetMasterAddrByName(ctx, "a-master").Result()
	if err != nil || net.JoinHostPort(addr[0], addr[1]) != a.l.Addr().String() {
		t.Fatalf("a-master: %v %v, want %s", addr, err, a.l.Addr())
	}
	if addr, _ := sc.GetMasterAddrByName(ctx, "b-master").Result(); strings.Join(addr, ":") != "kv.example.com:6380" {
		t.Fatalf("b-master: %v, want its announce address", addr)
	}
	// Through the facade, a Sentinel-aware client reaches the group.
	fc := redis.NewFailoverClient(&redis.FailoverOptions{MasterName: "a-master", SentinelAddrs: []string{fac.addr}})
	defer fc.Close()
	if err := fc.Set(ctx, "myapp:user:123", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if v, _ := rs.Client().Get(ctx, "myapp:user:123").Result(); v != "v" {
		t.Fatalf("the write through the facade's master is not on Redis: %q", v)
	}

	sub := sc.Subscribe(ctx, "+switch-master")
	defer sub.Close()
	if _, err := sub.Receive(ctx); err != nil {
		t.Fatal(err)
	}
	// A reload that moves a's announce address and drops b.
	next := *fac.cfg.Load()
	next.Groups = []groupConfig{a.cfg}
	next.Groups[0].Announce = "203.0.113.9:7000"
	fac.update(&next)
	msg, err := sub.ReceiveMessage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(a.l.Addr().String())
	if want := "a-master 127.0.0.1 " + port + " 203.0.113.9 7000"; msg.Payload != want {
		t.Fatalf("+switch-master %q, want %q", msg.Payload, want)
	}
	if _, err := sc.GetMasterAddrByName(ctx, "b-master").Result(); !errors.Is(err, redis.Nil) {
		t.Fatalf("b-master after it was removed: %v, want a null reply", err)
	}

	// A configured group whose proxy is not running is down.
	next.Groups = append(next.Groups, groupConfig{Name: "c", Listen: "127.0.0.1:1", Upstream: rs.Addr, FacadeName: "c-master"})
	fac.update(&next)
	m, err := sc.Master(ctx, "c-master").Result()
	if err != nil || m["flags"] != "s_down,o_down,master" {
		t.Fatalf("c-master: %v %v", m, err)
	}
	if m, _ := sc.Master(ctx, "a-master").Result(); m["flags"] != "master" {
		t.Fatalf("a-master flags %q", m["flags"])
	}
}

// TestBinaryFacadeFromEnv runs the binary in the sidecar's environment
// mode with SWITCHYARD_SENTINEL_LISTEN and checks that the facade answers
// with SWITCHYARD_ANNOUNCE and stops on SIGTERM.
func TestBinaryFacadeFromEnv(t *testing.T) {
	skipShort(t)
	rs := labtest.Server(t, lab.ServerOptions{})
	host, port, _ := net.SplitHostPort(rs.Addr)
	listen, facadeAddr, admin := freeAddr(t), freeAddr(t), freeAddr(t)
	setEnv(t, map[string]string{
		"REDIS_HOST": host, "REDIS_PORT": port, "REDIS_SENTINEL_MASTER": "platform-kv-master",
		"SWITCHYARD_LISTEN": listen, "SWITCHYARD_ADMIN_LISTEN": admin,
		"SWITCHYARD_SENTINEL_LISTEN": facadeAddr, "SWITCHYARD_ANNOUNCE": "platform-kv.pnats.cloud:6379",
	})
	p := startBinary(t)
	ctx := context.Background()
	sc := redis.NewSentinelClient(&redis.Options{Addr: facadeAddr})
	defer sc.Close()
	labtest.Eventually(t, 10*time.Second, func() error {
		addr, err := sc.GetMasterAddrByName(ctx, "platform-kv-master").Result()
		if err != nil {
			return err
		}
		if strings.Join(addr, ":") != "platform-kv.pnats.cloud:6379" {
			return fmt.Errorf("master address %v", addr)
		}
		return nil
	})
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		p.done <- err
		if err != nil {
			t.Fatalf("exit: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("no exit after SIGTERM")
	}
	if ping(facadeAddr) == nil {
		t.Fatal("facade still answering after exit")
	}
}

// TestFacadeOverTLS: a Sentinel-aware client that speaks TLS to Sentinel
// and to Redis (go-redis with TLSConfig, ioredis
// enableTLSForSentinelMode) reaches the groups through the facade's TLS
// listener, which names their TLS addresses, while the plain listener
// keeps naming the plain ones. Each listener publishes +switch-master
// for its own addresses only.
func TestFacadeOverTLS(t *testing.T) {
	skipShort(t)
	rs := labtest.Server(t, lab.ServerOptions{})
	ca := tlstest.NewCA(t, "facade CA")
	dir := t.TempDir()
	crt, key := ca.Issue(t, "switchyard", []string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)}, false)
	tlstest.WriteFiles(t, dir, map[string][]byte{"tls.crt": crt, "tls.key": key})
	certs := func(listen string) *listenerTLS {
		return &listenerTLS{Listen: listen, CertFile: filepath.Join(dir, "tls.crt"), KeyFile: filepath.Join(dir, "tls.key")}
	}
	a := runFixedGroup(t, groupConfig{Name: "a", Listen: "127.0.0.1:0", Upstream: rs.Addr, FacadeName: "a-master",
		groupExtras: groupExtras{TLS: certs("127.0.0.1:0")}})
	b := runFixedGroup(t, groupConfig{Name: "b", Listen: "127.0.0.1:0", Upstream: rs.Addr, FacadeName: "b-master"})
	c := runFixedGroup(t, groupConfig{Name: "c", Upstream: rs.Addr, FacadeName: "c-master",
		groupExtras: groupExtras{TLS: certs("127.0.0.1:0")}})
	fac := runFacadeConfig(t, &facadeConfig{Listen: "127.0.0.1:0", TLS: certs("127.0.0.1:0")}, a, b, c)
	ctx := context.Background()
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca.CertPEM)
	tlsCfg := &stdtls.Config{RootCAs: roots, MinVersion: stdtls.VersionTLS12}

	masterOf := func(sc *redis.SentinelClient, name string) string {
		t.Helper()
		addr, err := sc.GetMasterAddrByName(ctx, name).Result()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return net.JoinHostPort(addr[0], addr[1])
	}
	overTLS := redis.NewSentinelClient(&redis.Options{Addr: fac.tlsAddr, TLSConfig: tlsCfg})
	defer overTLS.Close()
	plain := redis.NewSentinelClient(&redis.Options{Addr: fac.addr})
	defer plain.Close()
	if got, want := masterOf(overTLS, "a-master"), a.tlsL.Addr().String(); got != want {
		t.Fatalf("a-master over TLS: %s, want its TLS listener %s", got, want)
	}
	if got, want := masterOf(plain, "a-master"), a.l.Addr().String(); got != want {
		t.Fatalf("a-master in plain text: %s, want its plain listener %s", got, want)
	}
	// A group without a TLS listener is named as in plain text.
	if got, want := masterOf(overTLS, "b-master"), b.l.Addr().String(); got != want {
		t.Fatalf("b-master over TLS: %s, want %s", got, want)
	}
	// A TLS-only group has its one (bound) address for both.
	for _, sc := range []*redis.SentinelClient{overTLS, plain} {
		if got, want := masterOf(sc, "c-master"), c.tlsL.Addr().String(); got != want {
			t.Fatalf("c-master: %s, want its TLS listener %s", got, want)
		}
	}

	// The whole client: TLS to the facade, then TLS to the named master.
	fc := redis.NewFailoverClient(&redis.FailoverOptions{MasterName: "a-master", SentinelAddrs: []string{fac.tlsAddr}, TLSConfig: tlsCfg})
	defer fc.Close()
	if err := fc.Set(ctx, "myapp:tls:1", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if v, _ := rs.Client().Get(ctx, "myapp:tls:1").Result(); v != "v" {
		t.Fatalf("the write through the TLS facade's master is not on Redis: %q", v)
	}
	// Plain text on the TLS listener is not answered.
	raw, err := net.DialTimeout("tcp", fac.tlsAddr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	raw.SetDeadline(time.Now().Add(5 * time.Second))
	raw.Write([]byte("PING\r\n"))
	if b, _ := io.ReadAll(raw); strings.Contains(string(b), "PONG") {
		t.Fatalf("a plain-text PING on the TLS listener was answered: %q", b)
	}

	subTLS := overTLS.Subscribe(ctx, "+switch-master")
	defer subTLS.Close()
	subPlain := plain.Subscribe(ctx, "+switch-master")
	defer subPlain.Close()
	for _, sub := range []*redis.PubSub{subTLS, subPlain} {
		if _, err := sub.Receive(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// A reload that gives a's TLS listener an announce address moves
	// a-master for TLS clients only.
	next := *fac.cfg.Load()
	next.Groups = []groupConfig{a.cfg, b.cfg, c.cfg}
	tc := *a.cfg.TLS
	tc.Announce = "203.0.113.9:7443"
	next.Groups[0].TLS = &tc
	fac.update(&next)
	msg, err := subTLS.ReceiveMessage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(a.tlsL.Addr().String())
	if want := "a-master 127.0.0.1 " + port + " 203.0.113.9 7443"; msg.Payload != want {
		t.Fatalf("+switch-master over TLS %q, want %q", msg.Payload, want)
	}
	if got := masterOf(plain, "a-master"); got != a.l.Addr().String() {
		t.Fatalf("a-master in plain text after the TLS announce moved: %s", got)
	}
	select {
	case msg := <-subPlain.Channel():
		t.Fatalf("the plain listener published %q for a TLS address change", msg.Payload)
	case <-time.After(2 * facadeCheckInterval):
	}
}

// TestGroupFacadeAddresses: what the facade names for each kind of group,
// to plain-text and to TLS clients, before the group runs (so from its
// configuration; TestFacadeOverTLS covers bound ports).
func TestGroupFacadeAddresses(t *testing.T) {
	tlsOn := func(listen, announce string) groupExtras {
		return groupExtras{TLS: &listenerTLS{Listen: listen, Announce: announce}}
	}
	const host = "203.0.113.1"
	tests := []struct {
		name              string
		gc                groupConfig
		plain, tls, reads string
	}{
		{name: "plain only", gc: groupConfig{Listen: ":6379"},
			plain: host + ":6379", tls: host + ":6379"},
		{name: "plain and TLS", gc: groupConfig{Listen: ":6379", groupExtras: tlsOn(":6389", "")},
			plain: host + ":6379", tls: host + ":6389"},
		{name: "the plain announce is not the TLS address", gc: groupConfig{Listen: ":6379", Announce: "kv.example.com:6379", groupExtras: tlsOn("10.0.0.5:6389", "")},
			plain: "kv.example.com:6379", tls: "10.0.0.5:6389"},
		{name: "tls announce", gc: groupConfig{Listen: ":6379", Announce: "kv.example.com:6379", groupExtras: tlsOn(":6389", "kv.example.com:16389")},
			plain: "kv.example.com:6379", tls: "kv.example.com:16389"},
		{name: "TLS only", gc: groupConfig{groupExtras: tlsOn(":6389", "")},
			plain: host + ":6389", tls: host + ":6389"},
		{name: "TLS only, its announce", gc: groupConfig{Announce: "kv.example.com:6389", groupExtras: tlsOn(":6389", "")},
			plain: "kv.example.com:6389", tls: "kv.example.com:6389"},
		{name: "TLS only, its tls.announce", gc: groupConfig{groupExtras: tlsOn(":6389", "kv.example.com:6389")},
			plain: "kv.example.com:6389", tls: "kv.example.com:6389"},
		{name: "TLS only, both announces", gc: groupConfig{Announce: "a.example.com:6389", groupExtras: tlsOn(":6389", "b.example.com:6389")},
			plain: "a.example.com:6389", tls: "b.example.com:6389"},
		{name: "read port", gc: groupConfig{Listen: ":6379", groupExtras: groupExtras{ReadListen: ":6390", TLS: &listenerTLS{Listen: ":6389"}}},
			plain: host + ":6379", tls: host + ":6389", reads: host + ":6390"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The read port speaks plain text only: it is not named to
			// clients that reached the facade over TLS.
			for _, c := range []struct {
				overTLS     bool
				want, reads string
			}{{false, tt.plain, tt.reads}, {true, tt.tls, ""}} {
				addr, reads := groupFacade(tt.gc, nil, host, c.overTLS)
				if addr != c.want || reads != c.reads {
					t.Errorf("over TLS %v: master %q, replica %q; want %q, %q", c.overTLS, addr, reads, c.want, c.reads)
				}
			}
		})
	}
}

// TestFacadeTLSConfigLoads: the TLS settings of the facade and a group's
// tls.announce are read from the file, and a facade may be TLS only.
func TestFacadeTLSConfigLoads(t *testing.T) {
	setEnv(t, nil)
	ca := tlstest.NewCA(t, "config CA")
	dir := t.TempDir()
	crt, key := ca.Issue(t, "switchyard", []string{"localhost"}, nil, false)
	tlstest.WriteFiles(t, dir, map[string][]byte{"tls.crt": crt, "tls.key": key, "ca.crt": ca.CertPEM})
	files := fmt.Sprintf("cert_file: %q, key_file: %q", filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"))
	path := filepath.Join(dir, "c.yaml")
	os.WriteFile(path, []byte("sentinel_facade:\n  tls: {listen: '0.0.0.0:26380', announce: 'kv.example.com:26380', client_auth: optional, client_ca_file: "+
		fmt.Sprintf("%q", filepath.Join(dir, "ca.crt"))+", "+files+"}\n"+
		"groups:\n  - {name: a, listen: ':6379', tls: {listen: ':6389', announce: 'kv.example.com:6389', "+files+"}, sentinel: {master_name: a-master, addrs: ['s:26379']}}\n"), 0o600)
	c, err := loadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	f := c.SentinelFacade
	if f.Listen != "" || f.TLS == nil || f.TLS.Listen != "0.0.0.0:26380" || f.TLS.Announce != "kv.example.com:26380" || f.TLS.ClientAuth != "optional" {
		t.Fatalf("sentinel_facade: %+v %+v", f, f.TLS)
	}
	if got := c.Groups[0].TLS.Announce; got != "kv.example.com:6389" {
		t.Fatalf("groups[0].tls.announce %q", got)
	}
}

// TestFacadeTLSOnlyStartAndClose: a facade with only a TLS listener serves,
// and Close frees its port; a facade whose TLS port is taken does not
// start and leaves its plain port free.
func TestFacadeTLSOnlyStartAndClose(t *testing.T) {
	skipShort(t)
	rs := labtest.Server(t, lab.ServerOptions{})
	ca := tlstest.NewCA(t, "facade CA")
	dir := t.TempDir()
	crt, key := ca.Issue(t, "switchyard", nil, []net.IP{net.IPv4(127, 0, 0, 1)}, false)
	tlstest.WriteFiles(t, dir, map[string][]byte{"tls.crt": crt, "tls.key": key})
	certs := func(listen string) *listenerTLS {
		return &listenerTLS{Listen: listen, CertFile: filepath.Join(dir, "tls.crt"), KeyFile: filepath.Join(dir, "tls.key")}
	}
	a := runFixedGroup(t, groupConfig{Name: "a", Listen: "127.0.0.1:0", Upstream: rs.Addr, FacadeName: "a-master"})
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca.CertPEM)
	tlsCfg := &stdtls.Config{RootCAs: roots, MinVersion: stdtls.VersionTLS12}

	cfg := &config{SentinelFacade: &facadeConfig{TLS: certs(freeAddr(t))}, Groups: []groupConfig{a.cfg}}
	fac, err := startFacade(cfg, func() []*group { return []*group{a} }, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	sc := redis.NewSentinelClient(&redis.Options{Addr: fac.tlsAddr, TLSConfig: tlsCfg})
	addr, err := sc.GetMasterAddrByName(context.Background(), "a-master").Result()
	sc.Close()
	if err != nil || net.JoinHostPort(addr[0], addr[1]) != a.l.Addr().String() {
		t.Fatalf("a-master over a TLS-only facade: %v %v, want %s", addr, err, a.l.Addr())
	}
	closed := make(chan struct{})
	go func() {
		fac.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close of a TLS-only facade did not return")
	}
	if l, err := net.Listen("tcp", fac.tlsAddr); err != nil {
		t.Fatalf("the TLS port is still taken after Close: %v", err)
	} else {
		l.Close()
	}

	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	plainAddr := freeAddr(t)
	cfg = &config{SentinelFacade: &facadeConfig{Listen: plainAddr, TLS: certs(taken.Addr().String())}, Groups: []groupConfig{a.cfg}}
	if _, err := startFacade(cfg, func() []*group { return []*group{a} }, zaptest.NewLogger(t)); err == nil || !strings.Contains(err.Error(), "sentinel_facade.tls.listen") {
		t.Fatalf("start with the TLS port taken: %v", err)
	}
	if l, err := net.Listen("tcp", plainAddr); err != nil {
		t.Fatalf("the plain port stays taken after a failed start: %v", err)
	} else {
		l.Close()
	}
}
