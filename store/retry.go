package store

import (
	"context"
	"math/rand/v2"
	"time"
)

// One retry policy for every backend's calls, chosen by the caller: a read marked
// CallerRetries (the sidecar's poll, which backs off with jitter itself) is one attempt
// per request; any other call (a rotation's reads and writes, status) is retried up to
// DefaultAttempts times with full-jitter backoff when the backend says the request was
// not served (throttled, unavailable, a transport error). Each backend supplies only the
// classification: AWS through its SDK's standard retryer with Attempts and Backoff, Vault
// and Google Secret Manager through Retry, with their client libraries' own retries off.
const (
	DefaultAttempts   = 6
	DefaultBaseDelay  = 200 * time.Millisecond
	DefaultMaxBackoff = 20 * time.Second
)

// Attempts is how many times a backend makes one call with ctx: 1 when its caller
// retries with a backoff of its own (CallerRetries), DefaultAttempts otherwise.
func Attempts(ctx context.Context) int {
	if RetriedByCaller(ctx) {
		return 1
	}
	return DefaultAttempts
}

// Backoff is full-jitter exponential backoff: attempt n waits a uniformly random time in
// [0, min(Max, Base·2^(n-1))), so that many sidecars throttled together do not retry in
// step. Zero fields take the defaults.
type Backoff struct{ Base, Max time.Duration }

// Delay is the delay of attempt n for a random draw r in [0, 1).
func (b Backoff) Delay(attempt int, r float64) time.Duration {
	base, ceil := b.Base, b.Max
	if base <= 0 {
		base = DefaultBaseDelay
	}
	if ceil <= 0 {
		ceil = DefaultMaxBackoff
	}
	limit := ceil
	attempt = max(attempt, 1)
	if attempt < 31 && base<<(attempt-1) < ceil {
		limit = base << (attempt - 1)
	}
	return time.Duration(r * float64(limit))
}

// Retry runs call under the policy of ctx: again, after Backoff's delay, while
// retryable(err) holds, Attempts(ctx) times at most, never past ctx's end. It returns
// the last error.
func Retry(ctx context.Context, b Backoff, retryable func(error) bool, call func() error) error {
	n := Attempts(ctx)
	var err error
	for attempt := 1; ; attempt++ {
		if err = call(); err == nil || attempt >= n || !retryable(err) || ctx.Err() != nil {
			return err
		}
		t := time.NewTimer(b.Delay(attempt, rand.Float64()))
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
}
