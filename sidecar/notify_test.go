package sidecar

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sigil-dna/keysync/reload"

	"github.com/sigil-dna/keysync/keyring"
	"github.com/sigil-dna/keysync/store/storetest"
)

// fakeSignaller stands in for the app's processes: a fake, because "refused", "missing"
// and "too young" must happen on cue. Each call pops the next scripted result; when the
// script is done, every call succeeds. onSignal runs after each successful signal.
type fakeSignaller struct {
	mu       sync.Mutex
	script   []error
	calls    int
	sent     int
	onSignal func()
}

func (f *fakeSignaller) signal() ([]int, error) {
	f.mu.Lock()
	f.calls++
	var err error
	if len(f.script) > 0 {
		err, f.script = f.script[0], f.script[1:]
	}
	if err == nil {
		f.sent++
	}
	on := f.onSignal
	f.mu.Unlock()
	if err == nil && on != nil {
		on()
	}
	return []int{42}, err
}

func (f *fakeSignaller) permitted() error { return nil }
func (f *fakeSignaller) String() string   { return "fake app process" }

func (f *fakeSignaller) counts() (calls, sent int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls, f.sent
}

// fakeApp stands in for the app's status endpoint. hold, when set, blocks each read
// until a value is sent on it: a slow app.
type fakeApp struct {
	mu    sync.Mutex
	st    reload.Status
	err   error
	reads int
	hold  chan struct{}
}

func (f *fakeApp) read(ctx context.Context) (reload.Status, error) {
	f.mu.Lock()
	f.reads++
	hold := f.hold
	f.mu.Unlock()
	if hold != nil {
		select {
		case <-hold:
		case <-ctx.Done():
			return reload.Status{}, ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.st, f.err
}

func (f *fakeApp) String() string { return "fake app status" }

func (f *fakeApp) load(r *keyring.Keyring) {
	f.mu.Lock()
	f.st = reload.Status{Generation: r.Generation, KeyIDs: r.IDs(), LoadedAt: time.Now()}
	f.mu.Unlock()
}

func (f *fakeApp) setHold(c chan struct{}) {
	f.mu.Lock()
	f.hold = c
	f.mu.Unlock()
}

// logs is a slog handler's output, safe to read while written.
type logs struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logs) Write(p []byte) (int, error) { l.mu.Lock(); defer l.mu.Unlock(); return l.b.Write(p) }
func (l *logs) String() string              { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }
func (l *logs) count(s string) int          { return strings.Count(l.String(), s) }

var testPace = pace{signalRetry: 5 * time.Millisecond, signalErrorRetry: 5 * time.Millisecond, confirmPoll: time.Millisecond, unconfirmedPoll: 5 * time.Millisecond, missingWarn: 20 * time.Millisecond}

func startNotifier(t *testing.T, sig signaller, app appReader, recheck time.Duration) (*notifier, *logs) {
	t.Helper()
	out := &logs{}
	n := newNotifier(notifierConfig{sig: sig, app: app, confirmTimeout: 200 * time.Millisecond, recheck: recheck,
		log: slog.New(slog.NewJSONHandler(out, nil)), now: time.Now, metrics: newMetrics(func() float64 { return 0 }), pace: testPace})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); n.run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return n, out
}

func generations(t *testing.T, n int) []*keyring.Keyring {
	t.Helper()
	var out []*keyring.Keyring
	var r *keyring.Keyring
	for i := range n {
		var err error
		r, err = keyring.Stage(r, time.Now().Add(time.Duration(i)*time.Second), storetest.Secret(fmt.Sprint("notify ", i)), keyring.Options{})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

func TestNotifier(t *testing.T) {
	rings := generations(t, 3)

	t.Run("a missing app is signalled once it is there, then the reload is confirmed", func(t *testing.T) {
		app := &fakeApp{}
		sig := &fakeSignaller{script: []error{ErrNoProcess, fmt.Errorf("pid 7: %w", errTooYoung)}}
		sig.onSignal = func() { app.load(rings[0]) }
		n, out := startNotifier(t, sig, app, time.Hour)
		n.offer(target{ring: rings[0], written: time.Now()})
		storetest.WaitFor(t, "the confirmation", func() bool { return n.App().Confirmed })
		// The view says confirmed a moment before the log line is written.
		storetest.WaitFor(t, "the confirmation's log line", func() bool { return out.count(`"event":"reload_confirmed"`) > 0 })
		if calls, sent := sig.counts(); calls != 3 || sent != 1 {
			t.Fatalf("signal calls %d, sent %d; want 3 calls (missing, too young, sent) and 1 signal", calls, sent)
		}
		v := n.App()
		if v.Generation != 1 || v.ConfirmedAt.IsZero() || v.ReloadSeconds <= 0 || v.Error != "" {
			t.Fatalf("view %+v", v)
		}
		if got := testutil.ToFloat64(n.metrics.signals.WithLabelValues("not_found")); got != 2 {
			t.Errorf("not_found signals %v", got)
		}
		if out.count(`"event":"reload_confirmed"`) != 1 || out.count(`"signal_to_confirm_ms"`) != 1 {
			t.Errorf("log:\n%s", out.String())
		}
	})

	// Issue 33: a --signal-process that names no process of the pod logged one line at
	// start and nothing after; status showed no note.
	t.Run("an app that never appears is warned about, again with back-off, and shown", func(t *testing.T) {
		app := &fakeApp{}
		var script []error // never found, for longer than the test waits
		for range 100000 {
			script = append(script, fmt.Errorf("process %q: %w", "nodee", ErrNoProcess))
		}
		sig := &fakeSignaller{script: script}
		n, out := startNotifier(t, sig, app, time.Hour)
		n.offer(target{ring: rings[0], written: time.Now()})
		storetest.WaitFor(t, "sixty signal attempts", func() bool { c, _ := sig.counts(); return c >= 60 })
		warnings := out.count(`"event":"signal_target_missing"`)
		if warnings < 2 || warnings > 12 || !strings.Contains(n.App().SignalError, "not found for") || !strings.Contains(n.App().SignalError, "shareProcessNamespace") {
			t.Fatalf("%d warnings for 60 attempts over about 300 ms (want a few, doubling apart: not one per attempt); view %+v\n%s", warnings, n.App(), out.String())
		}
	})

	t.Run("a refused signal is reported once and the app's own file watch confirms", func(t *testing.T) {
		app := &fakeApp{}
		refused := fmt.Errorf("pid 7: %w", ErrNotPermitted)
		sig := &fakeSignaller{script: []error{refused, refused, refused, refused, refused, refused, refused, refused}}
		n, out := startNotifier(t, sig, app, time.Hour)
		n.offer(target{ring: rings[0], written: time.Now()})
		storetest.WaitFor(t, "a few refused signals", func() bool { c, _ := sig.counts(); return c >= 3 })
		if n.App().Confirmed || !strings.Contains(n.App().SignalError, "CAP_KILL") {
			t.Fatalf("view %+v", n.App())
		}
		app.load(rings[0]) // the app's fsnotify watch reloaded it
		storetest.WaitFor(t, "the confirmation", func() bool { return n.App().Confirmed })
		calls, sent := sig.counts()
		time.Sleep(30 * time.Millisecond)
		if c, _ := sig.counts(); c != calls || sent != 0 {
			t.Fatalf("signals went on after the app confirmed: %d then %d calls, %d sent", calls, c, sent)
		}
		if out.count(`"event":"signal_failed"`) != 1 || out.count(`"event":"reload_confirmed"`) != 1 {
			t.Fatalf("want one signal_failed and one reload_confirmed:\n%s", out.String())
		}
	})

	t.Run("a change during a slow confirmation replaces it", func(t *testing.T) {
		app := &fakeApp{}
		hold := make(chan struct{})
		app.setHold(hold)
		sig := &fakeSignaller{}
		n, _ := startNotifier(t, sig, app, time.Hour)
		n.offer(target{ring: rings[0], written: time.Now()})
		storetest.WaitFor(t, "the first, slow, status read", func() bool { app.mu.Lock(); defer app.mu.Unlock(); return app.reads == 1 })
		// Two more generations arrive while the app is slow: only the newest counts.
		n.offer(target{ring: rings[1], written: time.Now()})
		n.offer(target{ring: rings[2], written: time.Now()})
		app.setHold(nil)
		app.load(rings[2])
		close(hold)
		storetest.WaitFor(t, "generation 3 confirmed", func() bool { v := n.App(); return v.Confirmed && v.Generation == 3 })
		if _, sent := sig.counts(); sent != 2 {
			t.Fatalf("%d signals, want 2 (generations 1 and 3; 2 was replaced before it was taken)", sent)
		}
	})

	t.Run("a restarted app that lost the keys is signalled again", func(t *testing.T) {
		app := &fakeApp{}
		sig := &fakeSignaller{}
		sig.onSignal = func() { app.load(rings[0]) }
		n, out := startNotifier(t, sig, app, 5*time.Millisecond)
		n.offer(target{ring: rings[0], written: time.Now()})
		storetest.WaitFor(t, "the confirmation", func() bool { return n.App().Confirmed })
		app.mu.Lock()
		app.st = reload.Status{} // restarted, and answers before loading anything
		app.mu.Unlock()
		storetest.WaitFor(t, "the second signal", func() bool { _, sent := sig.counts(); return sent == 2 })
		storetest.WaitFor(t, "the second confirmation", func() bool { return n.App().Confirmed })
		if out.count("does not hold the keys file") == 0 {
			t.Fatalf("log:\n%s", out.String())
		}
	})

	t.Run("a file found at start-up is confirmed without a signal", func(t *testing.T) {
		app := &fakeApp{}
		app.load(rings[1])
		sig := &fakeSignaller{}
		n, _ := startNotifier(t, sig, app, time.Hour)
		n.offer(target{ring: rings[1], written: time.Now(), found: true})
		storetest.WaitFor(t, "the confirmation", func() bool { return n.App().Confirmed })
		if c, _ := sig.counts(); c != 0 {
			t.Fatalf("%d signals for a file the app already holds", c)
		}
	})

	t.Run("an app that never confirms is reported after the timeout", func(t *testing.T) {
		app := &fakeApp{err: errors.New("connection refused")}
		n, out := startNotifier(t, nil, app, time.Hour)
		n.offer(target{ring: rings[0], written: time.Now()})
		storetest.WaitFor(t, "the timeout", func() bool { return out.count(`"event":"reload_unconfirmed"`) == 1 })
		if got := testutil.ToFloat64(n.metrics.unconfirmed); got != 1 || n.App().Confirmed || n.App().Error != "connection refused" {
			t.Fatalf("unconfirmed %v, view %+v", got, n.App())
		}
	})
}

// TestANotifierWithNothingToCheckSleeps: a sidecar without --confirm-url (and with or
// without a process to signal) once spun a CPU at 100% after the first keys file: the
// loop woke at once, forever, for a confirmation it was never going to make. Each wake-up
// reads the clock, so the clock's readings count the wake-ups.
func TestANotifierWithNothingToCheckSleeps(t *testing.T) {
	for name, sig := range map[string]signaller{"no process to signal": nil, "a process to signal": &fakeSignaller{}} {
		t.Run(name, func(t *testing.T) {
			var reads atomic.Int64
			n := newNotifier(notifierConfig{sig: sig, confirmTimeout: 200 * time.Millisecond, recheck: time.Minute,
				log: slog.New(slog.NewJSONHandler(&logs{}, nil)), now: func() time.Time { reads.Add(1); return time.Now() },
				metrics: newMetrics(func() float64 { return 0 }), pace: testPace})
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { defer close(done); n.run(ctx) }()
			n.offer(target{ring: generations(t, 1)[0]})
			time.Sleep(300 * time.Millisecond)
			cancel()
			<-done
			// One target: a reading when it arrives, one in the step, one more per signal.
			t.Logf("clock readings: %d", reads.Load())
			if got := reads.Load(); got > 10 {
				t.Fatalf("the notifier woke up %d times with nothing to do", got)
			}
			if f, ok := sig.(*fakeSignaller); ok {
				if _, sent := f.counts(); sent != 1 {
					t.Fatalf("%d signals sent, want 1", sent)
				}
			}
		})
	}
}
