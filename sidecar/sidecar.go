// Package sidecar keeps an app's keys file in step with the store: it reads the store
// (watching where the store can, polling with jitter otherwise), validates and prunes the
// keyring, writes the keys file atomically into a shared in-memory volume, signals the
// app through the shared process namespace, confirms the reload, and serves health,
// readiness and metrics. A store that is down or returns something invalid never blanks
// the file: the last good keys stay and staleness is reported.
package sidecar

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/sigil-dna/keysync/keyring"
	"github.com/sigil-dna/keysync/store"
)

// Defaults of the sidecar's flags.
const (
	DefaultInterval       = 10 * time.Second
	DefaultJitter         = 0.2
	DefaultFileName       = "keys.json"
	DefaultMode           = 0o440
	DefaultConfirmTimeout = 10 * time.Second
	DefaultSignalMinAge   = 2 * time.Second
	DefaultBackoffCap     = time.Minute
	backoffBase           = time.Second
	signalRetry           = time.Second
	readTimeout           = 15 * time.Second
)

// Config is everything the sidecar needs; cmd/keysync fills it from flags.
type Config struct {
	Store       store.Store
	OutDir      string
	FileName    string
	Mode        os.FileMode
	Interval    time.Duration
	Jitter      float64 // fraction of Interval, ±
	ProcessName string
	PidFile     string
	Signal      syscall.Signal
	// SignalMinAge: a process younger than this is not signalled yet (retried), so a
	// SIGHUP cannot reach an app before it installed its handler and end it.
	SignalMinAge   time.Duration
	ConfirmURL     string
	ConfirmTimeout time.Duration
	MaxStale       time.Duration      // readiness fails after this long without a good read; 0: never
	Plain          store.PlainOptions // the plain-value schedule, for stores that keep no history
	BackoffCap     time.Duration
	Log            *slog.Logger
	Now            func() time.Time
}

// Sidecar runs the loop. Create it with New; Run it once.
type Sidecar struct {
	cfg     Config
	file    keysFile
	finder  finder
	metrics *metrics
	client  *http.Client

	mu          sync.Mutex
	ready       bool
	lastSuccess time.Time
	current     *keyring.Keyring // what the keys file holds
	written     time.Time        // when it was written
	pending     bool             // the app has not been signalled for the current file yet
	permLogged  bool
}

// New checks cfg and prepares a sidecar.
func New(cfg Config) (*Sidecar, error) {
	if cfg.Store == nil {
		return nil, errors.New("sidecar: no store")
	}
	if cfg.OutDir == "" {
		return nil, errors.New("sidecar: --out is required")
	}
	if cfg.ProcessName != "" && cfg.PidFile != "" {
		return nil, errors.New("sidecar: use one of --signal-process and --pid-file")
	}
	if cfg.FileName == "" {
		cfg.FileName = DefaultFileName
	}
	if filepath.Base(cfg.FileName) != cfg.FileName {
		return nil, fmt.Errorf("sidecar: --file %q must be a plain file name", cfg.FileName)
	}
	if cfg.Mode == 0 {
		cfg.Mode = DefaultMode
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Jitter < 0 || cfg.Jitter >= 1 {
		return nil, fmt.Errorf("sidecar: jitter %v must be in [0, 1)", cfg.Jitter)
	}
	if cfg.Signal == 0 {
		cfg.Signal = syscall.SIGHUP
	}
	if cfg.SignalMinAge < 0 {
		cfg.SignalMinAge = 0
	}
	if cfg.ConfirmTimeout <= 0 {
		cfg.ConfirmTimeout = DefaultConfirmTimeout
	}
	if cfg.BackoffCap <= 0 {
		cfg.BackoffCap = DefaultBackoffCap
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Sidecar{
		cfg:    cfg,
		file:   keysFile{path: filepath.Join(cfg.OutDir, cfg.FileName), mode: cfg.Mode},
		finder: finder{name: cfg.ProcessName, pidFile: cfg.PidFile, self: os.Getpid()},
		client: &http.Client{Timeout: 2 * time.Second},
	}
	s.metrics = newMetrics(s.staleSeconds)
	return s, nil
}

// Once writes the keys file once and returns: the init-container mode.
func (s *Sidecar) Once(ctx context.Context) error {
	if err := s.start(); err != nil {
		return err
	}
	return s.sync(ctx)
}

// Run keeps the keys file in step until ctx ends. Store errors are retried with full
// jitter backoff; only a local problem (the output directory) ends it with an error.
func (s *Sidecar) Run(ctx context.Context) error {
	if err := s.start(); err != nil {
		return err
	}
	var changes <-chan struct{}
	if w, ok := s.cfg.Store.(store.Watcher); ok {
		ch, err := w.Watch(ctx)
		if err != nil {
			s.cfg.Log.Warn("store watch unavailable, polling only", "store", s.cfg.Store.String(), "error", err)
		} else {
			changes = ch
		}
	}
	failures := 0
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case _, ok := <-changes:
			if !ok {
				changes = nil
				continue
			}
			s.cfg.Log.Debug("store change seen", "store", s.cfg.Store.String())
		case <-timer.C:
		}
		if err := s.sync(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			failures++
		} else {
			failures = 0
		}
		timer.Reset(s.nextWait(failures))
	}
}

func (s *Sidecar) start() error {
	removed, existing, err := s.file.open()
	if err != nil {
		return fmt.Errorf("sidecar: %w", err)
	}
	if removed > 0 {
		s.cfg.Log.Info("removed temporary files left by a killed sidecar", "count", removed, "dir", s.cfg.OutDir)
	}
	if existing != nil {
		s.mu.Lock()
		s.current, s.ready = existing, true
		s.mu.Unlock()
		s.metrics.generation.Set(float64(existing.Generation))
		s.cfg.Log.Info("found a valid keys file", "path", s.file.path, "generation", existing.Generation, "key_ids", existing.IDs())
	}
	if s.finder.enabled() {
		s.checkPermission()
	}
	return nil
}

// checkPermission reports at start-up, with the fix, if the app cannot be signalled.
func (s *Sidecar) checkPermission() {
	procs, err := s.finder.find()
	switch {
	case errors.Is(err, ErrNoProcess):
		s.cfg.Log.Info("app not running yet, will look again before each signal", "target", s.finder.String())
		return
	case err != nil:
		s.cfg.Log.Error("cannot look for the app", "target", s.finder.String(), "error", err)
		return
	}
	for _, p := range procs {
		if err := p.signal(0); errors.Is(err, ErrNotPermitted) {
			s.cfg.Log.Error("cannot signal the app", "target", s.finder.String(), "pid", p.pid, "error", err)
			s.permLogged = true
		}
	}
}

// nextWait is the jittered poll interval, full-jitter backoff after failures, shortened
// to retry a pending signal or to prune a key when it expires.
func (s *Sidecar) nextWait(failures int) time.Duration {
	var wait time.Duration
	if failures > 0 {
		ceiling := min(s.cfg.BackoffCap, backoffBase<<min(failures-1, 16))
		wait = time.Duration(rand.Int64N(int64(ceiling)) + 1)
	} else {
		j := s.cfg.Jitter * float64(s.cfg.Interval)
		wait = s.cfg.Interval + time.Duration((rand.Float64()*2-1)*j)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pending && wait > signalRetry {
		wait = signalRetry
	}
	if s.current != nil {
		now := s.cfg.Now()
		for _, k := range s.current.Keys {
			if !k.NotAfter.IsZero() && k.NotAfter.After(now) && k.NotAfter.Sub(now) < wait {
				wait = k.NotAfter.Sub(now) + time.Millisecond
			}
		}
	}
	return wait
}

// sync reads the store once, writes the file if it changed and signals the app.
func (s *Sidecar) sync(ctx context.Context) error {
	rctx, cancel := context.WithTimeout(ctx, readTimeout)
	snap, err := s.cfg.Store.Read(rctx)
	cancel()
	now := s.cfg.Now()
	if err != nil {
		return s.readFailed(err)
	}
	s.mu.Lock()
	prev := s.current
	s.mu.Unlock()
	r := snap.Keyring
	if snap.PlainCurrent != nil {
		r = s.withPreviousFromFile(snap, prev)
	}
	r = r.Prune(now)
	if len(r.Keys) == 0 {
		return s.readFailed(fmt.Errorf("%w: every key in generation %d has expired", keyring.ErrInvalid, r.Generation))
	}
	// Only a usable document counts as a successful read.
	s.mu.Lock()
	s.lastSuccess = now
	s.mu.Unlock()
	s.metrics.syncs.WithLabelValues("ok").Inc()
	s.metrics.lastSuccess.Set(float64(now.UnixNano()) / 1e9)
	if prev != nil && r.Generation < prev.Generation {
		s.cfg.Log.Warn("store generation went backwards", "generation", r.Generation, "previous_generation", prev.Generation)
	}
	wrote, err := s.file.write(r)
	if err != nil {
		s.cfg.Log.Error("cannot write the keys file, keeping the last one", "path", s.file.path, "error", err)
		return err
	}
	if wrote {
		s.logExpired(prev, r, now)
		s.cfg.Log.Info("keys written", "event", "keys_written", "path", s.file.path, "generation", r.Generation,
			"key_ids", r.IDs(), "rotated_by", r.RotatedBy, "reason", r.Reason, "plain_value", snap.Plain)
		s.metrics.keysWritten.Inc()
		s.metrics.generation.Set(float64(r.Generation))
		s.mu.Lock()
		s.current, s.written, s.ready = r, now, true
		s.pending = s.finder.enabled() || s.cfg.ConfirmURL != ""
		s.mu.Unlock()
	} else {
		s.mu.Lock()
		s.ready = true
		s.mu.Unlock()
	}
	s.notify(ctx)
	return nil
}

// withPreviousFromFile completes a plain value from a store without history: the newest
// other key of the keys file written before is the previous value, so it keeps verifying
// for the window after the new value starts signing. Its times come from the file, so the
// result is the same on every poll.
func (s *Sidecar) withPreviousFromFile(snap *store.Snapshot, prev *keyring.Keyring) *keyring.Keyring {
	if prev == nil {
		return snap.Keyring
	}
	newID := keyring.KeyID(snap.PlainCurrent.Value)
	for i := len(prev.Keys) - 1; i >= 0; i-- {
		k := prev.Keys[i]
		if k.ID == newID {
			continue
		}
		r, err := keyring.FromPlain(*snap.PlainCurrent, &keyring.PlainValue{Value: k.Secret, CreatedAt: k.NotBefore, Version: prev.Generation},
			s.cfg.Plain, snap.Keyring.RotatedBy)
		if err != nil {
			s.cfg.Log.Warn("cannot keep the previous plain value", "key_id", k.ID, "error", err)
			return snap.Keyring
		}
		return r
	}
	return snap.Keyring
}

func (s *Sidecar) readFailed(err error) error {
	if errors.Is(err, keyring.ErrInvalid) {
		s.metrics.syncs.WithLabelValues("rejected").Inc()
		s.cfg.Log.Error("document rejected, keeping the last good keys file", "event", "document_rejected",
			"store", s.cfg.Store.String(), "error", err)
	} else {
		s.metrics.syncs.WithLabelValues("error").Inc()
		s.cfg.Log.Warn("store read failed, keeping the last good keys file", "store", s.cfg.Store.String(), "error", err,
			"stale_seconds", s.staleSeconds())
	}
	return err
}

func (s *Sidecar) logExpired(prev, next *keyring.Keyring, now time.Time) {
	if prev == nil {
		return
	}
	for _, k := range prev.Keys {
		if _, still := next.Key(k.ID); !still {
			s.cfg.Log.Info("key removed", "event", "key_expired", "key_id", k.ID, "generation", next.Generation,
				"expired", !k.ValidAt(now))
		}
	}
}

// notify signals the app once per written file and confirms the reload. A missing app is
// retried on the next turn of the loop.
func (s *Sidecar) notify(ctx context.Context) {
	s.mu.Lock()
	pending, r, written := s.pending, s.current, s.written
	s.mu.Unlock()
	if !pending {
		return
	}
	signalled := s.cfg.Now()
	if s.finder.enabled() {
		procs, err := s.finder.find()
		if err == nil {
			for _, p := range procs {
				if age, aerr := p.age(); aerr == nil && age < s.cfg.SignalMinAge {
					s.cfg.Log.Debug("app too young to signal, will retry", "pid", p.pid, "age", age.String())
					return
				}
			}
			for _, p := range procs {
				if err = p.signal(s.cfg.Signal); err != nil {
					break
				}
				s.metrics.signals.WithLabelValues("sent").Inc()
				s.cfg.Log.Info("app signalled", "event", "app_signalled", "pid", p.pid, "signal", s.cfg.Signal.String(),
					"generation", r.Generation)
			}
		}
		switch {
		case errors.Is(err, ErrNoProcess):
			s.metrics.signals.WithLabelValues("not_found").Inc()
			s.cfg.Log.Debug("app not running, will retry the signal", "target", s.finder.String(), "reason", err)
			return
		case err != nil:
			s.metrics.signals.WithLabelValues("error").Inc()
			if !s.permLogged || !errors.Is(err, ErrNotPermitted) {
				s.cfg.Log.Error("cannot signal the app, will retry", "target", s.finder.String(), "error", err)
			}
			s.permLogged = errors.Is(err, ErrNotPermitted)
			return
		}
	}
	s.mu.Lock()
	s.pending = false
	s.mu.Unlock()
	if s.cfg.ConfirmURL == "" {
		return
	}
	cctx, cancel := context.WithTimeout(ctx, s.cfg.ConfirmTimeout)
	defer cancel()
	if err := confirm(cctx, s.client, s.cfg.ConfirmURL, r.Generation, r.IDs()); err != nil {
		s.cfg.Log.Warn("reload not confirmed", "generation", r.Generation, "error", err)
		return
	}
	done := s.cfg.Now()
	fromSignal, fromWrite := done.Sub(signalled), done.Sub(written)
	if s.finder.enabled() {
		s.metrics.confirmations.WithLabelValues("signal").Observe(fromSignal.Seconds())
	}
	s.metrics.confirmations.WithLabelValues("write").Observe(fromWrite.Seconds())
	s.cfg.Log.Info("reload confirmed", "event", "reload_confirmed", "generation", r.Generation, "key_ids", r.IDs(),
		"signal_to_confirm_ms", fromSignal.Milliseconds(), "write_to_confirm_ms", fromWrite.Milliseconds())
}

func (s *Sidecar) staleSeconds() float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lastSuccess.IsZero() {
		return 0
	}
	return s.cfg.Now().Sub(s.lastSuccess).Seconds()
}
