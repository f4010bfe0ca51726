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

// PlainValue is one version of a store that holds a bare secret rather than a keyring
// document (`vault kv put … value=$(openssl rand -hex 32)`).
type PlainValue struct {
	// Value is used byte for byte as the HMAC key, exactly as the existing service uses
	// SPIRAL_EVENT_SECRET: a hex string is not decoded.
	Value Secret
	// CreatedAt is the store's own timestamp of this version, the same for every reader.
	CreatedAt time.Time
	// Version is the store's version number of this value (1, 2, …).
	Version int64
}

// The staging rule for plain values, the one every reader applies to a store's own
// version history (its values and their store timestamps), so that every reader computes
// the same schedule:
//
//   - the oldest value known signs from its creation;
//   - every later value is staged at its creation: it signs from CreatedAt+ActivationDelay
//     (never before the value before it: a clock that ran behind moves the new value
//     later, never an older one earlier), and every earlier key verifies until
//     VerifyWindow after that or until it already stopped, whichever is earlier (Stage's
//     rule);
//   - a value equal to one before it (a metadata-only write) changes nothing; one seen
//     again after others is staged again.
//
// A new value therefore never moves an older value's schedule and never drops a key
// before its not_after, however many values arrive within one activation delay.

// FromPlain is FromPlainHistory of the current value and, if known, the one before it,
// with nothing pruned.
func FromPlain(current PlainValue, previous *PlainValue, o Options, rotatedBy string) (*Keyring, error) {
	values := []PlainValue{current}
	if previous != nil {
		values = []PlainValue{*previous, current}
	}
	return FromPlainHistory(values, time.Time{}, o, rotatedBy)
}

// FromPlainHistory turns a store's plain values, oldest first, into the keyring of the
// staging rule above, leaving out the keys that no longer verify at now (zero: none
// left out). A value's Value may be nil if that value no longer verifies at now
// (PlainLive says which values are needed). Generation is the newest value's store
// version. rotatedBy names the source (for example "vault kv secret/sigil/spiral-event-secret").
func FromPlainHistory(values []PlainValue, now time.Time, o Options, rotatedBy string) (*Keyring, error) {
	if len(values) == 0 {
		return nil, invalid("value", "no plain value")
	}
	current := values[len(values)-1]
	switch {
	case current.Version <= 0:
		return nil, invalid("generation", "plain value has no positive store version")
	case current.CreatedAt.IsZero():
		return nil, invalid("value", "plain value has no store timestamp")
	}
	keys, err := plainKeys(values, o)
	if err != nil {
		return nil, err
	}
	r := &Keyring{Generation: current.Version, RotatedAt: keys[len(keys)-1].created, RotatedBy: rotatedBy}
	for i, k := range keys {
		if !now.IsZero() && i < len(keys)-1 && !k.NotAfter.After(ms(now)) {
			continue
		}
		if k.Secret == nil {
			return nil, invalid("value", "plain value of store version %d verifies until %s and was not read", k.version, k.NotAfter.Format(time.RFC3339))
		}
		name := "value."
		if i < len(keys)-1 {
			name = fmt.Sprintf("value of store version %d.", k.version)
		}
		if err := validateKey(func(n string) string { return name + n }, k.Key); err != nil {
			return nil, err
		}
		r.Keys = append(r.Keys, k.Key)
	}
	return r, Validate(r)
}

// plainKey is a key of the staging rule with where it came from.
type plainKey struct {
	Key
	created time.Time
	version int64
}

// plainKeys applies the staging rule to values, oldest first.
func plainKeys(values []PlainValue, o Options) ([]plainKey, error) {
	var keys []plainKey
	for _, v := range values {
		if v.CreatedAt.IsZero() {
			return nil, invalid("value", "plain value of store version %d has no store timestamp", v.Version)
		}
		keys = stagePlain(keys, v, o)
	}
	return keys, nil
}

// stagePlain is one step of the staging rule: v after keys.
func stagePlain(keys []plainKey, v PlainValue, o Options) []plainKey {
	id := ""
	if v.Value != nil {
		id = KeyID(v.Value)
	}
	created := ms(v.CreatedAt)
	if len(keys) == 0 {
		return []plainKey{{Key{ID: id, Secret: v.Value, NotBefore: created}, created, v.Version}}
	}
	last := keys[len(keys)-1]
	if id != "" && id == last.ID {
		keys[len(keys)-1].version = v.Version
		return keys
	}
	nb := created.Add(o.Delay())
	if !nb.After(last.NotBefore) {
		nb = last.NotBefore.Add(time.Millisecond)
	}
	until := nb.Add(o.Window())
	kept := make([]plainKey, 0, len(keys)+1)
	for _, k := range keys {
		if id != "" && k.ID == id {
			continue // seen again: staged anew below
		}
		if k.NotAfter.IsZero() || k.NotAfter.After(until) {
			k.NotAfter = until
		}
		kept = append(kept, k)
	}
	return append(kept, plainKey{Key{ID: id, Secret: v.Value, NotBefore: nb}, created, v.Version})
}

// PlainLive returns the index of the oldest of a store's plain values (by their store
// timestamps, oldest first) that still verifies at now: the values a reader must read.
func PlainLive(created []time.Time, now time.Time, o Options) int {
	values := make([]PlainValue, len(created))
	for i, c := range created {
		values[i] = PlainValue{CreatedAt: c, Version: int64(i + 1)}
	}
	keys, err := plainKeys(values, o)
	if err != nil {
		return 0
	}
	for i, k := range keys[:len(keys)-1] {
		if k.NotAfter.After(ms(now)) {
			return i
		}
	}
	return len(created) - 1
}

// CompletePlain completes the current plain value of a store that keeps no history (a
// Kubernetes Secret, a local file) with the keyring the reader already holds, have (the
// sidecar's keys file; nil for a reader that holds nothing). It is the one rule every
// reader applies, so its result depends only on the value and what the reader held:
//
//   - the value is a key of have that is not held: have is returned as it is,
//     generation and schedule included. Nothing about the value changed (a label or
//     annotation edit moves the store's version and timestamps, not the key);
//   - the value is new: it is staged from its store timestamp after have's keys by the
//     staging rule above (have's keys keep their schedule; each verifies until its
//     not_after or VerifyWindow after the new value signs, whichever is earlier); the
//     generation is the store's version, or have's plus one if that is not larger;
//   - have is nil: the value signs from its creation. A reader that starts after the
//     value changed never saw the previous one: it cannot verify signatures made with
//     it, and it signs with the new value at once (which every other reader already
//     verifies, pending).
func CompletePlain(current PlainValue, have *Keyring, o Options, rotatedBy string) (*Keyring, error) {
	var kept []Key
	if have != nil {
		for _, k := range have.Keys {
			if !k.Held() {
				kept = append(kept, k)
			}
		}
	}
	if len(kept) == 0 {
		return FromPlain(current, nil, o, rotatedBy)
	}
	if kept[len(kept)-1].ID == KeyID(current.Value) {
		return have, nil
	}
	if current.Version <= have.Generation {
		current.Version = have.Generation + 1
	}
	if current.CreatedAt.IsZero() {
		return nil, invalid("value", "plain value has no store timestamp")
	}
	var keys []plainKey
	for _, k := range kept {
		keys = append(keys, plainKey{k, k.NotBefore, have.Generation})
	}
	keys = stagePlain(keys, current, o)
	next := &Keyring{Generation: current.Version, RotatedAt: ms(current.CreatedAt), RotatedBy: rotatedBy, NoLegacy: have.NoLegacy}
	for _, k := range keys {
		next.Keys = append(next.Keys, k.Key)
	}
	if err := validateKey(func(n string) string { return "value." + n }, next.Keys[len(next.Keys)-1]); err != nil {
		return nil, err
	}
	return next, Validate(next)
}
