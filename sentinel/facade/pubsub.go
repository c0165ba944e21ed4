package facade

import (
	"fmt"
	"net"
	"slices"

	"go.uber.org/zap"
)

// SwitchChannel is the channel on which a Sentinel announces a new master
// address, and the only one the facade ever publishes on. Clients may
// subscribe to others (Sentinel's event channels); they stay silent.
const SwitchChannel = "+switch-master"

func (s *Server) subscribe(c *client, args [][]byte) {
	for _, a := range args[1:] {
		ch := string(a)
		c.channels.add(ch)
		c.ack("subscribe", ch)
	}
}

func (s *Server) psubscribe(c *client, args [][]byte) {
	for _, a := range args[1:] {
		p := string(a)
		c.patterns.add(p)
		c.ack("psubscribe", p)
	}
}

func (s *Server) unsubscribe(c *client, args [][]byte) {
	c.drop("unsubscribe", &c.channels, args[1:])
}

func (s *Server) punsubscribe(c *client, args [][]byte) {
	c.drop("punsubscribe", &c.patterns, args[1:])
}

// subs is a client's channels, or its patterns: a set, so that a client
// subscribing to many names costs a map insert each (not a scan of those
// before it), remembering the order they came in for UNSUBSCRIBE without
// arguments. Guarded by the client's mu.
type subs struct {
	seq int
	m   map[string]int // name → when subscribed
}

func (s *subs) add(name string) {
	if _, ok := s.m[name]; ok {
		return
	}
	if s.m == nil {
		s.m = map[string]int{}
	}
	s.seq++
	s.m[name] = s.seq
}

func (s *subs) has(name string) bool { _, ok := s.m[name]; return ok }
func (s *subs) len() int             { return len(s.m) }

// names lists the names in the order they were subscribed.
func (s *subs) names() []string {
	out := make([]string, 0, len(s.m))
	for n := range s.m {
		out = append(out, n)
	}
	slices.SortFunc(out, func(a, b string) int { return s.m[a] - s.m[b] })
	return out
}

// subscribed reports whether c has any subscription. c.mu is held.
func (c *client) subscribed() bool { return c.channels.len()+c.patterns.len() > 0 }

// drop removes names from subs (all of them if names is empty) and
// acknowledges each, as Redis does: a name not subscribed is acknowledged
// too, and with nothing to drop the reply names a null channel.
func (c *client) drop(kind string, subs *subs, names [][]byte) {
	if len(names) == 0 {
		if subs.len() == 0 {
			c.out.push(3)
			c.out.bulk(kind)
			c.out.nullBulk()
			c.out.int(int64(c.channels.len() + c.patterns.len()))
			return
		}
		for _, n := range subs.names() {
			names = append(names, []byte(n))
		}
	}
	for _, n := range names {
		delete(subs.m, string(n)) // the count in the ack counts the removal
		c.ack(kind, string(n))
	}
	c.hasSubs.Store(c.subscribed())
}

// ack confirms a (un)subscription with the client's total count of
// subscriptions, as Redis 7.0 counts them (channels plus patterns).
func (c *client) ack(kind, name string) {
	c.out.push(3)
	c.out.bulk(kind)
	c.out.bulk(name)
	c.out.int(int64(c.channels.len() + c.patterns.len()))
	c.hasSubs.Store(c.subscribed())
}

// Check compares each group's advertised address with the one last
// published and, for each that changed, publishes on +switch-master
// "<name> <old-ip> <old-port> <new-ip> <new-port>", as a Sentinel does
// after a failover, so subscribed clients reconnect. It is cheap: call it
// after a reload and periodically.
func (s *Server) Check() {
	s.pubMu.Lock()
	defer s.pubMu.Unlock()
	seen := map[string]bool{}
	for _, g := range s.groups() {
		seen[g.Name] = true
		addr := g.Addr()
		old, known := s.published[g.Name]
		s.published[g.Name] = addr
		if !known || old == addr {
			continue
		}
		oh, op, err1 := net.SplitHostPort(old)
		nh, np, err2 := net.SplitHostPort(addr)
		if err1 != nil || err2 != nil {
			continue
		}
		s.epochMu.Lock()
		s.epochs[g.Name]++
		s.epochMu.Unlock()
		msg := fmt.Sprintf("%s %s %s %s %s", g.Name, oh, op, nh, np)
		n := s.publish(SwitchChannel, msg)
		s.log.Info("facade: advertised address changed; published +switch-master",
			zap.String("master_name", g.Name), zap.String("old", old), zap.String("new", addr), zap.Int("receivers", n))
	}
	for name := range s.published {
		if !seen[name] {
			delete(s.published, name)
			s.epochMu.Lock()
			delete(s.epochs, name)
			s.epochMu.Unlock()
		}
	}
}

// publication is one message on a channel, queued for a client.
type publication struct{ channel, msg string }

// publish queues msg for every client with a subscription and returns how
// many there are. It never waits for a client: each one's queue is
// written by a goroutine of its own, started when the queue was empty and
// ended when it is empty again, so a subscriber that reads slowly (or a
// client in the middle of a slow write) holds up neither the caller
// (the binary's main loop, on a reload) nor the other subscribers.
// Whether a client's channels or patterns match is decided when its
// queue is written.
func (s *Server) publish(channel, msg string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0
	}
	n := 0
	for c := range s.clients {
		if !c.hasSubs.Load() {
			continue
		}
		n++
		c.pubMu.Lock()
		c.pubs = append(c.pubs, publication{channel, msg})
		start := !c.sending
		c.sending = true
		c.pubMu.Unlock()
		if start {
			s.conns.Add(1) // Close waits for it; s.closed is false under s.mu
			go func() {
				defer s.conns.Done()
				c.deliver()
			}()
		}
	}
	return n
}

// deliver writes c's queued publications until none is left.
func (c *client) deliver() {
	for {
		c.pubMu.Lock()
		q := c.pubs
		c.pubs = nil
		if len(q) == 0 {
			c.sending = false
			c.pubMu.Unlock()
			return
		}
		c.pubMu.Unlock()
		c.mu.Lock()
		for _, p := range q {
			if c.channels.has(p.channel) {
				c.out.push(3)
				c.out.bulk("message")
				c.out.bulk(p.channel)
				c.out.bulk(p.msg)
			}
			for _, pat := range c.patterns.names() {
				if globMatch(pat, p.channel) {
					c.out.push(4)
					c.out.bulk("pmessage")
					c.out.bulk(pat)
					c.out.bulk(p.channel)
					c.out.bulk(p.msg)
				}
			}
		}
		c.flush()
		c.mu.Unlock()
	}
}
