package reload

import (
	"log/slog"
	"os"
	"time"
)

type config struct {
	clock       func() time.Time
	customClock bool // WithClock: read it on every call, no cached view
	log         *slog.Logger
	signals     []os.Signal
	watch       bool
	poll        time.Duration
	debounce    time.Duration
	legacy      bool
	onReload    func(Status)
}

func defaults() config {
	return config{
		clock:    time.Now,
		log:      slog.New(slog.DiscardHandler),
		signals:  defaultSignals,
		watch:    true,
		poll:     DefaultPollInterval,
		debounce: DefaultDebounce,
	}
}

// Option configures Open.
type Option func(*config)

// WithClock replaces time.Now, for tests and for clock-skew experiments.
// A handle with its own clock reads it on every Sign and Verify; the default handle
// decides from a view of its keyring that a timer refreshes at each boundary.
func WithClock(now func() time.Time) Option {
	return func(c *config) { c.clock, c.customClock = now, true }
}

// WithLogger sets the logger for reloads and rejected files. The default discards.
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.log = l } }

// WithSignals sets the signals that trigger a reload (default SIGHUP). With none, no
// signal handler is installed. Other handlers of the same signals keep working.
func WithSignals(sigs ...os.Signal) Option { return func(c *config) { c.signals = sigs } }

// WithFileWatch turns the fsnotify watch of the file's directory on (default) or off.
func WithFileWatch(on bool) Option { return func(c *config) { c.watch = on } }

// WithPollInterval sets the fallback periodic re-read (default one minute); zero turns it off.
func WithPollInterval(d time.Duration) Option { return func(c *config) { c.poll = d } }

// WithDebounce sets how long directory events settle before a reload (default 20 ms).
func WithDebounce(d time.Duration) Option { return func(c *config) { c.debounce = d } }

// WithLegacySignatures makes Sign emit the bare hex HMAC-SHA256 of the existing signing
// module, for fleets in which some verifiers still run it. Verify accepts both forms
// either way.
func WithLegacySignatures(on bool) Option { return func(c *config) { c.legacy = on } }

// WithOnReload calls fn after each successful reload, on the reloading goroutine.
func WithOnReload(fn func(Status)) Option { return func(c *config) { c.onReload = fn } }
