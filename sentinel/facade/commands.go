package facade

import (
	"bytes"
	"crypto/subtle"
	"fmt"
	"strings"

	"github.com/pnats/switchyard/resp"
)

// Version is the Redis version the facade reports in HELLO and INFO.
// Clients gate features on it; 7.0 is the Sentinel whose replies the
// facade reproduces.
const Version = "7.0.0"

// Error replies, worded as a Redis 7.0 Sentinel words them: clients and
// operators match on these.
const (
	errNoSuchMaster = "ERR No such master with that name"
	errNoAuth       = "NOAUTH Authentication required."
	errHelloNoAuth  = "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time"
	errWrongPass    = "WRONGPASS invalid username-password pair or user is disabled."
	errNoPassword   = "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?"
	errBadName      = "ERR Client names cannot contain spaces, newlines or special characters."
)

// dispatch answers one command into c.out. c.mu is held.
func (s *Server) dispatch(c *client, args [][]byte) {
	name := strings.ToLower(string(args[0]))
	// In Redis's order: an unknown command or a wrong count of arguments
	// is reported before authentication is asked for.
	h, ok := commands[name]
	if !ok {
		c.out.err(unknownCommand(args))
		return
	}
	if !h.arity.ok(len(args)) {
		c.out.err(wrongArgs(name))
		return
	}
	if e := subcommandSyntax(name, args); e != "" {
		c.out.err(e)
		return
	}
	if !c.authed && name != "auth" && name != "hello" && name != "quit" {
		c.out.err(errNoAuth)
		return
	}
	if c.subscribed() && !c.out.resp3 {
		switch name {
		case "subscribe", "psubscribe", "unsubscribe", "punsubscribe", "ping", "quit":
		default:
			// RESP2 cannot interleave replies with messages.
			c.out.err(fmt.Sprintf("ERR Can't execute '%s': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context", fullName(name, args)))
			return
		}
	}
	h.run(s, c, args)
}

// fullName is "sentinel|myid" for a container command, as Redis names it.
func fullName(name string, args [][]byte) string {
	if (name == "sentinel" || name == "client") && len(args) > 1 {
		return name + "|" + strings.ToLower(string(args[1]))
	}
	return name
}

// arity is Redis's: n means exactly n arguments with the command name,
// -n at least n.
type arity int

func (a arity) ok(n int) bool {
	if a < 0 {
		return n >= int(-a)
	}
	return n == int(a)
}

type command struct {
	arity arity
	run   func(s *Server, c *client, args [][]byte)
}

var commands map[string]command

func init() {
	// Assigned in init: the handlers refer back to the table (dispatch).
	commands = map[string]command{
		"sentinel":     {-2, (*Server).sentinel},
		"ping":         {-1, (*Server).ping},
		"role":         {1, (*Server).role},
		"info":         {-1, (*Server).info},
		"hello":        {-1, (*Server).hello},
		"auth":         {-2, (*Server).auth},
		"client":       {-2, (*Server).client},
		"quit":         {-1, (*Server).quitCmd},
		"subscribe":    {-2, (*Server).subscribe},
		"psubscribe":   {-2, (*Server).psubscribe},
		"unsubscribe":  {-1, (*Server).unsubscribe},
		"punsubscribe": {-1, (*Server).punsubscribe},
	}
}

// unknownCommand is Redis's reply to a command it does not have,
// including its quirks: the name as sent, quoted arguments up to 128
// characters, a trailing space, newlines turned into spaces.
func unknownCommand(args [][]byte) string {
	var b strings.Builder
	for _, a := range args[1:] {
		if b.Len() >= 128 {
			break
		}
		fmt.Fprintf(&b, "'%s' ", cString(a, 128-b.Len()))
	}
	msg := fmt.Sprintf("ERR unknown command '%s', with args beginning with: %s", cString(args[0], 128), b.String())
	return strings.NewReplacer("\r", " ", "\n", " ").Replace(msg)
}

// cString is b as C's "%.*s" prints it, which Redis's error messages
// use: up to the first NUL byte, and at most n bytes (not characters).
func cString(b []byte, n int) []byte {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return b[:min(len(b), n)]
}

func wrongArgs(name string) string {
	return "ERR wrong number of arguments for '" + name + "' command"
}

func (s *Server) ping(c *client, args [][]byte) {
	if len(args) > 2 {
		c.out.err(wrongArgs("ping"))
		return
	}
	if c.subscribed() && !c.out.resp3 {
		// In RESP2 a subscribed client's PING is answered as a message.
		c.out.array(2)
		c.out.bulk("pong")
		if len(args) == 2 {
			c.out.bulk(string(args[1]))
		} else {
			c.out.bulk("")
		}
		return
	}
	if len(args) == 2 {
		c.out.bulk(string(args[1]))
		return
	}
	c.out.simple("PONG")
}

// role is a Sentinel's: "sentinel" and the master names it monitors.
func (s *Server) role(c *client, _ [][]byte) {
	groups := s.groups()
	c.out.array(2)
	c.out.bulk("sentinel")
	c.out.array(len(groups))
	for _, g := range groups {
		c.out.bulk(g.Name)
	}
}

func (s *Server) quitCmd(c *client, _ [][]byte) {
	// Redis 7.0's Sentinel has no QUIT (clients get "unknown command"),
	// but clients send it when they close; answer as a Redis server does.
	c.out.simple("OK")
	c.quit = true
}

// hello is HELLO [protover [AUTH username password] [SETNAME name]].
func (s *Server) hello(c *client, args [][]byte) {
	proto := 2
	if c.out.resp3 {
		proto = 3
	}
	if len(args) >= 2 {
		// Parsed as Redis parses it: no '+', no leading zeros.
		v, ok := resp.ParseInt(args[1])
		if !ok {
			c.out.err("ERR Protocol version is not an integer or out of range")
			return
		}
		if v < 2 || v > 3 {
			c.out.err("NOPROTO unsupported protocol version")
			return
		}
		proto = int(v)
	}
	// As Redis 7.0: each option takes effect as it is parsed, and the
	// first bad one stops the rest (an AUTH before it has authenticated,
	// a SETNAME before it has named the client).
	for i := 2; i < len(args); i++ {
		opt := strings.ToLower(string(args[i]))
		switch {
		case opt == "auth" && i+2 < len(args):
			if e := s.checkAuth(string(args[i+1]), string(args[i+2])); e != "" {
				c.out.err(e)
				return
			}
			c.authed = true
			i += 2
		case opt == "setname" && i+1 < len(args):
			if !validName(string(args[i+1])) {
				c.out.err(errBadName)
				return
			}
			c.name = string(args[i+1])
			i++
		default:
			c.out.err(fmt.Sprintf("ERR Syntax error in HELLO option '%s'", args[i]))
			return
		}
	}
	if !c.authed {
		c.out.err(errHelloNoAuth)
		return
	}
	c.out.resp3 = proto == 3
	c.out.mapLen(6)
	c.out.bulk("server")
	c.out.bulk("redis")
	c.out.bulk("version")
	c.out.bulk(Version)
	c.out.bulk("proto")
	c.out.int(int64(proto))
	c.out.bulk("id")
	c.out.int(c.id)
	c.out.bulk("mode")
	c.out.bulk("sentinel")
	c.out.bulk("modules")
	c.out.array(0)
}

// auth is AUTH password or AUTH username password; only the default user
// exists.
func (s *Server) auth(c *client, args [][]byte) {
	var user, pass string
	switch len(args) {
	case 2:
		if s.cfg.Password == "" {
			c.out.err(errNoPassword)
			return
		}
		user, pass = "default", string(args[1])
	case 3:
		user, pass = string(args[1]), string(args[2])
	default:
		c.out.err("ERR syntax error")
		return
	}
	if e := s.checkAuth(user, pass); e != "" {
		c.out.err(e)
		return
	}
	c.authed = true
	c.out.simple("OK")
}

// checkAuth returns "" if user and pass are the default user's, else the
// error reply. Without a password the default user takes any password, as
// Redis's nopass default user does.
func (s *Server) checkAuth(user, pass string) string {
	if user != "default" {
		return errWrongPass
	}
	if s.cfg.Password == "" {
		return ""
	}
	if subtle.ConstantTimeCompare([]byte(pass), []byte(s.cfg.Password)) != 1 {
		return errWrongPass
	}
	return ""
}

// clientArity is the argument count, with CLIENT and the subcommand, of
// each CLIENT subcommand the facade answers (SETINFO is Redis 7.2's,
// which client libraries send) and, negative for "at least", of those a
// Redis 7.0 Sentinel has and the facade does not.
var clientArity = map[string]int{
	"setname": 3, "getname": 2, "id": 2, "setinfo": 4,
	"caching": 3, "getredir": 2, "help": 2, "info": 2, "kill": -3, "list": -2,
	"no-evict": 3, "pause": -3, "reply": 3, "tracking": -3, "trackinginfo": 2,
	"unblock": -3, "unpause": 2,
}

// clientAnswered are the CLIENT subcommands the facade answers.
var clientAnswered = map[string]bool{"setname": true, "getname": true, "id": true, "setinfo": true}

// subcommandSyntax returns the error for a SENTINEL or CLIENT subcommand
// Sentinel does not have, or one with the wrong argument count, or "".
// Like Sentinel, the facade reports these before asking for AUTH.
func subcommandSyntax(name string, args [][]byte) string {
	switch name {
	case "sentinel":
		return sentinelSyntax(args)
	case "client":
		sub := strings.ToLower(string(args[1]))
		n, known := clientArity[sub]
		switch {
		case !known:
			return fmt.Sprintf("ERR unknown subcommand '%s'. Try CLIENT HELP.", cString(args[1], 128))
		case !arity(n).ok(len(args)):
			return wrongArgs("client|" + sub)
		}
	}
	return ""
}

func (s *Server) client(c *client, args [][]byte) {
	sub := strings.ToLower(string(args[1]))
	if !clientAnswered[sub] {
		c.out.err(fmt.Sprintf("ERR switchyard: CLIENT %s is not supported by the Sentinel facade", strings.ToUpper(sub)))
		return
	}
	// dispatch has checked the subcommand and its argument count.
	switch sub {
	case "setname":
		name := string(args[2])
		if !validName(name) {
			c.out.err(errBadName)
			return
		}
		c.name = name
		c.out.simple("OK")
	case "getname":
		if c.name == "" {
			c.out.nullBulk()
			return
		}
		c.out.bulk(c.name)
	case "id":
		c.out.int(c.id)
	case "setinfo":
		// Clients (go-redis, ioredis) send their library name and version;
		// Redis 7.2 accepts it, and there is nothing to keep.
		c.out.simple("OK")
	}
}

// validName is Redis's rule for client names: printable ASCII, no spaces.
func validName(name string) bool {
	for i := 0; i < len(name); i++ {
		if name[i] < '!' || name[i] > '~' {
			return false
		}
	}
	return true
}
