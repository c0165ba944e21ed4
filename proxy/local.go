package proxy

import (
	"bytes"
	"errors"
	"strconv"
	"time"

	"github.com/pnats/switchyard/resp"
	"github.com/pnats/switchyard/router"
)

// handleLocal answers the commands that change session settings or the
// session itself. Settings are honoured by moving the session to a pool
// whose connections carry them, so shared connections never change state.
func (s *session) handleLocal(class router.Class, args [][]byte, raw []byte) {
	id := [1]uint16{s.id}
	defer func() { s.srv.cfg.Metrics.observe(id[:], time.Since(s.batchStart), false) }()
	switch class {
	case router.Quit:
		s.reply(replyOK)
		s.closing = true
	case router.Reset:
		if len(args) != 1 {
			s.replyError(arityError("reset"))
			return
		}
		s.reset()
	case router.Select:
		s.selectDB(args)
	case router.Auth:
		s.auth(args)
	case router.Hello:
		s.hello(args)
	case router.ClientSetName:
		s.clientSetName(args)
	case router.ClientGetName:
		if len(args) != 2 {
			s.replyError(arityError("client|getname"))
			return
		}
		if s.name == "" {
			s.reply(resp.AppendNull(nil, s.key.proto))
		} else {
			s.reply(resp.AppendBulkString(nil, s.name))
		}
	case router.Unsupported:
		s.replyError("ERR switchyard: '" + string(upperName(args)) + "' is not supported through the proxy")
	default:
		s.replyError("ERR switchyard: internal routing error")
	}
}

func arityError(name string) string {
	return "ERR wrong number of arguments for '" + name + "' command"
}

// authArity reports whether AUTH has a password, and a user at most,
// answering as Redis does when not: AUTH alone is short of arguments,
// and more than a user and a password is a syntax error.
func (s *session) authArity(args [][]byte) bool {
	switch {
	case len(args) < 2:
		s.replyError(arityError("auth"))
		return false
	case len(args) > 3:
		s.replyError("ERR syntax error")
		return false
	}
	return true
}

func (s *session) selectDB(args [][]byte) {
	if len(args) != 2 {
		s.replyError(arityError("select"))
		return
	}
	db, ok := resp.ParseInt(args[1])
	switch {
	case !ok:
		s.replyError("ERR value is not an integer or out of range")
		return
	case db < -1<<31 || db > 1<<31-1:
		s.replyError("ERR value is out of range, value must between -2147483648 and 2147483647") // sic, as Redis says it
		return
	case db < 0:
		s.replyError("ERR DB index is out of range")
		return
	}
	key := s.key
	key.db = int(db)
	if _, err := s.setKey(key); err != nil {
		s.replyError(clientError(err))
		return
	}
	s.reply(replyOK)
}

func (s *session) auth(args [][]byte) {
	if s.srv.cfg.Authenticate != nil {
		s.proxyAuth(args)
		return
	}
	if !s.authArity(args) {
		return
	}
	key := s.key
	key.clientAuth = true
	key.user, key.pass = "", string(args[len(args)-1])
	if len(args) == 3 {
		if len(args[1]) == 0 {
			// No user has an empty name; to the handshake, "" means the
			// default user.
			s.authFailed(replyWrongPass)
			return
		}
		key.user = string(args[1])
	}
	if _, err := s.setKey(key); err != nil {
		var re *ReplyError
		if errors.As(err, &re) {
			s.authFailed(re.Msg) // Redis refused the credentials
			return
		}
		s.replyError(clientError(err))
		return
	}
	s.authFailures = 0
	s.reply(replyOK)
}

// hello handles HELLO [protover [AUTH user pass] [SETNAME name]]. The
// reply comes from Redis itself, on a connection speaking the new protocol.
func (s *session) hello(args [][]byte) {
	key := s.key
	name, setName, withAuth := "", false, false
	if len(args) >= 2 {
		v, ok := resp.ParseInt(args[1])
		if !ok {
			s.replyError("ERR Protocol version is not an integer or out of range")
			return
		}
		if v != 2 && v != 3 {
			s.replyError("NOPROTO unsupported protocol version")
			return
		}
		key.proto = int(v)
		for i := 2; i < len(args); i++ {
			more := len(args) - i - 1
			switch {
			case bytes.EqualFold(args[i], []byte("AUTH")) && more >= 2:
				key.clientAuth, withAuth = true, true
				key.user, key.pass = string(args[i+1]), string(args[i+2])
				i += 2
			case bytes.EqualFold(args[i], []byte("SETNAME")) && more >= 1:
				if !validClientName(args[i+1]) {
					s.replyError(badClientName)
					return
				}
				name, setName = string(args[i+1]), true
				i++
			default:
				s.replyError("ERR Syntax error in HELLO option '" + string(args[i]) + "'")
				return
			}
		}
	}
	if s.srv.cfg.Authenticate != nil {
		// The proxy checks the credentials; backend connections keep the
		// proxy's own.
		user, pass, given := helloAuth(args)
		switch {
		case given && !s.checkPassword(user, pass):
			return
		case !given && !s.authed:
			s.replyError(replyHelloAuth)
			return
		}
		key.clientAuth, key.user, key.pass = s.key.clientAuth, s.key.user, s.key.pass
	}
	prev := s.key
	passed := withAuth && s.srv.cfg.Authenticate == nil // credentials Redis checks
	if passed && key.user == "" {
		s.authFailed(replyWrongPass) // as in auth
		return
	}
	c, err := s.setKey(key)
	if err != nil {
		var re *ReplyError
		if passed && errors.As(err, &re) {
			s.authFailed(re.Msg) // Redis refused the credentials, as for AUTH
			return
		}
		s.replyError(clientError(err))
		return
	}
	if passed {
		s.authFailures = 0
	}
	var reply []byte
	hello := resp.AppendCommand(nil, [][]byte{[]byte("HELLO"), []byte(strconv.Itoa(key.proto))})
	for start := time.Now(); ; {
		err := s.roundTrip(c, hello, &reply)
		if err == nil {
			break
		}
		if s.movedOn(err, start) {
			// The master was replaced under it; HELLO changes no data,
			// so it is asked again of the new one, with the settings
			// opened there.
			if c, err = s.setKey(key); err == nil {
				reply = reply[:0]
				continue
			}
		}
		s.setKey(prev)
		s.replyError(clientError(err))
		return
	}
	if setName {
		s.name = name
	}
	s.reply(reply)
}

const badClientName = "ERR Client names cannot contain spaces, newlines or special characters."

func validClientName(b []byte) bool {
	for _, c := range b {
		if c < '!' || c > '~' {
			return false
		}
	}
	return true
}

// clientSetName keeps the name on the session. Shared backend connections
// cannot carry one client's name, so CLIENT GETNAME is answered here.
func (s *session) clientSetName(args [][]byte) {
	if len(args) != 3 {
		s.replyError(arityError("client|setname"))
		return
	}
	if !validClientName(args[2]) {
		s.replyError(badClientName)
		return
	}
	s.name = string(args[2])
	s.reply(replyOK)
}

// reset does what RESET does on Redis: leave any transaction, WATCH or
// subscription, go back to database 0, RESP2, the default user and no name.
// deauthenticate makes a client of a proxy with client_auth authenticate
// again, as RESET makes a Redis client.
func (s *session) deauthenticate() {
	if s.srv.cfg.Authenticate != nil {
		s.authed = false
		lim := s.srv.cfg.Limits
		lim.Unauthenticated = true
		s.rd.SetLimits(lim)
	}
}

func (s *session) reset() {
	s.resetState()
	s.reply(replyReset)
}

// resetState puts the session back as it was when the client connected,
// as RESET does; reset answers it, and endTunnel has Redis's answer.
func (s *session) resetState() {
	s.flush()
	if s.ded != nil {
		s.dropDedicated(false)
	}
	s.name = ""
	s.readPrefer = s.readPort || s.srv.cfg.ReadPolicy != ReadMaster
	s.lastWrite, s.writing = time.Time{}, false
	s.deauthenticate()
	if s.key != defaultKey && s.gen != nil {
		if _, err := s.setKey(defaultKey); err != nil {
			s.gen.release(s.pool)
			s.pool = s.gen.acquire(defaultKey)
			s.key = defaultKey
			s.shared = nil
		}
	}
	s.key = defaultKey
}

// upperName returns the command name in upper case, for error messages.
func upperName(args [][]byte) []byte {
	if len(args) == 0 {
		return nil
	}
	name := bytes.ToUpper(args[0])
	if bytes.Equal(name, []byte("CLIENT")) && len(args) > 1 {
		name = append(append(name, ' '), bytes.ToUpper(args[1])...)
	}
	return name
}
