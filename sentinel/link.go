package sentinel

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// link is the Watcher's connection to one Sentinel address: a poller and
// an event listener, both owned by run.
type link struct {
	addr    string
	cfg     Config
	client  *redis.SentinelClient
	pollNow chan struct{} // capacity 1: poll at once
	report  func(pollResult, error)
	onEvent func(event)
	log     *zap.Logger
}

func newLink(addr string, cfg Config, report func(pollResult, error), onEvent func(event)) *link {
	return &link{
		addr: addr,
		cfg:  cfg,
		client: redis.NewSentinelClient(&redis.Options{
			Addr:                  addr,
			Username:              cfg.Username,
			Password:              cfg.Password,
			Protocol:              2,
			DialTimeout:           cfg.DialTimeout,
			ReadTimeout:           cfg.DialTimeout,
			WriteTimeout:          cfg.DialTimeout,
			ContextTimeoutEnabled: true,
			// One connection for the polls, so that the queries of one
			// poll reach the same Sentinel behind a load-balanced address.
			PoolSize:     1,
			MaxIdleConns: 1,
			// No retries: the next poll comes within PollInterval, and a
			// retry would only stretch how long a dead Sentinel looks alive.
			MaxRetries:      -1,
			DisableIdentity: true,
			Dialer:          dialer(cfg.DialTimeout, cfg.TLS),
		}),
		pollNow: make(chan struct{}, 1),
		report:  report,
		onEvent: onEvent,
		log:     cfg.Logger.With(zap.String("sentinel", addr)),
	}
}

// run polls and listens until ctx ends, then closes the client. It returns
// after both of its goroutines have.
func (l *link) run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Go(func() { l.pollLoop(ctx) })
	wg.Go(func() { l.listenLoop(ctx) })
	wg.Wait()
	_ = l.client.Close()
}

// poke asks for a poll now; it never blocks.
func (l *link) poke() {
	select {
	case l.pollNow <- struct{}{}:
	default:
	}
}

// listenLoop keeps a subscription to the event channels, reconnecting with
// a jittered exponential backoff.
func (l *link) listenLoop(ctx context.Context) {
	bo := backoff{min: 50 * time.Millisecond, max: 2 * time.Second}
	refused := false
	for {
		subscribed, err := l.listen(ctx)
		if ctx.Err() != nil {
			return
		}
		if subscribed {
			bo.reset()
			if refused {
				l.log.Info("sentinel: event subscription accepted again")
			}
			refused = false
		}
		switch {
		case !subscribed && isRedisError(err):
			// An ACL without +subscribe, say: not a passing fault, and
			// the failovers this Sentinel leads are then seen only by
			// polling.
			if !refused {
				l.log.Warn("sentinel: event subscription refused; failovers are seen only by polling, up to poll_interval late", zap.Error(err))
			}
			refused = true
		default:
			l.log.Debug("sentinel: event subscription lost", zap.Error(err))
		}
		if !bo.wait(ctx) {
			return
		}
	}
}

// listen subscribes and passes events on until the connection fails. It
// reports whether the subscription was established.
func (l *link) listen(ctx context.Context) (bool, error) {
	ps := l.client.Subscribe(ctx)
	defer ps.Close()
	// go-redis does not watch ctx while it waits for a message; closing
	// the PubSub is what ends a blocked Receive.
	stop := context.AfterFunc(ctx, func() { _ = ps.Close() })
	defer stop()

	if err := ps.Subscribe(ctx, eventChannels...); err != nil {
		return false, err
	}
	// The Sentinel is silent between events, so a connection that died
	// without a reset (a paused Sentinel, a dropped route) only shows up
	// by asking: after idle without traffic send a PING, and give up when
	// the next idle passes without an answer.
	idle := l.cfg.reachWindow()
	subscribed, pinged := false, false
	for {
		msg, err := ps.ReceiveTimeout(ctx, idle)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && !pinged {
				if err := ps.Ping(ctx); err != nil {
					return subscribed, err
				}
				pinged = true
				continue
			}
			return subscribed, err
		}
		pinged = false
		switch m := msg.(type) {
		case *redis.Subscription:
			if !subscribed && m.Count == len(eventChannels) {
				subscribed = true
				// Events may have been missed while disconnected.
				l.poke()
			}
		case *redis.Message:
			ev, ok := parseEvent(m.Channel, m.Payload)
			if !ok {
				l.log.Debug("sentinel: unparsable event", zap.String("channel", m.Channel), zap.String("payload", m.Payload))
				continue
			}
			if ev.Name != l.cfg.MasterName {
				continue
			}
			ev.At = time.Now()
			ev.From = l.addr
			l.onEvent(ev)
		}
	}
}

// backoff is a jittered exponential backoff.
type backoff struct {
	min, max time.Duration
	cur      time.Duration
}

func (b *backoff) reset() { b.cur = 0 }

// wait sleeps for the next backoff step; it reports false if ctx ended.
func (b *backoff) wait(ctx context.Context) bool {
	if b.cur == 0 {
		b.cur = b.min
	} else {
		b.cur = min(2*b.cur, b.max)
	}
	// Full jitter in [cur/2, cur): Sentinels restarted together are not
	// hit by every Watcher in the same instant.
	d := b.cur/2 + rand.N(b.cur/2+1)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
