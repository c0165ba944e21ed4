package proxy

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/pnats/switchyard/internal/lab"
	"github.com/pnats/switchyard/internal/lab/labtest"
)

// TestIdleLookKeepsARaceWonReply: idleClosed reads outstanding, then
// looks at the socket. In between, another session may queue a request
// on the shared connection, and Redis answer it and close (CLIENT KILL,
// a shutdown; QUIT here). Over TLS the look goes on past data to the
// hang-up (Redis's close_notify comes before its FIN), and it closed the
// connection under the reply, which the client got as "may or may not
// have run": a review found it. Over plain TCP the reader may have taken
// the reply already, leaving the look only the end: CI's -race pass found
// that one. The hook holds the window open.
func TestIdleLookKeepsARaceWonReply(t *testing.T) {
	overTLS, _, verify := labtest.TLSServer(t)
	plain := labtest.Server(t, lab.ServerOptions{})
	for _, tc := range []struct {
		name string
		addr string
		cfg  Config
	}{{"plain", plain.Addr, Config{}}, {"tls", overTLS.Addr, Config{BackendTLS: verify}}} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			cfg.setDefaults()
			for i := range 20 {
				if err := raceIdleLook(t, tc.addr, &cfg); err != nil {
					t.Fatalf("try %d: %v", i, err)
				}
			}
		})
	}
}

// raceIdleLook queues PING and QUIT on a fresh connection from inside
// idleClosed's window, waits until Redis's replies and hang-up are in the
// socket, lets the look go on, and returns what the request got.
func raceIdleLook(t *testing.T, addr string, cfg *Config) error {
	c, err := dialBackend(context.Background(), addr, defaultKey, cfg, false, false)
	if err != nil {
		t.Fatal(err)
	}
	c.shared = true
	go c.run()
	defer c.close(errPoolClosed)
	var out []byte
	r := &request{parts: [][]byte{[]byte("*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nQUIT\r\n")}, n: 2, out: &out, done: make(chan struct{}, 1)}
	idleCheckHook = func() {
		idleCheckHook = nil
		if err := c.enqueue(r); err != nil {
			t.Errorf("enqueue: %v", err)
			return
		}
		deadline := time.Now().Add(5 * time.Second)
		for hup := false; !hup && time.Now().Before(deadline); {
			if c.rawc.Control(func(fd uintptr) { hup = hungUp(fd) }) != nil {
				return
			}
		}
	}
	defer func() { idleCheckHook = nil }()
	c.idleClosed()
	<-r.done
	if r.err != nil || string(out) != "+PONG\r\n+OK\r\n" {
		return fmt.Errorf("the request Redis answered got %q, %v", out, r.err)
	}
	return nil
}
