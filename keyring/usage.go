package keyring

import (
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Verification results and key states as usage counts them (and both libraries' metrics
// label them).
const (
	ResultOK        = "ok"
	ResultBad       = "bad_signature"
	ResultExpired   = "expired_key"
	ResultUnknown   = "unknown_key"
	ResultMalformed = "malformed_signature"
	// ResultLegacyOff: a bare signature refused because the keyring switched them off.
	ResultLegacyOff = "legacy_off"
	// CodeNoSigningKey: signing found no key (ErrorCode; never a verification result).
	CodeNoSigningKey = "no_signing_key"
	// StateLegacy labels bare signatures (no key id): checked against every valid key.
	StateLegacy State = "legacy"
)

// Vocabulary is every word both libraries use for key states, verification results and
// error codes, in the order they are defined here. The test vectors carry it
// (testdata/vectors.json "vocabulary"), and the Node library's tests compare its own words
// with that list, so neither library can add or rename one alone.
func Vocabulary() map[string][]string {
	return map[string][]string{
		"states":       {string(StateHeld), string(StatePending), string(StateCurrent), string(StatePrevious), string(StateExpired)},
		"usage_states": statesOf(usageStates[:]),
		"results":      {ResultOK, ResultBad, ResultExpired, ResultUnknown, ResultMalformed, ResultLegacyOff},
		"error_codes":  {ResultMalformed, ResultUnknown, ResultExpired, ResultBad, CodeNoSigningKey, ResultLegacyOff},
		"legacy_state": {string(StateLegacy)},
	}
}

func statesOf(sts []State) []string {
	out := make([]string, len(sts))
	for i, st := range sts {
		out[i] = string(st)
	}
	return out
}

// usageStates are the states a keyed verification is counted under, in index order.
var usageStates = [...]State{StateHeld, StatePending, StateCurrent, StatePrevious}

// usageIndex is st's index in usageStates; -1 for StateExpired, which counts apart.
func usageIndex(st State) int8 {
	for i, u := range usageStates {
		if u == st {
			return int8(i)
		}
	}
	return -1
}

// Usage counts what keys verified and signed: per key id, verifications by the key's
// state at that instant and their result, signatures, and when the key last verified
// something; and the verifications no key can be named for (a malformed signature, an
// unknown key id, a bare signature that matched no key). It outlives a keyring: the reload
// library keeps one for the life of its handle and gives it to each new Signer, so the
// counts carry over reloads and a previous key can be seen draining to zero. Safe for
// concurrent use; the hot path adds to atomic counters only.
type Usage struct {
	mu   sync.Mutex
	keys map[string]*keyUsage

	unknown, malformed, legacyBad, legacyOff atomic.Uint64
}

type keyUsage struct {
	ok, bad [len(usageStates)]atomic.Uint64
	legacy  atomic.Uint64 // bare signatures that matched this key
	expired atomic.Uint64 // keyed signatures naming it after it expired
	signed  atomic.Uint64
	last    atomic.Int64 // unix seconds of the last good verification
}

// NewUsage returns empty counts.
func NewUsage() *Usage { return &Usage{keys: map[string]*keyUsage{}} }

func (u *Usage) key(id string) *keyUsage {
	u.mu.Lock()
	defer u.mu.Unlock()
	k := u.keys[id]
	if k == nil {
		k = &keyUsage{}
		u.keys[id] = k
	}
	return k
}

func (k *keyUsage) verified(sec int64) {
	if k.last.Load() < sec {
		k.last.Store(sec)
	}
}

// Count is one series of Usage: verifications of KeyID ("" when none can be named) in
// State with Result.
type Count struct {
	KeyID  string `json:"key_id"`
	State  State  `json:"state"`
	Result string `json:"result"`
	N      uint64 `json:"count"`
}

// KeyUsage is what one key did.
type KeyUsage struct {
	KeyID        string    `json:"key_id"`
	Signatures   uint64    `json:"signatures"`
	Verified     uint64    `json:"verified"`
	LastVerified time.Time `json:"last_verified,omitzero"`
}

// UsageSnapshot is Usage at one instant.
type UsageSnapshot struct {
	Verifications []Count    `json:"verifications"`
	Keys          []KeyUsage `json:"keys"`
}

// Snapshot returns the counts, non-zero only, sorted.
func (u *Usage) Snapshot() UsageSnapshot {
	s := UsageSnapshot{Verifications: []Count{}, Keys: []KeyUsage{}}
	add := func(id string, st State, res string, n uint64) {
		if n > 0 {
			s.Verifications = append(s.Verifications, Count{KeyID: id, State: st, Result: res, N: n})
		}
	}
	u.mu.Lock()
	ids := make([]string, 0, len(u.keys))
	for id := range u.keys {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	keys := make([]*keyUsage, len(ids))
	for i, id := range ids {
		keys[i] = u.keys[id]
	}
	u.mu.Unlock()
	for i, k := range keys {
		id := ids[i]
		ku := KeyUsage{KeyID: id, Signatures: k.signed.Load()}
		for j, st := range usageStates {
			ok := k.ok[j].Load()
			ku.Verified += ok
			add(id, st, ResultOK, ok)
			add(id, st, ResultBad, k.bad[j].Load())
		}
		legacy := k.legacy.Load()
		ku.Verified += legacy
		add(id, StateLegacy, ResultOK, legacy)
		add(id, StateExpired, ResultExpired, k.expired.Load())
		if sec := k.last.Load(); sec > 0 {
			ku.LastVerified = time.Unix(sec, 0).UTC()
		}
		s.Keys = append(s.Keys, ku)
	}
	add("", StateLegacy, ResultBad, u.legacyBad.Load())
	add("", StateLegacy, ResultLegacyOff, u.legacyOff.Load())
	add("", "", ResultUnknown, u.unknown.Load())
	add("", "", ResultMalformed, u.malformed.Load())
	slices.SortFunc(s.Verifications, func(a, b Count) int {
		return strings.Compare(a.KeyID+"|"+string(a.State)+"|"+a.Result, b.KeyID+"|"+string(b.State)+"|"+b.Result)
	})
	return s
}
