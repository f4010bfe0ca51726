package keyring

// Plain values: a store that holds a bare secret (the ticket's `vault kv put … value=…`)
// rather than a keyring document, turned into the keyring every reader computes.

import (
	"fmt"
	"time"
)

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
