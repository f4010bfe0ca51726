// Package sidecartest runs a sidecar inside a test's process, for the store packages'
// end-to-end tests.
package sidecartest

import (
	"context"
	"testing"

	"github.com/sigil-dna/keysync/sidecar"
)

// Run starts a sidecar with cfg and stops it, checking it ended cleanly, when the test ends.
func Run(t *testing.T, cfg sidecar.Config) *sidecar.Sidecar {
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
