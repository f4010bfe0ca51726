// Package sidecartest runs a real sidecar inside a test's process, with the app's reload
// library beside it, for the cross-layer tests.
package sidecartest

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/sigil-dna/keysync/reload"
	"github.com/sigil-dna/keysync/sidecar"
	"github.com/sigil-dna/keysync/store"
)

// Run starts a sidecar with cfg and stops it, checking it ended cleanly, when the test ends.
func Run(t testing.TB, cfg sidecar.Config) *sidecar.Sidecar {
	t.Helper()
	sc, err := sidecar.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sc.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("sidecar: %v", err)
		}
	})
	return sc
}

// WithApp runs a sidecar polling st every interval into a fresh directory and opens the
// keys file there with the reload library, as the app beside it does. It returns the
// sidecar, the keys file and the app's keyring, stopped and closed when the test ends.
func WithApp(t *testing.T, st store.Store, interval time.Duration) (*sidecar.Sidecar, string, *reload.Handle) {
	t.Helper()
	out := t.TempDir()
	sc := Run(t, sidecar.Config{Store: st, OutDir: out, Interval: interval, BackoffCap: 4 * interval})
	path := filepath.Join(out, "keys.json")
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	app, err := reload.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { app.Close() })
	return sc, path, app
}
