// Package sidecar keeps an app's keys file in step with the store: it reads the store
// (watching where the store can, polling with jitter otherwise), validates and prunes the
// keyring, writes the keys file atomically into a shared in-memory volume, signals the
// app through the shared process namespace, confirms the reload through the app's status
// endpoint, and serves health, readiness, status and metrics. A store that is down or
// returns something invalid never blanks the file: the last good keys stay and staleness
// is reported.
//
// Two goroutines, both owned by Run: the loop reads the store and writes the file; the
// notifier signals the app and confirms what it loaded, fed the latest written keyring
// through a one-slot channel, so a slow app never delays a store read.
package sidecar

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
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
	DefaultBackoffCap     = 30 * time.Second
	// ReadTimeout bounds one store read.
	ReadTimeout = 10 * time.Second
	backoffBase = time.Second
)

// WorstPropagation is the longest a sidecar with these settings takes to read a new
// document once the store can be read: a poll at the end of its jittered interval, or,
// while retrying a failing store, a read that hangs for ReadTimeout followed by the
// longest backoff. A timer rotation's activation delay must exceed the fleet's largest
// WorstPropagation plus the clock skew between its members.
func WorstPropagation(interval time.Duration, jitter float64, backoffCap time.Duration) time.Duration {
	return max(time.Duration(float64(interval)*(1+jitter)), backoffCap) + ReadTimeout
}

// Config is everything the sidecar needs; cmd/keysync fills it from flags.
type Config struct {
	Store    store.Store
	OutDir   string
	FileName string
	Mode     os.FileMode
	Interval time.Duration
	Jitter   float64 // fraction of Interval, ±
	// ProcessName or PidFile find the app to signal; neither: no signal (the app's own
	// file watch reloads it).
	ProcessName string
	PidFile     string
	Signal      syscall.Signal
	// SignalMinAge: a process younger than this is not signalled yet (retried), so a
	// SIGHUP cannot reach an app before it installed its handler and end it.
	SignalMinAge time.Duration
	// ConfirmURL is the app's status endpoint (the reload library's status handler): the
	// sidecar confirms each reload there, and reports what the app holds.
	ConfirmURL     string
	ConfirmTimeout time.Duration
	MaxStale       time.Duration // readiness fails after this long without a good sync; 0: never
	BackoffCap     time.Duration
	Log            *slog.Logger
	Now            func() time.Time
}

// Sidecar runs the loop. Create it with New; Run it once.
type Sidecar struct {
	cfg     Config
	file    keysFile
	metrics *metrics
	notify  *notifier

	mu           sync.Mutex
	ready        bool
	lastSync     time.Time        // last read whose keyring is in the file (written or unchanged)
	current      *keyring.Keyring // what the keys file holds
	written      time.Time        // when it was written
	storeErr     string           // why syncs fail, while they do
	failingSince time.Time
	writeErr     string // why the newest keyring could not be written, until it is
}

// New checks cfg and prepares a sidecar.
func New(cfg Config) (*Sidecar, error) {
	if cfg.Store == nil {
		return nil, errors.New("no store")
	}
	if cfg.OutDir == "" {
		return nil, errors.New("--out is required")
	}
	if cfg.ProcessName != "" && cfg.PidFile != "" {
		return nil, errors.New("use one of --signal-process and --pid-file")
	}
	if cfg.FileName == "" {
		cfg.FileName = DefaultFileName
	}
	if filepath.Base(cfg.FileName) != cfg.FileName {
		return nil, fmt.Errorf("--file %q must be a plain file name", cfg.FileName)
	}
	if cfg.Mode == 0 {
		cfg.Mode = DefaultMode
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Jitter < 0 || cfg.Jitter >= 1 {
		return nil, fmt.Errorf("--jitter %v must be in [0, 1)", cfg.Jitter)
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
	s := &Sidecar{cfg: cfg, file: keysFile{path: filepath.Join(cfg.OutDir, cfg.FileName), mode: cfg.Mode}}
	s.metrics = newMetrics(s.staleSeconds)
	s.metrics.worst.Set(WorstPropagation(cfg.Interval, cfg.Jitter, cfg.BackoffCap).Seconds())
	s.metrics.maxStale.Set(cfg.MaxStale.Seconds())
	var sig signaller
	if cfg.ProcessName != "" || cfg.PidFile != "" {
		sig = &processSignaller{finder: finder{name: cfg.ProcessName, pidFile: cfg.PidFile, self: os.Getpid()},
			sig: cfg.Signal, minAge: cfg.SignalMinAge}
	}
	var app appReader
	if cfg.ConfirmURL != "" {
		app = newHTTPApp(cfg.ConfirmURL)
	}
	s.notify = newNotifier(notifierConfig{sig: sig, app: app, confirmTimeout: cfg.ConfirmTimeout, recheck: cfg.Interval,
		log: cfg.Log, now: cfg.Now, metrics: s.metrics, pace: defaultPace})
	return s, nil
}

// Once writes the keys file once and returns: the init-container mode. The app starts
// after it and loads the file itself, so nothing is signalled.
func (s *Sidecar) Once(ctx context.Context) error {
	lock, err := lockOut(s.cfg.OutDir)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := s.start(); err != nil {
		return err
	}
	return s.sync(ctx)
}

// Run keeps the keys file in step until ctx ends. Store errors are retried with full
// jitter backoff; only a local problem (the output directory) ends it with an error.
func (s *Sidecar) Run(ctx context.Context) error {
	lock, err := lockOut(s.cfg.OutDir)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := s.start(); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.notify.run(ctx)
	}()
	defer wg.Wait()
	if s.notify.sig != nil {
		s.notify.checkPermission()
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
	s.mu.Lock()
	if s.current != nil { // the file a restarted sidecar found: confirm the app holds it, no signal
		s.notify.offer(target{ring: s.current, written: s.written, found: true})
	}
	s.mu.Unlock()
	outChanges := s.watchOut(ctx)
	failures := 0
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case _, ok := <-outChanges:
			if !ok {
				outChanges = nil // the watch stopped; the poll still checks
				continue
			}
			s.checkFile()
			continue
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
		return err
	}
	CheckOut(s.cfg.OutDir, s.cfg.Log)
	if removed > 0 {
		s.cfg.Log.Info("removed temporary files left by a killed sidecar", "count", removed, "dir", s.cfg.OutDir)
	}
	if existing != nil {
		s.mu.Lock()
		s.current, s.ready = existing, true
		if fi, err := os.Stat(s.file.path); err == nil {
			s.written = fi.ModTime()
		}
		s.mu.Unlock()
		s.metrics.setFile(existing, s.cfg.Now())
		s.cfg.Log.Info("found a valid keys file", "path", s.file.path, "generation", existing.Generation, "key_ids", existing.IDs())
	}
	return nil
}

// nextWait is the jittered poll interval, or full-jitter backoff after failures,
// shortened to prune a key when it expires.
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

// sync reads the store once, completes and prunes the keyring, writes the file if it
// changed and hands what the file holds to the notifier.
func (s *Sidecar) sync(ctx context.Context) error {
	s.checkFile()
	// The poll loop's backoff is the only retry of a failing read.
	rctx, cancel := context.WithTimeout(store.CallerRetries(ctx), ReadTimeout)
	snap, err := s.cfg.Store.Read(rctx)
	cancel()
	now := s.cfg.Now()
	if err != nil {
		return s.readFailed(err)
	}
	s.mu.Lock()
	prev := s.current
	s.mu.Unlock()
	r, err := snap.Complete(prev)
	if err != nil {
		return s.readFailed(err)
	}
	r = r.Prune(now)
	if len(r.Keys) == 0 {
		return s.readFailed(fmt.Errorf("%w: every key in generation %d has expired", keyring.ErrInvalid, r.Generation))
	}
	if prev != nil && r.Generation < prev.Generation {
		s.cfg.Log.Warn("store generation went backwards", "generation", r.Generation, "previous_generation", prev.Generation)
	}
	wrote, err := s.file.write(r)
	if err != nil {
		s.metrics.syncs.WithLabelValues(syncWriteError).Inc()
		s.cfg.Log.Error("cannot write the keys file, keeping the last one", "event", "write_failed", "path", s.file.path,
			"generation", r.Generation, "error", err, "stale_seconds", s.staleSeconds())
		s.mu.Lock()
		if s.failingSince.IsZero() {
			s.failingSince = s.cfg.Now()
		}
		s.writeErr = err.Error() // the store is fine: /status says write_error, not store_error
		s.mu.Unlock()
		return err
	}
	// Only a usable document that is now in the file counts as a successful sync.
	s.mu.Lock()
	s.lastSync, s.ready, s.storeErr, s.failingSince, s.writeErr = now, true, "", time.Time{}, ""
	if wrote {
		s.current, s.written = r, now
	}
	s.mu.Unlock()
	s.metrics.syncs.WithLabelValues(syncOK).Inc()
	s.metrics.lastSuccess.Set(float64(now.UnixNano()) / 1e9)
	s.metrics.setFile(r, now)
	if wrote {
		s.logExpired(prev, r, now)
		s.cfg.Log.Info("keys written", "event", "keys_written", "path", s.file.path, "generation", r.Generation,
			"key_ids", r.IDs(), "rotated_by", r.RotatedBy, "reason", r.Reason, "plain_value", snap.Plain)
		s.metrics.keysWritten.Inc()
		s.notify.offer(target{ring: r, written: now})
	}
	return nil
}

func (s *Sidecar) readFailed(err error) error {
	if errors.Is(err, keyring.ErrInvalid) {
		s.metrics.syncs.WithLabelValues(syncRejected).Inc()
		s.cfg.Log.Error("document rejected, keeping the last good keys file", "event", "document_rejected",
			"store", s.cfg.Store.String(), "error", err)
	} else {
		s.metrics.syncs.WithLabelValues(syncError).Inc()
		s.cfg.Log.Warn("store read failed, keeping the last good keys file", "store", s.cfg.Store.String(), "error", err,
			"stale_seconds", s.staleSeconds())
	}
	s.failed(err)
	return err
}

// failed records why syncs fail and since when.
func (s *Sidecar) failed(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.storeErr == "" {
		s.failingSince = s.cfg.Now()
	}
	s.storeErr = err.Error()
}

func (s *Sidecar) logExpired(prev, next *keyring.Keyring, now time.Time) {
	if prev == nil {
		return
	}
	for _, k := range prev.Keys {
		if _, still := next.Key(k.ID); !still {
			// Expired (its window ended), or removed by the store's keyring before that (an
			// emergency rotation, a withdrawn key).
			event, msg := "key_expired", "key expired"
			if k.ValidAt(now) {
				event, msg = "key_removed", "key removed before its end by the store's keyring"
			}
			s.cfg.Log.Info(msg, "event", event, "key_id", k.ID, "generation", next.Generation)
		}
	}
}

// staleSeconds is the time since the last successful sync: a store read whose keyring is
// in the keys file. 0 before the first.
func (s *Sidecar) staleSeconds() float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lastSync.IsZero() {
		return 0
	}
	return s.cfg.Now().Sub(s.lastSync).Seconds()
}
