// Package keyring owns the keysync keyring document: its JSON encoding, validation,
// key ids, the redacting Secret type, the staged lifecycle (stage, hold, promote,
// emergency, rollback, prune), the HMAC signing and verification shared by every app
// library, and the words both libraries use for key states, verification results and
// error codes (Vocabulary). It is a module of its own with no dependency, so an app that
// imports it, or reload, inherits nothing else.
//
// The package does no I/O beyond encoding and decoding. All lifecycle functions are
// pure functions of a keyring, an instant and options.
package keyring

import (
	"slices"
	"time"
)

// Limits of a keyring document. They are part of the format (docs/keyring-format.md).
const (
	// FormatVersion is the only document version this package reads and writes.
	FormatVersion = 1
	// MinSecretBytes is the shortest secret accepted: 256 bits.
	MinSecretBytes = 32
	// MaxSecretBytes bounds one secret.
	MaxSecretBytes = 1024
	// MaxKeys bounds the keys in one document.
	MaxKeys = 16
	// MaxDocumentBytes bounds an encoded document.
	MaxDocumentBytes = 64 << 10
	// MaxTextLen bounds rotated_by and reason.
	MaxTextLen = 1024
	// MaxGeneration is the largest generation, 2^53-1, so that JavaScript reads it exactly.
	MaxGeneration = 1<<53 - 1
)

// Key is one HMAC key and the interval in which it is valid.
type Key struct {
	// ID is KeyID(Secret).
	ID string
	// Secret is the HMAC key, used byte for byte.
	Secret Secret
	// NotBefore is when the key starts signing. Before it the key is pending: it
	// verifies but does not sign. Zero means the key is held: it verifies everywhere and
	// signs nowhere until Promote gives it a NotBefore.
	NotBefore time.Time
	// NotAfter, when not zero, is when the key stops verifying (exclusive). A held key
	// has none.
	NotAfter time.Time
	// Restored: a rollback staged this key again (it signed before). Another rollback
	// while it is pending would withdraw it and undo the first, so it is refused unless
	// forced (Options.Force).
	Restored bool
}

// Held reports whether the key waits for a promotion: it verifies, it never signs.
func (k Key) Held() bool { return k.NotBefore.IsZero() }

// Keyring is a validated keyring document. Keys are ordered by NotBefore, oldest first;
// a held key, if any (at most one), comes last.
// A Keyring is treated as immutable: lifecycle functions return a new one.
type Keyring struct {
	Generation int64
	RotatedAt  time.Time
	RotatedBy  string
	Reason     string
	// NoLegacy: bare legacy signatures (no key id) are refused, by every reader of this
	// keyring, at once. The document says "legacy_signatures": false; a document without
	// the field accepts them (the existing service sends them). `keysync rotate
	// --legacy=off` sets it once a fleet signs keyed only.
	NoLegacy bool
	Keys     []Key
}

// State is where a key stands at an instant.
type State string

// Key states, as shown by `keysync status`.
const (
	StateHeld     State = "held"
	StatePending  State = "pending"
	StateCurrent  State = "current"
	StatePrevious State = "previous"
	StateExpired  State = "expired"
)

// ValidAt reports whether the key verifies at now: it is not expired. Pending and held
// keys verify.
func (k Key) ValidAt(now time.Time) bool {
	return k.NotAfter.IsZero() || now.Before(k.NotAfter)
}

// SigningKey returns the key that signs at now: among the keys valid at now that are not
// held, the one with the latest NotBefore not after now. When every such key is still
// pending (an emergency key seen by a clock that runs behind), it returns the earliest
// pending key, which every verifier already accepts. A held key never signs. ok is false
// only when no key can sign at now. It is the one rule, which the Signer applies too.
func (r *Keyring) SigningKey(now time.Time) (k Key, ok bool) {
	if i := r.signingIndex(now); i >= 0 {
		return r.Keys[i], true
	}
	return Key{}, false
}

func (r *Keyring) signingIndex(now time.Time) int {
	for i := len(r.Keys) - 1; i >= 0; i-- {
		if c := &r.Keys[i]; !c.Held() && c.ValidAt(now) && !c.NotBefore.After(now) {
			return i
		}
	}
	for i := range r.Keys {
		if c := &r.Keys[i]; !c.Held() && c.ValidAt(now) {
			return i
		}
	}
	return -1
}

// HeldKey returns the key that waits for a promotion, if there is one.
func (r *Keyring) HeldKey() (Key, bool) {
	if n := len(r.Keys); n > 0 && r.Keys[n-1].Held() {
		return r.Keys[n-1], true
	}
	return Key{}, false
}

// StateAt classifies a key of r at now.
func (r *Keyring) StateAt(k Key, now time.Time) State {
	i := r.signingIndex(now)
	return k.stateAt(now, i >= 0 && r.Keys[i].ID == k.ID)
}

// stateAt is the one rule of key states (StateAt, the Signer's View and the metrics all
// come from it); signing says whether k is the key that signs at now.
func (k *Key) stateAt(now time.Time, signing bool) State {
	switch {
	case k.Held():
		return StateHeld
	case !k.ValidAt(now):
		return StateExpired
	case signing:
		return StateCurrent
	case k.NotBefore.After(now):
		return StatePending
	default:
		return StatePrevious
	}
}

// IDs returns the key ids in order.
func (r *Keyring) IDs() []string {
	ids := make([]string, len(r.Keys))
	for i, k := range r.Keys {
		ids[i] = k.ID
	}
	return ids
}

// Key returns the key with the given id.
func (r *Keyring) Key(id string) (Key, bool) {
	for _, k := range r.Keys {
		if k.ID == id {
			return k, true
		}
	}
	return Key{}, false
}

// Equal reports whether two keyrings carry the same document.
func (r *Keyring) Equal(o *Keyring) bool {
	if r == nil || o == nil {
		return r == o
	}
	return r.Generation == o.Generation && r.RotatedAt.Equal(o.RotatedAt) &&
		r.RotatedBy == o.RotatedBy && r.Reason == o.Reason && r.NoLegacy == o.NoLegacy &&
		slices.EqualFunc(r.Keys, o.Keys, func(a, b Key) bool {
			return a.ID == b.ID && a.NotBefore.Equal(b.NotBefore) && a.NotAfter.Equal(b.NotAfter) && a.Restored == b.Restored
		})
}

// NextChange returns the first instant after now at which the state of some key
// changes (a pending key activates or a key expires), or the zero time.
func (r *Keyring) NextChange(now time.Time) time.Time {
	var next time.Time
	consider := func(t time.Time) {
		if t.After(now) && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	for _, k := range r.Keys {
		consider(k.NotBefore)
		if !k.NotAfter.IsZero() {
			consider(k.NotAfter)
		}
	}
	return next
}

func (r *Keyring) clone() *Keyring {
	c := *r
	c.Keys = slices.Clone(r.Keys)
	return &c
}

// sortKeys orders keys by NotBefore, held keys last.
func sortKeys(keys []Key) {
	slices.SortStableFunc(keys, func(a, b Key) int {
		switch {
		case a.Held() || b.Held():
			return compareBool(a.Held(), b.Held())
		}
		return a.NotBefore.Compare(b.NotBefore)
	})
}

func compareBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}
