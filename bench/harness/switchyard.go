package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// startSwitchyard starts the proxy in front of the master. With mode
// "auto" it first tries Sentinel mode and falls back to a fixed upstream
// if this binary does not support Sentinel (it exits or never becomes
// ready); "on" and "off" force one mode.
func (tb *testbed) startSwitchyard(ctx context.Context, bin, mode string) error {
	if mode != "off" {
		err := tb.launchSwitchyard(ctx, bin, true)
		if err == nil {
			tb.switchyardMode = "follows Sentinel (REDIS_SENTINEL_HOSTS, REDIS_SENTINEL_MASTER)"
			return nil
		}
		if mode == "on" || ctx.Err() != nil {
			return err
		}
		logf("switchyard does not follow Sentinel here, using a fixed upstream instead:\n%v", err)
		first, _, _ := strings.Cut(err.Error(), "\n")
		tb.notes = append(tb.notes, "switchyard did not start in Sentinel mode ("+first+"), so it ran with a fixed upstream")
	}
	if err := tb.launchSwitchyard(ctx, bin, false); err != nil {
		return err
	}
	tb.switchyardMode = "fixed upstream (REDIS_HOST, REDIS_PORT)"
	return nil
}

func (tb *testbed) launchSwitchyard(ctx context.Context, bin string, sentinel bool) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	admin, err := freePort()
	if err != nil {
		return err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	env := append(cleanEnv(),
		"SWITCHYARD_LISTEN="+addr,
		fmt.Sprintf("SWITCHYARD_ADMIN_LISTEN=127.0.0.1:%d", admin),
	)
	what := "fixed upstream " + tb.master.Addr
	if sentinel {
		var hosts []string
		for _, s := range tb.group.Sentinels {
			hosts = append(hosts, s.Addr)
		}
		env = append(env, "REDIS_SENTINEL_HOSTS="+strings.Join(hosts, ","), "REDIS_SENTINEL_MASTER="+tb.group.Name)
		what = "Sentinel mode, master " + tb.group.Name
	} else {
		env = append(env, "REDIS_HOST=127.0.0.1", fmt.Sprintf("REDIS_PORT=%d", tb.master.Port))
	}
	logf("starting switchyard on %s (%s)", addr, what)
	abs, err := filepath.Abs(bin)
	if err != nil {
		return err
	}
	c, err := startChild(epSwitchyard, tb.dir, env, abs)
	if err != nil {
		return err
	}
	readyz := fmt.Sprintf("http://127.0.0.1:%d/readyz", admin)
	err = poll(ctx, readyTimeout, func() (bool, error) {
		if c.exited() {
			return true, c.exitError()
		}
		if err := getOK(readyz); err != nil {
			return false, err
		}
		err := pingOnce(addr)
		return err == nil, err
	})
	if err != nil {
		err = c.withLog(fmt.Errorf("switchyard (%s) not ready: %w", what, err))
		return errors.Join(err, c.stop())
	}
	tb.children = append(tb.children, c)
	tb.endpoints = append(tb.endpoints, endpoint{name: epSwitchyard, addr: addr, port: port, pid: c.pid()})
	return nil
}

// getOK expects 200 from url.
func getOK(url string) error {
	cl := http.Client{Timeout: time.Second}
	resp, err := cl.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}

// cleanEnv is the harness's environment without the variables Switchyard
// reads, so that the caller's shell cannot change what is measured.
func cleanEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "REDIS_") || strings.HasPrefix(kv, "SWITCHYARD_") {
			continue
		}
		out = append(out, kv)
	}
	return out
}
