package facade

import (
	"strings"
	"testing"

	"github.com/pnats/switchyard/internal/lab"
	"github.com/pnats/switchyard/internal/lab/labtest"
)

// TestCompareWithSentinel sends the same commands to a real redis-sentinel
// and to a facade that advertises the same master and replica, and
// compares the replies: byte for byte where nothing is instance-specific,
// else type, field names and their order, and the values that must agree.
func TestCompareWithSentinel(t *testing.T) {
	if testing.Short() {
		t.Skip("starts redis-server and redis-sentinel")
	}
	g := labtest.Group(t, lab.GroupOptions{Name: "mymaster", Replicas: 1, Sentinels: 1})
	real := g.Sentinels[0].Addr
	locked := labtest.Sentinel(t, lab.SentinelOptions{
		MasterName: "mymaster", MasterAddr: g.Master.Addr, Args: []string{"requirepass sek"},
	})
	groups := func() []Group {
		return []Group{{
			Name:     "mymaster",
			Addr:     func() string { return g.Master.Addr },
			ReadAddr: func() string { return g.Replicas[0].Addr },
		}}
	}
	_, fake := startFacade(t, Config{Groups: groups})
	_, fakeLocked := startFacade(t, Config{Groups: groups, Password: "sek"})

	const (
		exact = iota // identical bytes
		shape        // same types; maps: same keys in the same order; keys below equal
		lines        // INFO: the same "key:" prefixes in the same order
	)
	type step struct {
		cmd  string
		mode int
		same []string // for shape: map keys whose values must be equal
	}
	entry := []string{"name", "ip", "port", "flags", "role-reported", "num-slaves", "num-other-sentinels"}
	replica := []string{"name", "ip", "port", "flags", "role-reported", "master-host", "master-port", "master-link-status"}
	steps := []step{
		{"SENTINEL get-master-addr-by-name mymaster", exact, nil},
		{"SENTINEL get-master-addr-by-name nope", exact, nil},
		{"SENTINEL master mymaster", shape, entry},
		{"SENTINEL masters", shape, entry},
		{"SENTINEL replicas mymaster", shape, replica},
		{"SENTINEL slaves mymaster", shape, replica},
		{"SENTINEL sentinels mymaster", exact, nil}, // one Sentinel: no others
		{"SENTINEL ckquorum mymaster", exact, nil},
		{"SENTINEL myid", shape, nil},
		{"SENTINEL master nope", exact, nil},
		{"SENTINEL replicas nope", exact, nil},
		{"SENTINEL slaves nope", exact, nil},
		{"SENTINEL sentinels nope", exact, nil},
		{"SENTINEL ckquorum nope", exact, nil},
		{"SENTINEL foo", exact, nil},
		{"SENTINEL", exact, nil},
		{"SENTINEL master", exact, nil},
		{"SENTINEL get-master-addr-by-name", exact, nil},
		{"ROLE", exact, nil},
		{"ROLE x", exact, nil},
		{"PING", exact, nil},
		{"PING hi", exact, nil},
		{"PING a b", exact, nil},
		{"GET x", exact, nil},
		{"FOO", exact, nil},
		{"CLIENT GETNAME", exact, nil},
		{"CLIENT SETNAME app-1", exact, nil},
		{"CLIENT GETNAME", exact, nil},
		{"CLIENT SETNAME", exact, nil},
		{"CLIENT FOO", exact, nil},
		{"AUTH x", exact, nil},
		{"AUTH a b", exact, nil},
		{"HELLO 4", exact, nil},
		{"HELLO x", exact, nil},
		{"HELLO 3 SETNAME", exact, nil},
		{"INFO sentinel", lines, nil},
		{"INFO foo", exact, nil},
		{"SUBSCRIBE +switch-master +sdown", exact, nil},
		{"PSUBSCRIBE *", exact, nil},
		{"PING", exact, nil},
		{"SENTINEL get-master-addr-by-name mymaster", exact, nil}, // RESP2: refused while subscribed
		{"UNSUBSCRIBE nothere", exact, nil},
		{"UNSUBSCRIBE +sdown", exact, nil},
		{"UNSUBSCRIBE", exact, nil},
		{"PUNSUBSCRIBE", exact, nil},
		{"UNSUBSCRIBE", exact, nil},
	}
	hello := []step{{"HELLO 2", shape, []string{"server", "proto", "mode"}}, {"HELLO 3", shape, []string{"server", "proto", "mode"}}}
	for _, proto := range []string{"2", "3"} {
		t.Run("RESP"+proto, func(t *testing.T) {
			r, f := dialRaw(t, real), dialRaw(t, fake)
			all := append([]step{hello[0]}, steps...)
			if proto == "3" {
				all = append([]step{hello[1]}, steps...)
			}
			for _, st := range all {
				args := strings.Fields(st.cmd)
				want, got := roundTrip(r, args), roundTrip(f, args)
				switch st.mode {
				case exact:
					if got != want {
						t.Errorf("%s:\nfacade   %q\nsentinel %q", st.cmd, got, want)
					}
				case shape:
					if err := sameShape(got, want, st.same); err != "" {
						t.Errorf("%s: %s\nfacade   %q\nsentinel %q", st.cmd, err, got, want)
					}
				case lines:
					if a, b := infoKeys(got), infoKeys(want); a != b {
						t.Errorf("%s: facade keys %s, sentinel keys %s", st.cmd, a, b)
					}
				}
			}
		})
	}

	t.Run("auth", func(t *testing.T) {
		for _, cmds := range [][]string{
			{"PING", "HELLO 3", "SENTINEL masters", "AUTH nope", "AUTH default nope", "HELLO 2 AUTH default nope", "AUTH sek", "PING"},
			{"HELLO 2 AUTH default sek", "PING", "CLIENT GETNAME"},
		} {
			r, f := dialRaw(t, locked.Addr), dialRaw(t, fakeLocked)
			for _, c := range cmds {
				args := strings.Fields(c)
				want, got := roundTrip(r, args), roundTrip(f, args)
				if strings.HasPrefix(c, "HELLO") && !strings.HasPrefix(want, "-") {
					if err := sameShape(got, want, []string{"proto", "mode"}); err != "" {
						t.Errorf("%s: %s", c, err)
					}
					continue
				}
				if got != want {
					t.Errorf("%s:\nfacade   %q\nsentinel %q", c, got, want)
				}
			}
		}
	})
}

// roundTrip sends a command and reads every reply it produces: one per
// channel for (UN)SUBSCRIBE.
func roundTrip(c *rawConn, args []string) string {
	c.send(args...)
	n := 1
	switch strings.ToUpper(args[0]) {
	case "SUBSCRIBE", "PSUBSCRIBE", "UNSUBSCRIBE", "PUNSUBSCRIBE":
		n = max(1, len(args)-1)
		if len(args) == 1 {
			// Unsubscribing from everything answers once per subscription,
			// in an order Redis does not define; the steps leave one.
			n = 1
		}
	}
	out := ""
	for i := 0; i < n; i++ {
		r := c.read()
		out += r
		if strings.HasSuffix(r, "unsubscribe\r\n$-1\r\n:0\r\n") || strings.HasSuffix(r, "unsubscribe\r\n_\r\n:0\r\n") {
			break // nothing was subscribed: a single reply
		}
	}
	return out
}

// sameShape compares two replies' types recursively; for maps (and flat
// arrays of pairs) the keys and their order, and the values of keys in
// same. It returns "" when they match.
func sameShape(got, want string, same []string) string {
	g, err := parse(got)
	if err != nil {
		return "facade reply: " + err.Error()
	}
	w, err := parse(want)
	if err != nil {
		return "sentinel reply: " + err.Error()
	}
	return compareValues(g, w, same)
}

func compareValues(g, w value, same []string) string {
	if g.kind != w.kind || g.null != w.null || len(g.elems) != len(w.elems) {
		return "type or length differs: " + string(g.kind) + " vs " + string(w.kind)
	}
	if g.kind == '$' && len(g.str) != len(w.str) && len(same) == 0 {
		return "" // scalar with instance-specific content (myid): type is enough
	}
	isPairs := len(g.elems) > 0 && len(g.elems)%2 == 0 && g.elems[0].kind == '$' && (g.kind == '%' || len(g.elems) >= 12)
	if isPairs {
		gk, gm := g.pairs()
		wk, wm := w.pairs()
		if strings.Join(gk, ",") != strings.Join(wk, ",") {
			return "fields differ: " + strings.Join(gk, ",") + " vs " + strings.Join(wk, ",")
		}
		for _, k := range gk {
			if gm[k].kind != wm[k].kind {
				return "type of " + k + " differs"
			}
		}
		for _, k := range same {
			if gm[k].str != wm[k].str {
				return k + ": " + gm[k].str + " vs " + wm[k].str
			}
		}
		return ""
	}
	for i := range g.elems {
		if e := compareValues(g.elems[i], w.elems[i], same); e != "" {
			return e
		}
	}
	return ""
}

// infoKeys lists the section headers, the "key" of each "key:value"
// line and the blank lines between sections and at the end.
func infoKeys(raw string) string {
	var keys []string
	for _, l := range strings.Split(raw, "\r\n")[1:] {
		if k, _, ok := strings.Cut(l, ":"); ok {
			keys = append(keys, k)
		} else if strings.HasPrefix(l, "#") || l == "" {
			keys = append(keys, l)
		}
	}
	return strings.Join(keys, ",")
}
