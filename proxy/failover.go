package proxy

import (
	"bytes"

	"github.com/pnats/switchyard/resp"
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
	if s.srv.held.Load() && s.gen == s.srv.gen.Load() {
		if s.srv.waitMaster(nil, s.holdWait()) == nil {
			return errNoMaster // finishSeg starts the refusal
		}
	}
	if !s.gen.fenced.Load() {
		if c := s.seg.conn; c != nil && c.shared && !c.alive() {
			c, err := s.connect((*pool).shared)
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
	r.parts, r.n, r.out, r.blocking, r.unblock, r.err, r.readonly = parts[first:], len(parts)-first, &fresh, false, noUnblock, nil, false
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
