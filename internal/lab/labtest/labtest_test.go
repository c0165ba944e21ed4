package labtest_test

import (
	"errors"
	"testing"
	"time"

	"github.com/pnats/switchyard/internal/lab/labtest"
)

func TestEventually(t *testing.T) {
	n := 0
	start := time.Now()
	labtest.Eventually(t, time.Second, func() error {
		n++
		if n < 3 {
			return errors.New("not yet")
		}
		return nil
	})
	if n != 3 {
		t.Fatalf("cond called %d times", n)
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Fatalf("took %v", d)
	}
}
