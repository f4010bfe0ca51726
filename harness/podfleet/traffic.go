package podfleet

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Traffic makes every app send signed events to the other apps, which verify them.
type Traffic struct {
	Fleet                                    *Fleet
	Signed, Verified, Failed, DeliveryErrors atomic.Int64

	firstFailure atomic.Pointer[string]
	mu           sync.Mutex
	failuresAt   []time.Time
	perPod       map[int]*PodCounts // by receiving pod
}

// PodCounts are the events one pod received: verified, and refused.
type PodCounts struct{ Verified, Failed int64 }

// PerPod returns the events each pod received so far, by pod index.
func (t *Traffic) PerPod() map[int]PodCounts {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := map[int]PodCounts{}
	for i, c := range t.perPod {
		out[i] = *c
	}
	return out
}

func (t *Traffic) count(dst int, verified bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.perPod == nil {
		t.perPod = map[int]*PodCounts{}
	}
	c := t.perPod[dst]
	if c == nil {
		c = &PodCounts{}
		t.perPod[dst] = c
	}
	if verified {
		c.Verified++
	} else {
		c.Failed++
	}
}

// Run sends rate events per second in total, from 4 senders, until ctx ends.
func (t *Traffic) Run(ctx context.Context, rate int) {
	const senders = 4
	interval := time.Duration(float64(time.Second) * senders / float64(max(rate, 1)))
	var wg sync.WaitGroup
	for s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(interval)
			defer tick.Stop()
			seq := 0
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				n := len(t.Fleet.Pods)
				src := rand.IntN(n)
				dst := (src + 1 + rand.IntN(n-1)) % n
				seq++
				res, err := t.Fleet.Pods[src].Send(ctx, t.Fleet.Pods[dst], fmt.Sprintf(`{"type":"spiral","from":%d,"sender":%d,"seq":%d}`, src, s, seq))
				switch {
				case ctx.Err() != nil:
					return
				case err != nil:
					t.DeliveryErrors.Add(1)
				case res.Verified:
					t.Signed.Add(1)
					t.Verified.Add(1)
					t.count(dst, true)
				case res.Signed && strings.HasPrefix(res.Error, "rejected"):
					t.Signed.Add(1)
					t.Failed.Add(1)
					t.count(dst, false)
					msg := fmt.Sprintf("pod %d -> pod %d: %s", src, dst, res.Error)
					t.firstFailure.CompareAndSwap(nil, &msg)
					t.mu.Lock()
					t.failuresAt = append(t.failuresAt, time.Now())
					t.mu.Unlock()
				default:
					if res.Signed {
						t.Signed.Add(1)
					}
					t.DeliveryErrors.Add(1)
				}
			}
		}()
	}
	wg.Wait()
}

// FirstFailure describes the first failed verification, or "".
func (t *Traffic) FirstFailure() string {
	if f := t.firstFailure.Load(); f != nil {
		return *f
	}
	return ""
}

// FailureTimes are the instants of the failed verifications.
func (t *Traffic) FailureTimes() []time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]time.Time(nil), t.failuresAt...)
}
