package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/pnats/switchyard/internal/lab"
)

// startSwitchyard starts bin following g's Sentinels and waits until
// /readyz answers 200 (a master is verified) and the listener answers PING.
func startSwitchyard(ctx context.Context, bin, dir string, g *lab.Group) (*endpoint, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	admin, err := freeAddr()
	if err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(dir, "switchyard.yaml")
	if err := os.WriteFile(cfgPath, []byte(switchyardConfig(addr, admin, g)), 0o644); err != nil {
		return nil, fmt.Errorf("switchyard: write config: %w", err)
	}
	c, err := lab.StartProcess("switchyard", dir, nil, bin, "-config", cfgPath)
	if err != nil {
		return nil, err
	}
	e := &endpoint{name: epSwitchyard, addr: addr, admin: admin, proc: c}
	hc := &http.Client{Timeout: time.Second}
	err = poll(ctx, readyTimeout, func() (bool, error) {
		if !c.Running() {
			return true, c.ExitError()
		}
		resp, err := hc.Get("http://" + admin + "/readyz")
		if err != nil {
			return false, err
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return false, fmt.Errorf("/readyz: %s: %s", resp.Status, strings.TrimSpace(string(body)))
		}
		return true, pingOnce(addr)
	})
	if err != nil {
		return nil, errors.Join(c.WithLog(fmt.Errorf("switchyard not ready: %w", err)), c.Stop())
	}
	return e, nil
}

// switchyardConfig is the YAML for one group following g's Sentinels.
// discover is off so that Switchyard uses exactly the lab's Sentinels;
// hold_timeout is longer than any failover here, so that a held command
// is released to the new master rather than failed with -TRYAGAIN.
func switchyardConfig(listen, admin string, g *lab.Group) string {
	addrs := make([]string, len(g.Sentinels))
	for i, s := range g.Sentinels {
		addrs[i] = s.Addr
	}
	return fmt.Sprintf(`admin_listen: %s
drain_timeout: 1s
log: {level: info, format: json}
groups:
  - name: bench
    listen: %s
    sentinel: {master_name: %s, addrs: [%s], discover: false, poll_interval: 100ms}
    hold_timeout: 10s
`, admin, listen, g.Name, strings.Join(addrs, ", "))
}

// firstCommandMetric is switchyard_switch_to_first_command_seconds for
// the group "bench": the sum and count of its observations.
type firstCommandMetric struct {
	sum   float64
	count int
}

// fetchFirstCommandMetric reads /metrics from a Switchyard endpoint.
func fetchFirstCommandMetric(e *endpoint) (firstCommandMetric, bool, error) {
	hc := &http.Client{Timeout: 2 * time.Second}
	resp, err := hc.Get("http://" + e.admin + "/metrics")
	if err != nil {
		return firstCommandMetric{}, false, fmt.Errorf("switchyard /metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return firstCommandMetric{}, false, fmt.Errorf("switchyard /metrics: %s", resp.Status)
	}
	return parseFirstCommandMetric(resp.Body)
}

// parseFirstCommandMetric finds the histogram's _sum and _count for
// group="bench" in Prometheus text format. ok is false when the series is
// absent (no switch was followed, or an older binary).
func parseFirstCommandMetric(r io.Reader) (m firstCommandMetric, ok bool, err error) {
	const name = "switchyard_switch_to_first_command_seconds"
	var haveSum, haveCount bool
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) || !strings.Contains(line, `group="bench"`) {
			continue
		}
		series, value, found := strings.Cut(line, " ")
		if !found {
			continue
		}
		metric, _, _ := strings.Cut(series, "{")
		switch metric {
		case name + "_sum":
			if m.sum, err = strconv.ParseFloat(strings.TrimSpace(value), 64); err != nil {
				return m, false, fmt.Errorf("switchyard /metrics: %.100q: %w", line, err)
			}
			haveSum = true
		case name + "_count":
			f, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
			if err != nil {
				return m, false, fmt.Errorf("switchyard /metrics: %.100q: %w", line, err)
			}
			m.count, haveCount = int(f), true
		}
	}
	if err := sc.Err(); err != nil {
		return m, false, fmt.Errorf("switchyard /metrics: %w", err)
	}
	return m, haveSum && haveCount, nil
}
