package main

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// errorPause is how long a writer waits after a failed write before the
// next one, so that a proxy refusing connections is not hammered.
const errorPause = 10 * time.Millisecond

// ack is one acknowledged write: value seq was appended to the writer's
// list; the command was sent at offset sent from the run's start and its
// reply arrived at offset at.
type ack struct {
	seq      int64
	sent, at time.Duration
}

// writerLog is what one writer did. Every attempt, failed or not, uses the
// next integer, so a value identifies one attempt.
type writerLog struct {
	key    string
	acks   []ack // in order of seq
	errors int
	// kinds counts errors by a short class (see errorKind).
	kinds map[string]int
}

// writers run N clients, each RPUSHing increasing integers to its own list
// w:<i> through one connection, as fast as replies come back.
type writers struct {
	start    time.Time
	stopping atomic.Bool
	acked    atomic.Int64
	wg       sync.WaitGroup
	logs     []*writerLog
}

// startWriters starts n writers against addr. Offsets in their logs are
// from start.
func startWriters(ctx context.Context, addr string, n int, start time.Time) *writers {
	w := &writers{start: start}
	for i := range n {
		l := &writerLog{key: "w:" + strconv.Itoa(i), kinds: map[string]int{}}
		w.logs = append(w.logs, l)
		w.wg.Go(func() { w.run(ctx, addr, l) })
	}
	return w
}

func (w *writers) run(ctx context.Context, addr string, l *writerLog) {
	c := redis.NewClient(&redis.Options{
		Addr:            addr,
		Protocol:        2,
		DisableIdentity: true,
		MaxRetries:      -1, // every attempt is the writer's own, and counted
		PoolSize:        1,
		DialTimeout:     2 * time.Second,
		// Longer than Switchyard's hold_timeout (10 s) and HAProxy's
		// marking a paused server down (about 3 s), so that the client
		// never gives up before the endpoint does.
		ReadTimeout:  15 * time.Second,
		WriteTimeout: 15 * time.Second,
	})
	defer c.Close()
	for seq := int64(1); !w.stopping.Load() && ctx.Err() == nil; seq++ {
		sent := time.Since(w.start)
		err := c.RPush(ctx, l.key, seq).Err()
		at := time.Since(w.start)
		if err == nil {
			l.acks = append(l.acks, ack{seq: seq, sent: sent, at: at})
			w.acked.Add(1)
			continue
		}
		if ctx.Err() != nil {
			return
		}
		l.errors++
		l.kinds[errorKind(err)]++
		select {
		case <-ctx.Done():
			return
		case <-time.After(errorPause):
		}
	}
}

// stop asks the writers to finish their current write, waits for them and
// returns their logs. It is idempotent.
func (w *writers) stop() []*writerLog {
	w.stopping.Store(true)
	w.wg.Wait()
	return w.logs
}

// errorKind reduces an error to a short class for the report.
func errorKind(err error) string {
	s := err.Error()
	for _, k := range []string{"READONLY", "TRYAGAIN", "master changed", "stopped answering", "LOADING", "MASTERDOWN"} {
		if strings.Contains(s, k) {
			return k
		}
	}
	switch {
	case strings.Contains(s, "EOF"):
		return "EOF"
	case strings.Contains(s, "connection reset"):
		return "connection reset"
	case strings.Contains(s, "connection refused"):
		return "connection refused"
	case strings.Contains(s, "timeout"):
		return "timeout"
	case strings.Contains(s, "broken pipe"):
		return "broken pipe"
	}
	if len(s) > 60 {
		s = s[:60]
	}
	return s
}
