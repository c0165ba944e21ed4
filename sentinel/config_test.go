package sentinel

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestNewValidates(t *testing.T) {
	ok := Config{MasterName: "m", Sentinels: []string{"127.0.0.1:26379"}}
	tests := []struct {
		name   string
		mutate func(*Config)
		want   string // substring of the error, "" for none
		is     error
	}{
		{"valid", func(*Config) {}, "", nil},
		{"no master name", func(c *Config) { c.MasterName = "" }, "Config.MasterName is empty", ErrNoMasterName},
		{"no sentinels", func(c *Config) { c.Sentinels = nil }, "Config.Sentinels is empty", ErrNoSentinels},
		{"bad address", func(c *Config) { c.Sentinels = []string{"127.0.0.1:1", "sentinel"} }, `Config.Sentinels[1] "sentinel" is not host:port`, ErrInvalidConfig},
		{"duplicate", func(c *Config) { c.Sentinels = []string{"a:1", "a:1"} }, `Config.Sentinels[1] "a:1" is listed twice`, ErrInvalidConfig},
		{"negative poll", func(c *Config) { c.PollInterval = -time.Second }, "Config.PollInterval -1s is negative", ErrInvalidConfig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.mutate(&c)
			w, err := New(c)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				if got := w.Topology().State; got != StateUnknown {
					t.Errorf("initial state %v, want unknown", got)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "sentinel: ") {
				t.Fatalf("New error %v, want one starting with \"sentinel: \" containing %q", err, tt.want)
			}
			if !errors.Is(err, tt.is) {
				t.Errorf("error %v does not wrap %v", err, tt.is)
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	c := Config{}.withDefaults()
	if c.PollInterval != 500*time.Millisecond || c.DialTimeout != time.Second || c.FailoverHold != 15*time.Second || c.Logger == nil || c.Discover {
		t.Errorf("defaults: %+v", c)
	}
}

func TestStateString(t *testing.T) {
	for s, want := range map[State]string{StateUnknown: "unknown", StateReady: "ready", StateFailover: "failover",
		StateNoMaster: "no-master", StateDegraded: "degraded", State(9): "State(9)"} {
		if s.String() != want {
			t.Errorf("%d: %q, want %q", int(s), s.String(), want)
		}
	}
}
