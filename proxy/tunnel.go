package proxy

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"net"
	"strings"
	"time"

	"github.com/pnats/switchyard/resp"
	"github.com/pnats/switchyard/router"
	"go.uber.org/zap"
)

// enterTunnel gives the session a backend connection of its own that
// streams to the client unprompted: Pub/Sub, MONITOR, CLIENT TRACKING.
// CLIENT ID enters one too: the ID is then that of the connection every
// later command of the client runs on, so another client's CLIENT
// UNBLOCK or CLIENT TRACKING … REDIRECT (RESP2 messages, RESP3 pushes)
// reaches it, as on Redis.
// The session stays in tunnel mode until the client or the backend
// connection goes away; the backend itself enforces what a subscribed
// client may send.
func (s *session) enterTunnel(class router.Class, args [][]byte, raw []byte) {
	// What came before goes first: a segment that ends a transaction or
	// a WATCH gives the client's connection back to the pool (finishSeg),
	// and the tunnel must not be made of a connection another client may
	// take from there.
	s.flush()
	c, err := s.dedicated()
	if err != nil {
		if class == router.Subscribe && !bytes.Contains(upperName(args), []byte("UNSUBSCRIBE")) && !refusedCredentials(err) {
			// No master in time (or none reachable). An error in reply
			// to SUBSCRIBE leaves common clients (go-redis) believing
			// they are subscribed on a connection that gets nothing:
			// after a master crash an audit saw a subscriber silent for
			// minutes. Closing the connection after the replies before
			// it makes the client reconnect and subscribe again, as when
			// a hold closes a tunnel. Refused credentials (NOPERM,
			// WRONGPASS, NOAUTH) are answered: a reconnect would meet
			// them again. Other refusals while connecting (max clients,
			// BUSY, LOADING) pass, and close the connection too.
			s.flush()
			s.writeOut()
			s.closing = true
			s.srv.log.Debug("client disconnected: no master to subscribe on", zap.String("client", addrOf(s.nc)), zap.Error(err))
			return
		}
		s.replyError(clientError(err))
		return
	}
	s.flush()
	// The connection is the client's from now on, and CLIENT GETNAME,
	// CLIENT INFO and CLIENT LIST reach it: it takes the client's name
	// (none clears the proxy's own).
	var out []byte
	if err := s.roundTrip(c, resp.AppendCommand(nil, [][]byte{[]byte("CLIENT"), []byte("SETNAME"), []byte(s.name)}), &out); err != nil {
		s.replyError(clientError(err))
		return
	}
	// Replies to everything before this command must reach the client
	// before anything the pump copies.
	if err := s.writeOut(); err != nil {
		s.closing = true
		return
	}
	s.sink = &clientWriter{nc: s.nc, timeout: s.srv.cfg.PubSubWriteTimeout, bytes: s.srv.cfg.Metrics.BytesOut}
	s.in.idle = 0 // like Redis, never time out a subscriber for being quiet
	c.startTunnel(s.sink)
	s.ownID = class == router.ClientID
	s.forward(c, raw, false)
}

// endTunnel forwards the client's RESET into its tunnel, then a command
// named with a random token, and waits for the pump to swallow the
// token's reply and end the tunnel. Redis has then left Pub/Sub, MONITOR
// and tracking, and every frame the tunnel owed the client has been
// delivered (the RESET's own +RESET included, unless CLIENT REPLY SKIP
// skipped it), so the session serves the client again as any other, its
// own replies in order: NOAUTH for a client that must now authenticate
// again, say, cannot overtake the +RESET.
//
// Redis knows no such command, and says so ("unknown command") before
// it checks anything else: RESET logs the connection out, and its user
// may lack a command's ACL, but neither stops the reply. (An ECHO did:
// with a password, or a rotated one, its reply was NOAUTH, with an ACL
// without ECHO NOPERM, and the session hung.) Redis runs RESET whatever
// the user's ACL, and in any state. The token tells the reply apart
// from anything a script or the client could make Redis send. Redis
// counts it in INFO errorstats.
func (s *session) endTunnel(raw []byte) {
	c := s.ded
	var token [16]byte
	rand.Read(token[:])
	end := &tunnelEnding{token: []byte("SWITCHYARD-TUNNEL-END-" + hex.EncodeToString(token[:]))}
	c.tunnelEnd.Store(end)
	s.forward(c, raw, false)
	s.forward(c, resp.AppendCommand(nil, [][]byte{end.token}), false)
	s.flush()
	// No time limit: a blocking command before the RESET (a BLPOP, a
	// WAIT) holds it up on Redis as it would on a direct connection. A
	// client that leaves meanwhile closes the connection, as a blocked
	// one does; a failover closes a tunnel anyway.
	gone := s.in.watch()
	select {
	case <-c.done:
	case <-gone:
		if !s.in.overLimit() || !received(c.done, peekGrace) {
			s.clientGone()
			c.close(s.in.goneErr())
			<-c.done
		}
	}
	s.in.stopWatch()
	if !c.tunnelReset.Load() {
		s.closing = true // the pump failed, and closed the client
		return
	}
	s.sink, s.ownID = nil, false
	s.in.idle = s.srv.cfg.IdleTimeout
	s.resetState()
}

// tunnelEnding is a RESET on its way through a tunnel (endTunnel).
type tunnelEnding struct {
	token []byte // the name of the command sent after the RESET
}

// is reports whether raw is Redis's reply to the token's command: the
// unknown command error that names it.
func (e *tunnelEnding) is(raw []byte) bool {
	return len(raw) > 0 && raw[0] == resp.TypeError && bytes.Contains(raw, e.token)
}

// closeTunnel passes the end of a tunnel's client on to Redis. A client
// that half-closes its connection (shutdown(SHUT_WR)) after its last
// commands expects their replies, and a direct Redis gives them: it reads
// the end only after answering what came before, then closes. So the
// bytes already read are written, the write side of the tunnel's
// connection is shut, and the session waits (at most ReadTimeout) for the
// pump to copy everything Redis sends before its close and to close the
// client. A client that closed its connection entirely reads the same
// end; the pump's first write to it then fails, and ends the tunnel at
// once. Redis drops a command it had blocked (BLPOP) when it reads the
// end, as for a direct client.
func (s *session) closeTunnel() {
	s.flush()
	c := s.ded
	if c == nil || !c.alive() {
		return
	}
	c.clientEnded.Store(true)
	if err := closeWrite(c.nc); err != nil {
		return // the connection is closed with the session
	}
	t := time.NewTimer(s.srv.cfg.ReadTimeout)
	defer t.Stop()
	select {
	case <-c.done:
	case <-t.C:
		s.srv.log.Debug("closed a tunnel whose client had ended: Redis did not close it within read_timeout",
			zap.String("client", addrOf(s.nc)), zap.Duration("read_timeout", s.srv.cfg.ReadTimeout))
	}
}

// closeWrite shuts the write side of a backend connection: after TLS's
// close_notify, the socket's too, which is the end Redis reads.
func closeWrite(nc net.Conn) error {
	if tc, ok := nc.(*tls.Conn); ok {
		if err := tc.CloseWrite(); err != nil {
			return err
		}
		nc = tc.NetConn()
	}
	cw, ok := nc.(interface{ CloseWrite() error })
	if !ok {
		return errors.ErrUnsupported
	}
	return cw.CloseWrite()
}

// refusedCredentials reports whether err is Redis refusing the
// connection's credentials, which stay refused however often it is tried.
func refusedCredentials(err error) bool {
	return replyErrorIs(err, "NOPERM", "WRONGPASS", "NOAUTH")
}

// replyErrorIs reports whether err is an error reply of Redis's whose
// code is one of codes.
func replyErrorIs(err error, codes ...string) bool {
	var re *ReplyError
	if !errors.As(err, &re) {
		return false
	}
	for _, c := range codes {
		if strings.HasPrefix(re.Msg, c) {
			return true
		}
	}
	return false
}

// handleTunnel forwards everything: in a tunnel the backend connection is
// the client's own, so Redis itself tracks SELECT, HELLO, AUTH and names.
func (s *session) handleTunnel(class router.Class, args [][]byte, raw []byte) {
	switch {
	case class == router.Unsupported && !bytes.EqualFold(args[0], []byte("CLIENT")):
		// Replication commands. The error is written now, perhaps ahead
		// of replies the pump has yet to copy: they have no place here.
		s.replyError("ERR switchyard: '" + string(upperName(args)) + "' is not supported through the proxy")
		return
	case class == router.Reset && len(args) == 1 && s.ownID && s.srv.cfg.Authenticate == nil &&
		(s.key.clientAuth || s.srv.cfg.Password == ""):
		// The client was given this connection's ID, and on Redis RESET
		// keeps the connection and so the ID that CLIENT UNBLOCK and
		// TRACKING REDIRECT name. Redis resets the connection's state;
		// it stays the client's, its commands all passed through. That
		// needs the connection's credentials to be the client's own (or
		// none): RESET logs the connection out, and a client the proxy
		// logs in, or one that must log in to the proxy again
		// (client_auth), cannot do it on Redis. Then the session ends the
		// tunnel instead, and a later CLIENT ID names a new connection.
		s.name = ""
		s.forward(s.ded, raw, false)
		return
	case class == router.Reset && len(args) == 1:
		s.endTunnel(raw)
		return
	case class == router.ClientID:
		s.ownID = true
	case class == router.Quit:
		// Redis answers +OK and closes: the end the client asked for,
		// which the pump passes on, not a backend failure.
		s.ded.clientEnded.Store(true)
	}
	// Everything else goes to Redis, whose replies come back in order
	// with the rest. CLIENT REPLY, NO-EVICT and NO-TOUCH included: this
	// connection is the client's alone, and no reply is counted on it.
	s.forward(s.ded, raw, false)
}
