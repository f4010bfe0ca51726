package sidecar

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/sigil-dna/keysync/internal/statusapi"
	"github.com/sigil-dna/keysync/keyring"
	"github.com/sigil-dna/keysync/reload"
)

// How often the notifier acts: a missing or too young app is looked for again every
// signalRetry, a refused signal every signalErrorRetry; the app's status is polled every
// confirmPoll until it confirms or ConfirmTimeout passes, then every unconfirmedPoll. An
// app that is still not found after missingWarn is warned about, then again after twice
// as long each time, up to maxMissingWarn.
var defaultPace = pace{
	signalRetry:      time.Second,
	signalErrorRetry: 5 * time.Second,
	confirmPoll:      20 * time.Millisecond,
	unconfirmedPoll:  time.Second,
	missingWarn:      30 * time.Second,
}

type pace struct {
	signalRetry, signalErrorRetry, confirmPoll, unconfirmedPoll, missingWarn time.Duration
}

const maxMissingWarn = time.Hour

const appReadTimeout = 2 * time.Second

// target is a keyring the keys file holds, for the app to load.
type target struct {
	ring    *keyring.Keyring
	written time.Time
	// found: the file was there when the sidecar started, not written by it. The app
	// loaded it or will at its start: it is confirmed, and signalled only if the app
	// answers with another generation.
	found bool
}

// signaller finds the app's processes and signals them.
type signaller interface {
	// signal sends the reload signal to every app process and returns their pids. Its
	// errors wrap ErrNoProcess (missing or too young: retried soon) or say why the
	// kernel refused.
	signal() ([]int, error)
	// permitted reports, at start-up, whether the processes found can be signalled.
	permitted() error
	String() string
}

// appReader reads what the app has loaded.
type appReader interface {
	read(ctx context.Context) (reload.Status, error)
	String() string
}

// appHolds: the app's status (the reload library's document, reload.Status, which both
// libraries serve) shows it holding exactly r.
func appHolds(a reload.Status, r *keyring.Keyring) bool {
	return a.Generation == r.Generation && slices.Equal(a.KeyIDs, r.IDs())
}

// AppView is what the sidecar knows of its app, served in /status.
type AppView = statusapi.App

type notifierConfig struct {
	sig            signaller // nil: no signal
	app            appReader // nil: no confirmation
	confirmTimeout time.Duration
	recheck        time.Duration // once confirmed, the app is asked again this often
	log            *slog.Logger
	now            func() time.Time
	metrics        *metrics
	pace           pace
}

// notifier signals the app for each keyring the loop writes and confirms what the app
// loaded, in a goroutine of its own. A newer keyring replaces one still being confirmed.
type notifier struct {
	notifierConfig
	in chan target // one slot: offer replaces a target not taken yet

	mu   sync.Mutex
	view AppView
}

func newNotifier(cfg notifierConfig) *notifier {
	n := &notifier{notifierConfig: cfg, in: make(chan target, 1)}
	if cfg.app != nil {
		n.view.URL = cfg.app.String()
	}
	return n
}

// offer hands the notifier the keyring the file now holds, replacing one it has not
// taken yet. It never blocks; the loop is its only caller.
func (n *notifier) offer(t target) {
	for {
		select {
		case n.in <- t:
			return
		default:
			select {
			case <-n.in:
			default:
			}
		}
	}
}

// App returns what the sidecar knows of its app.
func (n *notifier) App() AppView {
	n.mu.Lock()
	defer n.mu.Unlock()
	v := n.view
	v.KeyIDs = slices.Clone(v.KeyIDs)
	return v
}

// checkPermission reports at start-up, with the fix, if the app cannot be signalled.
func (n *notifier) checkPermission() {
	err := n.sig.permitted()
	switch {
	case err == nil:
	case errors.Is(err, ErrNoProcess):
		n.log.Info("app not running yet, will look again before each signal", "target", n.sig.String())
	default:
		n.log.Error("cannot signal the app: reloads then rely on the app's own file watch", "target", n.sig.String(), "error", err)
		n.setSignalError(err.Error())
	}
}

// work is where the notifier stands with one target.
type work struct {
	t             target
	check         bool // the app's status is read (--confirm-url)
	needSignal    bool
	needConfirm   bool
	signalled     time.Time // when the signal was sent
	nextSignal    time.Time
	deadline      time.Time // of the confirmation
	signalLogged  bool      // a refused signal was reported for this generation
	missingSince  time.Time // the app to signal was first not found
	missingWarn   time.Duration
	timeoutLogged bool
	nextCheck     time.Time
}

func (n *notifier) run(ctx context.Context) {
	var w *work
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		wait := time.Hour
		if w != nil {
			wait = max(w.next(n.now()), 0)
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case t := <-n.in:
			now := n.now()
			w = &work{t: t, check: n.app != nil, needSignal: n.sig != nil && !t.found, needConfirm: n.app != nil, deadline: now.Add(n.confirmTimeout)}
			n.mu.Lock()
			n.view.Confirmed = false // until the app shows it holds the new file
			n.mu.Unlock()
		case <-timer.C:
		}
		if w != nil {
			n.step(ctx, w)
		}
	}
}

// next is how long until w needs the notifier again; an hour when nothing is due (no
// signal owed, no app to check: a zero nextCheck would wake the loop at once, forever).
func (w *work) next(now time.Time) time.Duration {
	var at []time.Time
	if w.needSignal {
		at = append(at, w.nextSignal)
	}
	if w.check {
		at = append(at, w.nextCheck)
	}
	if len(at) == 0 {
		return time.Hour
	}
	return slices.MinFunc(at, time.Time.Compare).Sub(now)
}

// step signals and checks the app once, as far as w is due.
func (n *notifier) step(ctx context.Context, w *work) {
	now := n.now()
	r := w.t.ring
	if w.needSignal && !now.Before(w.nextSignal) {
		n.trySignal(w, now)
	}
	if n.app == nil || now.Before(w.nextCheck) {
		return
	}
	actx, cancel := context.WithTimeout(ctx, appReadTimeout)
	st, err := n.app.read(actx)
	cancel()
	now = n.now()
	n.record(st, err, r, now)
	switch {
	case err == nil && appHolds(st, r):
		if w.needConfirm {
			w.needConfirm, w.needSignal = false, false // whatever reloaded it (signal, file watch, start-up)
			n.confirmed(w, now)
		}
	case err == nil && !w.needConfirm:
		// It held the keys and no longer does (restarted without loading them?), or it
		// never did: confirm again, and signal again.
		n.log.Warn("the app does not hold the keys file's generation, signalling it again", "generation", r.Generation,
			"app_generation", st.Generation)
		w.needConfirm, w.deadline, w.timeoutLogged = true, now.Add(n.confirmTimeout), false
		w.needSignal, w.nextSignal = n.sig != nil, now
	case err == nil && w.t.found && n.sig != nil && w.signalled.IsZero() && !w.needSignal:
		w.needSignal, w.nextSignal = true, now // found at start-up, but the app holds something else
	}
	switch {
	case !w.needConfirm:
		w.nextCheck = now.Add(n.recheck)
	case now.Before(w.deadline):
		w.nextCheck = now.Add(n.pace.confirmPoll)
	default:
		if !w.timeoutLogged {
			w.timeoutLogged = true
			n.metrics.unconfirmed.Inc()
			reason := "app reports generation " + strconv.FormatInt(st.Generation, 10)
			if err != nil {
				reason = err.Error()
			}
			n.log.Warn("reload not confirmed", "event", "reload_unconfirmed", "generation", r.Generation,
				"app", n.app.String(), "reason", reason, "waited", n.confirmTimeout.String())
		}
		w.nextCheck = now.Add(n.pace.unconfirmedPoll)
	}
}

func (n *notifier) trySignal(w *work, now time.Time) {
	r := w.t.ring
	pids, err := n.sig.signal()
	switch {
	case err == nil:
		w.needSignal, w.signalled = false, now
		n.setSignalError("")
		n.metrics.signals.WithLabelValues(signalSent).Inc()
		n.log.Info("app signalled", "event", "app_signalled", "pids", pids, "generation", r.Generation)
	case errors.Is(err, ErrNoProcess):
		n.metrics.signals.WithLabelValues(signalNotFound).Inc()
		n.log.Debug("app not signalled yet, will retry", "target", n.sig.String(), "reason", err)
		w.nextSignal = now.Add(n.pace.signalRetry)
		if w.missingSince.IsZero() {
			w.missingSince, w.missingWarn = now, n.pace.missingWarn
		}
		if missing := now.Sub(w.missingSince); w.missingWarn > 0 && missing >= w.missingWarn {
			// A --signal-process that names no process of the pod (a typo, another name in
			// the image, no shareProcessNamespace) was silent: say so, again and again.
			msg := fmt.Sprintf("%s not found for %s: is it the app's process name (or --pid-file its file), and does the pod set shareProcessNamespace: true?",
				n.sig.String(), missing.Round(time.Second))
			n.setSignalError(msg)
			n.log.Warn("no app process to signal", "event", "signal_target_missing", "target", n.sig.String(),
				"missing_seconds", int(missing.Seconds()), "generation", r.Generation, "hint", msg)
			w.missingWarn = min(2*w.missingWarn, maxMissingWarn)
		}
	default:
		n.metrics.signals.WithLabelValues(signalFailed).Inc()
		w.nextSignal = now.Add(n.pace.signalErrorRetry)
		n.setSignalError(err.Error())
		if !w.signalLogged {
			w.signalLogged = true
			n.log.Error("cannot signal the app, generation waits for the app's own file watch; will retry", "event", "signal_failed",
				"target", n.sig.String(), "generation", r.Generation, "error", err)
		}
	}
}

func (n *notifier) confirmed(w *work, now time.Time) {
	r := w.t.ring
	fromWrite := now.Sub(w.t.written)
	n.mu.Lock()
	n.view.Confirmed, n.view.ConfirmedAt, n.view.ReloadSeconds = true, now, fromWrite.Seconds()
	n.mu.Unlock()
	n.metrics.setApp(n.App())
	if w.t.found {
		n.log.Info("app holds the keys file", "event", "reload_confirmed", "generation", r.Generation, "key_ids", r.IDs())
		return
	}
	attrs := []any{"event", "reload_confirmed", "generation", r.Generation, "key_ids", r.IDs(), "write_to_confirm_ms", fromWrite.Milliseconds()}
	n.metrics.confirmations.WithLabelValues(confirmedFromWrite).Observe(fromWrite.Seconds())
	if !w.signalled.IsZero() {
		fromSignal := now.Sub(w.signalled)
		n.metrics.confirmations.WithLabelValues(confirmedFromSignal).Observe(fromSignal.Seconds())
		attrs = append(attrs, "signal_to_confirm_ms", fromSignal.Milliseconds())
	}
	n.log.Info("reload confirmed", attrs...)
}

// record keeps what the app answered.
func (n *notifier) record(st reload.Status, err error, r *keyring.Keyring, now time.Time) {
	n.mu.Lock()
	n.view.CheckedAt = now
	if err != nil {
		n.view.Error = err.Error()
		n.view.Confirmed = false
	} else {
		n.view.Error = ""
		n.view.Generation, n.view.KeyIDs = st.Generation, st.KeyIDs
		n.view.Confirmed = appHolds(st, r)
	}
	v := n.view
	n.mu.Unlock()
	n.metrics.setApp(v)
}

func (n *notifier) setSignalError(msg string) {
	n.mu.Lock()
	n.view.SignalError = msg
	n.mu.Unlock()
}
