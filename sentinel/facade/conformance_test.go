package facade

import (
	"strings"
	"testing"
)

// Replies checked against redis-sentinel 7.0.15 by an audit that sent the
// same commands to a real Sentinel and to the facade; the wanted replies
// are the real Sentinel's, byte for byte.

// TestHelloOptionsInOrder: Redis 7.0 applies HELLO's options as it parses
// them. An AUTH authenticates at once and a SETNAME names the client at
// once; the first bad option stops the rest, and what came before it
// stays done. The facade parsed them all first, so a HELLO that failed on
// a bad name still logged the client in.
func TestHelloOptionsInOrder(t *testing.T) {
	_, addr := startFacade(t, Config{Groups: newFakeGroups().groups, Password: "sek"})
	noauth := "-NOAUTH Authentication required.\r\n"
	tests := []struct {
		name string
		cmds [][]string
		want []string
	}{
		{"a bad SETNAME before AUTH stops the AUTH",
			[][]string{{"HELLO", "3", "SETNAME", "bad\x01", "AUTH", "default", "sek"}, {"PING"}},
			[]string{"-" + errBadName + "\r\n", noauth}},
		{"an AUTH before a syntax error has authenticated",
			[][]string{{"HELLO", "3", "AUTH", "default", "sek", "FOO"}, {"PING"}},
			[]string{"-ERR Syntax error in HELLO option 'FOO'\r\n", "+PONG\r\n"}},
		{"an AUTH before a SETNAME without a name has authenticated",
			[][]string{{"HELLO", "3", "AUTH", "default", "sek", "SETNAME"}, {"PING"}},
			[]string{"-ERR Syntax error in HELLO option 'SETNAME'\r\n", "+PONG\r\n"}},
		{"a SETNAME before a failed AUTH has named the client",
			[][]string{{"HELLO", "2", "SETNAME", "foo", "AUTH", "default", "nope"}, {"AUTH", "sek"}, {"CLIENT", "GETNAME"}},
			[]string{"-" + errWrongPass + "\r\n", "+OK\r\n", "$3\r\nfoo\r\n"}},
		{"the SETNAME of an unauthenticated HELLO has named the client",
			[][]string{{"HELLO", "3", "SETNAME", "foo"}, {"AUTH", "sek"}, {"CLIENT", "GETNAME"}},
			[]string{"-" + errHelloNoAuth + "\r\n", "+OK\r\n", "$3\r\nfoo\r\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dialRaw(t, addr)
			for i, cmd := range tt.cmds {
				if got := c.do(cmd...); got != tt.want[i] {
					t.Errorf("%q: got %q, want %q", cmd, got, tt.want[i])
				}
			}
		})
	}
}

// TestHelloVersionIsStrict: Redis parses the protocol version as it
// parses every integer (string2ll): no '+', no leading zeros, no "-0".
func TestHelloVersionIsStrict(t *testing.T) {
	_, addr := startFacade(t, Config{Groups: newFakeGroups().groups})
	c := dialRaw(t, addr)
	for _, v := range []string{"03", "+3", "-0", "+2", " 3"} {
		if got, want := c.do("HELLO", v), "-ERR Protocol version is not an integer or out of range\r\n"; got != want {
			t.Errorf("HELLO %q: got %.60q, want %q", v, got, want)
		}
	}
}

// TestAdminSubcommandArityBeforeAuth: a Sentinel reports a wrong argument
// count of its admin subcommands before asking for AUTH, as for those the
// facade answers.
func TestAdminSubcommandArityBeforeAuth(t *testing.T) {
	_, addr := startFacade(t, Config{Groups: newFakeGroups().groups, Password: "sek"})
	c := dialRaw(t, addr)
	for _, tt := range []struct {
		cmd  []string
		want string
	}{
		{[]string{"SENTINEL", "failover"}, "-ERR wrong number of arguments for 'sentinel|failover' command\r\n"},
		{[]string{"SENTINEL", "RESET", "a", "b"}, "-ERR wrong number of arguments for 'sentinel|reset' command\r\n"},
		{[]string{"SENTINEL", "monitor", "a", "b", "c"}, "-ERR wrong number of arguments for 'sentinel|monitor' command\r\n"},
		{[]string{"SENTINEL", "set", "a", "b"}, "-ERR wrong number of arguments for 'sentinel|set' command\r\n"},
		{[]string{"SENTINEL", "set", "a", "b", "c"}, "-NOAUTH Authentication required.\r\n"},
		{[]string{"SENTINEL", "is-master-down-by-addr", "a", "b", "c", "d"}, "-NOAUTH Authentication required.\r\n"},
	} {
		if got := c.do(tt.cmd...); got != tt.want {
			t.Errorf("%q before AUTH: got %q, want %q", tt.cmd, got, tt.want)
		}
	}
	c.do("AUTH", "sek")
	if got, want := c.do("SENTINEL", "reset", "x"), "-ERR switchyard: SENTINEL RESET is not supported by the Sentinel facade; send it to the real Sentinels\r\n"; got != want {
		t.Errorf("SENTINEL RESET x after AUTH: got %q, want %q", got, want)
	}
}

// TestErrorQuotesAsRedis: Redis quotes names and arguments in its errors
// with C's "%.128s": at most 128 bytes, ending at a NUL byte. Go's counts
// characters, so a name in UTF-8 came out up to twice as long.
func TestErrorQuotesAsRedis(t *testing.T) {
	_, addr := startFacade(t, Config{Groups: newFakeGroups().groups})
	c := dialRaw(t, addr)
	e := strings.Repeat("é", 100) // 200 bytes
	for _, tt := range []struct {
		cmd  []string
		want string
	}{
		{[]string{"SENTINEL", e}, "-ERR unknown subcommand '" + e[:128] + "'. Try SENTINEL HELP.\r\n"},
		{[]string{"CLIENT", e}, "-ERR unknown subcommand '" + e[:128] + "'. Try CLIENT HELP.\r\n"},
		{[]string{"FOO", e}, "-ERR unknown command 'FOO', with args beginning with: '" + e[:128] + "' \r\n"},
		{[]string{"FOO\x00BAR", "x"}, "-ERR unknown command 'FOO', with args beginning with: 'x' \r\n"},
		{[]string{"SENTINEL", "a\x00b"}, "-ERR unknown subcommand 'a'. Try SENTINEL HELP.\r\n"},
	} {
		if got := c.do(tt.cmd...); got != tt.want {
			t.Errorf("%.40q: got %.100q…, want %.100q…", tt.cmd, got, tt.want)
		}
	}
}
