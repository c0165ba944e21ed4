package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pnats/switchyard/internal/lab"
	"github.com/pnats/switchyard/internal/lab/labtest"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// TestSecretsNeverShown runs a group whose Redis and Sentinels need
// passwords (read from files, as from a Secret), drives a failover and
// client errors, and checks that neither password appears in the logs (at
// debug level), /status, /metrics or any reply a client got.
func TestSecretsNeverShown(t *testing.T) {
	skipShort(t)
	const redisPW, sentinelPW = "redis-Secret-4711", "sentinel-Secret-0815"
	g := labtest.Group(t, lab.GroupOptions{
		Name: "secret", Replicas: 1, Sentinels: 3,
		ServerArgs:       []string{"--requirepass", redisPW},
		SentinelPassword: sentinelPW,
	})
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "redis"), []byte(redisPW+"\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "sentinel"), []byte(sentinelPW+"\n"), 0o600)

	core, logs := observer.New(zapcore.DebugLevel)
	var addrs []string
	for _, s := range g.Sentinels {
		addrs = append(addrs, s.Addr)
	}
	discover := false
	gc := groupConfig{
		Name: "secret", Listen: "127.0.0.1:0",
		Sentinel: &sentinelConfig{MasterName: g.Name, Addrs: addrs, Discover: &discover,
			Auth: credentials{PasswordFile: filepath.Join(dir, "sentinel")}},
		Auth: credentials{PasswordFile: filepath.Join(dir, "redis")},
	}
	if err := gc.Auth.resolve("auth"); err != nil {
		t.Fatal(err)
	}
	if err := gc.Sentinel.Auth.resolve("sentinel.auth"); err != nil {
		t.Fatal(err)
	}
	m := newMetrics()
	grp, err := newGroup(gc, zap.New(core), m, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- grp.run(ctx) }()
	defer func() { cancel(); grp.srv.Close(); <-done }()
	admin, err := startAdmin("127.0.0.1:0", func() []*group { return []*group{grp} }, nil, m, zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	labtest.Eventually(t, 15e9, func() error {
		if _, _, ok := grp.srv.Master(); !ok {
			return errors.New("no master yet")
		}
		return nil
	})

	// Clients get through with the proxy's credentials, and see errors of
	// their own making.
	var replies []string
	c := redis.NewClient(&redis.Options{Addr: grp.addr(), MaxRetries: -1})
	defer c.Close()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET through a proxy with backend credentials: %v", err)
	}
	for _, args := range [][]any{{"AUTH", "wrong"}, {"AUTH", "nobody", "wrong"}, {"HELLO", "3", "AUTH", "default", "wrong"}, {"SELECT", "999999"}} {
		v, err := c.Do(ctx, args...).Result()
		replies = append(replies, fmtReply(v, err))
	}
	if _, err := g.Failover(ctx); err != nil {
		t.Fatal(err)
	}
	labtest.Eventually(t, 15e9, func() error {
		if _, e, _ := grp.srv.Master(); e != 2 {
			return errors.New("switch not followed yet")
		}
		return nil
	})
	// The proxy authenticates to the new master by itself.
	if err := c.Set(ctx, "after-failover", "1", 0).Err(); err != nil {
		t.Fatalf("SET after the failover, with Redis requiring a password: %v", err)
	}
	_, status := get(t, "http://"+admin.addr+"/status")
	_, metrics := get(t, "http://"+admin.addr+"/metrics")

	var logText strings.Builder
	for _, e := range logs.All() {
		logText.WriteString(e.Message)
		for k, v := range e.ContextMap() {
			logText.WriteString(" " + k + "=" + fmtReply(v, nil))
		}
		logText.WriteString("\n")
	}
	if logs.Len() == 0 {
		t.Fatal("no log entries captured")
	}
	for where, text := range map[string]string{"logs": logText.String(), "/status": status, "/metrics": metrics, "replies": strings.Join(replies, "\n")} {
		for _, secret := range []string{redisPW, sentinelPW} {
			if strings.Contains(text, secret) {
				t.Errorf("%s contain a password", where)
			}
		}
	}
	t.Logf("client replies: %q", replies)
}

func fmtReply(v any, err error) string {
	if err != nil {
		return err.Error()
	}
	return fmt.Sprint(v)
}
