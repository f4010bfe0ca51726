package reloadprom_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sigil-dna/keysync/keyring"
	"github.com/sigil-dna/keysync/keyring/keyringtest"
	"github.com/sigil-dna/keysync/reload"
	"github.com/sigil-dna/keysync/reload/reloadprom"
)

type clock struct{ ns atomic.Int64 }

func (c *clock) Now() time.Time      { return time.Unix(0, c.ns.Load()).UTC() }
func (c *clock) Add(d time.Duration) { c.ns.Add(int64(d)) }

func secret(i byte) keyring.Secret {
	return keyringtest.Secret(fmt.Sprint("reloadprom ", i))
}

func write(t *testing.T, path string, r *keyring.Keyring) {
	t.Helper()
	b, err := keyring.Encode(r)
	if err != nil {
		t.Fatal(err)
	}
	// As the sidecar writes it: a whole file renamed over the old one.
	if err := os.WriteFile(path+".tmp", b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		t.Fatal(err)
	}
}

// TestAPreviousKeyDrainsToZero: an app verifies events from a queue while the key rotates.
// The old key's verifications count under "previous" while queued events signed with it
// arrive, then stop growing once the queue has drained — what an operator checks before
// the verify window closes — and a straggler after the window counts as expired. Read
// through the Prometheus collector, as a scrape would.
func TestAPreviousKeyDrainsToZero(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "keys.json")
	c := &clock{}
	c.ns.Store(time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC).UnixNano())
	opts := keyring.Options{ActivationDelay: time.Minute, VerifyWindow: 15 * time.Minute}
	r1, _ := keyring.Stage(nil, c.Now(), secret(1), opts)
	write(t, path, r1)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	keys, err := reload.Open(ctx, path, reload.WithClock(c.Now), reload.WithSignals(), reload.WithFileWatch(false), reload.WithPollInterval(0))
	if err != nil {
		t.Fatal(err)
	}
	defer keys.Close()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(reloadprom.NewCollector(keys))
	oldID := r1.Keys[0].ID
	count := func(state, result string) float64 {
		t.Helper()
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() != "keysync_app_verifications_total" {
				continue
			}
			for _, m := range mf.GetMetric() {
				l := map[string]string{}
				for _, p := range m.GetLabel() {
					l[p.GetName()] = p.GetValue()
				}
				if l["key_id"] == oldID && l["state"] == state && l["result"] == result {
					return m.GetCounter().GetValue()
				}
			}
		}
		return 0
	}

	// Events signed with the first key, some still queued when it is replaced.
	var queue [][2]string
	for i := range 10 {
		p := []byte{byte(i)}
		sig, err := keys.Sign(p)
		if err != nil {
			t.Fatal(err)
		}
		queue = append(queue, [2]string{string(p), sig})
	}
	for _, ev := range queue[:4] {
		if err := keys.Verify([]byte(ev[0]), ev[1]); err != nil {
			t.Fatal(err)
		}
	}
	if got := count("current", "ok"); got != 4 {
		t.Fatalf("current ok = %v, want 4", got)
	}

	r2, _ := keyring.Stage(r1, c.Now(), secret(2), opts)
	write(t, path, r2)
	if err := keys.Reload(); err != nil {
		t.Fatal(err)
	}
	c.Add(2 * time.Minute) // the new key signs; the first is previous
	drain := func(evs [][2]string) {
		for _, ev := range evs {
			if err := keys.Verify([]byte(ev[0]), ev[1]); err != nil {
				t.Fatal(err)
			}
		}
	}
	drain(queue[4:8])
	first := count("previous", "ok")
	if first != 4 {
		t.Fatalf("previous ok = %v, want 4", first)
	}
	drain(queue[8:])
	drained := count("previous", "ok")
	if drained != 6 {
		t.Fatalf("previous ok = %v, want 6", drained)
	}
	// The queue is empty: new events carry the new key; the old key's count stays put.
	for i := range 5 {
		p := []byte{byte(100 + i)}
		sig, _ := keys.Sign(p)
		if !strings.Contains(sig, r2.Keys[1].ID) {
			t.Fatalf("signed with %s", sig)
		}
		if err := keys.Verify(p, sig); err != nil {
			t.Fatal(err)
		}
		c.Add(time.Minute)
	}
	if got := count("previous", "ok"); got != drained {
		t.Fatalf("the previous key still verifies: %v after draining at %v", got, drained)
	}
	// A straggler after the window: refused, counted as expired.
	c.Add(15 * time.Minute)
	if err := keys.Verify([]byte(queue[0][0]), queue[0][1]); err == nil {
		t.Fatal("an event signed with the expired key verified")
	}
	if got := count("expired", "expired_key"); got != 1 {
		t.Fatalf("expired = %v, want 1", got)
	}
	st := keys.Status()
	for _, k := range st.Usage.Keys {
		if k.KeyID == oldID && (k.Signatures != 10 || k.Verified != 10 || k.LastVerified.IsZero()) {
			t.Fatalf("status usage of the old key: %+v", k)
		}
	}
	if n, err := testutil.GatherAndCount(reg, "keysync_app_signatures_total"); err != nil || n != 2 {
		t.Fatalf("%d signature series, %v", n, err)
	}
}
