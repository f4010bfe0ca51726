package main

import (
	"time"

	"github.com/sigil-dna/keysync/keyring"
)

// naive is the ticket's original scheme, the benchmark's baseline, built from keyring's
// public API: secret signs from now, with no pending phase, and every other key verifies
// for the verify window more. Pods that reload at different moments then reject each
// other's signatures; that is what the baseline shows.
func naive(r *keyring.Keyring, now time.Time, secret keyring.Secret, o keyring.Options) (*keyring.Keyring, error) {
	now = now.UTC().Truncate(time.Millisecond)
	if r == nil {
		return keyring.Stage(nil, now, secret, o)
	}
	next := &keyring.Keyring{Generation: r.Generation + 1, RotatedAt: now, RotatedBy: o.RotatedBy, Reason: o.Reason}
	until := now.Add(o.Window())
	for _, k := range r.Prune(now).Keys {
		// Keys staged earlier but not yet active (or held) would otherwise sign after this one.
		if k.Held() || k.NotBefore.After(now) {
			continue
		}
		if k.NotAfter.IsZero() || k.NotAfter.After(until) {
			k.NotAfter = until
		}
		next.Keys = append(next.Keys, k)
	}
	next.Keys = append(next.Keys, keyring.Key{ID: keyring.KeyID(secret), Secret: secret, NotBefore: now})
	return next, keyring.Validate(next)
}
