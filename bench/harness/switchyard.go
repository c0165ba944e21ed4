package main

import (
	"context"
	"crypto/tls"
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
//
// name is the endpoint's: epSwitchyard, or epBaseline for -baseline,
// which does not change the mode reported.
func (tb *testbed) startSwitchyard(ctx context.Context, name, bin, mode string) error {
	if mode != "off" {
		err := tb.launchSwitchyard(ctx, name, bin, true)
		if err == nil {
			if name == epSwitchyard {
				tb.switchyardMode = "follows Sentinel (REDIS_SENTINEL_HOSTS, REDIS_SENTINEL_MASTER)"
				tb.switchyardSentinel = true
			}
			return nil
		}
		if mode == "on" || ctx.Err() != nil {
			return err
		}
		logf("switchyard does not follow Sentinel here, using a fixed upstream instead:\n%v", err)
		first, _, _ := strings.Cut(err.Error(), "\n")
		tb.notes = append(tb.notes, "switchyard did not start in Sentinel mode ("+first+"), so it ran with a fixed upstream")
	}
	if err := tb.launchSwitchyard(ctx, name, bin, false); err != nil {
		return err
	}
	if name == epSwitchyard {
		tb.switchyardMode = "fixed upstream (REDIS_HOST, REDIS_PORT)"
	}
	return nil
}

func (tb *testbed) launchSwitchyard(ctx context.Context, name, bin string, sentinel bool) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	admin, err := freePort()
	if err != nil {
		return err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	env := append(tb.switchyardEnv(),
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
	logf("starting %s (%s) on %s (%s)", name, bin, addr, what)
	abs, err := filepath.Abs(bin)
	if err != nil {
		return err
	}
	c, err := startChild(name, tb.dir, env, abs)
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
		err = c.withLog(fmt.Errorf("%s (%s) not ready: %w", name, what, err))
		return errors.Join(err, c.stop())
	}
	tb.children = append(tb.children, c)
	tb.endpoints = append(tb.endpoints, endpoint{name: name, addr: addr, port: port, pid: c.pid()})
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

// switchyardEnv is the harness's environment without the variables
// Switchyard reads, so that the caller's shell cannot change what is
// measured, and with the GOMAXPROCS of -gomaxprocs.
func (tb *testbed) switchyardEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "REDIS_") || strings.HasPrefix(kv, "SWITCHYARD_") || strings.HasPrefix(kv, "GOMAXPROCS=") {
			continue
		}
		out = append(out, kv)
	}
	if tb.gomaxprocs > 0 {
		out = append(out, fmt.Sprintf("GOMAXPROCS=%d", tb.gomaxprocs))
	}
	return out
}

// fileSwitchyard is the Switchyard of the TLS and reads workloads. It is
// configured by a file, because TLS listeners and read ports have no
// environment variables, and serves one group on up to three ports.
type fileSwitchyard struct {
	pid     int
	logPath string   // its JSON log
	plain   endpoint // the main port; reads go to the master (read_policy master)
	tls     endpoint // the TLS port, same group; zero without the TLS workload
	read    endpoint // the read port; zero without the reads workload
	mode    string   // how it finds the master, for the report
}

// fileConfig is what fileConfig.yaml renders: one group named bench.
type fileConfig struct {
	admin, listen  string
	tlsListen      string // empty: no TLS listener
	certFile, key  string
	readListen     string   // empty: no read port
	sentinelMaster string   // Sentinel mode when set
	sentinels      []string // Sentinel addresses
	upstream       string   // a fixed master otherwise
}

// yaml renders c as Switchyard's configuration file
// (docs/configuration.md). Every other setting keeps its default, as in
// the environment-configured Switchyard of the proxies workloads.
func (c fileConfig) yaml() string {
	var b strings.Builder
	fmt.Fprintf(&b, "admin_listen: %s\nlog:\n  level: info\n  format: json\ngroups:\n  - name: bench\n    listen: %s\n", c.admin, c.listen)
	if c.tlsListen != "" {
		fmt.Fprintf(&b, "    tls:\n      listen: %s\n      cert_file: %q\n      key_file: %q\n", c.tlsListen, c.certFile, c.key)
	}
	if c.readListen != "" {
		fmt.Fprintf(&b, "    read_listen: %s\n", c.readListen)
	}
	if c.sentinelMaster != "" {
		fmt.Fprintf(&b, "    sentinel:\n      master_name: %s\n      addrs: [%s]\n", c.sentinelMaster, strings.Join(c.sentinels, ", "))
	} else {
		fmt.Fprintf(&b, "    upstream: %s\n", c.upstream)
	}
	return b.String()
}

// startFileSwitchyard starts the file-configured Switchyard with a TLS
// listener (withTLS) and a read port (withReads) besides its main port.
// It follows Sentinel when the testbed has Sentinels, else the master.
func (tb *testbed) startFileSwitchyard(ctx context.Context, bin string, withTLS, withReads bool) error {
	ports := make([]int, 4) // admin, main, TLS, read
	for i := range ports {
		p, err := freePort()
		if err != nil {
			return err
		}
		ports[i] = p
	}
	at := func(p int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(p)) }
	cfg := fileConfig{admin: at(ports[0]), listen: at(ports[1])}
	fs := &fileSwitchyard{plain: endpoint{addr: at(ports[1]), port: ports[1]}}
	if withTLS {
		cfg.tlsListen, cfg.certFile, cfg.key = at(ports[2]), tb.certs.cert, tb.certs.key
		fs.tls = endpoint{addr: at(ports[2]), port: ports[2], ca: tb.certs.ca}
	}
	if withReads {
		cfg.readListen = at(ports[3])
		fs.read = endpoint{addr: at(ports[3]), port: ports[3]}
	}
	if tb.group != nil {
		cfg.sentinelMaster = tb.group.Name
		for _, s := range tb.group.Sentinels {
			cfg.sentinels = append(cfg.sentinels, s.Addr)
		}
		fs.mode = "follows Sentinel"
	} else {
		cfg.upstream = tb.master.Addr
		fs.mode = "fixed upstream"
	}
	path := filepath.Join(tb.dir, "switchyard-file.yaml")
	if err := os.WriteFile(path, []byte(cfg.yaml()), 0o644); err != nil {
		return fmt.Errorf("switchyard configuration: %w", err)
	}
	abs, err := filepath.Abs(bin)
	if err != nil {
		return err
	}
	logf("starting switchyard from %s (main %s, TLS %s, read %s; %s)", path, cfg.listen, orNone(cfg.tlsListen), orNone(cfg.readListen), fs.mode)
	c, err := startChild("switchyard-file", tb.dir, tb.switchyardEnv(), abs, "-config", path)
	if err != nil {
		return err
	}
	var tc *tls.Config
	if withTLS {
		if tc, err = tb.certs.clientTLS(); err != nil {
			return errors.Join(err, c.stop())
		}
	}
	readyz := fmt.Sprintf("http://%s/readyz", cfg.admin)
	err = poll(ctx, readyTimeout, func() (bool, error) {
		if c.exited() {
			return true, c.exitError()
		}
		if err := getOK(readyz); err != nil {
			return false, err
		}
		if err := pingOnce(cfg.listen); err != nil {
			return false, err
		}
		if tc != nil {
			if err := pingTLS(cfg.tlsListen, tc); err != nil {
				return false, fmt.Errorf("TLS port: %w", err)
			}
		}
		return true, nil
	})
	if err != nil {
		err = c.withLog(fmt.Errorf("switchyard from %s not ready: %w", path, err))
		return errors.Join(err, c.stop())
	}
	tb.children = append(tb.children, c)
	fs.pid, fs.logPath = c.pid(), c.logPath
	fs.plain.pid, fs.tls.pid, fs.read.pid = fs.pid, fs.pid, fs.pid
	tb.file = fs
	return nil
}

// pingTLS opens a TLS connection to addr and expects PONG to PING.
func pingTLS(addr string, tc *tls.Config) error {
	rc, err := dialRedis(addr, tc)
	if err != nil {
		return err
	}
	defer rc.close()
	got, err := rc.do("PING")
	if err == nil && got != "PONG" {
		err = fmt.Errorf("PING: reply %.60q", got)
	}
	return err
}

func orNone(addr string) string {
	if addr == "" {
		return "none"
	}
	return addr
}
