package router

import (
	"strings"
	"testing"
)

func args(s string) [][]byte {
	var out [][]byte
	for _, f := range strings.Fields(s) {
		out = append(out, []byte(f))
	}
	return out
}

func TestClassify(t *testing.T) {
	tests := []struct {
		name string
		cmd  string
		want Class
	}{
		{"plain get", "GET k", Forward},
		{"lower case", "get k", Forward},
		{"unknown is forwarded", "NOSUCHCOMMAND x", Forward},
		{"empty", "", Forward},
		{"blpop", "blpop q 0", Blocking},
		{"bzmpop", "BZMPOP 1 1 z MIN", Blocking},
		{"wait", "WAIT 1 100", Blocking},
		{"xread without block", "XREAD COUNT 1 STREAMS s 0", Forward},
		{"xread with block", "XREAD BLOCK 0 STREAMS s $", Blocking},
		{"xread key named block", "XREAD STREAMS block 0", Forward},
		{"xreadgroup block", "XREADGROUP GROUP g c BLOCK 10 STREAMS s >", Blocking},
		{"xreadgroup group named streams", "XREADGROUP GROUP streams c BLOCK 0 STREAMS s >", Blocking},
		{"xreadgroup consumer named streams", "XREADGROUP GROUP g streams BLOCK 0 STREAMS s >", Blocking},
		{"xreadgroup consumer named block", "XREADGROUP GROUP g block COUNT 1 STREAMS s >", Forward},
		{"xread count then block", "XREAD COUNT 2 BLOCK 5 STREAMS s $", Blocking},
		{"script kill", "SCRIPT KILL", Blocking},
		{"function kill", "function kill", Blocking},
		{"script load", "SCRIPT LOAD return", Forward},
		{"multi", "multi", Multi},
		{"exec", "EXEC", Exec},
		{"discard", "DISCARD", Discard},
		{"watch", "WATCH a b", Watch},
		{"unwatch", "UNWATCH", Unwatch},
		{"subscribe", "SUBSCRIBE c", Subscribe},
		{"psubscribe", "psubscribe c*", Subscribe},
		{"ssubscribe", "SSUBSCRIBE c", Subscribe},
		{"unsubscribe", "UNSUBSCRIBE a b", Subscribe},
		{"punsubscribe", "punsubscribe", Subscribe},
		{"monitor", "MONITOR", Monitor},
		{"tracking on", "CLIENT TRACKING on", Tracking},
		{"tracking off", "CLIENT TRACKING OFF", Forward},
		{"setname", "client setname app", ClientSetName},
		{"getname", "CLIENT GETNAME", ClientGetName},
		{"client id", "CLIENT ID", ClientID},
		{"client reply", "CLIENT REPLY OFF", Unsupported},
		{"client bare", "CLIENT", Forward},
		{"select", "SELECT 1", Select},
		{"hello", "HELLO 3", Hello},
		{"auth", "AUTH pw", Auth},
		{"quit", "quit", Quit},
		{"reset", "RESET", Reset},
		{"psync", "PSYNC ? -1", Unsupported},
		{"too long name", strings.Repeat("A", 40), Forward},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Classify(args(tt.cmd)); got != tt.want {
				t.Errorf("Classify(%q) = %v, want %v", tt.cmd, got, tt.want)
			}
		})
	}
}

func TestPinned(t *testing.T) {
	for c := Forward; c <= Unsupported; c++ {
		want := c == Multi || c == Watch || c == Subscribe || c == Monitor || c == Tracking
		if c.Pinned() != want {
			t.Errorf("%v.Pinned() = %v", c, c.Pinned())
		}
	}
}

func TestClassifyDoesNotAllocate(t *testing.T) {
	cmds := [][][]byte{args("GET key"), args("xread block 0 streams s $"), args("client setname x")}
	allocs := testing.AllocsPerRun(100, func() {
		for _, c := range cmds {
			Classify(c)
		}
	})
	if allocs != 0 {
		t.Fatalf("Classify allocates %.1f times per run", allocs)
	}
}

func BenchmarkClassify(b *testing.B) {
	cmd := args("get somekey")
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		Classify(cmd)
	}
}

func TestLookupIDs(t *testing.T) {
	tests := []struct {
		cmd  string
		want string
	}{
		{"get k", "GET"},
		{"Set k v", "SET"},
		{"xread block 0 streams s $", "XREAD"},
		{"client setname x", "CLIENT"},
		{"nosuchcommand", "other"},
		{strings.Repeat("x", 100), "other"},
	}
	for _, tt := range tests {
		t.Run(tt.cmd, func(t *testing.T) {
			_, id := Lookup(args(tt.cmd))
			if got := CommandName(id); got != tt.want {
				t.Errorf("Lookup(%q) names %q, want %q", tt.cmd, got, tt.want)
			}
		})
	}
	seen := map[string]bool{}
	for id := 0; id < NumCommandIDs; id++ {
		n := CommandName(id)
		if seen[n] {
			t.Errorf("%s listed twice", n)
		}
		seen[n] = true
	}
}

// A Cache answers as Lookup does, whatever came before: the same name in
// another case, a name whose class depends on its arguments, unknown and
// overlong names.
func TestCacheMatchesLookup(t *testing.T) {
	seq := []string{
		"get k", "get k", "GET k", "set k v", "set k v",
		"xread streams s 0", "xread block 0 streams s 0", "xread streams s 0", "XREAD BLOCK 10 STREAMS s 0",
		"client id", "client setname x", "client id", "client tracking on", "client tracking on",
		"blpop l 0", "BLPOP l 0", "blpop l 0", "multi", "exec",
		"nosuchcommand", "nosuchcommand", strings.Repeat("x", 100), strings.Repeat("x", 100), "get k",
		"subscribe c", "get k", "select 1", "select 1",
	}
	var c Cache
	for i, cmd := range seq {
		a := args(cmd)
		wantClass, wantID := Lookup(a)
		class, id := c.Lookup(a)
		if class != wantClass || id != wantID {
			t.Fatalf("command %d, %q: cache gives %v/%d, Lookup %v/%d", i, cmd, class, id, wantClass, wantID)
		}
	}
	if class, id := c.Lookup(nil); class != Forward || id != 0 {
		t.Fatalf("no arguments: %v/%d", class, id)
	}
	a := args("get k")
	if n := testing.AllocsPerRun(100, func() { c.Lookup(a) }); n != 0 {
		t.Fatalf("Cache.Lookup allocates %.1f times per run", n)
	}
}

func BenchmarkCacheLookup(b *testing.B) {
	cmd := args("get somekey")
	var c Cache
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		c.Lookup(cmd)
	}
}

func TestTimeoutArg(t *testing.T) {
	tests := []struct {
		cmd    string
		want   string // the argument found, "" for none
		millis bool
	}{
		{"BLPOP a b 5", "5", false},
		{"brpop a 0.5", "0.5", false},
		{"BLMOVE a b LEFT RIGHT 2", "2", false},
		{"BRPOPLPUSH a b 3", "3", false},
		{"BZPOPMIN z 4", "4", false},
		{"BLMPOP 6 2 a b LEFT", "6", false},
		{"BZMPOP 7 1 z MIN COUNT 2", "7", false},
		{"WAIT 1 100", "100", true},
		{"WAITAOF 1 0 200", "200", true},
		{"XREAD COUNT 2 BLOCK 300 STREAMS s 0", "300", true},
		{"XREADGROUP GROUP block streams BLOCK 400 STREAMS s >", "400", true},
		{"XREAD COUNT block BLOCK 500 STREAMS block 0", "500", true},
		{"XREAD BLOCK 100 BLOCK 600 STREAMS s 0", "600", true}, // Redis takes the last
		{"XREAD STREAMS block 0", "", false},                   // a key named block
		{"XREAD BLOCK", "", false},                             // cut short
		{"GET k", "", false},
		{"BLPOP", "", false},
	}
	for _, tc := range tests {
		a := args(tc.cmd)
		i, millis, ok := TimeoutArg(a)
		got := ""
		if ok {
			got = string(a[i])
		}
		if got != tc.want || ok && millis != tc.millis {
			t.Errorf("TimeoutArg(%q) = %q (millis %v, ok %v), want %q (millis %v)", tc.cmd, got, millis, ok, tc.want, tc.millis)
		}
	}
}
