package sentinel

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// errMyIDRefused wraps a poll's error when SENTINEL MYID was refused.
var errMyIDRefused = errors.New("SENTINEL MYID refused")

// pollResult is one successful poll of one Sentinel.
type pollResult struct {
	ID     string // SENTINEL MYID, "" if the Sentinel does not know it
	Master string // get-master-addr-by-name
	// MasterDown: SENTINEL MASTER flags the master s_down, o_down or
	// failover_in_progress. A Sentinel flags s_down after
	// down-after-milliseconds without an answer, always before it
	// promotes anything, and whether or not its events reach us.
	MasterDown bool
	// FailingOver: SENTINEL MASTER flags failover_in_progress while the
	// Sentinel still names the old master (before the promoted replica
	// is confirmed, when get-master-addr-by-name moves to it). The
	// replica may already have been promoted: the named master's writes
	// are about to be discarded.
	FailingOver bool
	// FlagsAsked is when SENTINEL MASTER, which MasterDown and
	// FailingOver come from, was sent.
	FlagsAsked time.Time
	// Quorum is its answer to SENTINEL CKQUORUM: "OK …" or "NOQUORUM …",
	// "" if it refused the question (an ACL without +sentinel|ckquorum).
	Quorum     string
	Replicas   []Replica
	Discovered []string // SENTINEL sentinels, when Config.Discover is set
}

// pollLoop polls the link's Sentinel every PollInterval, and at once when
// asked through pollNow. Unlike the event subscription it does not back
// off: each poll is the heartbeat that keeps the Sentinel counted as
// reachable, and a refused dial every PollInterval costs next to nothing.
func (l *link) pollLoop(ctx context.Context) {
	t := time.NewTicker(l.cfg.PollInterval)
	defer t.Stop()
	for {
		res, err := l.poll(ctx)
		if ctx.Err() != nil {
			return
		}
		l.report(res, err)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-l.pollNow:
		}
	}
}

// pollAttempts bounds how many times poll asks again when the Sentinel's
// master changed while it asked.
const pollAttempts = 3

// poll runs rounds of queries until one saw the Sentinel's master hold
// still. A Sentinel that switches between two of them answers with a mix:
// during a failover one named the old master (get-master-addr-by-name)
// and listed the replicas of the new one, the old master among them, so
// the promoted replica was not among "its" replicas and a watcher
// starting then verified the old master (TestWatcherStartedDuringFailoverWaitsForIt,
// about 1 run in 40). So the
// master's address is asked again at the end, and the round repeated if
// it moved.
func (l *link) poll(ctx context.Context) (pollResult, error) {
	for attempt := 1; ; attempt++ {
		res, err := l.pollOnce(ctx)
		if err != nil || attempt == pollAttempts {
			return res, err
		}
		qctx, cancel := context.WithTimeout(ctx, l.cfg.DialTimeout)
		m, err := l.client.GetMasterAddrByName(qctx, l.cfg.MasterName).Result()
		cancel()
		if err != nil {
			return res, fmt.Errorf("sentinel: %s: SENTINEL get-master-addr-by-name: %w", l.addr, err)
		}
		if len(m) == 2 && net.JoinHostPort(m[0], m[1]) == res.Master {
			return res, nil
		}
	}
}

// pollOnce runs one round of queries. They go one after another over the
// client's single connection, so that through a load-balanced address the
// run id and the answers come from the same Sentinel.
func (l *link) pollOnce(ctx context.Context) (pollResult, error) {
	var res pollResult
	qctx, cancel := context.WithTimeout(ctx, l.cfg.DialTimeout)
	defer cancel()

	myid := redis.NewStringCmd(qctx, "SENTINEL", "MYID")
	_ = l.client.Process(qctx, myid)
	id, err := myid.Result()
	switch {
	case err == nil:
		res.ID = id
	case isUnknownSubcommand(err):
		// Before Redis 6.2 there is no MYID; count the Sentinel by address.
	case isRedisError(err):
		// Refused (NOPERM, NOAUTH, …): without its identity a Sentinel
		// reached at two addresses would vote twice, so it gets no vote.
		return res, fmt.Errorf("sentinel: %s: %w (the Sentinel user needs +sentinel|myid): %w", l.addr, errMyIDRefused, err)
	default:
		return res, fmt.Errorf("sentinel: %s: SENTINEL MYID: %w", l.addr, err)
	}

	m, err := l.client.GetMasterAddrByName(qctx, l.cfg.MasterName).Result()
	switch {
	case errors.Is(err, redis.Nil):
		return res, fmt.Errorf("sentinel: %s: master name %q: %w", l.addr, l.cfg.MasterName, ErrUnknownMaster)
	case err != nil:
		return res, fmt.Errorf("sentinel: %s: SENTINEL get-master-addr-by-name: %w", l.addr, err)
	case len(m) != 2:
		return res, fmt.Errorf("sentinel: %s: SENTINEL get-master-addr-by-name: unexpected reply %.100q", l.addr, m)
	}
	res.Master = net.JoinHostPort(m[0], m[1])

	res.FlagsAsked = time.Now()
	mi, err := l.client.Master(qctx, l.cfg.MasterName).Result()
	if err != nil {
		return res, fmt.Errorf("sentinel: %s: SENTINEL master: %w", l.addr, err)
	}
	res.MasterDown = hasFlag(mi["flags"], "s_down", "o_down", "failover_in_progress")
	res.FailingOver = hasFlag(mi["flags"], "failover_in_progress") &&
		net.JoinHostPort(mi["ip"], mi["port"]) == res.Master

	// Whether this Sentinel could authorise a failover now, for the
	// facade's SENTINEL CKQUORUM. Only the question's transport failing
	// fails the poll: a refusal leaves the answer unknown, not the
	// Sentinel without a vote.
	q, err := l.client.CkQuorum(qctx, l.cfg.MasterName).Result()
	switch {
	case err == nil:
		res.Quorum = q
	case isRedisError(err):
		if msg := err.Error(); strings.HasPrefix(msg, "NOQUORUM ") {
			res.Quorum = msg
		}
	default:
		return res, fmt.Errorf("sentinel: %s: SENTINEL ckquorum: %w", l.addr, err)
	}

	reps, err := l.client.Replicas(qctx, l.cfg.MasterName).Result()
	if err != nil {
		return res, fmt.Errorf("sentinel: %s: SENTINEL replicas: %w", l.addr, err)
	}
	res.Replicas = parseReplicas(reps)

	if l.cfg.Discover {
		sens, err := l.client.Sentinels(qctx, l.cfg.MasterName).Result()
		if err != nil {
			return res, fmt.Errorf("sentinel: %s: SENTINEL sentinels: %w", l.addr, err)
		}
		for _, s := range sens {
			// A Sentinel this one sees as down is not followed: Sentinels
			// never forget a peer by themselves, so in Kubernetes the
			// lists keep every address a restarted pod ever had.
			if s["ip"] != "" && s["port"] != "" && !hasFlag(s["flags"], "s_down", "o_down") {
				res.Discovered = append(res.Discovered, net.JoinHostPort(s["ip"], s["port"]))
			}
		}
	}
	return res, nil
}

// hasFlag reports whether the comma-separated Sentinel flags hold any of
// names.
func hasFlag(flags string, names ...string) bool {
	for f := range strings.SplitSeq(flags, ",") {
		if slices.Contains(names, f) {
			return true
		}
	}
	return false
}

// parseReplicas turns a SENTINEL replicas reply into Replicas, sorted by
// address so that an unchanged set compares equal.
func parseReplicas(reps []map[string]string) []Replica {
	out := make([]Replica, 0, len(reps))
	for _, r := range reps {
		if r["ip"] == "" || r["port"] == "" {
			continue
		}
		rep := Replica{
			Addr:             net.JoinHostPort(r["ip"], r["port"]),
			MasterLinkStatus: r["master-link-status"],
		}
		if f := r["flags"]; f != "" {
			rep.Flags = strings.Split(f, ",")
		}
		rep.Down = hasFlag(r["flags"], "s_down", "o_down", "disconnected")
		rep.ReplOffset, _ = strconv.ParseInt(r["slave-repl-offset"], 10, 64)
		out = append(out, rep)
	}
	slices.SortFunc(out, func(a, b Replica) int { return strings.Compare(a.Addr, b.Addr) })
	return out
}

func isRedisError(err error) bool {
	var re redis.Error
	return errors.As(err, &re) && !errors.Is(err, redis.Nil)
}

// isUnknownSubcommand reports whether err is a Sentinel's answer to a
// subcommand it does not have: "ERR Unknown sentinel subcommand 'myid'"
// before Redis 6, "ERR unknown subcommand or wrong number of arguments
// for 'myid'…" or "ERR unknown subcommand 'myid'…" since.
func isUnknownSubcommand(err error) bool {
	if !isRedisError(err) {
		return false
	}
	msg := strings.ToLower(err.Error())
	return strings.Contains(msg, "unknown") && strings.Contains(msg, "subcommand")
}
