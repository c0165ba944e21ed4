package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pnats/switchyard/internal/lab"
	"github.com/pnats/switchyard/internal/lab/labtest"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap/zaptest"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestAdminEndpoints(t *testing.T) {
	skipShort(t)
	g := labtest.Group(t, lab.GroupOptions{Name: "admin", Replicas: 1, Sentinels: 3})
	m := newMetrics()
	grp := runGroupWith(t, g, m)
	admin, err := startAdmin("127.0.0.1:0", func() []*group { return []*group{grp} }, nil, m, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(admin.Close)
	base := "http://" + admin.addr

	if code, _ := get(t, base+"/healthz"); code != 200 {
		t.Fatalf("/healthz %d", code)
	}
	if code, body := get(t, base+"/readyz"); code != 200 {
		t.Fatalf("/readyz %d %s", code, body)
	}
	c := redis.NewClient(&redis.Options{Addr: grp.addr()})
	defer c.Close()
	for i := 0; i < 5; i++ {
		c.Get(context.Background(), "admin:k")
	}

	_, body := get(t, base+"/status")
	var st status
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatalf("/status is not JSON: %v\n%s", err, body)
	}
	gs := st.Groups[0]
	if gs.Mode != "sentinel" || gs.State != "ready" || gs.Master != g.Master.Addr || gs.Epoch != 1 ||
		len(gs.Sentinels) != 3 || len(gs.Replicas) != 1 || gs.Clients != 1 {
		t.Fatalf("/status group: %+v", gs)
	}
	if r := gs.Replicas[0]; !r.Healthy || r.CheckedAt == nil || time.Since(*r.CheckedAt) > time.Minute {
		t.Fatalf("replica not healthy, or not checked lately: %+v", r)
	}

	_, metrics := get(t, base+"/metrics")
	for _, want := range []string{
		`switchyard_client_connections{group="test"} 1`,
		`switchyard_command_duration_seconds_count{command="GET",group="test",role="master"} 5`,
		`switchyard_group_state{group="test",state="ready"} 1`,
		`switchyard_sentinels_reachable{group="test"} 3`,
		`switchyard_master_epoch{group="test"} 1`,
		`switchyard_master{group="test",master="` + g.Master.Addr + `"} 1`,
		`switchyard_client_connections_total{group="test"} 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	var out bytes.Buffer
	if err := printStatus(&out, admin.addr); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), g.Master.Addr) || !strings.Contains(out.String(), "ready") {
		t.Fatalf("switchyard status printed:\n%s", out.String())
	}

	// After a failover switchyard_master names the new master only, so
	// instances can be compared by it (master_epoch is per process).
	old := g.Master.Addr
	newM, err := g.Failover(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	labtest.Eventually(t, 10*time.Second, func() error {
		_, metrics := get(t, base+"/metrics")
		if want := `switchyard_master{group="test",master="` + newM.Addr + `"} 1`; !strings.Contains(metrics, want) {
			return fmt.Errorf("/metrics lacks %s", want)
		}
		if strings.Contains(metrics, `master="`+old+`"`) {
			return fmt.Errorf("/metrics still names the old master %s", old)
		}
		return nil
	})
}

// TestStatusWithoutGroups: while no group runs (a shutdown drains them
// all), /status lists groups as an empty array, which a script can
// iterate, not as null.
func TestStatusWithoutGroups(t *testing.T) {
	b, err := json.Marshal(statusOf(nil, nil))
	if err != nil {
		t.Fatal(err)
	}
	if got := string(b); got != `{"groups":[]}` {
		t.Fatalf("/status with no group: %s, want {\"groups\":[]}", got)
	}
}
