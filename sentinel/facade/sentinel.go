package facade

import (
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// Values the facade reports for a master's timers and settings. They are
// the defaults of a Redis 7.0 Sentinel; clients parse them as integers
// but none acts on them.
const (
	downAfterMillis    = "30000"
	failoverTimeout    = "180000"
	parallelSyncs      = "1"
	quorum             = "1"
	replicaPriority    = "100"
	infoRefreshMillis  = "0"
	linkPendingCommand = "0"
)

// unsupported are SENTINEL subcommands a real Sentinel has that change or
// probe Sentinel state, with their argument counts as Redis 7.0 checks
// them (negative: at least). The facade is not a Sentinel and says so,
// rather than "unknown subcommand", so an operator knows to ask the real
// ones.
var unsupported = map[string]arity{
	"failover": 3, "reset": 3, "monitor": 6, "remove": 3, "set": -5,
	"config": -3, "flushconfig": 2, "simulate-failure": -3, "debug": -2,
	"info-cache": -3, "pending-scripts": 2, "is-master-down-by-addr": 6,
}

// sentinelArity is the argument count of each subcommand the facade
// answers, with SENTINEL and the subcommand.
var sentinelArity = map[string]int{
	"get-master-addr-by-name": 3, "master": 3, "masters": 2, "replicas": 3, "slaves": 3,
	"sentinels": 3, "ckquorum": 3, "myid": 2, "help": 2,
}

// sentinelSyntax returns the error for a SENTINEL subcommand Sentinel does
// not have, or one of the facade's with the wrong argument count, or "".
// Like Sentinel, the facade reports these before asking for AUTH.
func sentinelSyntax(args [][]byte) string {
	sub := strings.ToLower(string(args[1]))
	if a, ok := unsupported[sub]; ok {
		if !a.ok(len(args)) {
			return wrongArgs("sentinel|" + sub)
		}
		return ""
	}
	n, known := sentinelArity[sub]
	switch {
	case !known:
		return fmt.Sprintf("ERR unknown subcommand '%s'. Try SENTINEL HELP.", cString(args[1], 128))
	case len(args) != n:
		return wrongArgs("sentinel|" + sub)
	}
	return ""
}

// sentinel is the SENTINEL command.
func (s *Server) sentinel(c *client, args [][]byte) {
	sub := strings.ToLower(string(args[1]))
	if _, ok := unsupported[sub]; ok {
		c.out.err(fmt.Sprintf("ERR switchyard: SENTINEL %s is not supported by the Sentinel facade; send it to the real Sentinels", strings.ToUpper(sub)))
		return
	}
	if e := sentinelSyntax(args); e != "" {
		c.out.err(e)
		return
	}
	switch sub {
	case "myid":
		c.out.bulk(s.myid)
		return
	case "help":
		c.out.array(len(sentinelHelp))
		for _, l := range sentinelHelp {
			c.out.simple(l)
		}
		return
	case "masters":
		groups := s.groups()
		c.out.array(len(groups))
		for _, g := range groups {
			c.out.fields(s.masterFields(g))
		}
		return
	}
	g, ok := s.group(string(args[2]))
	if !ok {
		if sub == "get-master-addr-by-name" {
			c.out.nullArray()
			return
		}
		c.out.err(errNoSuchMaster)
		return
	}
	switch sub {
	case "get-master-addr-by-name":
		host, port, err := net.SplitHostPort(g.Addr())
		if err != nil {
			c.out.nullArray()
			return
		}
		c.out.array(2)
		c.out.bulk(host)
		c.out.bulk(port)
	case "master":
		c.out.fields(s.masterFields(g))
	case "replicas", "slaves":
		r := replicaFields(g)
		if r == nil {
			c.out.array(0)
			return
		}
		c.out.array(1)
		c.out.fields(r)
	case "sentinels":
		// The facade is the only Sentinel a client of it sees.
		c.out.array(0)
	case "ckquorum":
		if !up(g) {
			c.out.err("NOQUORUM switchyard: no verified master for this group; Switchyard is holding its commands")
			return
		}
		// The real Sentinels' answer, where they gave one: an operator
		// checks quorum here before trusting a failover to come.
		switch q := quorumOf(g); {
		case strings.HasPrefix(q, "NOQUORUM "):
			c.out.err(q)
		case q != "":
			c.out.simple(q)
		default:
			c.out.simple("OK 1 usable Sentinels. Quorum and failover authorization can be reached")
		}
	}
}

var sentinelHelp = []string{
	"SENTINEL <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
	"CKQUORUM <master-name>",
	"GET-MASTER-ADDR-BY-NAME <master-name>",
	"MASTER <master-name>",
	"MASTERS",
	"MYID",
	"REPLICAS <master-name>",
	"SENTINELS <master-name>",
	"SLAVES <master-name>",
	"    (Switchyard's Sentinel facade: other subcommands go to the real Sentinels.)",
}

func up(g Group) bool { return g.Up == nil || g.Up() }

func quorumOf(g Group) string {
	if g.Quorum == nil {
		return ""
	}
	return g.Quorum()
}

func readAddr(g Group) string {
	if g.ReadAddr == nil {
		return ""
	}
	return g.ReadAddr()
}

// masterFields is a master entry as SENTINEL master gives it, with the
// same 20 fields in the same order.
func (s *Server) masterFields(g Group) []field {
	addr := g.Addr()
	host, port, _ := net.SplitHostPort(addr)
	flags := "master"
	if !up(g) {
		flags = "s_down,o_down,master"
	}
	replicas := "0"
	if readAddr(g) != "" {
		replicas = "1"
	}
	s.epochMu.Lock()
	epoch := s.epochs[g.Name]
	s.epochMu.Unlock()
	uptime := strconv.FormatInt(time.Since(s.start).Milliseconds(), 10)
	return []field{
		{"name", g.Name},
		{"ip", host},
		{"port", port},
		{"runid", runID(g.Name, addr)},
		{"flags", flags},
		{"link-pending-commands", linkPendingCommand},
		{"link-refcount", "1"},
		{"last-ping-sent", "0"},
		{"last-ok-ping-reply", "0"},
		{"last-ping-reply", "0"},
		{"down-after-milliseconds", downAfterMillis},
		{"info-refresh", infoRefreshMillis},
		{"role-reported", "master"},
		{"role-reported-time", uptime},
		{"config-epoch", strconv.FormatInt(epoch, 10)},
		{"num-slaves", replicas},
		{"num-other-sentinels", "0"},
		{"quorum", quorum},
		{"failover-timeout", failoverTimeout},
		{"parallel-syncs", parallelSyncs},
	}
}

// replicaFields is the read port as SENTINEL replicas gives a replica
// (21 fields), or nil if the group has no read port.
func replicaFields(g Group) []field {
	addr := readAddr(g)
	if addr == "" {
		return nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil
	}
	mhost, mport, _ := net.SplitHostPort(g.Addr())
	flags, link := "slave", "ok"
	if !up(g) {
		// Reads through the read port fall back to the master, which is
		// in doubt too.
		flags, link = "s_down,slave", "err"
	}
	return []field{
		{"name", addr},
		{"ip", host},
		{"port", port},
		{"runid", runID(g.Name+" read", addr)},
		{"flags", flags},
		{"link-pending-commands", linkPendingCommand},
		{"link-refcount", "1"},
		{"last-ping-sent", "0"},
		{"last-ok-ping-reply", "0"},
		{"last-ping-reply", "0"},
		{"down-after-milliseconds", downAfterMillis},
		{"info-refresh", infoRefreshMillis},
		{"role-reported", "slave"},
		{"role-reported-time", "0"},
		{"master-link-down-time", "0"},
		{"master-link-status", link},
		{"master-host", mhost},
		{"master-port", mport},
		{"slave-priority", replicaPriority},
		{"slave-repl-offset", "0"},
		{"replica-announced", "1"},
	}
}

// runID is a stable 40-hex id for an advertised address: the same on
// every Switchyard instance, new when the address changes, as a real
// node's run id is new when the master is another node.
func runID(name, addr string) string {
	h := sha1.Sum([]byte(name + " " + addr))
	return hex.EncodeToString(h[:])
}

// info is INFO [section ...]: server, clients and sentinel.
func (s *Server) info(c *client, args [][]byte) {
	sections := map[string]bool{}
	all := len(args) == 1
	for _, a := range args[1:] {
		switch sec := strings.ToLower(string(a)); sec {
		case "all", "default", "everything":
			all = true
		default:
			sections[sec] = true
		}
	}
	// Sections are separated by a blank line, with none after the last,
	// as Redis writes them.
	var parts []string
	if all || sections["server"] {
		_, port, _ := net.SplitHostPort(s.cfg.Announce)
		uptime := time.Since(s.start)
		parts = append(parts, fmt.Sprintf("# Server\r\nredis_version:%s\r\nredis_mode:sentinel\r\nexecutable:switchyard\r\nrun_id:%s\r\ntcp_port:%s\r\nuptime_in_seconds:%d\r\nuptime_in_days:%d\r\n",
			Version, s.myid, port, int64(uptime.Seconds()), int64(uptime.Hours()/24)))
	}
	if all || sections["clients"] {
		s.mu.Lock()
		n := len(s.clients)
		s.mu.Unlock()
		parts = append(parts, fmt.Sprintf("# Clients\r\nconnected_clients:%d\r\n", n))
	}
	if all || sections["sentinel"] {
		var b strings.Builder
		groups := s.groups()
		fmt.Fprintf(&b, "# Sentinel\r\nsentinel_masters:%d\r\nsentinel_tilt:0\r\nsentinel_tilt_since_seconds:-1\r\nsentinel_running_scripts:0\r\nsentinel_scripts_queue_length:0\r\nsentinel_simulate_failure_flags:0\r\n", len(groups))
		for i, g := range groups {
			status, replicas := "ok", 0
			if !up(g) {
				status = "odown"
			}
			if readAddr(g) != "" {
				replicas = 1
			}
			fmt.Fprintf(&b, "master%d:name=%s,status=%s,address=%s,slaves=%d,sentinels=1\r\n", i, g.Name, status, g.Addr(), replicas)
		}
		parts = append(parts, b.String())
	}
	c.out.bulk(strings.Join(parts, "\r\n"))
}
