// Package file is the embedded default store: a keyring document in a local file, for
// development, the demo and single-machine use. Writes are atomic and guarded by an
// advisory lock (flock) on PATH.lock, so two `keysync rotate` runs on one machine cannot
// both win. A file holding only a secret is read as a plain value.
package file

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
	"golang.org/x/sys/unix"

	"github.com/sigil-dna/keysync/internal/atomicfile"
	"github.com/sigil-dna/keysync/internal/dirwatch"
	"github.com/sigil-dna/keysync/keyring"
	"github.com/sigil-dna/keysync/store"
)

var (
	_ store.Store   = (*Store)(nil)
	_ store.Watcher = (*Store)(nil)
)

// Store is a keyring in one local file.
type Store struct {
	path  string
	plain store.PlainOptions

	mu       sync.Mutex
	watchers []*fsnotify.Watcher
	closed   bool
}

// New returns a store for the file at path. plain is the schedule applied to a file that
// holds a bare secret.
func New(path string, plain store.PlainOptions) (*Store, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("file store: %w", err)
	}
	return &Store{path: abs, plain: plain}, nil
}

// String implements store.Store.
func (s *Store) String() string { return "file://" + s.path }

// Read implements store.Store. The version of a document is its generation; the
// version of a plain value is a digest of it.
func (s *Store) Read(ctx context.Context) (*store.Snapshot, error) {
	data, fi, err := s.load()
	if err != nil {
		return nil, err
	}
	snap, err := s.decode(data, fi)
	return snap, store.Invalid(invalidVersion(data), err)
}

// invalidVersion is the version of a document that cannot be read: a digest of its bytes.
func invalidVersion(data []byte) string {
	sum := sha256.Sum256(data)
	return "invalid-" + hex.EncodeToString(sum[:8])
}

func (s *Store) load() ([]byte, os.FileInfo, error) {
	f, err := os.Open(s.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, fmt.Errorf("file store %s: %w", s.path, store.ErrNotFound)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("file store: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, nil, fmt.Errorf("file store: %w", err)
	}
	data, err := io.ReadAll(io.LimitReader(f, keyring.MaxDocumentBytes+1))
	if err != nil {
		return nil, nil, fmt.Errorf("file store: reading %s: %w", s.path, err)
	}
	return data, fi, nil
}

func (s *Store) decode(data []byte, fi os.FileInfo) (*store.Snapshot, error) {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 || trimmed[0] == '{' {
		r, err := keyring.Parse(data)
		if err != nil {
			return nil, fmt.Errorf("file store %s: %w", s.path, err)
		}
		return &store.Snapshot{Keyring: r, Version: strconv.FormatInt(r.Generation, 10)}, nil
	}
	// A plain value, as `openssl rand -hex 32 > FILE` writes it: one trailing newline is
	// not part of the secret. A file keeps no history: its modification time is the
	// value's timestamp and generation, and a reader completes it with the keys it holds.
	value := bytes.TrimSuffix(bytes.TrimSuffix(data, []byte("\n")), []byte("\r"))
	if err := store.CheckPlain(value); err != nil {
		return nil, fmt.Errorf("file store %s: %w", s.path, err)
	}
	cur := keyring.PlainValue{Value: value, CreatedAt: fi.ModTime(), Version: max(fi.ModTime().UnixMilli(), 1)}
	r, err := keyring.FromPlain(cur, nil, s.plain, "plain value in "+s.path)
	if err != nil {
		return nil, fmt.Errorf("file store %s: %w", s.path, err)
	}
	sum := sha256.Sum256(data)
	return &store.Snapshot{Keyring: r, Version: "plain-" + hex.EncodeToString(sum[:8]), Plain: true, PlainCurrent: &cur, Schedule: s.plain}, nil
}

// Write implements store.Store under an exclusive flock on PATH.lock.
func (s *Store) Write(ctx context.Context, r *keyring.Keyring, ifVersion string) (string, error) {
	doc, err := keyring.Encode(r)
	if err != nil {
		return "", fmt.Errorf("file store: %w", err)
	}
	unlock, err := s.lock(ctx)
	if err != nil {
		return "", err
	}
	defer unlock()
	current := ""
	data, fi, err := s.load()
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return "", err
	default:
		snap, err := s.decode(data, fi)
		if err != nil {
			// An invalid document has no generation: only a write based on its digest may replace it.
			current = invalidVersion(data)
		} else {
			current = snap.Version
		}
	}
	if current != ifVersion {
		return "", fmt.Errorf("file store %s: holds version %q, the write was based on %q: %w", s.path, current, ifVersion, store.ErrConflict)
	}
	if err := os.MkdirAll(filepath.Dir(s.path), 0o700); err != nil {
		return "", fmt.Errorf("file store: %w", err)
	}
	// A new store file is 0600; a replaced one keeps its mode, owner and group.
	if err := atomicfile.ReplaceFile(s.path, doc, 0o600); err != nil {
		return "", fmt.Errorf("file store: %w", err)
	}
	return strconv.FormatInt(r.Generation, 10), nil
}

// lock takes the advisory lock, giving up when ctx ends.
func (s *Store) lock(ctx context.Context) (func(), error) {
	if err := os.MkdirAll(filepath.Dir(s.path), 0o700); err != nil {
		return nil, fmt.Errorf("file store: %w", err)
	}
	f, err := os.OpenFile(s.path+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("file store: opening the lock: %w", err)
	}
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return func() { _ = unix.Flock(int(f.Fd()), unix.LOCK_UN); f.Close() }, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("file store: locking %s.lock: %w", s.path, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("file store: waiting for the lock on %s.lock: %w", s.path, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// Watch implements store.Watcher with fsnotify on the file's directory, which sees
// atomic renames and symlink swaps that a watch on the file itself would miss.
func (s *Store) Watch(ctx context.Context) (<-chan struct{}, error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("file store: starting a watch: %w", err)
	}
	if err := w.Add(filepath.Dir(s.path)); err != nil {
		w.Close()
		return nil, fmt.Errorf("file store: watching %s: %w", filepath.Dir(s.path), err)
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		w.Close()
		return nil, errors.New("file store: closed")
	}
	s.watchers = append(s.watchers, w)
	s.mu.Unlock()
	return dirwatch.Changes(ctx, w, filepath.Base(s.path)), nil
}

// Close implements store.Store.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true
		for _, w := range s.watchers {
			w.Close()
		}
	}
	return nil
}
