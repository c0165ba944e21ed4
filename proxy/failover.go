package proxy

import (
	"bytes"
	"time"

	"github.com/pnats/switchyard/resp"
	"github.com/pnats/switchyard/router"
	"go.uber.org/zap"
)

// awaitRelease keeps the current segment back while a failover holds the
// generation it is bound for. When the hold ends with a new master, a
// stateless segment moves to it (nothing was sent yet, so that is safe);
// a pinned one fails when it finds its connection fenced. A stateless
// segment whose connection was lost meanwhile (the hold closed it, the
// master died) takes a fresh one. A hold that outlasts HoldTimeout fails
// the segment closed with TRYAGAIN.
func (s *session) awaitRelease() error {
	if s.refusing != nil {
		return s.refusing
	}
	if s.gen == nil {
		return nil
	}
	waited := false
	if s.srv.held.Load() && s.gen == s.srv.gen.Load() {
		hook(holdWaitHook)
		if s.srv.waitMaster(nil, s.holdWait()) == nil {
			return errNoMaster // finishSeg starts the refusal
		}
		waited = true
	}
	if !s.gen.fenced.Load() {
		// After a wait, Redis may have closed the connection during the
		// hold, and the event loop not have read the close yet (connect,
		// which then looks at what it gets too).
		if c := s.seg.conn; c != nil && c.shared && (!c.alive() || waited && c.closedIdle()) {
			c, err := s.connectAfterHold((*pool).shared)
			if err != nil {
				return notSent(err)
			}
			s.seg.conn = c
		}
		return nil
	}
	// The segment was built for a master that has been replaced. Nothing
	// of it was sent. A transaction, WATCH or subscription cannot follow
	// to the new master, nor can a segment built on a dedicated connection
	// since given up: the client must see the failover.
	if c := s.seg.conn; c == nil || !c.shared {
		return notSent(errFenced)
	}
	g := s.srv.current()
	if g == nil {
		if g = s.srv.waitMaster(nil, s.holdWait()); g == nil {
			return errNoMaster // finishSeg starts the refusal
		}
	}
	s.moveTo(g)
	c, err := s.pool.shared()
	if err != nil {
		return notSent(err)
	}
	s.seg.conn = c
	return nil
}

var readonlyPrefix = []byte("-READONLY ")

// retryReadonly handles a segment in which the node believed to be master
// answered -READONLY: it has become a replica, so it executed no write.
// The owner is asked to re-check the topology at once, and everything from
// the first -READONLY reply on is sent again to the next verified master,
// as if the client had sent that part of its pipeline there. If no new
// master is verified within HoldTimeout, the client keeps the -READONLY
// replies, which truthfully say that nothing was written.
func (s *session) retryReadonly(start int, parts [][]byte) {
	s.srv.recheck()
	offsets, ok := replyOffsets(s.out[start:], len(parts))
	if !ok {
		return
	}
	first := -1
	for i := range parts {
		if bytes.HasPrefix(s.out[start+offsets[i]:], readonlyPrefix) {
			first = i
			break
		}
	}
	if first < 0 {
		return
	}
	s.srv.log.Warn("master answered READONLY; retrying on the next verified master")
	g := s.srv.waitMaster(s.gen, s.srv.cfg.HoldTimeout)
	if g == nil {
		return
	}
	s.moveTo(g)
	c, err := s.pool.shared()
	if err != nil {
		return
	}
	var fresh []byte
	r := &s.req
	r.parts, r.n, r.out, r.blocking, r.unblock, r.err, r.refused = parts[first:], len(parts)-first, &fresh, false, noUnblock, nil, 0
	if err := c.enqueue(r); err != nil {
		return
	}
	<-r.done
	if r.err != nil {
		// Part of the retry may have run; the client must not see the
		// old READONLY replies as if nothing had.
		for i := 0; i < r.n; i++ {
			fresh = resp.AppendError(fresh, clientError(r.err))
		}
	}
	s.out = append(s.out[:start+offsets[first]], fresh...)
	// The retry's outcome is now in s.out; the segment is finished.
	r.err, r.n = nil, 0
}

// loadingReplies are the -LOADING errors of Redis and of Valkey, whole:
// a script may return an error that starts with LOADING after it wrote.
var loadingReplies = [...][]byte{
	[]byte("-LOADING Redis is loading the dataset in memory\r\n"),
	[]byte("-LOADING Valkey is loading the dataset in memory\r\n"),
}

// isLoading reports whether the reply at the start of b is a -LOADING
// error of the server's own.
func isLoading(b []byte) bool {
	for _, l := range loadingReplies {
		if bytes.HasPrefix(b, l) {
			return true
		}
	}
	return false
}

// loadingRetry is how often a command the master refused with -LOADING
// is sent again while it loads.
const loadingRetry = 50 * time.Millisecond

// retryLoading handles a segment to which the master answered -LOADING:
// it restarted and is loading its data set, and ran none of those
// commands. Instead of passing that on (hundreds of errors per restart
// under load), the commands from the first -LOADING reply on are sent
// again every loadingRetry, to the master the group has then, until
// they are answered otherwise, within HoldTimeout of when the proxy read
// them (a wait for the master before counts); after that the client
// gets the -LOADING replies, which say truthfully that nothing ran. Only
// a segment whose replies are -LOADING from the first one on is sent
// again: a command Redis runs while loading (PUBLISH, say) must not run
// twice. Nor are scripts and functions (ids, the commands' metric IDs):
// one may write, then return an error of the same text.
func (s *session) retryLoading(start int, parts [][]byte, ids []uint16) {
	offsets, ok := replyOffsets(s.out[start:], len(parts))
	if !ok {
		return
	}
	first, ok := loadingFrom(s.out[start:], offsets)
	if !ok {
		return
	}
	if len(ids) != len(parts) {
		return // which commands these are is not known: none is sent again
	}
	for _, id := range ids[first:] {
		if scriptIDs[id] {
			return
		}
	}
	if s.gen != nil && s.gen.loadingLog.Allow() {
		s.srv.log.Info("master answered LOADING; sending the commands again until it has loaded", zap.String("master", s.gen.addr))
	}
	deadline := s.batchStart.Add(s.srv.cfg.HoldTimeout)
	r := &s.req
	// Whatever the retries came to is in s.out now: the segment is
	// finished, with no error left for finishSeg to answer.
	defer func() { r.err, r.n = nil, 0 }()
	for {
		wait := min(loadingRetry, time.Until(deadline))
		if wait <= 0 {
			return
		}
		time.Sleep(wait)
		g := s.srv.current()
		if g == nil {
			// A failover hold, or no master: its outcome decides.
			if g = s.srv.waitMaster(nil, time.Until(deadline)); g == nil {
				return
			}
		}
		if g != s.gen {
			s.moveTo(g)
		}
		c, err := s.pool.shared()
		if err != nil {
			continue // dialling a master that is restarting
		}
		var fresh []byte
		r.parts, r.n, r.out, r.blocking, r.unblock, r.err, r.refused = parts[first:], len(parts)-first, &fresh, false, noUnblock, nil, 0
		if err := c.enqueue(r); err != nil {
			continue // nothing was sent
		}
		<-r.done
		switch {
		case isNotSent(r.err):
			continue
		case r.err != nil:
			// Part of the retry may have run; the client must not see
			// the old LOADING replies as if nothing had.
			for i := 0; i < r.n; i++ {
				fresh = resp.AppendError(fresh, clientError(r.err))
			}
		case r.refused&refusedLoading != 0:
			if offs, ok := replyOffsets(fresh, len(parts)-first); ok {
				if at, ok := loadingFrom(fresh, offs); ok && at == 0 {
					continue // still loading: nothing of it ran
				}
			}
		}
		s.out = append(s.out[:start+offsets[first]], fresh...)
		return
	}
}

// scriptIDs are the metric IDs of the commands that run a script or a
// function.
var scriptIDs = func() (m [router.NumCommandIDs]bool) {
	for id := range m {
		switch router.CommandName(id) {
		case "EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO", "FCALL", "FCALL_RO":
			m[id] = true
		}
	}
	return m
}()

// loadingFrom returns the first of the replies in b (starting at
// offsets) that is -LOADING, if every reply from it on is too.
func loadingFrom(b []byte, offsets []int) (int, bool) {
	first := -1
	for i, off := range offsets {
		loading := isLoading(b[off:])
		switch {
		case loading && first < 0:
			first = i
		case !loading && first >= 0:
			return 0, false // something ran after the first -LOADING
		}
	}
	return first, first >= 0
}

// replyOffsets returns where each of the n replies in b starts.
func replyOffsets(b []byte, n int) ([]int, bool) {
	rd := resp.NewReader(bytes.NewReader(b), len(b)+16, resp.Limits{})
	offsets := make([]int, 0, n)
	pos := 0
	for i := 0; i < n; i++ {
		raw, _, err := rd.ReadReply()
		if err != nil {
			return nil, false
		}
		offsets = append(offsets, pos)
		pos += len(raw)
	}
	return offsets, true
}
