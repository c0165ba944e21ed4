package router

import (
	"context"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pnats/switchyard/internal/lab"
	"github.com/pnats/switchyard/internal/lab/labtest"
	"github.com/pnats/switchyard/router/internal/snapshot"
)

// fetchCommand returns srv's COMMAND reply in protocol proto, and its
// version. The servers come from labtest.Server, which skips the test when
// redis-server is not installed, and fails it under CI=true.
func fetchCommand(t *testing.T, srv *lab.Server, proto int) ([]byte, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	raw, version, err := snapshot.Fetch(ctx, srv.Addr, proto)
	if err != nil {
		t.Fatal(err)
	}
	return raw, version
}

// TestBuiltinIsFresh fails when commands_gen.go is not what go generate
// would write from the installed redis-server: regenerate it, or install
// the Redis it was recorded from.
func TestBuiltinIsFresh(t *testing.T) {
	srv := labtest.Server(t, lab.ServerOptions{})
	raw, version := fetchCommand(t, srv, 2)
	want, err := snapshot.Render(raw, version)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("commands_gen.go")
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Fatalf("commands_gen.go (recorded from redis-server %s) is stale for the installed redis-server %s: "+
			"run go generate ./router/", BuiltinVersion, version)
	}
}

// TestLiveTableAgreesWithBuiltin parses a live server's COMMAND, in RESP2
// and in RESP3, and checks it against the built-in table entry by entry.
func TestLiveTableAgreesWithBuiltin(t *testing.T) {
	srv := labtest.Server(t, lab.ServerOptions{})
	raw2, version := fetchCommand(t, srv, 2)
	if version != BuiltinVersion {
		t.Skipf("installed redis-server %s, builtin table from %s (TestBuiltinIsFresh reports it)", version, BuiltinVersion)
	}
	raw3, _ := fetchCommand(t, srv, 3)
	if string(raw3) == string(raw2) {
		t.Fatal("HELLO 3 did not change the COMMAND reply; the RESP3 shape is not tested")
	}
	builtin := Builtin()
	for _, tt := range []struct {
		name string
		raw  []byte
	}{{"resp2", raw2}, {"resp3", raw3}} {
		t.Run(tt.name, func(t *testing.T) {
			live, err := ParseCommandReply(tt.raw)
			if err != nil {
				t.Fatal(err)
			}
			names := builtin.Names()
			if got := live.Names(); !reflect.DeepEqual(got, names) {
				t.Fatalf("live table has %d commands, builtin %d", len(got), len(names))
			}
			for _, n := range names {
				want, _ := builtin.Command(n)
				got, ok := live.Command(n)
				if !ok {
					t.Errorf("%s: missing from the live table", n)
					continue
				}
				// Key specs are maps in RESP3 and arrays in RESP2;
				// compare their number only.
				if len(got.KeySpecs) != len(want.KeySpecs) {
					t.Errorf("%s: %d key specs, builtin %d", n, len(got.KeySpecs), len(want.KeySpecs))
				}
				got.KeySpecs, want.KeySpecs = nil, nil
				if !reflect.DeepEqual(got, want) {
					t.Errorf("%s:\n live    %+v\n builtin %+v", n, got, want)
				}
				args := [][]byte{[]byte(n)}
				if parent, sub, ok := strings.Cut(n, "|"); ok {
					args = [][]byte{[]byte(parent), []byte(sub)}
				}
				if live.IsRead(args) != builtin.IsRead(args) {
					t.Errorf("%s: IsRead differs", n)
				}
			}
		})
	}
}
