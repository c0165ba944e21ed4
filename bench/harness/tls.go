package main

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Endpoints of the TLS workload. The plain ports are the baselines: the
// TLS port of each server is compared with its own plain port.
const (
	epRedisTLS        = "redis TLS"
	epSwitchyardPlain = "switchyard"
	epSwitchyardTLS   = "switchyard TLS"
)

// plainOf is the plain endpoint a TLS endpoint is compared with.
var plainOf = map[string]string{epRedisTLS: epRedis, epSwitchyardTLS: epSwitchyardPlain}

// enableRedisTLS opens a TLS port on the master besides its plain one
// (CONFIG SET; Redis 7 changes tls-port at run time), with the run's
// certificate, so that Redis's own TLS cost is measured next to
// Switchyard's. It fails on a redis-server built without TLS.
func (tb *testbed) enableRedisTLS() error {
	port, err := freePort()
	if err != nil {
		return err
	}
	rc, err := dialRedis(tb.master.Addr, nil)
	if err != nil {
		return err
	}
	defer rc.close()
	if _, err := rc.do("CONFIG", "SET",
		"tls-cert-file", tb.certs.cert, "tls-key-file", tb.certs.key,
		"tls-ca-cert-file", tb.certs.ca, "tls-auth-clients", "no"); err != nil {
		return err
	}
	if _, err := rc.do("CONFIG", "SET", "tls-port", strconv.Itoa(port)); err != nil {
		return err
	}
	tc, err := tb.certs.clientTLS()
	if err != nil {
		return err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	if err := pingTLS(addr, tc); err != nil {
		return fmt.Errorf("TLS port %s: %w", addr, err)
	}
	tb.redisTLSPort = port
	return nil
}

// tlsEndpoints are the TLS workload's endpoints, plain before TLS.
func (tb *testbed) tlsEndpoints() ([]endpoint, error) {
	if tb.file == nil || tb.file.tls.port == 0 {
		return nil, errors.New("the TLS workload needs the file-configured Switchyard with a TLS listener")
	}
	var eps []endpoint
	eps = append(eps, endpoint{name: epRedis, addr: tb.master.Addr, port: tb.master.Port, pid: tb.master.PID()})
	if tb.redisTLSPort != 0 {
		eps = append(eps, endpoint{name: epRedisTLS, addr: fmt.Sprintf("127.0.0.1:%d", tb.redisTLSPort),
			port: tb.redisTLSPort, pid: tb.master.PID(), ca: tb.certs.ca})
	}
	plain, secure := tb.file.plain, tb.file.tls
	plain.name, secure.name = epSwitchyardPlain, epSwitchyardTLS
	return append(eps, plain, secure), nil
}

// writeTLS writes the TLS table: every endpoint with its ratio to direct
// Redis (plain), and each TLS port against its own server's plain port,
// paired by round.
func (r *results) writeTLS(w io.Writer) {
	fmt.Fprintln(w, "| Workload | Test | Endpoint | Throughput (rps) | × direct | TLS ÷ plain | TLS ÷ plain, rounds' range | p50 (ms) | +p50 vs plain (ms) | p99 (ms) | +p99 vs plain (ms) | CPU s / 100k cmds |")
	fmt.Fprintln(w, "|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
	for _, k := range r.cases() {
		title := workloadByID(k.workload).title
		for _, ep := range r.endpoints {
			s := r.summarize(k, ep)
			if !s.haveSamples {
				continue
			}
			ratio := "—"
			if s.haveDirect {
				ratio = fmt.Sprintf("%.2f×", s.ratio)
			}
			vsPlain, spread, dp50, dp99 := "—", "—", "—", "—"
			if base, ok := plainOf[ep]; ok {
				if c := r.compare(k, ep, base); c.ok {
					vsPlain = fmt.Sprintf("%.2f×", c.ratio)
					spread = fmt.Sprintf("%.2f–%.2f", c.ratioLo, c.ratioHi)
					dp50 = fmt.Sprintf("%+.3f", c.addP50)
					dp99 = fmt.Sprintf("%+.3f", c.addP99)
				}
			}
			fmt.Fprintf(w, "| %s | %s | %s | %.0f | %s | %s | %s | %.3f | %s | %.3f | %s | %.2f |\n",
				title, strings.ToUpper(k.test), ep, s.rps, ratio, vsPlain, spread, s.p50, dp50, s.p99, dp99, s.cpuPer100k)
		}
	}
}
