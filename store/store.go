// Package store defines what keysync needs from a secret manager: read the keyring with
// its store version, write one with compare-and-swap on that version, and optionally
// watch for changes. One package per backend implements it (store/file, store/vault, …),
// and every backend's calls follow one retry policy chosen by the caller (Retry, Attempts,
// CallerRetries).
package store

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"

	"github.com/sigil-dna/keysync/keyring"
)

// Sentinels every backend wraps, checked with errors.Is.
var (
	// ErrNotFound: the store holds no keyring (nothing written, or the latest version
	// deleted or destroyed). It is never reported as an empty keyring.
	ErrNotFound = errors.New("no keyring in the store")
	// ErrConflict: the store changed since the version the write was based on.
	ErrConflict = errors.New("the store changed since it was read (compare-and-swap conflict)")
)

// Snapshot is what a store holds at one version.
type Snapshot struct {
	// Keyring is the validated keyring. For a plain value it is derived by
	// keyring.FromPlain from the store's own version history and timestamps.
	Keyring *keyring.Keyring
	// Version is the store's opaque compare-and-swap token for this content.
	Version string
	// Plain reports that the store held a bare secret, not a keyring document.
	Plain bool
	// PlainCurrent is set for a plain value from a store that keeps no history (a
	// Kubernetes Secret, a local file): Keyring then holds that value alone, and a reader
	// that holds keys already completes it with Complete.
	PlainCurrent *keyring.PlainValue
	// Schedule is the plain-value schedule the store applied (its PlainOptions), which
	// Complete applies too: one setting, configured once, on the store.
	Schedule keyring.Options
}

// Complete returns the keyring a reader that holds have (its keys file; may be nil)
// should hold now: for a plain value from a store without history,
// keyring.CompletePlain; otherwise the snapshot's keyring.
func (s *Snapshot) Complete(have *keyring.Keyring) (*keyring.Keyring, error) {
	if s.PlainCurrent == nil {
		return s.Keyring, nil
	}
	return keyring.CompletePlain(*s.PlainCurrent, have, s.Schedule, s.Keyring.RotatedBy)
}

// Store is a secret manager holding one keyring. Implementations are safe for
// concurrent use. Errors name the store and the path and never contain secret bytes;
// an invalid document wraps keyring.ErrInvalid.
type Store interface {
	// Read returns the current keyring.
	Read(ctx context.Context) (*Snapshot, error)
	// Write stores r if the store still holds ifVersion ("" means: only if it holds
	// nothing) and returns the new version, or an error wrapping ErrConflict.
	Write(ctx context.Context, r *keyring.Keyring, ifVersion string) (string, error)
	// String names the store for logs, without credentials: "file:///etc/keys.json".
	String() string
	// Close releases connections and watches. It is idempotent.
	Close() error
}

// Watcher is implemented by stores that push changes (a file watch, a Kubernetes watch).
type Watcher interface {
	// Watch returns a channel that receives a value, coalesced, after changes until ctx
	// ends; the reader then calls Read. Polling remains the fallback.
	Watch(ctx context.Context) (<-chan struct{}, error)
}

// PlainOptions are the schedule every reader applies to plain values; all pods must use
// the same ones to compute the same keyring.
type PlainOptions = keyring.Options

// Rollbacker is implemented by stores whose own model has a rollback of a plain value:
// Secrets Manager moves AWSCURRENT back to the AWSPREVIOUS version. `keysync rotate
// --rollback` uses it when the store holds a plain value; a keyring document is rolled
// back by writing the rollback document.
type Rollbacker interface {
	// RollbackPlain rolls back if the store still holds ifVersion and returns the keyring
	// readers compute afterwards; with dryRun it only computes that keyring.
	RollbackPlain(ctx context.Context, ifVersion string, dryRun bool) (*keyring.Keyring, error)
}

// InvalidError is an invalid document together with the store version that holds it, so
// that a write based on that version can replace it (`rotate --emergency
// --replace-invalid`). It wraps the validation error, which quotes no document bytes.
type InvalidError struct {
	Version string
	Err     error
}

// GenerationFloor is the number the version ends with (a Vault KV, SSM or GCP version,
// a Kubernetes resourceVersion): the generation a replacement must be above, as pods
// may hold a generation up to it; 0 for a version that is no number.
func (e *InvalidError) GenerationFloor() int64 {
	v := e.Version[strings.LastIndexByte(e.Version, '/')+1:]
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0
	}
	return n
}

func (e *InvalidError) Error() string { return e.Err.Error() }
func (e *InvalidError) Unwrap() error { return e.Err }

// Invalid wraps err, when it rejects a document (keyring.ErrInvalid), with the version
// holding that document; any other error is returned as it is.
func Invalid(version string, err error) error {
	if err == nil || !errors.Is(err, keyring.ErrInvalid) {
		return err
	}
	return &InvalidError{Version: version, Err: err}
}

// EventRecorder is implemented by stores whose platform shows operators what happened to
// an object (Kubernetes Events on the Secret: kubectl events --for secret/NAME, Argo CD). A
// rotation records one event per write; an error recording it never fails the rotation.
type EventRecorder interface {
	RecordEvent(ctx context.Context, e Event) error
}

// Event is one thing a rotation did to the store: a reason in CamelCase (KeyStaged,
// KeyHeld, KeyPromoted, FleetGateTimedOut, KeyRolledBack, EmergencyRotation) and a message
// that names key ids, never secrets.
type Event struct {
	Warning bool
	Reason  string
	Message string
}

type callerRetriesKey struct{}

// CallerRetries marks ctx as a read whose caller retries it with a jittered backoff of its
// own (the sidecar's poll loop). A store then makes one attempt per request instead of
// retrying inside its client library: a fleet's retries after an outage or under
// throttling are spread by one backoff rather than multiplied by two (docs/scaling.md).
// Reads without the mark (a rotation's) keep the client's retries.
func CallerRetries(ctx context.Context) context.Context {
	return context.WithValue(ctx, callerRetriesKey{}, true)
}

// RetriedByCaller reports whether ctx carries the CallerRetries mark.
func RetriedByCaller(ctx context.Context) bool {
	v, _ := ctx.Value(callerRetriesKey{}).(bool)
	return v
}

// IsDocument reports whether a stored value is a keyring document (a JSON object) rather
// than a plain value, which is used byte for byte as the key.
func IsDocument(value []byte) bool {
	return strings.HasPrefix(strings.TrimSpace(string(value)), "{")
}

// Cache keeps the snapshot of the version a store read last, keyed by whatever identifies
// that version cheaply (a version number and its date, an etag, label positions), so that
// an idle poll which finds the same key returns it without fetching or decoding the value.
// The zero value is empty and ready; it is safe for concurrent use.
type Cache struct {
	mu   sync.Mutex
	key  string
	snap *Snapshot
}

// Get returns the snapshot kept under key, or nil.
func (c *Cache) Get(key string) *Snapshot {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.snap == nil || c.key != key {
		return nil
	}
	return c.snap
}

// Put keeps snap under key, replacing what was kept.
func (c *Cache) Put(key string, snap *Snapshot) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.key, c.snap = key, snap
}
