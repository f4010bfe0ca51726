package main

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/sigil-dna/keysync/harness/podfleet"
	"github.com/sigil-dna/keysync/keyring"
)

// forgeries remembers every key the run made and, once a key is retired for every app
// (its not_after plus the largest clock skew has passed), signs an event with it — the
// forgery the ticket asks to try — and delivers it to every app, which must refuse it.
type forgeries struct {
	mu        sync.Mutex
	secrets   map[string]keyring.Secret
	retiredAt map[string]time.Time // key id -> when no app accepts it any more
	checked   map[string]bool
	attempts  int
	refused   int
	accepted  []string
}

func newForgeries() *forgeries {
	return &forgeries{secrets: map[string]keyring.Secret{}, retiredAt: map[string]time.Time{}, checked: map[string]bool{}}
}

func (f *forgeries) remember(s keyring.Secret) {
	f.mu.Lock()
	f.secrets[keyring.KeyID(s)] = s
	f.mu.Unlock()
}

func (f *forgeries) all() []keyring.Secret {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []keyring.Secret
	for _, s := range f.secrets {
		out = append(out, s)
	}
	return out
}

// observe notes, from a keyring just written, when each key stops verifying everywhere:
// after its not_after (plus skew) by the apps' clocks, but not before every pod has read
// this keyring (a pod that has not, a partitioned one, still holds the key with no end);
// keys the keyring dropped are retired once every pod has read it.
func (f *forgeries) observe(prev, next *keyring.Keyring, now time.Time, skew, propagation time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, k := range next.Keys {
		if !k.NotAfter.IsZero() {
			f.retiredAt[k.ID] = later(k.NotAfter.Add(skew+time.Second), now.Add(propagation))
		}
	}
	if prev == nil {
		return
	}
	for _, k := range prev.Keys {
		if _, still := next.Key(k.ID); !still {
			at := now.Add(propagation)
			if t, ok := f.retiredAt[k.ID]; !ok || at.Before(t) {
				f.retiredAt[k.ID] = at
			}
		}
	}
}

// due checks every key retired by now that was not checked yet, against every app.
func (f *forgeries) due(ctx context.Context, fl *podfleet.Fleet, now time.Time) {
	f.mu.Lock()
	var ids []string
	for id, at := range f.retiredAt {
		if !f.checked[id] && !now.Before(at) {
			ids = append(ids, id)
			f.checked[id] = true
		}
	}
	f.mu.Unlock()
	for _, id := range ids {
		f.mu.Lock()
		secret := f.secrets[id]
		f.mu.Unlock()
		one := keyring.NewSigner(&keyring.Keyring{Generation: 1, RotatedAt: now, Keys: []keyring.Key{{ID: id, Secret: secret, NotBefore: now.Add(-time.Hour)}}})
		payload := []byte(fmt.Sprintf(`{"type":"spiral","forged_with":%q}`, id))
		keyed, _ := one.Sign(now, payload)
		legacy, _ := one.SignLegacy(now, payload)
		for _, p := range fl.Pods {
			for _, sig := range []string{keyed, legacy} {
				code, err := p.Deliver(ctx, payload, sig)
				if err != nil {
					continue // the app is restarting: not an attempt
				}
				f.mu.Lock()
				f.attempts++
				if code == http.StatusUnauthorized {
					f.refused++
				} else {
					f.accepted = append(f.accepted, fmt.Sprintf("pod %d accepted key %s (HTTP %d)", p.Index, id, code))
				}
				f.mu.Unlock()
			}
		}
	}
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
