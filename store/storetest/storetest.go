// Package storetest is the contract every store backend passes: the same cases run
// against a real file system, a real Vault, a real kube-apiserver and the AWS emulator.
package storetest

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/sigil-dna/keysync/keyring"
	"github.com/sigil-dna/keysync/store"
)

// Plain values as the ticket makes them (`openssl rand -hex 32`): 64 hex characters, used
// byte for byte as the HMAC key.
const (
	Plain1 = "4e1f0a8c2b7d93e65f10c4a7b8d2e93f06a1c5b7d9e2f4a6c8b0d2e4f6a8c0b2"
	Plain2 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
	Plain3 = "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752"
)

// Secret returns a deterministic test secret.
func Secret(name string) keyring.Secret {
	s := sha256.Sum256([]byte("storetest " + name))
	return s[:]
}

// Run runs the contract against stores made by open; each call must give a store on a
// fresh, empty location.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Millisecond)
	first, _ := keyring.Stage(nil, now, Secret("1"), keyring.Options{RotatedBy: "storetest", Reason: "first"})
	second := mustStage(t, first, now.Add(time.Second), Secret("2"))
	third := mustStage(t, second, now.Add(2*time.Second), Secret("3"))

	t.Run("an empty store is not found", func(t *testing.T) {
		s := open(t)
		if _, err := s.Read(ctx); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("err = %v, want ErrNotFound", err)
		}
	})
	t.Run("write then read returns the same keyring", func(t *testing.T) {
		s := open(t)
		v1, err := s.Write(ctx, first, "")
		if err != nil {
			t.Fatal(err)
		}
		snap, err := s.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !snap.Keyring.Equal(first) || snap.Version != v1 || snap.Plain {
			t.Fatalf("read %+v version %q, wrote version %q", snap.Keyring, snap.Version, v1)
		}
		v2, err := s.Write(ctx, second, v1)
		if err != nil {
			t.Fatal(err)
		}
		snap, err = s.Read(ctx)
		if err != nil || !snap.Keyring.Equal(second) || snap.Version != v2 || v1 == v2 {
			t.Fatalf("after the second write: %v %+v", err, snap)
		}
	})
	t.Run("a write based on a stale version conflicts", func(t *testing.T) {
		s := open(t)
		v1, err := s.Write(ctx, first, "")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Write(ctx, second, v1); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Write(ctx, third, v1); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("stale write: err = %v, want ErrConflict", err)
		}
		if _, err := s.Write(ctx, third, ""); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("create over an existing keyring: err = %v, want ErrConflict", err)
		}
		snap, _ := s.Read(ctx)
		if !snap.Keyring.Equal(second) {
			t.Fatalf("a conflicting write changed the store: generation %d", snap.Keyring.Generation)
		}
	})
	t.Run("of concurrent writers from one version exactly one wins", func(t *testing.T) {
		s := open(t)
		v1, err := s.Write(ctx, first, "")
		if err != nil {
			t.Fatal(err)
		}
		const writers = 4
		var wg sync.WaitGroup
		errs := make([]error, writers)
		for i := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := mustStage(t, first, now.Add(time.Second), Secret(fmt.Sprint("writer ", i)))
				_, errs[i] = s.Write(ctx, r, v1)
			}()
		}
		wg.Wait()
		wins := 0
		for _, err := range errs {
			switch {
			case err == nil:
				wins++
			case !errors.Is(err, store.ErrConflict):
				t.Errorf("unexpected error: %v", err)
			}
		}
		if wins != 1 {
			t.Fatalf("%d writers won", wins)
		}
	})
}

func mustStage(t *testing.T, r *keyring.Keyring, at time.Time, s keyring.Secret) *keyring.Keyring {
	next, err := keyring.Stage(r, at, s, keyring.Options{RotatedBy: "storetest"})
	if err != nil {
		t.Error(err)
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
