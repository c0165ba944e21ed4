package facade

import (
	"fmt"
	"net"
	"slices"

	"github.com/tidwall/match"
	"go.uber.org/zap"
)

// SwitchChannel is the channel on which a Sentinel announces a new master
// address, and the only one the facade ever publishes on. Clients may
// subscribe to others (Sentinel's event channels); they stay silent.
const SwitchChannel = "+switch-master"

func (s *Server) subscribe(c *client, args [][]byte) {
	for _, a := range args[1:] {
		ch := string(a)
		if !slices.Contains(c.channels, ch) {
			c.channels = append(c.channels, ch)
		}
		c.ack("subscribe", ch)
	}
}

func (s *Server) psubscribe(c *client, args [][]byte) {
	for _, a := range args[1:] {
		p := string(a)
		if !slices.Contains(c.patterns, p) {
			c.patterns = append(c.patterns, p)
		}
		c.ack("psubscribe", p)
	}
}

func (s *Server) unsubscribe(c *client, args [][]byte) {
	c.channels = c.drop("unsubscribe", c.channels, args[1:])
}

func (s *Server) punsubscribe(c *client, args [][]byte) {
	c.patterns = c.drop("punsubscribe", c.patterns, args[1:])
}

// drop removes names from subs (all of them if names is empty) and
// acknowledges each, as Redis does: a name not subscribed is acknowledged
// too, and with nothing to drop the reply names a null channel.
func (c *client) drop(kind string, subs []string, names [][]byte) []string {
	if len(names) == 0 {
		if len(subs) == 0 {
			c.out.push(3)
			c.out.bulk(kind)
			c.out.nullBulk()
			c.out.int(int64(len(c.channels) + len(c.patterns)))
			return subs
		}
		for _, n := range slices.Clone(subs) {
			names = append(names, []byte(n))
		}
	}
	for _, n := range names {
		subs = slices.DeleteFunc(subs, func(s string) bool { return s == string(n) })
		// The count must reflect the removal before the ack is written.
		if kind == "unsubscribe" {
			c.channels = subs
		} else {
			c.patterns = subs
		}
		c.ack(kind, string(n))
	}
	return subs
}

// ack confirms a (un)subscription with the client's total count of
// subscriptions, as Redis 7.0 counts them (channels plus patterns).
func (c *client) ack(kind, name string) {
	c.out.push(3)
	c.out.bulk(kind)
	c.out.bulk(name)
	c.out.int(int64(len(c.channels) + len(c.patterns)))
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

// publish sends msg to every client subscribed to channel or to a pattern
// matching it and returns how many messages were sent.
func (s *Server) publish(channel, msg string) int {
	s.mu.Lock()
	clients := make([]*client, 0, len(s.clients))
	for c := range s.clients {
		clients = append(clients, c)
	}
	s.mu.Unlock()
	sent := 0
	for _, c := range clients {
		c.mu.Lock()
		if slices.Contains(c.channels, channel) {
			c.out.push(3)
			c.out.bulk("message")
			c.out.bulk(channel)
			c.out.bulk(msg)
			sent++
		}
		for _, p := range c.patterns {
			if match.Match(channel, p) {
				c.out.push(4)
				c.out.bulk("pmessage")
				c.out.bulk(p)
				c.out.bulk(channel)
				c.out.bulk(msg)
				sent++
			}
		}
		c.flush()
		c.mu.Unlock()
	}
	return sent
}
