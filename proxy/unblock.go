package proxy

import (
	"bytes"
	"context"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pnats/switchyard/resp"
	"github.com/pnats/switchyard/router"
)

// unblockMode says how a failover's hold may end a blocking command's wait
// on the old master (unblockHeld).
type unblockMode uint8

const (
	// noUnblock: the hold closes the connection (errHeldPinned): a kill,
	// or a WAIT's preparing PUBLISH.
	noUnblock unblockMode = iota
	// unblockResend: a pop, move or stream read. CLIENT UNBLOCK … ERROR
	// ends its wait before it takes anything, and the session sends it
	// again wherever the failover leads (reblock).
	unblockResend
	// unblockCount: WAIT or WAITAOF. CLIENT UNBLOCK (TIMEOUT) ends it as
	// its own timeout would: Redis answers the count of replicas (or
	// fsyncs) that have the client's writes so far, a true answer, and
	// the client decides as it would at its timeout. It is not sent
	// again: on the new master it would count that master's replicas for
	// writes the old one took.
	unblockCount
)

// unblockModeOf says how a hold may unblock args, a command the router
// sends on a connection of its own.
func unblockModeOf(args [][]byte) unblockMode {
	switch {
	case isWait(args):
		return unblockCount
	case isKill(args):
		return noUnblock
	}
	return unblockResend
}

// unblockable is what a connection's unblockWait holds while r is its
// request.
func (r *request) unblockable() uint32 {
	if !r.blocking {
		return uint32(noUnblock)
	}
	return uint32(r.unblock)
}

// unblockHeld ends, on a master that a failover may be about to replace,
// the waits of the blocking commands on conns (all of pool p), rather than
// closing their connections: closed, a pop the old master had just served
// was lost with its reply, and the client could not tell whether its
// command had run.
//
// A connection of the pool's settings sends CLIENT UNBLOCK <id> for each
// of them, pipelined: with ERROR for a pop or stream read, without for a
// WAIT (unblockMode). Redis answers 1 for a client it unblocked. A pop's
// reply is then -UNBLOCKED, which its reader turns into errUnblocked, and
// its session sends the command again wherever the failover leads
// (reblock); a WAIT's is its count, which goes to the client as any
// reply. Redis answers 0 for a client not blocked: either the reply (an
// element taken, a count reached) is on its way and is delivered as
// usual, or Redis has not read the command yet, and it is asked again a
// moment later.
//
// What is still blocked at deadline (a master that stopped answering may
// wake up as a zombie and serve the pop after the promotion), and what
// could not be asked (no CLIENT ID, a user without CLIENT UNBLOCK, no
// connection), is closed as before: errHeldPinned.
//
// Each connection is asked about the command it waited on when the hold
// began (asked, from fenceStalled), never the next: once that one is
// answered, and the hold ended meanwhile, its session may send another
// on it, or another session may get it from the pool; asked about that
// one, in the first one's way, a BLPOP after a WAIT would be answered nil
// as if its timeout had passed. A review found it.
func (p *pool) unblockHeld(conns []*backendConn, asked map[*backendConn]blockedCmd, deadline time.Time) {
	defer p.wg.Done()
	for _, c := range conns {
		c.unblocking.Store(asked[c].mode == unblockResend && asked[c].current(c))
	}
	for _, c := range p.askUnblock(conns, asked, deadline) {
		if !asked[c].current(c) {
			continue // answered, and the connection has moved on
		}
		c.unblocking.Store(false)
		c.close(errHeldPinned)
	}
}

// blockedCmd is what a hold asks about a connection's blocking command:
// how to unblock it, and which request on the connection it is.
type blockedCmd struct {
	mode unblockMode
	seq  uint64 // backendConn.queued when it was queued
}

// current reports whether c still has the command b names outstanding.
func (b blockedCmd) current(c *backendConn) bool {
	return c.queued.Load() == b.seq && c.outstanding.Load() > 0 && c.alive()
}

// blockedNow returns c's blocking command, and whether a hold may unblock
// it: one outstanding, of a kind that can be. The values are read
// together, around a request queued meanwhile (backendConn.queue stores
// them in the opposite order).
func (c *backendConn) blockedNow() (blockedCmd, bool) {
	for {
		seq := c.queued.Load()
		b := blockedCmd{mode: unblockMode(c.unblockWait.Load()), seq: seq}
		ok := b.mode != noUnblock && c.outstanding.Load() > 0
		if c.queued.Load() == seq {
			return b, ok
		}
	}
}

var (
	replyUnblocked    = []byte(":1\r\n")
	replyNotUnblocked = []byte(":0\r\n")
	replyBusy         = []byte("-BUSY")
)

// askUnblock sends the CLIENT UNBLOCKs and returns the connections still
// blocked, or never asked, at deadline.
func (p *pool) askUnblock(conns []*backendConn, asked map[*backendConn]blockedCmd, deadline time.Time) (left []*backendConn) {
	var ask []*backendConn
	for _, c := range conns {
		if c.redisID > 0 {
			ask = append(ask, c)
		} else {
			left = append(left, c)
		}
	}
	if len(ask) == 0 {
		return left
	}
	ctx, cancel := context.WithDeadline(p.ctx, deadline)
	defer cancel()
	// busyOK: a script that outlives busy-reply-threshold refuses the
	// name, and CLIENT UNBLOCK, until it ends; the blocked client may be
	// served then.
	ctl, err := dialBackend(ctx, p.addr, p.key, p.cfg, true, false)
	if err != nil {
		return append(left, ask...)
	}
	defer ctl.nc.Close()
	ctl.dr.timeout = 0 // or each read would move the deadline to ReadTimeout
	ctl.nc.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { ctl.nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	var buf []byte
	for len(ask) > 0 {
		buf = buf[:0]
		still := ask[:0]
		for _, c := range ask {
			if !asked[c].current(c) {
				// Answered meanwhile; it may carry another command now.
				continue
			}
			still = append(still, c)
		}
		if ask = still; len(ask) == 0 {
			break
		}
		for _, c := range ask {
			args := [][]byte{[]byte("CLIENT"), []byte("UNBLOCK"), strconv.AppendInt(nil, c.redisID, 10)}
			if asked[c].mode == unblockResend {
				args = append(args, []byte("ERROR"))
			}
			buf = resp.AppendCommand(buf, args)
		}
		if _, err := ctl.nc.Write(buf); err != nil {
			return append(left, ask...)
		}
		var again []*backendConn
		for i, c := range ask {
			raw, _, err := ctl.rd.ReadReply()
			if err != nil {
				return append(append(left, again...), ask[i:]...)
			}
			switch {
			case bytes.Equal(raw, replyUnblocked):
				// Its reader takes the -UNBLOCKED, or the count, that
				// follows.
			case bytes.HasPrefix(raw, replyBusy):
				again = append(again, c) // a script runs: ask when it ends
			case !bytes.Equal(raw, replyNotUnblocked):
				// Refused: an ACL without CLIENT UNBLOCK, a Redis before 5.
				left = append(left, c)
			case !asked[c].current(c):
				// Answered meanwhile; its next command, if any, has
				// reset unblocking.
			default:
				again = append(again, c)
			}
		}
		ask = again
		if len(ask) > 0 {
			t := time.NewTimer(time.Millisecond)
			select {
			case <-ctx.Done():
				t.Stop()
				return append(left, ask...)
			case <-t.C:
			}
		}
	}
	return left
}

// readsFromNow reports whether args is an XREAD with $ among its IDs: $
// is the stream's last entry when the command runs, so sent again after
// a failover it would skip what was added in between. Such a command is
// answered TRYAGAIN instead (reblock): the client knows the last ID it
// saw, and goes on from there.
func readsFromNow(args [][]byte) bool {
	if !bytes.EqualFold(args[0], []byte("XREAD")) {
		return false
	}
	for i, a := range args {
		if i > 0 && bytes.EqualFold(a, []byte("STREAMS")) {
			rest := args[i+1:]
			for _, id := range rest[len(rest)/2:] {
				if string(id) == "$" {
					return true
				}
			}
			return false
		}
	}
	return false
}

// timeoutLeft returns raw, a blocking command about to be sent again after
// a failover's hold unblocked it, with its timeout lowered by elapsed, the
// time since the proxy first sent it: the client's wait then ends about
// when it would have without the failover, instead of starting over and
// outlasting the read timeout the client set for it. A timeout already
// over becomes the shortest Redis keeps (1 ms, 2 ms in seconds, 1 s in
// whole seconds): Redis answers it as timed out, in the client's
// protocol, unless there is an element for it by now. No timeout (0), or
// one the proxy cannot read, leaves raw as it is (Redis judges it).
func timeoutLeft(raw []byte, elapsed time.Duration) []byte {
	var cmd resp.Command
	rd := resp.NewReader(bytes.NewReader(raw), len(raw), resp.Limits{MaxFrameLen: int64(len(raw)) + 1})
	if rd.ReadCommand(&cmd) != nil {
		return raw
	}
	i, millis, ok := router.TimeoutArg(cmd.Args)
	if !ok {
		return raw
	}
	unit := time.Second
	if millis {
		unit = time.Millisecond
	}
	t, err := parseTimeout(cmd.Args[i])
	if err != nil || !(t > 0 && t*float64(unit) < math.MaxInt64) {
		return raw // none, not a number, or longer than a Duration holds
	}
	left := time.Duration(t*float64(unit)) - elapsed
	args := slices.Clone(cmd.Args)
	switch {
	case millis:
		args[i] = strconv.AppendInt(nil, max(left.Milliseconds(), 1), 10)
	case isDigits(cmd.Args[i]):
		// Whole seconds, as sent: Redis before 6.0 takes no other. Up to
		// a second more than asked, never none.
		args[i] = strconv.AppendInt(nil, max(int64((left+time.Second-1)/time.Second), 1), 10)
	default:
		// At least 2 ms: Redis 6.0 to 7.0.7 truncate 0.001 s to 0 ms,
		// which means no timeout at all (redis/redis#11687).
		ms := max(left.Milliseconds(), 2)
		args[i] = strconv.AppendFloat(nil, float64(ms)/1000, 'f', 3, 64)
	}
	return resp.AppendCommand(nil, args)
}

// parseTimeout reads a timeout as Redis does (strtold): Go's parser
// wants an exponent in a hexadecimal float, which strtold does not, so
// "0x3" is read as "0x3p0". What Redis would refuse never blocks there,
// so it is never re-sent.
func parseTimeout(b []byte) (float64, error) {
	s := string(b)
	t, err := strconv.ParseFloat(s, 64)
	if err != nil {
		h := strings.TrimLeft(s, "+-")
		if len(h) > 2 && h[0] == '0' && (h[1] == 'x' || h[1] == 'X') && !strings.ContainsAny(h, "pP") {
			return strconv.ParseFloat(s+"p0", 64)
		}
	}
	return t, err
}

// isDigits reports whether b is a non-negative integer in decimal.
func isDigits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return len(b) > 0
}
