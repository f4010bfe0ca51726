package keyring

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// TestABurstOfPlainValuesKeepsEveryKey: issue 29. The ticket's command run three times
// within the activation delay built its keyring from the two newest values only: the
// first value, still the signing key, was dropped and the second signed 60 s early. Now
// every value is staged from its own store timestamp and none is dropped before its
// not_after, for random bursts and with the Kubernetes/file reader's memory giving the
// same schedule as a store's full history.
func TestABurstOfPlainValuesKeepsEveryKey(t *testing.T) {
	rng := rand.New(rand.NewPCG(29, 3))
	o := Options{}
	for trial := range 200 {
		var values []PlainValue
		at := t0
		for i := range 2 + rng.IntN(8) {
			// Gaps from 0 to 3 minutes: within and beyond the activation delay.
			at = at.Add(time.Duration(rng.IntN(180_000)) * time.Millisecond)
			v := PlainValue{Value: testSecret(fmt.Sprint("burst ", trial, " ", i)), CreatedAt: at, Version: int64(i + 1)}
			if i > 0 && rng.IntN(6) == 0 {
				v.Value = values[i-1].Value // a metadata-only write: the same value again
			}
			values = append(values, v)
		}
		var before, memory *Keyring
		for n := 1; n <= len(values); n++ {
			r, err := FromPlainHistory(values[:n], time.Time{}, o, "burst")
			if err != nil {
				t.Fatalf("trial %d, %d values: %v", trial, n, err)
			}
			if memory, err = CompletePlain(values[n-1], memory, o, "burst"); err != nil {
				t.Fatalf("trial %d, %d values, the reader's memory: %v", trial, n, err)
			}
			if !sameSchedule(r, memory) {
				t.Fatalf("trial %d, %d values: the store's history gives %v, the reader's memory %v", trial, n, schedule(r), schedule(memory))
			}
			if before != nil {
				for _, k := range before.Keys {
					got, ok := r.Key(k.ID)
					switch {
					case !ok:
						t.Fatalf("trial %d: value %d dropped key %s (%v -> %v)", trial, n, k.ID, schedule(before), schedule(r))
					case !got.NotBefore.Equal(k.NotBefore):
						t.Fatalf("trial %d: value %d moved key %s from %s to %s", trial, n, k.ID, k.NotBefore, got.NotBefore)
					case !k.NotAfter.IsZero() && !got.NotAfter.Equal(k.NotAfter):
						t.Fatalf("trial %d: value %d moved the end of key %s from %s to %s", trial, n, k.ID, k.NotAfter, got.NotAfter)
					}
				}
			}
			// Each value signs from its creation plus the delay (the first from its creation).
			last := r.Keys[len(r.Keys)-1]
			if created := ms(values[n-1].CreatedAt); n > 1 && KeyID(values[n-1].Value) != KeyID(values[n-2].Value) && last.NotBefore.Before(created.Add(o.Delay())) {
				t.Fatalf("trial %d: value %d signs from %s, before its creation plus the delay", trial, n, last.NotBefore)
			}
			before = r
		}
	}
}

func TestThreePlainValuesThirtyFiveSecondsApart(t *testing.T) {
	a, b, c := testSecret("a"), testSecret("b"), testSecret("c")
	values := []PlainValue{{Value: a, CreatedAt: t0, Version: 1}, {Value: b, CreatedAt: t0.Add(35 * time.Second), Version: 2},
		{Value: c, CreatedAt: t0.Add(70 * time.Second), Version: 3}}
	r, err := FromPlainHistory(values, t0.Add(71*time.Second), Options{}, "vault kv secret/x")
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []struct {
		at   time.Duration
		sign Secret
	}{{71 * time.Second, a}, {95 * time.Second, b}, {130 * time.Second, c}} {
		if k, ok := r.SigningKey(t0.Add(w.at)); !ok || k.ID != KeyID(w.sign) {
			t.Errorf("at +%s signing %s, want %s", w.at, k.ID, KeyID(w.sign))
		}
	}
	if k, _ := r.Key(KeyID(a)); !k.NotAfter.Equal(t0.Add(95*time.Second + DefaultVerifyWindow)) {
		t.Errorf("the first value verifies until %s", k.NotAfter)
	}
	if r.Generation != 3 {
		t.Errorf("generation %d", r.Generation)
	}
	// Long after: the first two no longer verify and are left out; they need not be read.
	late := t0.Add(time.Hour)
	created := []time.Time{values[0].CreatedAt, values[1].CreatedAt, values[2].CreatedAt}
	if i := PlainLive(created, late, Options{}); i != 2 {
		t.Fatalf("PlainLive an hour later: %d, want 2", i)
	}
	if i := PlainLive(created, t0.Add(71*time.Second), Options{}); i != 0 {
		t.Fatalf("PlainLive at once: %d, want 0", i)
	}
	unread := []PlainValue{{CreatedAt: values[0].CreatedAt, Version: 1}, {CreatedAt: values[1].CreatedAt, Version: 2}, values[2]}
	r, err = FromPlainHistory(unread, late, Options{}, "vault kv secret/x")
	if err != nil || len(r.Keys) != 1 || r.Keys[0].ID != KeyID(c) {
		t.Fatalf("an hour later: %v %v", err, r)
	}
	// A value still verifying that the store did not give is an error, not a dropped key.
	if _, err := FromPlainHistory(unread, t0.Add(71*time.Second), Options{}, "vault kv secret/x"); err == nil {
		t.Fatal("a live value that was not read was left out silently")
	}
}

func sameSchedule(a, b *Keyring) bool {
	if len(a.Keys) != len(b.Keys) {
		return false
	}
	for i := range a.Keys {
		x, y := a.Keys[i], b.Keys[i]
		if x.ID != y.ID || !x.NotBefore.Equal(y.NotBefore) || !x.NotAfter.Equal(y.NotAfter) {
			return false
		}
	}
	return true
}

func schedule(r *Keyring) []string {
	var out []string
	for _, k := range r.Keys {
		out = append(out, fmt.Sprintf("%s %s..%s", k.ID[:6], k.NotBefore.Format("15:04:05.000"), k.NotAfter.Format("15:04:05.000")))
	}
	return out
}
