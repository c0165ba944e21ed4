package proxy

import (
	"bytes"
	"strings"

	"github.com/pnats/switchyard/resp"
)

// WaitChannel is the channel the proxy publishes an empty message on
// before it forwards a client's WAIT or WAITAOF (see markWrites).
const WaitChannel = "__switchyard__:wait"

var waitMark = resp.AppendCommand(nil, [][]byte{[]byte("PUBLISH"), []byte(WaitChannel), nil})

// isWait reports whether args is WAIT or WAITAOF.
func isWait(args [][]byte) bool {
	return bytes.EqualFold(args[0], []byte("WAIT")) || bytes.EqualFold(args[0], []byte("WAITAOF"))
}

// isKill reports whether args is SCRIPT KILL or FUNCTION KILL, which the
// router sends on a connection of their own (as blocking commands).
func isKill(args [][]byte) bool {
	return len(args) == 2 && bytes.EqualFold(args[1], []byte("KILL")) &&
		(bytes.EqualFold(args[0], []byte("SCRIPT")) || bytes.EqualFold(args[0], []byte("FUNCTION")))
}

// markWrites prepares c, the connection a WAIT or WAITAOF is about to
// run on, to count the client's writes. Redis counts replicas (or fsyncs)
// up to the replication offset of the last write made on the connection
// WAIT runs on; the client's writes went over shared connections, and c,
// fresh or reused, has an older offset or none, so WAIT would count
// replicas that never received them. A PUBLISH on c, which Redis
// propagates to its replicas and which has no effect beyond a message on
// WaitChannel, brings c's offset to the master's latest, past every write
// of the client's: they have all been answered once the segments before
// are flushed. WAIT may then wait for other clients' writes too, never
// for fewer than the client's.
//
// The PUBLISH waits as the blocking command it precedes does, with no
// read timeout: a master whose writes are paused (CLIENT PAUSE WRITE, as
// a failover begins) answers it when the pause ends. It goes out only
// once a failover hold is over, to the master the hold decided.
//
// A client whose earlier commands went to a master since replaced gets an
// error instead of a count, once.
//
// When it cannot be sent, or Redis refuses it (an ACL that denies it to
// the proxy's user, a master demoted meanwhile), WAIT is answered with an
// error instead of a count that may be false.
func (s *session) markWrites(c *backendConn) bool {
	s.flush()
	if err := s.awaitRelease(); err != nil {
		s.replyError(clientError(err))
		return false
	}
	if s.masterChanged {
		// The client's connection outlived a master switch, which on
		// Redis would have closed it: its earlier writes went to the old
		// master, and the new one's replicas may never have had them (a
		// crash loses what was not replicated). No count can vouch for
		// them; this WAIT says so, and the next counts from here.
		s.masterChanged = false
		s.replyError("ERR switchyard: the master changed since this client's earlier commands; WAIT cannot count replicas for writes the old master took")
		return false
	}
	var out []byte
	r := &request{parts: [][]byte{waitMark}, n: 1, out: &out, blocking: true, done: make(chan struct{}, 1)}
	if err := c.enqueue(r); err != nil {
		s.replyError(clientError(notSent(err)))
		return false
	}
	s.waitBlocking(r, c)
	switch {
	case r.err != nil:
		s.replyError(clientError(r.err))
	case len(out) > 0 && out[0] == resp.TypeError && bytes.HasPrefix(out[1:], []byte("NOPERM")):
		s.replyError("ERR switchyard: WAIT needs the proxy's Redis user to be allowed PUBLISH " + WaitChannel +
			", to count this client's writes; Redis answered: " + strings.TrimSpace(string(out[1:])))
	case len(out) > 0 && out[0] == resp.TypeError:
		s.reply(out) // READONLY, LOADING, …: what WAIT itself would meet
	default:
		return true
	}
	return false
}
