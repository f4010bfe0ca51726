// Package reload is the app-side keysync library: it loads the keys file the sidecar
// writes, reloads it on a signal (SIGHUP by default), on changes of the file's directory
// and on a slow periodic re-read, signs with the active key and verifies against every
// key valid now. Sign and Verify never lock and do not read the clock: they decide from a
// keyring.View behind an atomic.Pointer, which a timer replaces at each key's activation
// or end, after each reload and at least every second. A bad or missing file keeps the
// last good keyring.
//
// It depends on the standard library, fsnotify and the keyring package only.
package reload

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/sigil-dna/keysync/keyring"
)

// Defaults of the reload triggers.
const (
	DefaultPollInterval = time.Minute
	DefaultDebounce     = 20 * time.Millisecond
	// openRetry is how often Open re-tries while the file is missing or invalid.
	openRetry = 100 * time.Millisecond
	// viewRefresh bounds how long the decisions Sign and Verify use go without a look at
	// the wall clock: a step of the clock (NTP, a resumed VM) is noticed within it, and
	// a key's last verification is recorded to it. Each boundary (a key activating or
	// expiring) is met by a timer of its own.
	viewRefresh = time.Second
)

// Handle is a live handle on a keys file: the keyring it holds now, reloaded when the file changes. It is safe for concurrent use.
type Handle struct {
	path string
	cfg  config
	cur  atomic.Pointer[loaded]
	// view is cur's signer's decisions now, refreshed at each boundary and every
	// viewRefresh by the refresh goroutine, so that Sign and Verify do not read the clock;
	// nil with WithClock and after Close, when they read the clock per call.
	view    atomic.Pointer[keyring.View]
	refresh chan struct{} // a reload asks the refresh goroutine to look at the new view
	// usage counts signatures and verifications per key over the handle's life, across
	// reloads (Usage, Status, the reloadprom collector).
	usage *keyring.Usage

	mu       sync.Mutex // serialises reloads; never taken by Sign or Verify
	reloads  atomic.Uint64
	failures atomic.Uint64
	lastErr  atomic.Pointer[string]

	sigCh     chan os.Signal
	watcher   *fsnotify.Watcher
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
}

type loaded struct {
	signer   *keyring.Signer
	raw      []byte
	loadedAt time.Time
}

// Open returns a handle on the keys file at path once it holds a valid keyring, waiting
// for it until ctx ends. From then on it reloads the file in the background until Close.
// The reload signal is caught from the start, so it cannot end the process while Open
// waits.
func Open(ctx context.Context, path string, opts ...Option) (*Handle, error) {
	cfg := defaults()
	for _, o := range opts {
		o(&cfg)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("reload: %w", err)
	}
	k := &Handle{path: abs, cfg: cfg, usage: keyring.NewUsage(), refresh: make(chan struct{}, 1)}
	if len(cfg.signals) > 0 {
		k.sigCh = make(chan os.Signal, 1)
		signal.Notify(k.sigCh, cfg.signals...)
	}
	if cfg.watch {
		if k.watcher, err = fsnotify.NewWatcher(); err != nil {
			k.stopSignals()
			return nil, fmt.Errorf("reload: starting the file watch: %w", err)
		}
	}
	if err := k.waitFirst(ctx); err != nil {
		k.release()
		return nil, err
	}
	bg, cancel := context.WithCancel(context.Background())
	k.cancel = cancel
	k.wg.Add(1)
	go k.loop(bg)
	if !cfg.customClock {
		k.wg.Add(1)
		go k.refreshView(bg)
	}
	return k, nil
}

// refreshView keeps k.view current: at each boundary of the keyring's schedule, after
// each reload and at least every viewRefresh. A timer fires at or after its instant, so
// a key starts signing and stops verifying at its boundary or up to the timer's latency
// after it, never before.
func (k *Handle) refreshView(ctx context.Context) {
	defer k.wg.Done()
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-k.refresh:
		case <-t.C:
		}
		k.mu.Lock()
		now := time.Now()
		v := k.cur.Load().signer.ViewAt(now)
		k.view.Store(&v)
		k.mu.Unlock()
		wait := viewRefresh
		if u := v.Until(); !u.IsZero() && u.Sub(now) < wait {
			wait = u.Sub(now)
		}
		t.Reset(wait)
	}
}

// waitFirst loads the file, retrying on directory events and every openRetry.
func (k *Handle) waitFirst(ctx context.Context) error {
	t := time.NewTicker(openRetry)
	defer t.Stop()
	watching := false
	for {
		if k.watcher != nil && !watching {
			watching = k.watcher.Add(filepath.Dir(k.path)) == nil
		}
		err := k.Reload()
		if err == nil {
			if k.watcher != nil && !watching {
				if err := k.watcher.Add(filepath.Dir(k.path)); err != nil {
					k.cfg.log.Warn("cannot watch the keys directory, relying on signals and polling", "path", k.path, "error", err)
				}
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("reload: no valid keys file at %s before the deadline: %w", k.path, err)
		case <-t.C:
		case <-k.events():
		case <-k.sigCh:
		}
	}
}

func (k *Handle) events() chan fsnotify.Event {
	if k.watcher == nil {
		return nil
	}
	return k.watcher.Events
}

func (k *Handle) watchErrors() chan error {
	if k.watcher == nil {
		return nil
	}
	return k.watcher.Errors
}

func (k *Handle) loop(ctx context.Context) {
	defer k.wg.Done()
	var pollC <-chan time.Time
	if k.cfg.poll > 0 {
		poll := time.NewTicker(k.cfg.poll)
		defer poll.Stop()
		pollC = poll.C
	}
	debounce := time.NewTimer(time.Hour)
	debounce.Stop()
	defer debounce.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-k.sigCh:
			k.cfg.log.Debug("reload signal received", "path", k.path)
			_ = k.Reload()
		case _, ok := <-k.events():
			if !ok {
				return
			}
			// Any change in the directory counts: renames and ..data swaps replace the
			// inode, so the name alone is not enough. Reload skips identical content.
			debounce.Reset(k.cfg.debounce)
		case err, ok := <-k.watchErrors():
			if ok {
				k.cfg.log.Warn("file watch error", "path", k.path, "error", err)
			}
		case <-debounce.C:
			_ = k.Reload()
		case <-pollC:
			_ = k.Reload()
		}
	}
}

// Reload reads the keys file now. On any error the current keyring stays, the error is
// logged and counted, and returned. Reloading unchanged content does nothing.
func (k *Handle) Reload() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	data, err := readBounded(k.path)
	prev := k.cur.Load()
	if errors.Is(err, os.ErrNotExist) && prev != nil {
		// A ..data symlink swap (kubelet, configmap-style volumes) removes the old
		// directory right after the new link is in place: a read that resolved the old
		// link meets a missing file. Read again through the new one.
		data, err = readBounded(k.path)
	}
	if err == nil && prev != nil && bytes.Equal(data, prev.raw) {
		k.lastErr.Store(nil) // the file is good again, even if unchanged
		return nil
	}
	var r *keyring.Keyring
	if err == nil {
		r, err = keyring.Parse(data)
	}
	if err != nil {
		err = fmt.Errorf("reload: %s: %w", k.path, err)
		if prev != nil { // while Open waits, a missing file is expected and not counted
			k.failures.Add(1)
			msg := err.Error()
			k.lastErr.Store(&msg)
			k.cfg.log.Warn("keys file rejected, keeping the last good keyring", "event", "reload_failed",
				"path", k.path, "generation", prev.signer.Keyring().Generation, "error", err)
		}
		return err
	}
	if prev != nil && r.Generation < prev.signer.Keyring().Generation {
		k.cfg.log.Warn("keys file generation went backwards", "path", k.path,
			"generation", r.Generation, "previous_generation", prev.signer.Keyring().Generation)
	}
	signer := keyring.NewSignerWithUsage(r, k.usage)
	k.cur.Store(&loaded{signer: signer, raw: data, loadedAt: time.Now()})
	if k.view.Load() != nil { // the refresh goroutine runs: hand it the new keyring
		v := signer.ViewAt(time.Now())
		k.view.Store(&v)
		select {
		case k.refresh <- struct{}{}:
		default:
		}
	}
	k.reloads.Add(1)
	k.lastErr.Store(nil)
	st := k.Status()
	k.cfg.log.Info("reloaded spiral event secret", "event", "reload", "path", k.path,
		"generation", st.Generation, "key_ids", st.KeyIDs, "signing_key_id", st.SigningKeyID)
	if k.cfg.onReload != nil {
		k.cfg.onReload(st)
	}
	return nil
}

func readBounded(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, keyring.MaxDocumentBytes+1))
	if err != nil {
		return nil, err
	}
	return data, nil
}

// ErrClosed is returned by Sign after Close.
var ErrClosed = errors.New("reload: keyring is closed")

// Sign returns the signature of payload with the key that signs now: the keyed form
// "ks1.<key id>.<hex HMAC-SHA256>", or the bare hex HMAC-SHA256 with WithLegacySignatures.
func (k *Handle) Sign(payload []byte) (string, error) {
	if v := k.view.Load(); v != nil {
		if k.cfg.legacy {
			return v.SignLegacy(payload)
		}
		return v.Sign(payload)
	}
	l := k.cur.Load()
	if l == nil {
		return "", ErrClosed
	}
	if k.cfg.legacy {
		return l.signer.SignLegacy(k.cfg.clock(), payload)
	}
	return l.signer.Sign(k.cfg.clock(), payload)
}

// AppendSign appends the keyed signature of payload to dst without allocating.
func (k *Handle) AppendSign(dst, payload []byte) ([]byte, error) {
	if v := k.view.Load(); v != nil {
		return v.AppendSign(dst, payload)
	}
	l := k.cur.Load()
	if l == nil {
		return dst, ErrClosed
	}
	return l.signer.AppendSign(dst, k.cfg.clock(), payload)
}

// Verify checks sig over payload against the keys valid now: a keyed signature against
// its own key, a bare legacy signature against every valid key in constant time. It
// returns nil or one of keyring's Err… sentinels.
func (k *Handle) Verify(payload []byte, sig string) error {
	if v := k.view.Load(); v != nil {
		return v.Verify(payload, sig)
	}
	l := k.cur.Load()
	if l == nil {
		return ErrClosed
	}
	return l.signer.Verify(k.cfg.clock(), payload, sig)
}

// Close stops every background reload, the signal handler and the file watch. The
// handle keeps signing and verifying with the last keyring. Close is idempotent.
func (k *Handle) Close() error {
	k.closeOnce.Do(func() {
		if k.cancel != nil {
			k.cancel()
		}
		k.release()
		k.wg.Wait()
		k.mu.Lock()
		k.view.Store(nil) // nothing refreshes it any more: read the clock per call
		k.mu.Unlock()
	})
	return nil
}

func (k *Handle) release() {
	k.stopSignals()
	if k.watcher != nil {
		_ = k.watcher.Close()
	}
}

func (k *Handle) stopSignals() {
	if k.sigCh != nil {
		signal.Stop(k.sigCh)
	}
}

// defaultSignals is what the sidecar sends.
var defaultSignals = []os.Signal{syscall.SIGHUP}
