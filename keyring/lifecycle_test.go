package keyring

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func signer(t *testing.T, r *Keyring) *Signer {
	t.Helper()
	if err := Validate(r); err != nil {
		t.Fatal(err)
	}
	return NewSigner(r)
}

// TestStagedRotationWalkedThroughTime follows one rotation: pending verifies but does not
// sign, the switch happens at not_before, and the old key is refused after not_after.
func TestStagedRotationWalkedThroughTime(t *testing.T) {
	a, b := testSecret("a"), testSecret("b")
	r1, err := Stage(nil, t0, a, Options{})
	if err != nil {
		t.Fatal(err)
	}
	rotateAt := t0.Add(time.Hour)
	r2, err := Stage(r1, rotateAt, b, Options{RotatedBy: "ops", Reason: "cadence"})
	if err != nil {
		t.Fatal(err)
	}
	if r2.Generation != 2 || r2.RotatedBy != "ops" || r2.Reason != "cadence" || !r2.RotatedAt.Equal(rotateAt) {
		t.Fatalf("metadata: %+v", r2)
	}
	switchAt := rotateAt.Add(DefaultActivationDelay)
	expireAt := switchAt.Add(DefaultVerifyWindow)
	s := signer(t, r2)
	payload := []byte(`{"event":"x"}`)
	sigA, _ := NewSigner(r1).Sign(rotateAt, payload)

	steps := map[string]struct {
		at          time.Time
		signer      string
		stateA      State
		stateB      State
		oldVerifies error
	}{
		"while b is pending a signs and b verifies": {rotateAt.Add(time.Second), KeyID(a), StateCurrent, StatePending, nil},
		"one millisecond before the switch":         {switchAt.Add(-time.Millisecond), KeyID(a), StateCurrent, StatePending, nil},
		"at not_before b signs":                     {switchAt, KeyID(b), StatePrevious, StateCurrent, nil},
		"just before not_after a still verifies":    {expireAt.Add(-time.Millisecond), KeyID(b), StatePrevious, StateCurrent, nil},
		"at not_after a is refused":                 {expireAt, KeyID(b), StateExpired, StateCurrent, ErrExpiredKey},
	}
	for name, st := range steps {
		t.Run(name, func(t *testing.T) {
			k, ok := r2.SigningKey(st.at)
			if !ok || k.ID != st.signer {
				t.Fatalf("signing key = %s, want %s", k.ID, st.signer)
			}
			if got := r2.StateAt(r2.Keys[0], st.at); got != st.stateA {
				t.Errorf("a is %s, want %s", got, st.stateA)
			}
			if got := r2.StateAt(r2.Keys[1], st.at); got != st.stateB {
				t.Errorf("b is %s, want %s", got, st.stateB)
			}
			sig, err := s.Sign(st.at, payload)
			if err != nil || !strings.Contains(sig, st.signer) {
				t.Fatalf("sign: %q %v", sig, err)
			}
			if err := s.Verify(st.at, payload, sig); err != nil {
				t.Fatalf("own signature: %v", err)
			}
			if err := s.Verify(st.at, payload, sigA); !errors.Is(err, st.oldVerifies) {
				t.Fatalf("old signature: %v, want %v", err, st.oldVerifies)
			}
			// b's signature verifies at every step, pending included.
			sigB, _ := NewSigner(&Keyring{Generation: 9, RotatedAt: t0, Keys: []Key{r2.Keys[1]}}).Sign(st.at, payload)
			if err := s.Verify(st.at, payload, sigB); err != nil {
				t.Fatalf("new key's signature: %v", err)
			}
		})
	}
	if got := len(r2.Prune(expireAt).Keys); got != 1 {
		t.Fatalf("prune at not_after left %d keys", got)
	}
	if got := len(r2.Prune(expireAt.Add(-time.Millisecond)).Keys); got != 2 {
		t.Fatalf("prune before not_after left %d keys", got)
	}
	if n := r2.NextChange(rotateAt); !n.Equal(switchAt) {
		t.Fatalf("next change %s, want %s", n, switchAt)
	}
}

func TestStageRetiresEveryOlderKey(t *testing.T) {
	r, _ := Stage(nil, t0, testSecret("a"), Options{})
	r, _ = Stage(r, t0.Add(time.Minute), testSecret("b"), Options{})
	// Rotate again while b is still pending: a and b must both end by the new window.
	r, err := Stage(r, t0.Add(time.Minute+10*time.Second), testSecret("c"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	last := r.Keys[len(r.Keys)-1]
	if last.ID != KeyID(testSecret("c")) || !last.NotAfter.IsZero() {
		t.Fatalf("newest key: %+v", last)
	}
	for _, k := range r.Keys[:len(r.Keys)-1] {
		if k.NotAfter.IsZero() || k.NotAfter.After(last.NotBefore.Add(DefaultVerifyWindow)) {
			t.Fatalf("key %s not retired by the window: %v", k.ID, k.NotAfter)
		}
	}
}

func TestStageRefuses(t *testing.T) {
	r, _ := Stage(nil, t0, testSecret("a"), Options{})
	cases := map[string]struct {
		r      *Keyring
		secret Secret
		o      Options
		want   string
	}{
		"an activation delay below the minimum propagation": {r, testSecret("b"), Options{ActivationDelay: 5 * time.Second, MinPropagation: 10 * time.Second}, "below the minimum propagation"},
		"a negative window":                       {r, testSecret("b"), Options{VerifyWindow: -time.Second}, "negative"},
		"a secret that is already in the keyring": {r, testSecret("a"), Options{}, "already in the keyring"},
		"a short secret":                          {r, Secret("short"), Options{}, "at least 32"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := Stage(tc.r, t0.Add(time.Hour), tc.secret, tc.o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestStageRefusesMoreLiveKeysThanTheBound(t *testing.T) {
	r, _ := Stage(nil, t0, testSecret("0"), Options{})
	var err error
	for i := 1; i <= MaxKeys; i++ {
		r, err = Stage(r, t0.Add(time.Duration(i)*time.Second), testSecret(string(rune('a'+i))), Options{})
		if err != nil {
			if i != MaxKeys || !strings.Contains(err.Error(), "--emergency") {
				t.Fatalf("rotation %d: %v", i, err)
			}
			return
		}
	}
	t.Fatal("no limit")
}

func TestEmergencyDropsEveryOtherKey(t *testing.T) {
	r, _ := Stage(nil, t0, testSecret("a"), Options{})
	r, _ = Stage(r, t0.Add(time.Hour), testSecret("b"), Options{})
	at := t0.Add(time.Hour + 10*time.Second)
	e, err := Emergency(r, at, testSecret("c"), Options{Reason: "leak"})
	if err != nil {
		t.Fatal(err)
	}
	if len(e.Keys) != 1 || e.Keys[0].ID != KeyID(testSecret("c")) || e.Generation != 3 || e.Reason != "leak" {
		t.Fatalf("emergency keyring: %+v", e)
	}
	if k, _ := e.SigningKey(at); k.ID != KeyID(testSecret("c")) {
		t.Fatal("emergency key does not sign at once")
	}
	sigA, _ := NewSigner(r).Sign(at, []byte("p"))
	if err := NewSigner(e).Verify(at, []byte("p"), sigA); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("leaked key still verifies: %v", err)
	}
	// A clock 5 s behind sees the emergency key as pending and still signs with it.
	if k, ok := e.SigningKey(at.Add(-5 * time.Second)); !ok || k.ID != KeyID(testSecret("c")) {
		t.Fatal("a lagging clock has no signing key after an emergency rotation")
	}
}

func TestRollback(t *testing.T) {
	a, b := testSecret("a"), testSecret("b")
	r1, _ := Stage(nil, t0, a, Options{})
	r2, _ := Stage(r1, t0.Add(time.Hour), b, Options{})
	pendingAt := t0.Add(time.Hour + 10*time.Second)
	activeAt := t0.Add(time.Hour + 5*time.Minute)

	t.Run("a pending key is withdrawn and the current key keeps signing forever", func(t *testing.T) {
		rb, err := Rollback(r2, pendingAt, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if len(rb.Keys) != 1 || rb.Keys[0].ID != KeyID(a) || !rb.Keys[0].NotAfter.IsZero() || rb.Generation != 3 {
			t.Fatalf("%+v", rb.Keys)
		}
	})
	t.Run("an active key hands signing back to the previous key after the delay", func(t *testing.T) {
		rb, err := Rollback(r2, activeAt, Options{Reason: "bad deploy"})
		if err != nil {
			t.Fatal(err)
		}
		if rb.Generation != 3 || rb.Reason != "bad deploy" {
			t.Fatalf("%+v", rb)
		}
		s := NewSigner(rb)
		for name, at := range map[string]time.Time{
			"during the delay b signs":      activeAt.Add(time.Second),
			"after the delay a signs again": activeAt.Add(DefaultActivationDelay),
		} {
			k, _ := rb.SigningKey(at)
			want := KeyID(b)
			if strings.HasPrefix(name, "after") {
				want = KeyID(a)
			}
			if k.ID != want {
				t.Errorf("%s: signing key %s", name, k.ID)
			}
			// Both keys verify throughout.
			for _, sec := range []Secret{a, b} {
				sig, _ := NewSigner(&Keyring{Generation: 1, RotatedAt: t0, Keys: []Key{{ID: KeyID(sec), Secret: sec, NotBefore: t0}}}).Sign(at, []byte("p"))
				if err := s.Verify(at, []byte("p"), sig); err != nil {
					t.Errorf("%s: %v", name, err)
				}
			}
		}
		if k, _ := rb.Key(KeyID(b)); k.NotAfter.IsZero() {
			t.Error("the rolled-back key never expires")
		}
	})
	t.Run("no previous key", func(t *testing.T) {
		if _, err := Rollback(r1, t0.Add(time.Hour), Options{}); !errors.Is(err, ErrNoPrevious) {
			t.Fatalf("err = %v", err)
		}
		late := t0.Add(time.Hour + DefaultActivationDelay + DefaultVerifyWindow + time.Second)
		if _, err := Rollback(r2, late, Options{}); !errors.Is(err, ErrNoPrevious) {
			t.Fatalf("after the window: err = %v", err)
		}
	})
}

func TestFromPlain(t *testing.T) {
	// `openssl rand -hex 32` prints 64 hex digits; they are the key, byte for byte.
	cur := Secret("9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08")
	prev := Secret("60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752")
	created := t0.Add(time.Hour)

	t.Run("one value signs from its creation", func(t *testing.T) {
		r, err := FromPlain(PlainValue{Value: cur, CreatedAt: created, Version: 1}, nil, Options{}, "vault kv")
		if err != nil {
			t.Fatal(err)
		}
		if r.Generation != 1 || len(r.Keys) != 1 || !r.Keys[0].NotBefore.Equal(created) || string(r.Keys[0].Secret) != string(cur) {
			t.Fatalf("%+v", r)
		}
	})
	t.Run("a new value is staged from its store timestamp", func(t *testing.T) {
		r, err := FromPlain(PlainValue{Value: cur, CreatedAt: created, Version: 5}, &PlainValue{Value: prev, CreatedAt: t0, Version: 4}, Options{}, "vault kv")
		if err != nil {
			t.Fatal(err)
		}
		if r.Generation != 5 || len(r.Keys) != 2 {
			t.Fatalf("%+v", r)
		}
		if k, _ := r.SigningKey(created.Add(time.Second)); k.ID != KeyID(prev) {
			t.Error("the new value signs before the activation delay")
		}
		if k, _ := r.SigningKey(created.Add(DefaultActivationDelay)); k.ID != KeyID(cur) {
			t.Error("the new value does not sign after the activation delay")
		}
		after := created.Add(DefaultActivationDelay + DefaultVerifyWindow)
		if got := len(slices.DeleteFunc(slices.Clone(r.Keys), func(k Key) bool { return !k.ValidAt(after) })); got != 1 {
			t.Errorf("%d keys verify after the window", got)
		}
		again, _ := FromPlain(PlainValue{Value: cur, CreatedAt: created, Version: 5}, &PlainValue{Value: prev, CreatedAt: t0, Version: 4}, Options{}, "vault kv")
		if !again.Equal(r) {
			t.Error("two readers computed different schedules")
		}
	})
	t.Run("a short plain value is refused", func(t *testing.T) {
		_, err := FromPlain(PlainValue{Value: Secret("too-short"), CreatedAt: created, Version: 1}, nil, Options{}, "x")
		if err == nil || !strings.Contains(err.Error(), "value.secret") {
			t.Fatalf("err = %v", err)
		}
	})
}

// TestHeldKeyWaitsForItsPromotion follows a fleet-confirmed rotation: the held key
// verifies everywhere and signs nowhere, however long it waits; the promotion makes it
// sign from now+margin and starts the other keys' verify window then.
func TestHeldKeyWaitsForItsPromotion(t *testing.T) {
	a, b := testSecret("a"), testSecret("b")
	r1, _ := Stage(nil, t0, a, Options{})
	holdAt := t0.Add(time.Hour)
	held, err := Hold(r1, holdAt, b, Options{RotatedBy: "ops", Reason: "cadence"})
	if err != nil {
		t.Fatal(err)
	}
	hk, ok := held.HeldKey()
	if !ok || hk.ID != KeyID(b) || held.Generation != 2 || len(held.Keys) != 2 || !held.Keys[0].NotAfter.IsZero() {
		t.Fatalf("held keyring: %+v", held)
	}
	payload := []byte("event")
	sigB, _ := NewSigner(&Keyring{Generation: 1, RotatedAt: t0, Keys: []Key{{ID: KeyID(b), Secret: b, NotBefore: t0}}}).Sign(t0, payload)
	s := signer(t, held)
	for _, at := range []time.Time{holdAt, holdAt.Add(365 * 24 * time.Hour)} {
		if k, _ := held.SigningKey(at); k.ID != KeyID(a) {
			t.Fatalf("at %s the held key signs", at)
		}
		if held.StateAt(held.Keys[1], at) != StateHeld || held.StateAt(held.Keys[0], at) != StateCurrent {
			t.Fatalf("states at %s: %s %s", at, held.StateAt(held.Keys[0], at), held.StateAt(held.Keys[1], at))
		}
		if err := s.Verify(at, payload, sigB); err != nil {
			t.Fatalf("the held key does not verify at %s: %v", at, err)
		}
	}
	doc, _ := Encode(held)
	if back := mustParse(t, string(doc)); !back.Equal(held) || !strings.Contains(string(doc), `"held": true`) {
		t.Fatalf("held key does not round-trip:\n%s", doc)
	}

	promoteAt := holdAt.Add(10 * time.Minute)
	p, err := Promote(held, promoteAt, KeyID(b), 5*time.Second, Options{VerifyWindow: time.Minute, Reason: "promoted"})
	if err != nil {
		t.Fatal(err)
	}
	signFrom := promoteAt.Add(5 * time.Second)
	if p.Generation != 3 || !p.Keys[1].NotBefore.Equal(signFrom) || !p.Keys[0].NotAfter.Equal(signFrom.Add(time.Minute)) {
		t.Fatalf("promotion: %+v", p.Keys)
	}
	if k, _ := p.SigningKey(signFrom.Add(-time.Millisecond)); k.ID != KeyID(a) {
		t.Fatal("the promoted key signs before the margin passed")
	}
	if k, _ := p.SigningKey(signFrom); k.ID != KeyID(b) {
		t.Fatal("the promoted key does not sign after the margin")
	}

	t.Run("only the held key can be promoted", func(t *testing.T) {
		for name, id := range map[string]string{"the current key": KeyID(a), "an unknown key": KeyID(testSecret("x"))} {
			if _, err := Promote(held, promoteAt, id, 0, Options{}); !errors.Is(err, ErrNotHeld) {
				t.Errorf("%s: err = %v", name, err)
			}
		}
		if _, err := Promote(p, promoteAt, KeyID(b), 0, Options{}); !errors.Is(err, ErrNotHeld) {
			t.Errorf("promoted twice: err = %v", err)
		}
	})
	t.Run("a rollback withdraws the held key and changes nothing else", func(t *testing.T) {
		rb, err := Rollback(held, promoteAt, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if rb.Generation != 3 || len(rb.Keys) != 1 || rb.Keys[0].ID != KeyID(a) || !rb.Keys[0].NotAfter.IsZero() {
			t.Fatalf("after rollback: %+v", rb.Keys)
		}
	})
	t.Run("a new hold replaces a held key", func(t *testing.T) {
		c := testSecret("c")
		again, err := Hold(held, promoteAt, c, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if k, _ := again.HeldKey(); k.ID != KeyID(c) || len(again.Keys) != 2 {
			t.Fatalf("after a second hold: %+v", again.Keys)
		}
	})
	t.Run("a timed stage drops a held key", func(t *testing.T) {
		staged, err := Stage(held, promoteAt, testSecret("d"), Options{})
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := staged.HeldKey(); ok || len(staged.Keys) != 2 {
			t.Fatalf("after a stage: %+v", staged.Keys)
		}
	})
	t.Run("the first keyring cannot be held", func(t *testing.T) {
		if _, err := Hold(nil, t0, b, Options{}); err == nil {
			t.Fatal("held a first keyring")
		}
	})
	t.Run("a promotion under a key pending for later is refused", func(t *testing.T) {
		pending, _ := Stage(r1, holdAt, testSecret("later"), Options{ActivationDelay: time.Hour})
		h, err := Hold(pending, holdAt, b, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Promote(h, holdAt.Add(time.Minute), KeyID(b), 0, Options{}); err == nil || !strings.Contains(err.Error(), "pending until") {
			t.Fatalf("err = %v", err)
		}
	})
}

// TestASecondRollbackDoesNotUndoTheFirst: issue 34. rotate (B signs) → rollback (A
// pending again) → a second rollback withdrew A, the key the operator wanted back, and
// left B signing with no end. Now it refuses, naming A and when it signs; forced, it
// withdraws A as before.
func TestASecondRollbackDoesNotUndoTheFirst(t *testing.T) {
	a, b := testSecret("a"), testSecret("b")
	o := Options{ActivationDelay: time.Minute, VerifyWindow: 15 * time.Minute}
	r1, _ := Stage(nil, t0, a, o)
	r2, _ := Stage(r1, t0.Add(time.Hour), b, o)
	now := t0.Add(time.Hour + 5*time.Minute) // B signs, A verifies until its window ends
	r3, err := Rollback(r2, now, o)
	if err != nil {
		t.Fatal(err)
	}
	restored, _ := r3.Key(KeyID(a))
	if !restored.Restored || !restored.NotBefore.After(now) {
		t.Fatalf("the rollback did not restore A as pending: %+v", restored)
	}
	doc, _ := Encode(r3)
	if back, err := Parse(doc); err != nil || !back.Equal(r3) {
		t.Fatalf("a restored key does not survive its document: %v", err)
	}
	_, err = Rollback(r3, now.Add(10*time.Second), o)
	if !errors.Is(err, ErrRestorePending) || !strings.Contains(err.Error(), KeyID(a)) || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("a second rollback while A is pending: %v", err)
	}
	forced := o
	forced.Force = true
	r4, err := Rollback(r3, now.Add(10*time.Second), forced)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := r4.Key(KeyID(a)); ok {
		t.Fatal("a forced second rollback kept A")
	}
	// Once A signs again, a rollback goes back to B as any rollback would.
	later := restored.NotBefore.Add(time.Second)
	r5, err := Rollback(r3, later, o)
	if err != nil {
		t.Fatal(err)
	}
	if k, _ := r5.Key(KeyID(b)); !k.NotBefore.After(later) || !k.Restored {
		t.Fatalf("a rollback after A signs again restores B: %+v", k)
	}
	if k, _ := r5.Key(KeyID(a)); k.Restored {
		t.Fatal("A is still marked restored once it signs and another key is restored")
	}
	// A stage clears the mark.
	r6, _ := Stage(r3, later, testSecret("c"), o)
	for _, k := range r6.Keys {
		if k.Restored {
			t.Fatalf("a stage kept the restored mark on %s", k.ID)
		}
	}
}

// TestRollbackOfAHeldKeyAndAfterAPromotion: a rollback withdraws a held key and changes
// nothing else; after a promotion it restores the key the promotion replaced.
func TestRollbackOfAHeldKeyAndAfterAPromotion(t *testing.T) {
	a, b := testSecret("a"), testSecret("b")
	o := Options{ActivationDelay: time.Minute, VerifyWindow: 15 * time.Minute}
	r1, _ := Stage(nil, t0, a, o)
	held, err := Hold(r1, t0.Add(time.Hour), b, o)
	if err != nil {
		t.Fatal(err)
	}
	back, err := Rollback(held, t0.Add(time.Hour+time.Minute), o)
	if err != nil {
		t.Fatal(err)
	}
	if _, still := back.HeldKey(); still || len(back.Keys) != 1 || back.Keys[0].ID != KeyID(a) || back.Keys[0].Restored || !back.Keys[0].NotAfter.IsZero() {
		t.Fatalf("rollback of a held key: %v", schedule(back))
	}
	promoted, err := Promote(held, t0.Add(time.Hour+time.Minute), KeyID(b), 5*time.Second, o)
	if err != nil {
		t.Fatal(err)
	}
	at := t0.Add(time.Hour + 2*time.Minute) // b signs, a verifies for its window
	rb, err := Rollback(promoted, at, o)
	if err != nil {
		t.Fatal(err)
	}
	if k, _ := rb.Key(KeyID(a)); !k.Restored || !k.NotBefore.Equal(at.Add(time.Minute)) {
		t.Fatalf("rollback after a promotion: %v", schedule(rb))
	}
	if k, _ := rb.SigningKey(at); k.ID != KeyID(b) {
		t.Fatal("the promoted key stopped signing before the restored one signs")
	}
}
