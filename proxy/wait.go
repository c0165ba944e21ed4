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
// If the PUBLISH is refused (an ACL that denies it to the proxy's user),
// WAIT is answered with that error instead of a count that may be false.
func (s *session) markWrites(c *backendConn) bool {
	s.flush()
	var out []byte
	err := s.roundTrip(c, waitMark, &out)
	switch {
	case err != nil:
		s.replyError(clientError(err))
	case len(out) > 0 && out[0] == resp.TypeError:
		s.replyError("ERR switchyard: WAIT needs the proxy's Redis user to be allowed PUBLISH " + WaitChannel +
			", to count this client's writes; Redis answered: " + strings.TrimSpace(string(out[1:])))
	default:
		return true
	}
	return false
}
