package router

import (
	"strings"
	"testing"
)

func TestBuiltinIsRead(t *testing.T) {
	tab := Builtin()
	tests := []struct {
		name string
		cmd  string
		want bool
	}{
		{"get", "GET k", true},
		{"lower case", "get k", true},
		{"mixed case", "gEt k", true},
		{"mget", "MGET a b", true},
		{"exists", "EXISTS a", true},
		{"hgetall", "HGETALL h", true},
		{"zrange", "ZRANGE z 0 -1", true},
		{"scan", "SCAN 0", true},
		{"sort_ro", "SORT_RO l", true},
		{"georadius_ro", "GEORADIUS_RO g 0 0 1 km", true},
		{"pfcount", "PFCOUNT h", true},
		{"set", "SET k v", false},
		{"incr", "INCR k", false},
		{"del", "DEL k", false},
		{"sort may store", "SORT l", false},
		{"georadius may store", "GEORADIUS g 0 0 1 km", false},
		{"blpop", "BLPOP q 0", false},
		{"publish", "PUBLISH c m", false},
		{"subscribe", "SUBSCRIBE c", false},
		{"eval is not flagged readonly", "EVAL return 0", false},
		{"evalsha", "EVALSHA abc 0", false},
		{"fcall", "FCALL f 0", false},
		{"eval_ro", "EVAL_RO return 0", true},
		{"evalsha_ro", "evalsha_ro abc 0", true},
		{"fcall_ro", "FCALL_RO f 0", true},
		{"xread", "XREAD COUNT 1 STREAMS s 0", true},
		{"xread block is still readonly", "XREAD BLOCK 0 STREAMS s $", true},
		{"xreadgroup writes", "XREADGROUP GROUP g c STREAMS s >", false},
		{"config get is admin", "CONFIG GET maxmemory", false},
		{"config set", "CONFIG SET maxmemory 1", false},
		{"object encoding", "OBJECT ENCODING k", true},
		{"object lower case", "object encoding k", true},
		{"object freq", "OBJECT FREQ k", true},
		{"xinfo stream", "XINFO STREAM s", true},
		{"xinfo groups", "xinfo groups s", true},
		{"memory usage", "MEMORY USAGE k", true},
		{"memory stats", "MEMORY STATS", false},
		{"script exists", "SCRIPT EXISTS abc", false},
		{"script load", "SCRIPT LOAD return", false},
		{"function list", "FUNCTION LIST", false},
		{"client list", "CLIENT LIST", false},
		{"ping", "PING", false},
		{"info", "INFO", false},
		{"multi", "MULTI", false},
		{"unknown", "NOSUCHCOMMAND k", false},
		{"unknown subcommand", "OBJECT NOSUCH k", false},
		{"container alone", "OBJECT", false},
		{"empty", "", false},
		{"too long name", strings.Repeat("G", maxTableName+1), false},
		{"too long subcommand", "OBJECT " + strings.Repeat("E", maxTableName+1), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tab.IsRead(args(tt.cmd)); got != tt.want {
				f, ok := tab.Flags(args(tt.cmd))
				t.Errorf("IsRead(%.40q) = %v, want %v (flags %v, known %v)", tt.cmd, got, tt.want, f, ok)
			}
		})
	}
}

func TestBuiltinFlags(t *testing.T) {
	tab := Builtin()
	tests := []struct {
		cmd    string
		want   Flags // every one of these must be set
		absent Flags // and none of these
		ok     bool
	}{
		{"GET k", FlagReadonly | FlagFast, FlagWrite, true},
		{"SET k v", FlagWrite | FlagDenyoom, FlagReadonly, true},
		{"BLPOP q 0", FlagWrite | FlagBlocking, 0, true},
		{"XREAD BLOCK 0 STREAMS s $", FlagReadonly | FlagBlocking | FlagMovableKeys, FlagWrite, true},
		{"EVAL s 0", FlagNoScript | FlagNoMandatoryKeys | FlagMovableKeys, FlagReadonly | FlagWrite, true},
		{"EVAL_RO s 0", FlagReadonly | FlagNoScript, FlagWrite, true},
		{"SUBSCRIBE c", FlagPubSub | FlagNoScript, FlagReadonly | FlagWrite, true},
		{"CONFIG GET x", FlagAdmin | FlagNoScript | FlagLoading | FlagStale, FlagReadonly, true},
		{"config resetstat", FlagAdmin, 0, true},
		{"CLIENT SETNAME x", FlagNoScript | FlagLoading | FlagStale, FlagAdmin, true},
		{"CLIENT KILL ID 1", FlagAdmin, 0, true},
		{"HELLO 3", FlagNoAuth | FlagFast, 0, true},
		{"AUTH pw", FlagNoAuth, 0, true},
		{"SCRIPT EXISTS a", FlagNoScript, FlagReadonly | FlagWrite, true},
		{"FUNCTION LIST", FlagNoScript, FlagReadonly | FlagWrite, true},
		{"MULTI", FlagNoScript | FlagLoading | FlagStale | FlagFast | FlagAllowBusy, 0, true},
		{"CONFIG", 0, FlagAdmin | FlagReadonly, true},
		{"CONFIG NOSUCH", 0, 0, false},
		{"NOSUCH", 0, 0, false},
		{"", 0, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.cmd, func(t *testing.T) {
			f, ok := tab.Flags(args(tt.cmd))
			if ok != tt.ok || !f.Has(tt.want) || f&tt.absent != 0 {
				t.Errorf("Flags(%q) = %v, %v; want %v set, %v unset, ok %v", tt.cmd, f, ok, tt.want, tt.absent, tt.ok)
			}
		})
	}
}

func TestBuiltinCommand(t *testing.T) {
	tab := Builtin()
	get, ok := tab.Command("GET")
	if !ok || get.Name != "get" || get.Arity != 2 || get.FirstKey != 1 || get.LastKey != 1 || get.KeyStep != 1 ||
		get.Flags != FlagReadonly|FlagFast || len(get.KeySpecs) != 1 {
		t.Errorf("Command(GET) = %+v, %v", get, ok)
	}
	if got := strings.Join(get.Categories, " "); got != "@read @string @fast" {
		t.Errorf("GET categories %q", got)
	}
	cfg, ok := tab.Command("config|GET")
	if !ok || cfg.Name != "config|get" || cfg.Arity != -3 {
		t.Errorf("Command(config|GET) = %+v, %v", cfg, ok)
	}
	parent, _ := tab.Command("config")
	if !contains(parent.Subcommands, "config|get") || !contains(tab.Names(), "config|get") || !contains(tab.Names(), "config") {
		t.Errorf("config|get missing from subcommands %v or names", parent.Subcommands)
	}
	if _, ok := tab.Command("config|nosuch"); ok {
		t.Error("Command(config|nosuch) found")
	}
	if f := tab.Names(); len(f) < 300 {
		t.Errorf("builtin table has only %d commands", len(f))
	}
	if BuiltinVersion == "" {
		t.Error("BuiltinVersion empty")
	}
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

// Every readonly command is known by name and is no write: the table itself
// must never call a command both, which IsRead would then refuse.
func TestBuiltinReadonlyIsNotWrite(t *testing.T) {
	tab := Builtin()
	for _, n := range tab.Names() {
		c, _ := tab.Command(n)
		if c.Flags.Has(FlagReadonly | FlagWrite) {
			t.Errorf("%s is flagged readonly and write", n)
		}
	}
}

func TestNilTable(t *testing.T) {
	var tab *Table
	if f, ok := tab.Flags(args("GET k")); f != 0 || ok {
		t.Errorf("nil Flags = %v, %v", f, ok)
	}
	if tab.IsRead(args("GET k")) {
		t.Error("nil table reads")
	}
	if _, ok := tab.Command("get"); ok || tab.Names() != nil {
		t.Error("nil table has commands")
	}
}

func TestFlagsString(t *testing.T) {
	tests := []struct {
		f    Flags
		want string
	}{
		{0, ""},
		{FlagReadonly | FlagFast, "readonly|fast"},
		{FlagWrite | FlagSortForScript, "write|sort_for_script"},
	}
	for _, tt := range tests {
		if got := tt.f.String(); got != tt.want {
			t.Errorf("%#x.String() = %q, want %q", uint32(tt.f), got, tt.want)
		}
	}
	for i, n := range flagNames {
		if parseFlag(strings.ToUpper(n)) != 1<<i {
			t.Errorf("parseFlag(%q) = %v", n, parseFlag(n))
		}
	}
	if FlagSortForScript != 1<<(len(flagNames)-1) {
		t.Error("flagNames and the Flag constants differ in length")
	}
}

func TestParseCommandReply(t *testing.T) {
	tests := []struct {
		name    string
		raw     string
		cmd     string // a command to look up
		want    Flags
		wantErr string
	}{
		{
			name: "redis 6 shape",
			raw:  "*1\r\n*7\r\n$3\r\nget\r\n:2\r\n*2\r\n+readonly\r\n+fast\r\n:1\r\n:1\r\n:1\r\n*2\r\n+@read\r\n+@fast\r\n",
			cmd:  "GET k", want: FlagReadonly | FlagFast,
		},
		{
			name: "redis 2.8 shape, unknown flag kept",
			raw:  "*1\r\n*6\r\n$3\r\nget\r\n:2\r\n*2\r\n+readonly\r\n+shiny\r\n:1\r\n:1\r\n:1\r\n",
			cmd:  "get k", want: FlagReadonly,
		},
		{
			name: "resp3 sets and subcommands",
			raw: "*1\r\n*10\r\n$6\r\nobject\r\n:-2\r\n~0\r\n:0\r\n:0\r\n:0\r\n~1\r\n+@slow\r\n~0\r\n*0\r\n" +
				"*1\r\n*10\r\n$15\r\nobject|encoding\r\n:3\r\n~1\r\n+readonly\r\n:2\r\n:2\r\n:1\r\n~2\r\n+@keyspace\r\n+@read\r\n" +
				"~1\r\n+nondeterministic_output\r\n*1\r\n%1\r\n$5\r\nflags\r\n~1\r\n+RO\r\n*0\r\n",
			cmd: "OBJECT encoding k", want: FlagReadonly,
		},
		{
			name: "command info skips nulls",
			raw:  "*2\r\n*3\r\n$4\r\nping\r\n:-1\r\n*1\r\n+fast\r\n$-1\r\n",
			cmd:  "ping", want: FlagFast,
		},
		{name: "error reply", raw: "-NOPERM this user has no permissions\r\n", wantErr: "NOPERM"},
		{name: "not an array", raw: "+OK\r\n", wantErr: "not an array"},
		{name: "no commands", raw: "*0\r\n", wantErr: "no command"},
		{name: "malformed", raw: "*1\r\n", wantErr: "COMMAND reply"},
		{name: "short entry", raw: "*1\r\n*2\r\n$3\r\nget\r\n:2\r\n", wantErr: "at least 3"},
		{name: "bad arity", raw: "*1\r\n*3\r\n$3\r\nget\r\n$1\r\n2\r\n*0\r\n", wantErr: "arity"},
		{name: "bad flag", raw: "*1\r\n*3\r\n$3\r\nget\r\n:2\r\n*1\r\n:1\r\n", wantErr: "flag"},
		{name: "empty name", raw: "*1\r\n*3\r\n$0\r\n\r\n:2\r\n*0\r\n", wantErr: "name"},
		{name: "duplicate", raw: "*2\r\n*3\r\n$3\r\nget\r\n:2\r\n*0\r\n*3\r\n$3\r\nGET\r\n:2\r\n*0\r\n", wantErr: "twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tab, err := ParseCommandReply([]byte(tt.raw))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.HasPrefix(err.Error(), "router: ") {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if f, ok := tab.Flags(args(tt.cmd)); f != tt.want || !ok {
				t.Errorf("Flags(%q) = %v, %v; want %v", tt.cmd, f, ok, tt.want)
			}
		})
	}
}

func TestTableDoesNotAllocate(t *testing.T) {
	tab := Builtin()
	cmds := [][][]byte{
		args("GET key"), args("set k v"), args("object encoding k"), args("XINFO STREAM s"),
		args("nosuchcommand"), args("CONFIG NOSUCH"), args(strings.Repeat("x", 100)),
	}
	allocs := testing.AllocsPerRun(100, func() {
		for _, c := range cmds {
			tab.Flags(c)
			tab.IsRead(c)
		}
	})
	if allocs != 0 {
		t.Fatalf("Flags and IsRead allocate %.1f times per run", allocs)
	}
}

func BenchmarkIsRead(b *testing.B) {
	tab := Builtin()
	for _, cmd := range []string{"get somekey", "OBJECT ENCODING somekey", "NOSUCHCOMMAND"} {
		b.Run(strings.Fields(cmd)[0], func(b *testing.B) {
			a := args(cmd)
			b.ReportAllocs()
			for b.Loop() {
				tab.IsRead(a)
			}
		})
	}
}

func BenchmarkParseCommandReply(b *testing.B) {
	raw := []byte(builtinReply)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseCommandReply(raw); err != nil {
			b.Fatal(err)
		}
	}
}

// Builtin is parsed once, on first use, by whichever goroutine gets there
// first; run with -race.
func TestBuiltinConcurrent(t *testing.T) {
	done := make(chan bool)
	for range 8 {
		go func() {
			done <- Builtin().IsRead(args("GET k"))
		}()
	}
	for range 8 {
		if !<-done {
			t.Error("GET is not a read")
		}
	}
}
