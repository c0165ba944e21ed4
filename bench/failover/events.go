package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pnats/switchyard/internal/lab"
	"github.com/redis/go-redis/v9"
)

// Sentinel event channels the tool records. Only the Sentinel leading a
// failover publishes the progress events; every Sentinel publishes
// +switch-master once it learns of the new master.
const (
	chSdown          = "+sdown"
	chOdown          = "+odown"
	chTryFailover    = "+try-failover"
	chPromotedSlave  = "+promoted-slave"
	chSwitchMaster   = "+switch-master"
	chConvertToSlave = "+convert-to-slave"
)

var eventChannels = []string{chSdown, chOdown, chTryFailover, chPromotedSlave, chSwitchMaster, chConvertToSlave}

// event is one Sentinel message, timestamped on arrival.
type event struct {
	at       time.Time
	sentinel string
	channel  string
	payload  string
}

// eventLog subscribes to eventChannels on every Sentinel of a group and
// records every message with its arrival time. switched is closed on the
// first +switch-master from any Sentinel.
type eventLog struct {
	switched   chan struct{}
	switchOnce sync.Once

	clients []*redis.Client
	subs    []*redis.PubSub
	closing atomic.Bool
	wg      sync.WaitGroup

	// mu guards events.
	mu     sync.Mutex
	events []event
}

// watchEvents subscribes on every Sentinel and returns once each has
// confirmed every subscription, so that no event after the return can be
// missed.
func watchEvents(ctx context.Context, sentinels []*lab.Sentinel) (*eventLog, error) {
	l := &eventLog{switched: make(chan struct{})}
	for _, s := range sentinels {
		c := redis.NewClient(&redis.Options{Addr: s.Addr, Protocol: 2, DisableIdentity: true})
		l.clients = append(l.clients, c)
		ps := c.Subscribe(ctx, eventChannels...)
		l.subs = append(l.subs, ps)
		if err := confirm(ctx, ps, len(eventChannels)); err != nil {
			return nil, errors.Join(fmt.Errorf("subscribe to Sentinel %s: %w", s.Addr, err), l.close())
		}
		l.wg.Go(func() { l.receive(s.Addr, ps) })
	}
	return l, nil
}

// confirm reads subscription confirmations until n have arrived.
// PubSub.Receive ignores ctx, so a read timeout bounds each wait.
func confirm(ctx context.Context, ps *redis.PubSub, n int) error {
	deadline := time.Now().Add(5 * time.Second)
	for got := 0; got < n; {
		if err := ctx.Err(); err != nil {
			return err
		}
		left := time.Until(deadline)
		if left <= 0 {
			return fmt.Errorf("%d of %d subscriptions confirmed", got, n)
		}
		msg, err := ps.ReceiveTimeout(ctx, left)
		if err != nil {
			return err
		}
		if _, ok := msg.(*redis.Subscription); ok {
			got++
		}
	}
	return nil
}

// receive records messages until the PubSub is closed. go-redis
// reconnects and resubscribes on the next Receive after an error.
func (l *eventLog) receive(sentinel string, ps *redis.PubSub) {
	for {
		msg, err := ps.Receive(context.Background())
		now := time.Now()
		if err != nil {
			if l.closing.Load() {
				return
			}
			time.Sleep(50 * time.Millisecond) // a Sentinel restart; do not spin
			continue
		}
		m, ok := msg.(*redis.Message)
		if !ok {
			continue
		}
		l.mu.Lock()
		l.events = append(l.events, event{at: now, sentinel: sentinel, channel: m.Channel, payload: m.Payload})
		l.mu.Unlock()
		if m.Channel == chSwitchMaster {
			l.switchOnce.Do(func() { close(l.switched) })
		}
	}
}

// waitSwitch waits for the first +switch-master.
func (l *eventLog) waitSwitch(ctx context.Context, timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-l.switched:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return fmt.Errorf("no +switch-master from any Sentinel within %v of the fault", timeout)
	}
}

// first returns the arrival time of the first message on channel.
func (l *eventLog) first(channel string) (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var t time.Time
	for _, e := range l.events {
		if e.channel == channel && (t.IsZero() || e.at.Before(t)) {
			t = e.at
		}
	}
	return t, !t.IsZero()
}

// snapshot returns a copy of the events so far.
func (l *eventLog) snapshot() []event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]event(nil), l.events...)
}

// close ends every subscription and waits for the receivers; it is
// idempotent.
func (l *eventLog) close() error {
	if l.closing.Swap(true) {
		return nil
	}
	var errs []error
	for _, ps := range l.subs {
		errs = append(errs, ps.Close())
	}
	l.wg.Wait()
	for _, c := range l.clients {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}
