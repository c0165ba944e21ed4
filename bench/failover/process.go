package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

const (
	// pollInterval is how often readiness conditions are re-checked.
	pollInterval = 20 * time.Millisecond
)

// poll calls f every pollInterval until it reports done, ctx ends or
// timeout passes; the last error f returned is part of the timeout error.
func poll(ctx context.Context, timeout time.Duration, f func() (done bool, err error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	var last error
	for {
		done, err := f()
		if done {
			return err
		}
		last = err
		select {
		case <-ctx.Done():
			if last == nil {
				last = errors.New("condition not met")
			}
			return fmt.Errorf("gave up after %v: %w (last: %w)", timeout, ctx.Err(), last)
		case <-t.C:
		}
	}
}

// sleep waits for d or until ctx ends. It is for measurement windows (the
// warm-up, the time written after the switch), never for readiness.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
