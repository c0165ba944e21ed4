package proxy

import (
	"bytes"
	"time"

	"github.com/pnats/switchyard/router"
	"go.uber.org/zap"
)

const (
	replyNoAuth    = "NOAUTH Authentication required."
	replyWrongPass = "WRONGPASS invalid username-password pair or user is disabled."
	replyHelloAuth = "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time"
)

// Failed AUTH attempts on one connection are answered ever more slowly from
// slowAfterFailures on (Config.AuthFailureDelay, doubling, up to 20 times
// it), and the connection is dropped at dropAfterFailures, so guessing
// passwords through the proxy is slow and noisy.
const (
	slowAfterFailures = 3
	dropAfterFailures = 10
)

// authRequired reports whether the session must authenticate before class.
func (s *session) authRequired(class router.Class) bool {
	if s.authed {
		return false
	}
	switch class {
	case router.Auth, router.Hello, router.Quit, router.Reset:
		// Redis's no-auth commands; RESET leaves the client as it was,
		// unauthenticated.
		return false
	}
	return true
}

// checkPassword verifies user/password with the configured Authenticate
// and keeps the connection's failure count. It answers a failure itself.
func (s *session) checkPassword(user, password []byte) bool {
	if s.srv.cfg.Authenticate(string(user), string(password)) {
		if !s.authed {
			s.authed = true
			s.rd.SetLimits(s.srv.cfg.Limits)
		}
		s.authFailures = 0
		return true
	}
	s.authFailed(replyWrongPass)
	return false
}

// authFailed answers a failed authentication with msg, ever more slowly
// from the third failure on the connection, and drops the connection at
// the tenth. Passed-through AUTH goes through here too: each attempt
// would otherwise cost a connection to Redis.
func (s *session) authFailed(msg string) {
	s.authFailures++
	m := s.srv.cfg.Metrics
	m.add(m.AuthFailures, 1)
	if s.authFailures >= slowAfterFailures {
		base := s.srv.cfg.AuthFailureDelay
		delay := min(20*base, base<<(s.authFailures-slowAfterFailures))
		s.flush()
		time.Sleep(delay) // only this client waits: its own goroutine
	}
	s.replyError(msg)
	if s.authFailures >= dropAfterFailures {
		s.srv.log.Warn("client dropped after repeated failed AUTH", zap.String("client", addrOf(s.nc)))
		s.closing = true
	}
}

// proxyAuth handles AUTH when the proxy authenticates clients itself: the
// backend connections keep the proxy's own credentials.
func (s *session) proxyAuth(args [][]byte) {
	if !s.authArity(args) {
		return
	}
	user := []byte("default")
	if len(args) == 3 {
		user = args[1]
	}
	if s.checkPassword(user, args[len(args)-1]) {
		s.reply(replyOK)
	}
}

// helloAuth finds the AUTH option of a HELLO, if any.
func helloAuth(args [][]byte) (user, pass []byte, ok bool) {
	for i := 2; i+2 < len(args); i++ {
		if bytes.EqualFold(args[i], []byte("AUTH")) {
			return args[i+1], args[i+2], true
		}
	}
	return nil, nil, false
}
