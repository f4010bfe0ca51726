// Package wait is the one way the harness, the suites and the benchmarks wait for a
// condition: polled at an interval, bounded by a limit and the context, saying what was
// awaited and the last reason it did not hold.
package wait

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Until calls f every interval until it returns nil, returns an error made by Stop, the
// limit passes or ctx ends. The error names what and f's last error.
func Until(ctx context.Context, what string, limit, interval time.Duration, f func() error) error {
	deadline := time.Now().Add(limit)
	for {
		last := f()
		if last == nil {
			return nil
		}
		var st stopped
		if errors.As(last, &st) {
			return fmt.Errorf("waiting for %s: %w", what, st.err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("waiting for %s: not after %v: %w", what, limit, last)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w (last: %v)", what, ctx.Err(), last)
		case <-time.After(interval):
		}
	}
}

// Stop makes Until return err at once: a condition that can no longer come true.
func Stop(err error) error { return stopped{err} }

type stopped struct{ err error }

func (s stopped) Error() string { return s.err.Error() }
func (s stopped) Unwrap() error { return s.err }

// T is what For needs of a *testing.T (the harness does not import testing).
type T interface {
	Helper()
	Fatalf(format string, args ...any)
}

// For polls cond every 10 ms and fails t when it has not held within limit.
func For(t T, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	err := Until(context.Background(), what, limit, 10*time.Millisecond, func() error {
		if cond() {
			return nil
		}
		return errors.New("not yet")
	})
	if err != nil {
		t.Fatalf("timed out after %s %v", limit, err)
	}
}
