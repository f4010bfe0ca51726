package keyring

import (
	"math/rand/v2"
	"testing"
	"time"
)

// TestAViewHoldsUntilItsBoundary walks keyrings through their lifecycle and checks, at
// many instants, that a View taken at one instant makes the decisions of the keyring's
// own rule (SigningKey, StateAt) there, that it makes the same decisions at every
// instant before Until, and that some decision changes at Until: a caller that refreshes
// its View at each Until decides exactly as a caller that reads the clock every time.
func TestAViewHoldsUntilItsBoundary(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	t0 := time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC)
	o := Options{ActivationDelay: 10 * time.Minute, VerifyWindow: 20 * time.Minute}
	var rings []*Keyring
	r, err := Stage(nil, t0, testSecret("v1"), o)
	if err != nil {
		t.Fatal(err)
	}
	rings = append(rings, r)
	for i, at := range []time.Duration{5 * time.Minute, 12 * time.Minute, 13 * time.Minute} {
		if r, err = Stage(r, t0.Add(at), testSecret(string(rune('a'+i))), o); err != nil {
			t.Fatal(err)
		}
		rings = append(rings, r)
	}
	held, err := Hold(r, t0.Add(14*time.Minute), testSecret("held"), o)
	if err != nil {
		t.Fatal(err)
	}
	rings = append(rings, held)
	checked := 0
	for _, r := range rings {
		s := NewSigner(r)
		for range 400 {
			now := t0.Add(time.Duration(rng.Int64N(int64(time.Hour))))
			v := s.ViewAt(now)
			same(t, s, &v, now)
			until := v.Until()
			if until.IsZero() {
				continue
			}
			if !until.After(now) {
				t.Fatalf("Until %v is not after the view's instant %v", until, now)
			}
			// Every instant before Until decides the same; Until itself does not.
			for _, at := range []time.Time{until.Add(-time.Nanosecond), now.Add(until.Sub(now) / 2)} {
				if w := s.ViewAt(at); !v.sameDecisions(&w) {
					t.Fatalf("view at %v decides differently at %v, before its Until %v", now, at, until)
				}
			}
			if w := s.ViewAt(until); v.sameDecisions(&w) {
				t.Fatalf("nothing changes at Until %v of the view at %v", until, now)
			}
			checked++
		}
	}
	if checked < 1000 {
		t.Fatalf("only %d views had a boundary", checked)
	}
}

// same checks v's decisions against the keyring's rule at now.
func same(t *testing.T, s *Signer, v *View, now time.Time) {
	t.Helper()
	r := s.Keyring()
	k, ok := r.SigningKey(now)
	if ok != (v.signing >= 0) || ok && s.keys[v.signing].ID != k.ID {
		t.Fatalf("at %v the view signs with %d, the rule with %s (%v)", now, v.signing, k.ID, ok)
	}
	for i, key := range r.Keys {
		want := r.StateAt(key, now)
		got := StateExpired
		if v.state[i] >= 0 {
			got = usageStates[v.state[i]]
		}
		if got != want {
			t.Fatalf("at %v key %d is %s in the view, %s by the rule", now, i, got, want)
		}
	}
}

func (v *View) sameDecisions(w *View) bool { return v.signing == w.signing && v.state == w.state }
