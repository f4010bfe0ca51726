package storetest

// The plain-value cases of the contract.

import (
	"testing"
	"time"

	"github.com/sigil-dna/keysync/keyring"
)

func plainValues(t *testing.T, b Backend) {
	f := b.Open(t)
	t0 := time.Now().Add(-2 * time.Second) // store clocks have one-second precision here and there
	f.PutPlain(Plain1)
	one, err := f.Store.Read(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	r1, err := one.Complete(nil)
	if err != nil || !one.Plain || len(r1.Keys) != 1 || string(r1.Keys[0].Secret) != Plain1 {
		t.Fatalf("the first plain value: %v %+v", err, one)
	}
	if k, ok := r1.SigningKey(time.Now()); !ok || k.ID != keyring.KeyID(keyring.Secret(Plain1)) {
		t.Fatal("a sole plain value does not sign at once")
	}
	time.Sleep(1100 * time.Millisecond)
	f.PutPlain(Plain2)
	t1 := time.Now().Add(2 * time.Second)
	two, err := f.Store.Read(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if !two.Plain {
		t.Fatal("the second plain value is not plain")
	}
	switch {
	case b.PlainHistory && two.PlainCurrent != nil:
		t.Fatal("a store with history asks the reader to complete the value")
	case !b.PlainHistory && (two.PlainCurrent == nil || len(two.Keyring.Keys) != 1 || two.Schedule != Schedule):
		t.Fatalf("a store without history must give the current value alone, with its schedule: %+v", two)
	}
	r2, err := two.Complete(r1)
	if err != nil {
		t.Fatal(err)
	}
	if len(r2.Keys) != 2 || string(r2.Keys[0].Secret) != Plain1 || string(r2.Keys[1].Secret) != Plain2 || r2.Generation <= r1.Generation {
		t.Fatalf("previous and current value: %+v", r2)
	}
	cur, prev := r2.Keys[1], r2.Keys[0]
	if cur.NotBefore.Before(t0.Add(Schedule.ActivationDelay)) || cur.NotBefore.After(t1.Add(Schedule.ActivationDelay)) ||
		!prev.NotAfter.Equal(cur.NotBefore.Add(Schedule.VerifyWindow)) {
		t.Fatalf("schedule: the new value signs from %s (written between %s and %s, delay %s), the old one verifies until %s",
			cur.NotBefore, t0, t1, Schedule.ActivationDelay, prev.NotAfter)
	}
	// Issue 29: a third value within the activation delay (the ticket's command retried)
	// keeps the first, which still signs, and moves nobody's schedule.
	time.Sleep(1100 * time.Millisecond)
	f.PutPlain(Plain3)
	three, err := f.Store.Read(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	r3, err := three.Complete(r2)
	if err != nil {
		t.Fatal(err)
	}
	if len(r3.Keys) != 3 || string(r3.Keys[2].Secret) != Plain3 || r3.Generation <= r2.Generation {
		t.Fatalf("three values within the activation delay: %d keys %v, generation %d", len(r3.Keys), r3.IDs(), r3.Generation)
	}
	if k, ok := r3.SigningKey(time.Now()); !ok || k.ID != prev.ID {
		t.Fatalf("after the third value %s signs, want the first value %s (the second signs from %s)", k.ID, prev.ID, cur.NotBefore)
	}
	for _, k := range r2.Keys {
		if got, ok := r3.Key(k.ID); !ok || !got.NotBefore.Equal(k.NotBefore) || (!k.NotAfter.IsZero() && !got.NotAfter.Equal(k.NotAfter)) {
			t.Fatalf("the third value moved key %s: %s..%s, then %s..%s", k.ID, k.NotBefore, k.NotAfter, got.NotBefore, got.NotAfter)
		}
	}
	// Reading again what did not change gives what the reader holds.
	again, err := f.Store.Read(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if r4, err := again.Complete(r3); err != nil || !r4.Equal(r3) {
		t.Fatalf("an unchanged value re-read: %v %+v", err, r4)
	}
}

// plainOverDocument: the ticket's command run on a store keysync rotates (issue 29, found
// by the soak). The plain value signed at once and the document's keys were dropped, so
// every pod that read it refused the signatures of every pod that had not yet.
func plainOverDocument(t *testing.T, b Backend) {
	f := b.Open(t)
	doc, err := keyring.Stage(nil, time.Now().Add(-time.Hour), Secret("document key"), keyring.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Store.Write(t.Context(), doc, ""); err != nil {
		t.Fatal(err)
	}
	have := doc
	if snap, err := f.Store.Read(t.Context()); err == nil {
		have = snap.Keyring // what a reader holds
	}
	t0 := time.Now().Add(-2 * time.Second)
	f.PutPlain(Plain1)
	snap, err := f.Store.Read(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	r, err := snap.Complete(have)
	if err != nil {
		t.Fatal(err)
	}
	docKey, plainKey := doc.Keys[0].ID, keyring.KeyID(keyring.Secret(Plain1))
	if k, ok := r.SigningKey(time.Now()); !ok || k.ID != docKey {
		t.Fatalf("right after the plain value, %s signs; want the document's key %s until the value activates (keys %v)", k.ID, docKey, r.IDs())
	}
	p, ok := r.Key(plainKey)
	if !ok || p.NotBefore.Before(t0.Add(Schedule.ActivationDelay)) {
		t.Fatalf("the plain value: %+v (in %v), want it pending for the activation delay", p, r.IDs())
	}
	if d, _ := r.Key(docKey); !d.NotAfter.Equal(p.NotBefore.Add(Schedule.VerifyWindow)) {
		t.Fatalf("the document's key verifies until %s, want the window after the plain value signs (%s)", d.NotAfter, p.NotBefore)
	}
}
