package proxy

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pnats/switchyard/internal/lab"
	"github.com/pnats/switchyard/internal/lab/labtest"
	"github.com/pnats/switchyard/resp"
)

// TestUnblockAsksOnlyTheHoldsCommand: a hold's unblocker asks about the
// command a connection waited on when the hold began, as often as Redis
// says it is busy or not blocked yet, until a deadline. If that command
// is answered meanwhile, and the hold has ended, the connection may carry
// another blocking command (its session's next, or another session's
// from the pool): the unblocker must leave that one alone. A review found
// it asking again, in the first command's way: a BLPOP after a WAIT was
// answered nil, as if its timeout had passed, and the reverse gave a
// WAIT "-UNBLOCKED". Here the hold's view is taken while WAIT waits, the
// WAIT is answered, a BLPOP follows on the connection, and only then does
// the unblocker run.
func TestUnblockAsksOnlyTheHoldsCommand(t *testing.T) {
	rs := labtest.Server(t, lab.ServerOptions{})
	cfg := &Config{}
	cfg.setDefaults()
	p := newPool(rs.Addr, defaultKey, cfg)
	t.Cleanup(func() { p.close(errPoolClosed) })
	c, err := p.dedicated()
	if err != nil {
		t.Fatal(err)
	}
	if c.redisID == 0 {
		t.Fatal("the dedicated connection has no CLIENT ID")
	}
	direct := rs.Client()
	ctx := context.Background()
	blocked := func(want int) {
		t.Helper()
		labtest.Eventually(t, 10*time.Second, func() error {
			info, err := direct.Info(ctx, "clients").Result()
			if err != nil {
				return err
			}
			if !strings.Contains(info, fmt.Sprintf("blocked_clients:%d\r\n", want)) {
				return fmt.Errorf("want %d blocked clients:\n%s", want, info)
			}
			return nil
		})
	}
	send := func(mode unblockMode, args ...string) (*request, *[]byte) {
		t.Helper()
		var bargs [][]byte
		for _, a := range args {
			bargs = append(bargs, []byte(a))
		}
		out := new([]byte)
		r := &request{parts: [][]byte{resp.AppendCommand(nil, bargs)}, n: 1, out: out, blocking: true, unblock: mode, done: make(chan struct{}, 1)}
		if err := c.enqueue(r); err != nil {
			t.Fatal(err)
		}
		return r, out
	}

	wait, waitOut := send(unblockCount, "WAIT", "1", "0") // no replica: for ever
	blocked(1)
	b, ok := c.blockedNow()
	if !ok || b.mode != unblockCount {
		t.Fatalf("blockedNow during WAIT: %+v, %v", b, ok)
	}
	// The WAIT is answered (as by the replica's acknowledgement).
	if err := direct.Do(ctx, "CLIENT", "UNBLOCK", c.redisID).Err(); err != nil {
		t.Fatal(err)
	}
	<-wait.done
	if string(*waitOut) != ":0\r\n" || wait.err != nil {
		t.Fatalf("WAIT: %q, %v", *waitOut, wait.err)
	}
	pop, popOut := send(unblockResend, "BLPOP", "q", "0")
	blocked(1)

	p.wg.Add(1)
	p.unblockHeld([]*backendConn{c}, map[*backendConn]blockedCmd{c: b}, time.Now().Add(300*time.Millisecond))
	select {
	case <-pop.done:
		t.Fatalf("the BLPOP after the WAIT was answered by the unblocker: %q, %v", *popOut, pop.err)
	default:
	}
	if !c.alive() {
		t.Fatal("the unblocker closed the connection of the BLPOP after the WAIT")
	}
	if err := direct.LPush(ctx, "q", "x").Err(); err != nil {
		t.Fatal(err)
	}
	<-pop.done
	if string(*popOut) != "*2\r\n$1\r\nq\r\n$1\r\nx\r\n" || pop.err != nil {
		t.Fatalf("BLPOP: %q, %v", *popOut, pop.err)
	}
}

// TestTimeoutLeft: a re-sent blocking command's timeout is what is left
// of it; none (0), or one the proxy cannot read, is left to Redis.
func TestTimeoutLeft(t *testing.T) {
	mb := func(args ...string) string {
		var b [][]byte
		for _, a := range args {
			b = append(b, []byte(a))
		}
		return string(resp.AppendCommand(nil, b))
	}
	for _, tc := range []struct {
		raw     string
		elapsed time.Duration
		want    string
	}{
		{mb("BLPOP", "q", "5.0"), 2 * time.Second, mb("BLPOP", "q", "3.000")},
		{"BLPOP q 5.0\r\n", 2 * time.Second, mb("BLPOP", "q", "3.000")}, // inline
		{mb("BZPOPMIN", "z", "2.5"), 1250 * time.Millisecond, mb("BZPOPMIN", "z", "1.250")},
		{mb("BLPOP", "q", "0.5"), time.Second, mb("BLPOP", "q", "0.002")}, // over: 0.001 is no timeout on Redis 6.0-7.0.7
		// Whole seconds stay whole (Redis before 6.0 takes no other),
		// rounded up, at least 1.
		{mb("BLPOP", "q", "5"), 2500 * time.Millisecond, mb("BLPOP", "q", "3")},
		{mb("BLMPOP", "4", "1", "q", "LEFT"), time.Second, mb("BLMPOP", "3", "1", "q", "LEFT")},
		{mb("BLPOP", "q", "1"), 3 * time.Second, mb("BLPOP", "q", "1")},
		{mb("XREADGROUP", "GROUP", "g", "c", "BLOCK", "900", "STREAMS", "s", ">"), 400 * time.Millisecond,
			mb("XREADGROUP", "GROUP", "g", "c", "BLOCK", "500", "STREAMS", "s", ">")},
		{mb("XREAD", "BLOCK", "100", "STREAMS", "s", "0"), time.Second, mb("XREAD", "BLOCK", "1", "STREAMS", "s", "0")},
		// Redis takes the last BLOCK.
		{mb("XREAD", "BLOCK", "100", "BLOCK", "3000", "STREAMS", "s", "0"), time.Second,
			mb("XREAD", "BLOCK", "100", "BLOCK", "2000", "STREAMS", "s", "0")},
		{mb("BLPOP", "q", "0"), time.Hour, mb("BLPOP", "q", "0")},
		{mb("XREAD", "BLOCK", "0", "STREAMS", "s", "0"), time.Hour, mb("XREAD", "BLOCK", "0", "STREAMS", "s", "0")},
		// Hexadecimal, as Redis's strtold reads it: with no exponent too.
		{mb("BLPOP", "q", "0x3"), time.Second, mb("BLPOP", "q", "2.000")},
		{mb("BLPOP", "q", "+0X1.8"), 500 * time.Millisecond, mb("BLPOP", "q", "1.000")},
		{mb("BLPOP", "q", "0x1p2"), time.Second, mb("BLPOP", "q", "3.000")},
		{mb("BLPOP", "q", "0x"), time.Second, mb("BLPOP", "q", "0x")},
		{mb("BLPOP", "q", "soon"), time.Second, mb("BLPOP", "q", "soon")},
		{mb("BLPOP", "q", "1e10"), time.Second, mb("BLPOP", "q", "1e10")}, // past a Duration: Redis judges it
		{mb("BLPOP", "q", "NaN"), time.Second, mb("BLPOP", "q", "NaN")},
		{mb("GET", "k"), time.Second, mb("GET", "k")},
	} {
		if got := string(timeoutLeft([]byte(tc.raw), tc.elapsed)); got != tc.want {
			t.Errorf("timeoutLeft(%q, %v) = %q, want %q", tc.raw, tc.elapsed, got, tc.want)
		}
	}
}
