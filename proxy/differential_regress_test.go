package proxy_test

// Regression tests for differences TestDifferential found between the
// proxy and a direct connection, each checked against a real
// redis-server.

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pnats/switchyard/internal/lab"
	"github.com/pnats/switchyard/internal/lab/labtest"
	"github.com/pnats/switchyard/proxy"
)

// sameReplies sends toProxy to the proxy at addr and toRedis to Redis at
// rsAddr, one command each, and fails t unless the replies are the same,
// but for those at the indexes in differ (a documented difference, for
// which Redis got a stand-in) and HELLO's id.
func sameReplies(t *testing.T, rsAddr, addr string, toRedis, toProxy []string, differ ...int) {
	t.Helper()
	if len(toRedis) != len(toProxy) {
		t.Fatal("sameReplies: as many commands for each, please")
	}
	want, got := replies(t, rsAddr, toRedis), replies(t, addr, toProxy)
	for i := range want {
		if !bytes.Equal(want[i], got[i]) && !slices.Contains(differ, i) {
			t.Fatalf("reply %d, to %q:\nproxy: %q\nredis: %q", i, toProxy[i], got[i], want[i])
		}
	}
}

// replies sends cmds in one write and returns one reply frame each, in
// the form the differential test compares (HELLO's id masked).
func replies(t *testing.T, addr string, cmds []string) [][]byte {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := nc.Write([]byte(strings.Join(cmds, ""))); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(nc)
	var out [][]byte
	for range cmds {
		_, f, err := readDiffFrame(br)
		if err != nil {
			t.Fatalf("%s: reply %d: %v", addr, len(out), err)
		}
		helloID(f)
		out = append(out, f.bytes())
	}
	return out
}

// A DISCARD that Redis refuses for its arity leaves the transaction
// open. Before, the proxy took it as the end of the transaction: the
// client's next commands ran at once instead of being queued, and the
// connection, still in MULTI, went back to the pool for other clients.
func TestDiscardOfWrongArityKeepsTransaction(t *testing.T) {
	_, srv, addr := setup(t, proxy.Config{})
	direct := labtest.Server(t, lab.ServerOptions{})
	in := []string{cmd("MULTI"), cmd("INCR", "tx"), cmd("DISCARD", "now"), cmd("INCR", "tx"), cmd("EXEC"), cmd("GET", "tx")}
	sameReplies(t, direct.Addr, addr, in, in)
	waitFor(t, func() error {
		if n := srv.Stats().Pinned; n != 0 {
			return fmt.Errorf("%d clients hold a connection of their own", n)
		}
		return nil
	})
	// No connection in MULTI was left in the pool for the next client.
	for i := 0; i < 3; i++ {
		in := []string{cmd("WATCH", "w"), cmd("MULTI"), cmd("INCR", "w"), cmd("EXEC")}
		sameReplies(t, direct.Addr, addr, in, in)
	}
}

// An EXEC of the wrong arity after a command the proxy refused inside
// MULTI gets Redis's own EXECABORT, which names the arity, and ends the
// transaction, as after a command Redis refused.
func TestExecOfWrongArityAfterRefusedCommand(t *testing.T) {
	rs, _, addr := setup(t, proxy.Config{})
	toProxy := []string{cmd("MULTI"), cmd("CLIENT", "SETNAME", "x"), cmd("EXEC", "now"), cmd("PING")}
	toRedis := []string{cmd("MULTI"), cmd("NO-SUCH-COMMAND"), cmd("EXEC", "now"), cmd("PING")}
	sameReplies(t, rs.Addr, addr, toRedis, toProxy, 1)
}

// A transaction the proxy aborted (EXECABORT after a command it refused)
// gave its connection back only at the client's next command on it. A
// HELLO 3 in between moved the client to RESP3, and its next WATCH got
// that RESP2 connection back: RESP2 replies to a RESP3 client.
func TestHelloAfterAbortedTransaction(t *testing.T) {
	rs, _, addr := setup(t, proxy.Config{})
	toProxy := []string{cmd("MULTI"), cmd("SELECT", "1"), cmd("EXEC"), cmd("HELLO", "3"), cmd("WATCH", "k"), cmd("EVAL", "return {1, false}", "0")}
	toRedis := []string{cmd("MULTI"), cmd("NO-SUCH-COMMAND"), cmd("EXEC"), cmd("HELLO", "3"), cmd("WATCH", "k"), cmd("EVAL", "return {1, false}", "0")}
	sameReplies(t, rs.Addr, addr, toRedis, toProxy, 1)
}

// AUTH with a password only, in RESP3, reaches Redis as AUTH <password>,
// not as HELLO 3 AUTH default <password>: when the default user needs no
// password, Redis refuses the first and accepts the second, and the
// client must get Redis's refusal.
func TestAuthPasswordOnlyInRESP3(t *testing.T) {
	t.Run("no password configured", func(t *testing.T) {
		rs, _, addr := setup(t, proxy.Config{})
		in := []string{cmd("HELLO", "3"), cmd("AUTH", "pw"), cmd("PING")}
		sameReplies(t, rs.Addr, addr, in, in)
	})
	t.Run("requirepass", func(t *testing.T) {
		rs, _, addr := setup(t, proxy.Config{}, "--requirepass", "s3cret")
		in := []string{cmd("AUTH", "s3cret"), cmd("HELLO", "3"), cmd("AUTH", "s3cret"), cmd("CLIENT", "GETNAME"), cmd("HELLO", "2")}
		sameReplies(t, rs.Addr, addr, in, in)
	})
}
