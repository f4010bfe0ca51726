package main

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/sigil-dna/keysync/keyring"
	"github.com/sigil-dna/keysync/store"
	"github.com/sigil-dna/keysync/store/file"
	"github.com/sigil-dna/keysync/store/storetest"
)

// TestStatusOfAHeldKeyHasNoCountdown: a held key (a Secrets Manager AWSPENDING value, or
// a key waiting for the fleet) signs when it is promoted, not at a time; status shows it
// held with no time left, while a staged key counts down to its activation.
func TestStatusOfAHeldKeyHasNoCountdown(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Millisecond)
	r, err := keyring.Stage(nil, now.Add(-time.Hour), storetest.Secret("current"), keyring.Options{})
	if err != nil {
		t.Fatal(err)
	}
	r, err = keyring.Stage(r, now, storetest.Secret("staged"), keyring.Options{})
	if err != nil {
		t.Fatal(err)
	}
	pend := keyring.Secret(storetest.Plain3)
	r.Keys = append(r.Keys, keyring.Key{ID: keyring.KeyID(pend), Secret: pend})
	if err := keyring.Validate(r); err != nil {
		t.Fatal(err)
	}
	st, err := file.New(filepath.Join(t.TempDir(), "keys.json"), store.PlainOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s := describeStore(st, &store.Snapshot{Keyring: r, Plain: true}, now)
	staged, promoted := s.Keys[1], s.Keys[2]
	if staged.State != keyring.StatePending || staged.LeftSeconds == nil || *staged.LeftSeconds != keyring.DefaultActivationDelay.Seconds() {
		t.Fatalf("staged key %+v", staged)
	}
	if promoted.State != keyring.StateHeld || promoted.LeftSeconds != nil || promoted.NotBefore != nil {
		t.Fatalf("held key %+v", promoted)
	}
}
