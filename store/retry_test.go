package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sigil-dna/keysync/store"
)

var errBusy = errors.New("busy")

func TestRetryFollowsTheCallersPolicy(t *testing.T) {
	fast := store.Backoff{Base: time.Microsecond, Max: time.Millisecond}
	busy := func(err error) bool { return errors.Is(err, errBusy) }
	count := func(ctx context.Context, fail int, err error) (int, error) {
		n := 0
		got := store.Retry(ctx, fast, busy, func() error {
			n++
			if n <= fail {
				return err
			}
			return nil
		})
		return n, got
	}
	if n, err := count(context.Background(), 2, errBusy); err != nil || n != 3 {
		t.Errorf("two busy answers: %d calls, %v; want 3 calls and success", n, err)
	}
	if n, err := count(context.Background(), 100, errBusy); !errors.Is(err, errBusy) || n != store.DefaultAttempts {
		t.Errorf("busy for good: %d calls, %v; want %d and the last error", n, err, store.DefaultAttempts)
	}
	if n, err := count(store.CallerRetries(context.Background()), 100, errBusy); !errors.Is(err, errBusy) || n != 1 {
		t.Errorf("a caller that retries itself: %d calls, %v; want one", n, err)
	}
	final := errors.New("403 forbidden")
	if n, err := count(context.Background(), 100, final); err != final || n != 1 {
		t.Errorf("a final answer: %d calls, %v; want one", n, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if n, _ := count(ctx, 100, errBusy); n != 1 {
		t.Errorf("an ended context: %d calls, want one", n)
	}
}

func TestBackoffIsFullJitterUpToItsCap(t *testing.T) {
	b := store.Backoff{Base: 100 * time.Millisecond, Max: time.Second}
	for attempt, want := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 4: 800 * time.Millisecond, 5: time.Second, 40: time.Second} {
		if got := b.Delay(attempt, 0.999999); got > want || got < want*99/100 {
			t.Errorf("attempt %d: top delay %v, want just under %v", attempt, got, want)
		}
		if got := b.Delay(attempt, 0); got != 0 {
			t.Errorf("attempt %d: bottom delay %v, want 0", attempt, got)
		}
	}
}
