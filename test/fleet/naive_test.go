package main

import (
	"crypto/sha256"
	"testing"
	"time"

	"github.com/sigil-dna/keysync/keyring"
)

func TestNaiveSignsAtOnceAndKeepsTheOldKeyForTheWindow(t *testing.T) {
	secret := func(s string) keyring.Secret { h := sha256.Sum256([]byte(s)); return h[:] }
	t0 := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	r, _ := keyring.Stage(nil, t0, secret("a"), keyring.Options{})
	r, _ = keyring.Stage(r, t0.Add(time.Minute), secret("pending"), keyring.Options{ActivationDelay: time.Hour})
	at := t0.Add(2 * time.Minute)
	n, err := naive(r, at, secret("b"), keyring.Options{VerifyWindow: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if k, _ := n.SigningKey(at); k.ID != keyring.KeyID(secret("b")) || n.Generation != 3 {
		t.Fatalf("the naive key does not sign at once: %v, generation %d", k.ID, n.Generation)
	}
	if old, _ := n.Key(keyring.KeyID(secret("a"))); !old.NotAfter.Equal(at.Add(time.Minute)) {
		t.Fatalf("old key expires at %v", old.NotAfter)
	}
	if _, still := n.Key(keyring.KeyID(secret("pending"))); still {
		t.Fatal("a key pending for later would sign after the naive key")
	}
}
