package keyring

import (
	"errors"
	"fmt"
	"time"
)

// Defaults of a staged rotation (shared/DESIGN.md, "Why staged rotation").
const (
	DefaultActivationDelay = 60 * time.Second
	DefaultVerifyWindow    = 15 * time.Minute
)

// Options shape a lifecycle step. The zero value means the defaults.
type Options struct {
	// ActivationDelay is how long a new key is pending before it signs. Zero means
	// DefaultActivationDelay.
	ActivationDelay time.Duration
	// VerifyWindow is how long replaced keys keep verifying after the new key starts
	// signing. Zero means DefaultVerifyWindow.
	VerifyWindow time.Duration
	// MinPropagation is the worst time the fleet needs to load a new document. Stage
	// and Rollback refuse an ActivationDelay below it.
	MinPropagation time.Duration
	// RotatedBy and Reason are recorded in the new document.
	RotatedBy string
	Reason    string
	// Legacy switches the acceptance of bare legacy signatures on or off in the new
	// document; LegacyKeep (the zero value) keeps what the keyring says.
	Legacy Legacy
	// Force lets Rollback withdraw a key an earlier rollback restored that is still
	// pending (undoing that rollback), which it otherwise refuses.
	Force bool
}

// Legacy is what a lifecycle step does to a keyring's acceptance of bare legacy
// signatures (Keyring.NoLegacy).
type Legacy string

// Legacy settings: keep the keyring's, accept bare signatures, refuse them.
const (
	LegacyKeep Legacy = ""
	LegacyOn   Legacy = "on"
	LegacyOff  Legacy = "off"
)

// ParseLegacy reads a --legacy value: keep, on or off.
func ParseLegacy(s string) (Legacy, error) {
	switch Legacy(s) {
	case "keep", LegacyKeep:
		return LegacyKeep, nil
	case LegacyOn, LegacyOff:
		return Legacy(s), nil
	}
	return "", fmt.Errorf("%q is not keep, on or off", s)
}

// Delay is the activation delay in effect: ActivationDelay or its default.
func (o Options) Delay() time.Duration {
	if o.ActivationDelay == 0 {
		return DefaultActivationDelay
	}
	return o.ActivationDelay
}

// Window is the verify window in effect: VerifyWindow or its default.
func (o Options) Window() time.Duration {
	if o.VerifyWindow == 0 {
		return DefaultVerifyWindow
	}
	return o.VerifyWindow
}

func (o Options) check() error {
	switch d := o.Delay(); {
	case d < 0 || o.VerifyWindow < 0:
		return errors.New("keyring: activation delay and verify window must not be negative")
	case d < o.MinPropagation:
		return fmt.Errorf("keyring: activation delay %s is below the minimum propagation time %s: "+
			"pods that load the document late would reject the new key's signatures", d, o.MinPropagation)
	}
	return nil
}

// ms truncates to the document's precision so that what is encoded is what was computed.
func ms(t time.Time) time.Time { return t.UTC().Truncate(time.Millisecond) }

// ErrNoPrevious is returned by Rollback when there is no valid key to go back to.
var ErrNoPrevious = errors.New("keyring: no previous key is still valid to roll back to")

// ErrRestorePending is returned by Rollback while the key an earlier rollback restored is
// still pending: another rollback would withdraw it and undo the first.
var ErrRestorePending = errors.New("keyring: a rollback is already under way")

// Stage returns the next keyring: secret is added as a pending key that starts signing
// at now+ActivationDelay, and every other key expires VerifyWindow after that (or
// earlier if it already did). Expired keys and a held key are dropped (a held key never
// signed, so nothing made with it needs verifying). r may be nil for the first keyring,
// whose key signs at once.
func Stage(r *Keyring, now time.Time, secret Secret, o Options) (*Keyring, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	now = ms(now)
	if r == nil {
		return first(now, secret, o)
	}
	nb := now.Add(o.Delay())
	next := retire(withoutHeld(r.Prune(now)), nb.Add(o.Window()))
	if _, dup := next.Key(KeyID(secret)); dup {
		return nil, errors.New("keyring: the new secret is already in the keyring")
	}
	next.Keys = append(next.Keys, Key{ID: KeyID(secret), Secret: secret, NotBefore: nb})
	return finish(r, next, now, o)
}

// first is the keyring a store starts with: one key that signs from now.
func first(now time.Time, secret Secret, o Options) (*Keyring, error) {
	next := &Keyring{Keys: []Key{{ID: KeyID(secret), Secret: secret, NotBefore: now}}}
	return finish(&Keyring{}, next, now, o)
}

// Emergency returns a keyring in which secret signs from now and every other key is
// gone: signatures of a leaked key fail from the moment each pod loads it.
func Emergency(r *Keyring, now time.Time, secret Secret, o Options) (*Keyring, error) {
	now = ms(now)
	if r == nil {
		r = &Keyring{}
	}
	return finish(r, &Keyring{Keys: []Key{{ID: KeyID(secret), Secret: secret, NotBefore: now}}}, now, o)
}

// ErrNotHeld is returned by Promote when the keyring holds no such held key.
var ErrNotHeld = errors.New("keyring: no such held key")

// Hold returns the next keyring with secret added as a held key: it verifies everywhere
// and signs nowhere, for as long as it takes every member of the fleet to load it; every
// other key stays as it is. A held key already there is replaced (it never signed).
// Expired keys are dropped. The first keyring cannot be held: r must hold a key that signs.
func Hold(r *Keyring, now time.Time, secret Secret, o Options) (*Keyring, error) {
	now = ms(now)
	if r == nil {
		return nil, errors.New("keyring: the first keyring has no key to hold a new one beside: it signs at once")
	}
	next := withoutHeld(r.Prune(now))
	if _, ok := next.SigningKey(now); !ok {
		return nil, errors.New("keyring: no key signs now, so a new key cannot wait for a promotion: rotate with --emergency")
	}
	if _, dup := next.Key(KeyID(secret)); dup {
		return nil, errors.New("keyring: the new secret is already in the keyring")
	}
	next.Keys = append(next.Keys, Key{ID: KeyID(secret), Secret: secret})
	return finish(r, next, now, o)
}

// Promote makes the held key id sign from now+margin (the largest clock skew between
// the fleet's members: every member already verifies it, so a member that reads the
// promotion late rejects nothing) and every other key expire VerifyWindow after that.
// It fails with ErrNotHeld unless id is the held key.
func Promote(r *Keyring, now time.Time, id string, margin time.Duration, o Options) (*Keyring, error) {
	if r == nil {
		return nil, fmt.Errorf("%w: %s (the store holds no keyring)", ErrNotHeld, id)
	}
	if margin < 0 || o.VerifyWindow < 0 {
		return nil, errors.New("keyring: clock-skew margin and verify window must not be negative")
	}
	now = ms(now)
	held, ok := r.HeldKey()
	if !ok || held.ID != id {
		return nil, fmt.Errorf("%w: %s", ErrNotHeld, id)
	}
	nb := now.Add(margin)
	next := retire(withoutHeld(r.Prune(now)), nb.Add(o.Window()))
	for _, k := range next.Keys {
		if k.NotBefore.After(nb) {
			return nil, fmt.Errorf("keyring: key %s is pending until %s, after the promotion of %s: withdraw it first",
				k.ID, k.NotBefore.Format(time.RFC3339), id)
		}
	}
	held.NotBefore = nb
	next.Keys = append(next.Keys, held)
	return finish(r, next, now, o)
}

// withoutHeld returns a copy of r without its held key.
func withoutHeld(r *Keyring) *Keyring {
	next := r.clone()
	if _, ok := next.HeldKey(); ok {
		next.Keys = next.Keys[:len(next.Keys)-1]
	}
	return next
}

// Rollback makes the previous key sign again under a new generation. A held key is
// withdrawn and nothing else changes. If the newest key is still pending, it is withdrawn
// and the current key keeps signing with no expiry.
// Otherwise the previous key is staged again: it becomes pending (it verifies all
// along), signs from now+ActivationDelay, and the key it replaces expires VerifyWindow
// later. Rollback fails with ErrNoPrevious when the previous key has expired.
func Rollback(r *Keyring, now time.Time, o Options) (*Keyring, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	if r == nil {
		return nil, ErrNoPrevious
	}
	now = ms(now)
	live := r.Prune(now)
	if _, held := live.HeldKey(); held {
		return finish(r, withoutHeld(live), now, o)
	}
	if len(live.Keys) == 0 {
		return nil, ErrNoPrevious
	}
	newest := live.Keys[len(live.Keys)-1]
	if newest.NotBefore.After(now) && newest.Restored && !o.Force {
		return nil, fmt.Errorf("%w: key %s, restored by the last rollback, signs from %s; another rollback would withdraw it and leave the key it replaces signing: wait for it, or --force to withdraw it",
			ErrRestorePending, newest.ID, newest.NotBefore.Format(time.RFC3339))
	}
	if newest.NotBefore.After(now) {
		next := live.clone()
		next.Keys = next.Keys[:len(next.Keys)-1]
		cur, ok := next.SigningKey(now)
		if !ok {
			return nil, ErrNoPrevious
		}
		for i := range next.Keys {
			if next.Keys[i].ID == cur.ID {
				next.Keys[i].NotAfter = time.Time{}
			}
		}
		return finish(r, next, now, o)
	}
	if len(live.Keys) < 2 {
		return nil, ErrNoPrevious
	}
	prev := live.Keys[len(live.Keys)-2]
	nb := now.Add(o.Delay())
	retired := retire(live, nb.Add(o.Window()))
	next := retired.clone()
	next.Keys = nil
	for _, k := range retired.Keys {
		if k.ID != prev.ID {
			next.Keys = append(next.Keys, k)
		}
	}
	next.Keys = append(next.Keys, Key{ID: prev.ID, Secret: prev.Secret, NotBefore: nb})
	out, err := finish(r, next, now, o)
	if err == nil {
		out.Keys[len(out.Keys)-1].Restored = true
	}
	return out, err
}

// Prune returns r without the keys that have expired at now. The generation is kept:
// the document is the same, only past keys are gone. The result may have no keys.
func (r *Keyring) Prune(now time.Time) *Keyring {
	next := r.clone()
	next.Keys = next.Keys[:0]
	for _, k := range r.Keys {
		if k.ValidAt(now) {
			next.Keys = append(next.Keys, k)
		}
	}
	return next
}

// retire returns a copy of r in which no key verifies after until.
func retire(r *Keyring, until time.Time) *Keyring {
	next := r.clone()
	for i, k := range next.Keys {
		if k.NotAfter.IsZero() || k.NotAfter.After(until) {
			next.Keys[i].NotAfter = until
		}
	}
	return next
}

func finish(prev, next *Keyring, now time.Time, o Options) (*Keyring, error) {
	for i := range next.Keys {
		next.Keys[i].Restored = false // only the key a rollback restores, until the next step
	}
	next.Generation = prev.Generation + 1
	next.RotatedAt = now
	next.RotatedBy = o.RotatedBy
	next.Reason = o.Reason
	next.NoLegacy = prev.NoLegacy
	switch o.Legacy {
	case LegacyOn:
		next.NoLegacy = false
	case LegacyOff:
		next.NoLegacy = true
	}
	sortKeys(next.Keys)
	if len(next.Keys) > MaxKeys {
		return nil, fmt.Errorf("keyring: %d live keys, the limit is %d: wait for the verify window to close or rotate with --emergency", len(next.Keys), MaxKeys)
	}
	if err := Validate(next); err != nil {
		return nil, err
	}
	return next, nil
}
