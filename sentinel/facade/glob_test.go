package facade

import (
	"slices"
	"testing"

	"github.com/pnats/switchyard/internal/lab"
	"github.com/pnats/switchyard/internal/lab/labtest"
)

// TestGlobMatchesRedis holds globMatch to Redis's own matching: the same
// patterns are given to KEYS over keys named like the channels, and both
// must select the same names. (Not the empty name: KEYS * lists it,
// though Redis's matcher never matches it to a non-empty pattern.)
func TestGlobMatchesRedis(t *testing.T) {
	if testing.Short() {
		t.Skip("starts redis-server")
	}
	names := []string{
		"+switch-master", "+switch-slave", "+sdown", "+odown", "-sdown", "+try-failover",
		"a", "b", "ab", "abc", "a*c", "a?c", "a[c", "a]c", "a-c", "a\\c", "^", "x]", "]", "-",
		"+switch-Master", "__sentinel__:hello", "\x80", "\xff", "é", "0", "!",
	}
	patterns := []string{
		"*", "?", "+switch-master", "+switch-*", "+switch-[m]aster", "+switch-[^x]aster", "+switch-[a-z]aster",
		"+switch-[z-a]aster", "+switch-[^m]aster", "*master", "*-*", "+*down", "?sdown", "??down",
		"a*", "*c", "a*c", "a\\*c", "a\\?c", "a[*]c", "a[]]c", "a[\\]]c", "a[-]c", "a[a-]c", "a[^b]c",
		"a[", "a[c", "[", "]", "\\", "a\\", "[^]", "[]", "*[", "a*b*c", "**", "*a*", "x[]]", "[-]", "[^-]",
		"__sentinel__:*", "+switch-m*r", "*:*", "[a-c]", "[!a]", "[^a-c]*",
		"[a-\xff]", "[\x80-\xff]", "[^\x80-a]", "\xc3*", "[\x00-\x7f]",
	}
	rs := labtest.Server(t, lab.ServerOptions{})
	c := rs.Client()
	ctx := t.Context()
	for _, n := range names {
		if err := c.Set(ctx, n, 1, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range patterns {
		want, err := c.Keys(ctx, p).Result()
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, n := range names {
			if globMatch(p, n) {
				got = append(got, n)
			}
		}
		slices.Sort(want)
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("pattern %q: matches %q, Redis %q", p, got, want)
		}
	}
}

func TestGlobEmptyName(t *testing.T) {
	if globMatch("*", "") || !globMatch("", "") || globMatch("", "a") {
		t.Fatal("an empty name matches only an empty pattern")
	}
}
