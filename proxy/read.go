package proxy

import (
	"bytes"
	"errors"
	"sync"
	"time"

	"github.com/pnats/switchyard/resp"
)

const (
	replyReadonlyPort = "READONLY You can't write against a read only replica."
	replyNoReplica    = "ERR switchyard: no healthy replica to read from"
)

// routeRead sends a stateless command to a replica when the session reads
// from replicas and the command only reads. It reports whether it handled
// the command; if not, the caller sends it to the master.
func (s *session) routeRead(args [][]byte, raw []byte) bool {
	if isScriptLoad(args) {
		s.loadOnReplicas(raw)
		if !s.readPort && s.srv.cfg.ReadPolicy != ReadReplica {
			return false // and on the master, whose reply the client gets
		}
		// A read port, or replica-only reads, answer from a replica as
		// for any command that neither reads nor writes: not held up by
		// a master that is stuck.
	}
	flags := s.srv.commandFlags(args)
	if flags&CmdWrite != 0 {
		if s.readPort {
			// A replica would refuse it with these words; so does a read
			// port, rather than quietly writing to the master.
			s.replyError(replyReadonlyPort)
			return true
		}
		s.writing = true
		return false
	}
	if flags&CmdMayWrite != 0 && !s.readPort {
		s.writing = true // a script may write what the next read asks for
	}
	if flags&CmdPubSub != 0 {
		return false // subscribers are on the master
	}
	// Commands that neither read nor write (PING, INFO, ROLE, …) stay
	// where the port points: a read port answers as a replica.
	if flags&CmdRead == 0 && !s.readPort {
		return false
	}
	if s.recentWrite() {
		return false
	}
	if s.seg.node == nil {
		// A segment for the master may wait (a hold, a slow command):
		// send it before taking the replica connection, so that a
		// connection reaped meanwhile is not the one used.
		s.flush()
	}
	c, n, err := s.replicaConn()
	if err != nil {
		if s.srv.cfg.ReadPolicy == ReadReplica {
			s.replyError(replyNoReplica)
			return true
		}
		if s.readPort && flags&CmdMayWrite != 0 {
			// A replica would refuse its writes; the master would not.
			s.replyError(replyNoReplica)
			return true
		}
		return false // fall back to the master
	}
	if s.seg.conn != c {
		s.flush()
		s.seg.conn = c
	}
	s.seg.node = n
	s.forward(c, raw, false)
	return true
}

// isScriptLoad reports whether args is SCRIPT LOAD.
func isScriptLoad(args [][]byte) bool {
	return len(args) == 3 && bytes.EqualFold(args[0], []byte("SCRIPT")) && bytes.EqualFold(args[1], []byte("LOAD"))
}

// loadOnReplicas sends a SCRIPT LOAD to every replica in the read set, as
// well as (by the caller) to the master. Redis does not replicate it, and
// the EVALSHA or EVALSHA_RO that follows may be read from any replica:
// loaded on one, found on none of the others, it would answer NOSCRIPT
// however often the client loaded it again. Best effort, and waited for
// at most DialTimeout: a replica that missed it answers NOSCRIPT, and the
// client loads it again. Each send ends with its reply or its
// connection's read timeout.
func (s *session) loadOnReplicas(raw []byte) {
	set := s.srv.replicas.Load()
	if set == nil || len(set.nodes) == 0 {
		return
	}
	raw = bytes.Clone(raw) // the sends may outlive the client's read buffer
	key := s.key
	var wg sync.WaitGroup
	for _, n := range set.nodes {
		wg.Go(func() {
			c, err := n.pool(key).shared()
			if err != nil {
				return
			}
			var out []byte
			s.roundTrip(c, raw, &out)
		})
	}
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	t := time.NewTimer(s.srv.cfg.DialTimeout)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
}

// killOnReplicas sends a read port's SCRIPT KILL or FUNCTION KILL to
// every replica of the read set, each on a connection of its own (see
// dedicatedKill): the port's scripts (EVAL_RO, FCALL_RO) run there. Also
// to the replicas that left the read set lately (one running a script
// past busy-reply-threshold answers the health check -BUSY and leaves),
// and to the master unless the policy is ReadReplica (reads fall back to
// it). The client gets +OK if one stopped a script, else the first
// reply (NOTBUSY when none runs one).
func (s *session) killOnReplicas(raw []byte) {
	s.flush()
	var pools []*pool
	if set := s.srv.replicas.Load(); set != nil {
		for _, n := range set.nodes {
			pools = append(pools, n.pool(s.key))
		}
	}
	s.srv.replicaMu.Lock()
	for _, a := range s.srv.departed {
		p := newPool(a, s.key, &s.srv.cfg)
		defer p.close(errPoolClosed)
		pools = append(pools, p)
	}
	s.srv.replicaMu.Unlock()
	if s.srv.cfg.ReadPolicy != ReadReplica && s.srv.current() != nil {
		if p, err := s.currentPool(); err == nil {
			pools = append(pools, p)
		}
	}
	if len(pools) == 0 {
		s.replyError(replyNoReplica)
		return
	}
	replies := make([][]byte, len(pools))
	var wg sync.WaitGroup
	for i, p := range pools {
		wg.Go(func() {
			c, err := p.dedicatedKill()
			if err == nil {
				var out []byte
				if err = s.roundTrip(c, raw, &out); err == nil {
					replies[i] = out
				}
				p.put(c, err == nil)
			}
			if err != nil {
				replies[i] = resp.AppendError(nil, clientError(err))
			}
		})
	}
	wg.Wait()
	for _, r := range replies {
		if len(r) > 0 && r[0] == '+' {
			s.reply(r)
			return
		}
	}
	s.reply(replies[0])
}

// recentWrite reports whether ReadYourWrites keeps the client's reads on
// the master: a write of its is on its way there, or was acknowledged
// less than ReadYourWrites ago.
func (s *session) recentWrite() bool {
	d := s.srv.cfg.ReadYourWrites
	return d > 0 && (s.writing || s.seg.wrote || (!s.lastWrite.IsZero() && time.Since(s.lastWrite) < d))
}

// readWriteToggle handles READONLY and READWRITE as Redis Cluster does:
// per connection, reads go to replicas or back to the master.
func readWriteToggle(s *session, args [][]byte) bool {
	if len(args) != 1 {
		return false
	}
	switch {
	case bytes.EqualFold(args[0], []byte("READONLY")):
		if !s.readPrefer && s.srv.cfg.ReadYourWrites > 0 {
			// Its writes until now were not watched (the event loop's
			// fast path does not look): count one just made, once the
			// commands before are answered.
			s.flush()
			s.lastWrite = time.Now()
		}
		s.readPrefer = true
	case bytes.EqualFold(args[0], []byte("READWRITE")):
		s.readPrefer = false
	default:
		return false
	}
	s.reply(replyOK)
	return true
}

// replicaConn returns the batch's replica connection, picking the least
// loaded healthy replica for a new batch.
func (s *session) replicaConn() (*backendConn, *replicaNode, error) {
	if s.replica != nil && s.replica.alive() {
		return s.replica, s.replicaNode, nil
	}
	// A replica that cannot be reached (stopped, not yet out of the read
	// set) has no outstanding requests and would be picked again and
	// again; try each replica once, in order of preference, before giving
	// the read to the master.
	var failed []*replicaNode
	for {
		n := s.srv.pickReplica(failed)
		if n == nil {
			return nil, nil, errNoReplica
		}
		c, err := n.pool(s.key).shared()
		if err != nil {
			failed = append(failed, n)
			continue
		}
		s.replica, s.replicaNode = c, n
		return c, n, nil
	}
}

// readFromMaster re-sends reads whose replica went away before answering
// to the master. Reads change nothing, so sending one twice is safe; the
// client gets an answer instead of an error.
func (s *session) readFromMaster(parts [][]byte) {
	failed := s.replicaNode
	s.replica, s.replicaNode = nil, nil
	r := &s.req
	if s.srv.cfg.ReadPolicy == ReadReplica {
		switch {
		case !movable(r.err):
			return // a read timeout, say: the client hears of it
		case s.allReads(parts) && s.readElsewhere(parts, failed):
			return
		}
		r.err = errNoReplica
		return
	}
	if !s.allReads(parts) {
		// The policy keeps reads off the master, or not everything here is
		// a read (a read port also sends PING, INFO, EVAL … to replicas):
		// the client gets an error rather than a second execution.
		r.err = errNoReplica
		return
	}
	c, err := s.sharedConn()
	if err == nil {
		r.parts, r.n, r.out, r.blocking, r.unblock, r.err, r.refused = parts, len(parts), &s.out, false, noUnblock, nil, 0
		if err = c.enqueue(r); err == nil {
			<-r.done
			err = r.err
		}
	}
	if err != nil {
		r.err = err // r.n still counts the reads left unanswered
		return
	}
	r.err, r.n = nil, 0
}

// allReads reports whether every raw command in parts is a read.
// readElsewhere sends reads that failed on the replica failed to another
// healthy replica, for the policy that keeps reads off the master, and
// reports whether they were answered there. The client gets an error
// only when no replica can answer.
func (s *session) readElsewhere(parts [][]byte, failed *replicaNode) bool {
	r := &s.req
	skip := []*replicaNode{failed}
	for {
		n := s.srv.pickReplica(skip)
		if n == nil {
			return false
		}
		skip = append(skip, n)
		c, err := n.pool(s.key).shared()
		if err != nil {
			continue
		}
		r.parts, r.n, r.out, r.blocking, r.unblock, r.err, r.refused = parts, len(parts), &s.out, false, noUnblock, nil, 0
		n.begin(s.key)
		err = c.enqueue(r)
		if err == nil {
			<-r.done
			err = r.err
		}
		n.end(s.key)
		if err == nil {
			r.err, r.n = nil, 0
			return true
		}
		if !movable(err) {
			return false
		}
		parts = parts[len(parts)-r.n:] // the replies that came are in s.out
	}
}

// movable reports whether reads that failed with err on a replica may be
// sent to another: it left the read set under them, or they were never
// sent. Not after a read timeout: the read may still be running there,
// and a slow read would run on every replica in turn.
func movable(err error) bool {
	return errors.Is(err, errNoReplica) || isNotSent(err)
}

func (s *session) allReads(parts [][]byte) bool {
	var cmd resp.Command
	for _, p := range parts {
		rd := resp.NewReader(bytes.NewReader(p), len(p)+16, resp.Limits{})
		if err := rd.ReadCommand(&cmd); err != nil || s.srv.commandFlags(cmd.Args)&CmdRead == 0 {
			return false
		}
	}
	return true
}
