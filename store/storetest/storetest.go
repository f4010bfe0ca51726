// Package storetest is the contract every store backend passes, against its real test
// server: a real file system, a real Vault, a real kube-apiserver, the AWS emulator or
// the fakes where no emulator shows a behaviour. What a backend can do beyond reading and
// writing (watch, plain values, planting an invalid document, an outage, throttling) is
// declared in its Backend, and the matching cases run.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sigil-dna/keysync/keyring"
	"github.com/sigil-dna/keysync/keyring/keyringtest"
	"github.com/sigil-dna/keysync/store"
)

// Plain values as the ticket makes them (`openssl rand -hex 32`): 64 hex characters, used
// byte for byte as the HMAC key.
const (
	Plain1 = "4e1f0a8c2b7d93e65f10c4a7b8d2e93f06a1c5b7d9e2f4a6c8b0d2e4f6a8c0b2"
	Plain2 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
	Plain3 = "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752"
)

// Schedule is the plain-value schedule every backend under the contract is opened with.
var Schedule = keyring.Options{ActivationDelay: 30 * time.Second, VerifyWindow: 5 * time.Minute}

// Secret returns a deterministic test secret (keyringtest.Secret).
func Secret(name string) keyring.Secret { return keyringtest.Secret("storetest " + name) }

// Backend describes a store to the contract.
type Backend struct {
	// Open returns a fixture on a fresh, empty location. Its stores use Schedule for plain
	// values and are closed when the test ends.
	Open func(t *testing.T) *Fixture
	// Watches: the store implements store.Watcher (checked both ways).
	Watches bool
	// PlainHistory: the store keeps earlier plain values, so a read returns the previous
	// value with the current one; without it (a Kubernetes Secret, a file), a read returns
	// the current value alone and a reader completes it with what it holds.
	PlainHistory bool
}

// Fixture is one fresh store location and the test server's hands on it. Optional
// capabilities are nil when the backend or its test server cannot offer them.
type Fixture struct {
	Store store.Store
	// URL is the --store URL of the location, for tests that run the CLI.
	URL string
	// Another opens a second store on the same location, as another pod would.
	Another func() store.Store
	// PutPlain writes a plain value the way the ticket's own commands do.
	PutPlain func(value string)
	// PutRaw writes doc as the stored document, bypassing keysync's validation.
	PutRaw func(doc string)
	// Outage makes the location unreachable for Store until restore is called.
	Outage func() (restore func())
	// Throttle makes the next n requests of Store fail as throttled.
	Throttle func(n int)
}

// Run runs the contract.
func Run(t *testing.T, b Backend) {
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Millisecond)
	first, _ := keyring.Stage(nil, now, Secret("1"), keyring.Options{RotatedBy: "storetest", Reason: "first"})
	second := mustStage(t, first, now.Add(time.Second), Secret("2"))
	third := mustStage(t, second, now.Add(2*time.Second), Secret("3"))

	t.Run("an empty store is not found", func(t *testing.T) {
		s := b.Open(t).Store
		if _, err := s.Read(ctx); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("err = %v, want ErrNotFound", err)
		}
	})
	t.Run("write then read returns the same keyring", func(t *testing.T) {
		s := b.Open(t).Store
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
	t.Run("a held key round-trips", func(t *testing.T) {
		s := b.Open(t).Store
		v1, err := s.Write(ctx, first, "")
		if err != nil {
			t.Fatal(err)
		}
		held, err := keyring.Hold(first, now.Add(time.Second), Secret("held"), keyring.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Write(ctx, held, v1); err != nil {
			t.Fatal(err)
		}
		snap, err := s.Read(ctx)
		if err != nil || !snap.Keyring.Equal(held) {
			t.Fatalf("%v %+v", err, snap)
		}
		if k, ok := snap.Keyring.HeldKey(); !ok || k.ID != keyring.KeyID(Secret("held")) {
			t.Fatalf("no held key after a read: %+v", snap.Keyring.Keys)
		}
	})
	t.Run("a write based on a stale version conflicts", func(t *testing.T) {
		s := b.Open(t).Store
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
		s := b.Open(t).Store
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
	t.Run("close is idempotent", func(t *testing.T) {
		s := b.Open(t).Store
		if _, err := s.Write(ctx, first, ""); err != nil {
			t.Fatal(err)
		}
		for i := range 2 {
			if err := s.Close(); err != nil {
				t.Fatalf("close %d: %v", i+1, err)
			}
		}
	})
	// What the backend offers beyond reading and writing decides which cases run.
	offers := b.Open(t)
	if _, ok := offers.Store.(store.Watcher); ok != b.Watches {
		t.Errorf("declared Watches %v, but the store implements store.Watcher: %v", b.Watches, ok)
	}
	optional := []struct {
		name    string
		offered bool
		run     func(t *testing.T)
	}{
		{"a write is seen through another store's watch", b.Watches, func(t *testing.T) { watch(t, b, first) }},
		{"plain values", offers.PutPlain != nil, func(t *testing.T) { plainValues(t, b) }},
		{"a plain value over a keyring document", offers.PutPlain != nil, func(t *testing.T) { plainOverDocument(t, b) }},
		{"an invalid document is rejected", offers.PutRaw != nil, func(t *testing.T) { invalidDocuments(t, b) }},
		{"an outage is an error, never an empty store", offers.Outage != nil, func(t *testing.T) { outage(t, b, first) }},
		{"throttling is retried, then reported", offers.Throttle != nil, func(t *testing.T) { throttling(t, b, first) }},
	}
	for _, c := range optional {
		if !c.offered {
			t.Logf("%s: not offered by this backend or its test server", c.name)
			continue
		}
		t.Run(c.name, c.run)
	}
}

func watch(t *testing.T, b Backend, first *keyring.Keyring) {
	f := b.Open(t)
	w := f.Another().(store.Watcher)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	ch, err := w.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // a watch starting to list must not take the write for its start
	if _, err := f.Store.Write(ctx, first, ""); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatal("a write by another store was not seen")
	}
	snap, err := f.Another().Read(ctx)
	if err != nil || !snap.Keyring.Equal(first) {
		t.Fatalf("after the watch fired: %v %+v", err, snap)
	}
}

func invalidDocuments(t *testing.T, b Backend) {
	f := b.Open(t)
	good, _ := keyring.Stage(nil, time.Now(), Secret("before"), keyring.Options{})
	stale, err := f.Store.Write(t.Context(), good, "")
	if err != nil {
		t.Fatal(err)
	}
	var last *store.InvalidError
	for name, doc := range map[string]string{
		"generation zero": `{"version":1,"generation":0,"rotated_at":"2026-11-27T12:00:00Z","keys":[]}`,
		"truncated JSON":  `{"version":1,"generation":`,
		"a short key":     `{"version":1,"generation":1,"rotated_at":"2026-11-27T12:00:00Z","keys":[{"id":"0011223344556677","secret":"c2hvcnQ=","not_before":"2026-11-27T12:00:00Z"}]}`,
	} {
		f.PutRaw(doc)
		_, err := f.Store.Read(t.Context())
		if !errors.Is(err, keyring.ErrInvalid) {
			t.Fatalf("%s: err = %v, want keyring.ErrInvalid", name, err)
		}
		if strings.Contains(err.Error(), "c2hvcnQ=") {
			t.Fatalf("%s: the error quotes the document: %v", name, err)
		}
		if !errors.As(err, &last) || last.Version == "" {
			t.Fatalf("%s: the error does not carry the version holding the document: %v", name, err)
		}
	}
	// A write based on that version replaces the invalid document (rotate --emergency
	// --replace-invalid), and one based on another does not.
	r, _ := keyring.Emergency(nil, time.Now(), Secret("replacement"), keyring.Options{Reason: "replace invalid"})
	if _, err := f.Store.Write(t.Context(), r, stale); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("a write based on the version before the invalid document: err = %v, want ErrConflict", err)
	}
	if _, err := f.Store.Write(t.Context(), r, last.Version); err != nil {
		t.Fatalf("replacing the invalid document: %v", err)
	}
	if snap, err := f.Store.Read(t.Context()); err != nil || !snap.Keyring.Equal(r) {
		t.Fatalf("after the replacement: %v %+v", err, snap)
	}
}

func outage(t *testing.T, b Backend, first *keyring.Keyring) {
	f := b.Open(t)
	v, err := f.Store.Write(t.Context(), first, "")
	if err != nil {
		t.Fatal(err)
	}
	// A watching store reads from what its watch delivered: while the watch is broken,
	// that is stale and must not be served as current (regression: a Kubernetes store
	// served its informer cache through an API outage, so the sidecar reported no
	// staleness). It may take the watch a moment to notice.
	notice := time.Duration(0)
	if w, ok := f.Store.(store.Watcher); ok {
		if _, err := w.Watch(t.Context()); err != nil {
			t.Fatal(err)
		}
		notice = 15 * time.Second
	}
	if _, err := f.Store.Read(t.Context()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // a watch has synced
	restore := f.Outage()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	deadline := time.Now().Add(notice)
	_, err = f.Store.Read(ctx)
	for err == nil && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		_, err = f.Store.Read(ctx)
	}
	if err == nil || errors.Is(err, store.ErrNotFound) || errors.Is(err, keyring.ErrInvalid) {
		t.Fatalf("read during the outage: err = %v, want an error that is neither not found nor invalid", err)
	}
	wctx, wcancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer wcancel()
	next := mustStage(t, first, time.Now(), Secret("during outage"))
	if _, err := f.Store.Write(wctx, next, v); err == nil {
		t.Fatal("a write during the outage succeeded")
	}
	restore()
	// A client may wait out its reconnect backoff: the store must be read again within
	// seconds of the server's return, with what it held.
	var snap *store.Snapshot
	deadline = time.Now().Add(15 * time.Second)
	for snap, err = f.Store.Read(t.Context()); err != nil && time.Now().Before(deadline); snap, err = f.Store.Read(t.Context()) {
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil || !snap.Keyring.Equal(first) {
		t.Fatalf("after the outage: %v %+v", err, snap)
	}
}

func throttling(t *testing.T, b Backend, first *keyring.Keyring) {
	f := b.Open(t)
	if _, err := f.Store.Write(t.Context(), first, ""); err != nil {
		t.Fatal(err)
	}
	f.Throttle(2)
	if snap, err := f.Store.Read(t.Context()); err != nil || !snap.Keyring.Equal(first) {
		t.Fatalf("two throttled requests were not retried: %v", err)
	}
	f.Throttle(1000)
	_, err := f.Store.Read(t.Context())
	if err == nil || !strings.Contains(strings.ToLower(err.Error()), "throttl") {
		t.Fatalf("throttled for good: err = %v, want one that says so", err)
	}
	// A caller with a backoff of its own (the sidecar) is the only retry of its read.
	f.Throttle(1)
	if _, err := f.Store.Read(store.CallerRetries(t.Context())); err == nil {
		t.Fatal("a read whose caller retries was retried inside the store")
	}
	f.Throttle(0)
	if _, err := f.Store.Read(store.CallerRetries(t.Context())); err != nil {
		t.Fatalf("after the throttling: %v", err)
	}
}

func mustStage(t *testing.T, r *keyring.Keyring, at time.Time, s keyring.Secret) *keyring.Keyring {
	next, err := keyring.Stage(r, at, s, keyring.Options{RotatedBy: "storetest"})
	if err != nil {
		t.Error(err)
	}
	return next
}
