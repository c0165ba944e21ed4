package main

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/pnats/switchyard/internal/lab"
)

// haproxyBackend is the backend's name in the generated configuration.
const haproxyBackend = "redis"

// startHAProxy starts HAProxy in TCP mode in front of every server of g,
// with the usual Redis health check (role:master), and waits until its
// stats socket shows exactly g's master as UP.
func startHAProxy(ctx context.Context, bin, dir string, g *lab.Group) (*endpoint, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	e := &endpoint{name: epHAProxy, addr: addr, statsSocket: filepath.Join(dir, "haproxy.sock"), servers: map[string]string{}}
	var servers []string
	for i, s := range g.Servers() {
		name := fmt.Sprintf("r%d", i)
		e.servers[name] = s.Addr
		servers = append(servers, name+" "+s.Addr)
	}
	cfgPath := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(cfgPath, []byte(haproxyConfig(addr, e.statsSocket, servers)), 0o644); err != nil {
		return nil, fmt.Errorf("haproxy: write config: %w", err)
	}
	c, err := lab.StartProcess("haproxy", dir, nil, bin, "-db", "-f", cfgPath)
	if err != nil {
		return nil, err
	}
	e.proc = c
	err = poll(ctx, readyTimeout, func() (bool, error) {
		if !c.Running() {
			return true, c.ExitError()
		}
		st, err := e.serverStates()
		if err != nil {
			return false, err
		}
		for name, a := range e.servers {
			want := "DOWN"
			if a == g.Master.Addr {
				want = "UP"
			}
			if st[name] != want {
				return false, fmt.Errorf("server %s (%s) is %q, want %s", name, a, st[name], want)
			}
		}
		return true, pingOnce(addr)
	})
	if err != nil {
		return nil, errors.Join(c.WithLog(fmt.Errorf("haproxy not routing to the master %s: %w", g.Master.Addr, err)), c.Stop())
	}
	return e, nil
}

// haproxyConfig is the widely used HAProxy pattern for Redis behind
// Sentinel: one TCP backend listing every node, a health check that only
// passes on role:master, checks every second, and sessions to a server
// that is marked down are shut down. servers are "name host:port".
func haproxyConfig(listen, statsSocket string, servers []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `global
    nbthread 1
    stats socket %s mode 600 level admin

defaults
    mode tcp
    timeout connect 5s
    timeout client 1m
    timeout server 1m

frontend redis_in
    bind %s
    default_backend %s

backend %s
    option tcp-check
    tcp-check send PING\r\n
    tcp-check expect string +PONG
    tcp-check send info\ replication\r\n
    tcp-check expect string role:master
    tcp-check send QUIT\r\n
    tcp-check expect string +OK
`, statsSocket, listen, haproxyBackend, haproxyBackend)
	for _, s := range servers {
		fmt.Fprintf(&b, "    server %s check inter 1s on-marked-down shutdown-sessions\n", s)
	}
	return b.String()
}

// serverStates asks the stats socket for "show stat" and returns each
// backend server's state reduced to its first word (UP, DOWN, MAINT, …):
// "UP 1/3" is a server still UP that failed one check.
func (e *endpoint) serverStates() (map[string]string, error) {
	conn, err := net.DialTimeout("unix", e.statsSocket, time.Second)
	if err != nil {
		return nil, fmt.Errorf("haproxy stats socket: %w", err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(conn, "show stat\n"); err != nil {
		return nil, fmt.Errorf("haproxy stats socket: %w", err)
	}
	out, err := io.ReadAll(conn)
	if err != nil {
		return nil, fmt.Errorf("haproxy stats socket: %w", err)
	}
	return parseShowStat(string(out), haproxyBackend)
}

// parseShowStat extracts server states of backend from "show stat" CSV.
func parseShowStat(out, backend string) (map[string]string, error) {
	out = strings.TrimPrefix(out, "# ")
	r := csv.NewReader(strings.NewReader(out))
	r.FieldsPerRecord = -1
	rows, err := r.ReadAll()
	if err != nil {
		return nil, fmt.Errorf("haproxy show stat: %w", err)
	}
	if len(rows) == 0 {
		return nil, errors.New("haproxy show stat: empty reply")
	}
	col := map[string]int{}
	for i, h := range rows[0] {
		col[h] = i
	}
	px, ok1 := col["pxname"]
	sv, ok2 := col["svname"]
	status, ok3 := col["status"]
	if !ok1 || !ok2 || !ok3 {
		return nil, fmt.Errorf("haproxy show stat: header lacks pxname, svname or status: %.100q", strings.Join(rows[0], ","))
	}
	st := map[string]string{}
	for _, row := range rows[1:] {
		if len(row) <= max(px, sv, status) || row[px] != backend || row[sv] == "BACKEND" {
			continue
		}
		word, _, _ := strings.Cut(row[status], " ")
		st[row[sv]] = word
	}
	return st, nil
}

// stateChange is one HAProxy server changing state, as seen by polling
// the stats socket.
type stateChange struct {
	at    time.Time
	addr  string // the Redis node
	state string // UP, DOWN, …
}

// haproxyWatch polls an HAProxy's stats socket and records when each
// server's state changes, so that the report can say when HAProxy stopped
// and started routing to each node.
type haproxyWatch struct {
	stop chan struct{}
	done chan struct{}

	// mu guards changes.
	mu      sync.Mutex
	changes []stateChange
}

// haproxyPollInterval is how often haproxyWatch reads the stats socket.
const haproxyPollInterval = 50 * time.Millisecond

func watchHAProxy(e *endpoint) *haproxyWatch {
	w := &haproxyWatch{stop: make(chan struct{}), done: make(chan struct{})}
	go w.run(e)
	return w
}

func (w *haproxyWatch) run(e *endpoint) {
	defer close(w.done)
	last := map[string]string{}
	t := time.NewTicker(haproxyPollInterval)
	defer t.Stop()
	for {
		if st, err := e.serverStates(); err == nil {
			now := time.Now()
			w.mu.Lock()
			for name, s := range st {
				if last[name] != s {
					w.changes = append(w.changes, stateChange{at: now, addr: e.servers[name], state: s})
					last[name] = s
				}
			}
			w.mu.Unlock()
		}
		select {
		case <-w.stop:
			return
		case <-t.C:
		}
	}
}

// close stops polling and returns the changes seen; it is safe on nil.
func (w *haproxyWatch) close() []stateChange {
	if w == nil {
		return nil
	}
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.changes
}
