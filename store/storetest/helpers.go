package storetest

// Helpers for store tests beyond the contract: rotations and rollbacks without the rotate
// package, waiting, and counting the requests of idle polls.

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sigil-dna/keysync/keyring"
	"github.com/sigil-dna/keysync/store"
)

// Rotate stages a new key in s as a rotation does (read, keyring.Stage, write with
// compare-and-swap), for store tests that need generations without the rotate package.
func Rotate(t testing.TB, s store.Store, o keyring.Options) *keyring.Keyring {
	t.Helper()
	var prev *keyring.Keyring
	version := ""
	snap, err := s.Read(t.Context())
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		t.Fatal(err)
	default:
		prev, version = snap.Keyring, snap.Version
	}
	secret, err := keyring.NewSecret(keyring.MinSecretBytes)
	if err != nil {
		t.Fatal(err)
	}
	// Two stages within one millisecond would schedule two keys at the same instant,
	// which a keyring refuses: a store that answers that fast gets a millisecond more.
	time.Sleep(2 * time.Millisecond)
	next, err := keyring.Stage(prev, time.Now(), secret, o)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write(t.Context(), next, version); err != nil {
		t.Fatal(err)
	}
	return next
}

// WaitFor polls cond until it holds or ten seconds pass.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// IdlePolls reads s once, then n more times with nothing changed, for a caller that
// counts what the n polls cost.
func IdlePolls(t *testing.T, s store.Store, n int, before func()) {
	t.Helper()
	if _, err := s.Read(t.Context()); err != nil {
		t.Fatal(err)
	}
	before()
	for range n {
		if _, err := s.Read(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
}

// BenchIdlePoll measures reading s while nothing changes, as a sidecar's idle poll does,
// and reports the requests each poll makes: requests returns the count since its last
// call (a counting server's).
func BenchIdlePoll(b *testing.B, s store.Store, requests func() int) {
	ctx := context.Background()
	r, _ := keyring.Stage(nil, time.Now(), Secret("bench"), keyring.Options{})
	if _, err := s.Write(ctx, r, ""); err != nil {
		b.Fatal(err)
	}
	if _, err := s.Read(ctx); err != nil {
		b.Fatal(err)
	}
	requests()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Read(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(requests())/float64(b.N), "requests/poll")
}

// Rollback rolls s back as a rotation does (read, keyring.Rollback, write with
// compare-and-swap).
func Rollback(t testing.TB, s store.Store, o keyring.Options) *keyring.Keyring {
	t.Helper()
	snap, err := s.Read(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	next, err := keyring.Rollback(snap.Keyring, time.Now(), o)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write(t.Context(), next, snap.Version); err != nil {
		t.Fatal(err)
	}
	return next
}
