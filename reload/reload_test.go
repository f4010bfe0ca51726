package reload

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sigil-dna/keysync/keyring"
	"github.com/sigil-dna/keysync/keyring/keyringtest"
)

var t0 = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

func secret(i int) keyring.Secret { return keyringtest.Secret(fmt.Sprint("reload ", i)) }

// fakeClock is a clock the test moves; safe for concurrent use.
type fakeClock struct{ ns atomic.Int64 }

func newClock(t time.Time) *fakeClock    { c := &fakeClock{}; c.ns.Store(t.UnixNano()); return c }
func (c *fakeClock) Now() time.Time      { return time.Unix(0, c.ns.Load()).UTC() }
func (c *fakeClock) Add(d time.Duration) { c.ns.Add(int64(d)) }

func encode(t testing.TB, r *keyring.Keyring) []byte {
	t.Helper()
	b, err := keyring.Encode(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeKeys(t testing.TB, path string, r *keyring.Keyring) {
	t.Helper()
	if err := writeFileAtomic(path, encode(t, r), 0o440); err != nil {
		t.Fatal(err)
	}
}

// waitGeneration waits until k reports generation g.
func waitGeneration(t testing.TB, k *Handle, g int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for k.Status().Generation != g {
		if time.Now().After(deadline) {
			t.Fatalf("generation %d never loaded; status %+v", g, k.Status())
		}
		time.Sleep(time.Millisecond)
	}
}

func openT(t testing.TB, path string, opts ...Option) *Handle {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	k, err := Open(ctx, path, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.Close() })
	return k
}

// kubeletWriter publishes files the way the kubelet's AtomicWriter does: a timestamped
// directory, a ..data symlink swapped by rename, and keys.json -> ..data/keys.json.
type kubeletWriter struct {
	dir string
	n   int
}

func (w *kubeletWriter) write(t testing.TB, data []byte) {
	t.Helper()
	w.n++
	ts := fmt.Sprintf("..2026_11_27_12_00_00.%d", w.n)
	if err := os.Mkdir(filepath.Join(w.dir, ts), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(w.dir, ts, "keys.json"), data, 0o440); err != nil {
		t.Fatal(err)
	}
	old, _ := os.Readlink(filepath.Join(w.dir, "..data"))
	tmp := filepath.Join(w.dir, "..data_tmp")
	if err := os.Symlink(ts, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(w.dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if w.n == 1 {
		if err := os.Symlink("..data/keys.json", filepath.Join(w.dir, "keys.json")); err != nil {
			t.Fatal(err)
		}
	}
	if old != "" {
		os.RemoveAll(filepath.Join(w.dir, old))
	}
}

// TestConcurrentSignVerifyAcrossReloads rewrites the keys file more than 1000 times,
// by rename and by ..data symlink swap, while 2×GOMAXPROCS goroutines sign and verify
// without pause. Every rotation is staged, so no verification may fail. The writer
// waits until every worker has completed two operations after each reload, so a worker
// lags at most two rotations behind, well within the three-step verify window.
func TestConcurrentSignVerifyAcrossReloads(t *testing.T) {
	const reloads = 1000
	for _, mode := range []string{"rename", "symlink swap"} {
		t.Run(mode, func(t *testing.T) {
			dir := memDir(t)
			path := filepath.Join(dir, "keys.json")
			clock := newClock(t0)
			const step = time.Second
			opts := keyring.Options{ActivationDelay: step, VerifyWindow: 3 * step}
			kw := &kubeletWriter{dir: dir}
			publish := func(r *keyring.Keyring) {
				if mode == "rename" {
					writeKeys(t, path, r)
				} else {
					kw.write(t, encode(t, r))
				}
			}
			r, _ := keyring.Stage(nil, clock.Now(), secret(0), opts)
			publish(r)
			k := openT(t, path, WithClock(clock.Now), WithSignals(), WithPollInterval(0), WithDebounce(0))

			workers := 2 * runtime.GOMAXPROCS(0)
			ops := make([]atomic.Int64, workers)
			var failures atomic.Int64
			var firstErr atomic.Pointer[string]
			stop := make(chan struct{})
			var wg sync.WaitGroup
			for w := range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					payload := []byte(fmt.Sprintf(`{"worker":%d}`, w))
					for {
						select {
						case <-stop:
							return
						default:
						}
						sig, err := k.Sign(payload)
						if err == nil {
							err = k.Verify(payload, sig)
						}
						if err != nil {
							failures.Add(1)
							msg := err.Error()
							firstErr.CompareAndSwap(nil, &msg)
						}
						ops[w].Add(1)
						runtime.Gosched() // continuous, but let the writer and the watcher run
					}
				}()
			}
			for i := 1; i <= reloads; i++ {
				clock.Add(step)
				next, err := keyring.Stage(r, clock.Now(), secret(i), opts)
				if err != nil {
					t.Fatal(err)
				}
				r = next
				publish(r)
				waitGeneration(t, k, r.Generation)
				var seen [64]int64
				for w := range workers {
					seen[w] = ops[w].Load()
				}
				for w := range workers {
					for ops[w].Load() < seen[w]+2 {
						runtime.Gosched()
					}
				}
			}
			close(stop)
			wg.Wait()
			if n := failures.Load(); n != 0 {
				t.Fatalf("%d failed sign/verify, first: %s", n, *firstErr.Load())
			}
			st := k.Status()
			if st.Reloads < reloads+1 || st.Errors != 0 {
				t.Fatalf("status after the run: %+v", st)
			}
			var total int64
			for w := range workers {
				total += ops[w].Load()
			}
			t.Logf("%s: %d reloads, %d sign+verify by %d goroutines, 0 failures", mode, st.Reloads, total, workers)
		})
	}
}

func TestRealSIGHUPReloads(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "keys.json")
	r, _ := keyring.Stage(nil, time.Now(), secret(1), keyring.Options{})
	writeKeys(t, path, r)
	// Only the signal may trigger the reload here.
	k := openT(t, path, WithFileWatch(false), WithPollInterval(0))
	r2, _ := keyring.Stage(r, time.Now(), secret(2), keyring.Options{})
	writeKeys(t, path, r2)
	time.Sleep(50 * time.Millisecond)
	if k.Status().Generation != 1 {
		t.Fatal("reloaded without a signal")
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitGeneration(t, k, 2)
}

func TestDirectoryWatchAloneReloads(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "keys.json")
	r, _ := keyring.Stage(nil, time.Now(), secret(1), keyring.Options{})
	writeKeys(t, path, r)
	k := openT(t, path, WithSignals(), WithPollInterval(0))
	r2, _ := keyring.Stage(r, time.Now(), secret(2), keyring.Options{})
	writeKeys(t, path, r2)
	waitGeneration(t, k, 2)
}

func TestPollAloneReloads(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "keys.json")
	r, _ := keyring.Stage(nil, time.Now(), secret(1), keyring.Options{})
	writeKeys(t, path, r)
	k := openT(t, path, WithSignals(), WithFileWatch(false), WithPollInterval(20*time.Millisecond))
	r2, _ := keyring.Stage(r, time.Now(), secret(2), keyring.Options{})
	writeKeys(t, path, r2)
	waitGeneration(t, k, 2)
}

func TestBadFileKeepsTheLastGoodKeyring(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "keys.json")
	r, _ := keyring.Stage(nil, time.Now(), secret(1), keyring.Options{})
	writeKeys(t, path, r)
	var logs strings.Builder
	var mu sync.Mutex
	k := openT(t, path, WithSignals(), WithFileWatch(false), WithPollInterval(0), WithLogger(newTestLogger(&mu, &logs)))
	sig, _ := k.Sign([]byte("p"))
	short := strings.Replace(string(encode(t, r)), `"secret": "`, `"secret": "AAAA`, 1)
	cases := map[string]func(){
		"corrupt JSON":             func() { os.WriteFile(path, []byte(`{"version":1,`), 0o600) },
		"a short or bad secret":    func() { os.WriteFile(path, []byte(short), 0o600) },
		"an empty file":            func() { os.WriteFile(path, nil, 0o600) },
		"the file vanished":        func() { os.Remove(path) },
		"a file over the bound":    func() { os.WriteFile(path, make([]byte, keyring.MaxDocumentBytes+10), 0o600) },
		"a directory in its place": func() { os.Remove(path); os.Mkdir(path, 0o700) },
	}
	n := uint64(0)
	for name, breakIt := range cases {
		t.Run(name, func(t *testing.T) {
			os.RemoveAll(path)
			breakIt()
			err := k.Reload()
			n++
			if err == nil || !strings.Contains(err.Error(), path) {
				t.Fatalf("err = %v, want one naming %s", err, path)
			}
			st := k.Status()
			if st.Generation != 1 || st.Errors != n || st.LastError == "" {
				t.Fatalf("status %+v", st)
			}
			if err := k.Verify([]byte("p"), sig); err != nil {
				t.Fatalf("old keyring lost: %v", err)
			}
			if _, err := k.Sign([]byte("p")); err != nil {
				t.Fatal(err)
			}
		})
	}
	os.RemoveAll(path)
	writeKeys(t, path, r)
	if err := k.Reload(); err != nil || k.Status().LastError != "" {
		t.Fatalf("recovery: %v %+v", err, k.Status())
	}
	mu.Lock()
	defer mu.Unlock()
	assertNoSecret(t, logs.String(), secret(1))
	if !strings.Contains(logs.String(), `"event":"reload_failed"`) {
		t.Fatalf("no rejection logged:\n%s", logs.String())
	}
}

func TestOpenWaitsForTheFirstValidFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "keys.json") // not even the directory exists yet
	go func() {
		time.Sleep(150 * time.Millisecond)
		os.Mkdir(filepath.Dir(path), 0o755)
		os.WriteFile(path, []byte("not yet"), 0o600)
		time.Sleep(150 * time.Millisecond)
		r, _ := keyring.Stage(nil, time.Now(), secret(1), keyring.Options{})
		b, _ := keyring.Encode(r)
		writeFileAtomic(path, b, 0o440)
	}()
	k := openT(t, path)
	if k.Status().Generation != 1 || k.Status().Errors != 0 {
		t.Fatalf("%+v", k.Status())
	}
}

func TestOpenGivesUpAtTheDeadline(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.json")
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := Open(ctx, path)
	if err == nil || !strings.Contains(err.Error(), path) || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("err = %v", err)
	}
}

func TestExpiredKeysAreRefusedByTimeEvenIfListed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.json")
	clock := newClock(t0)
	r1, _ := keyring.Stage(nil, clock.Now(), secret(1), keyring.Options{})
	r2, _ := keyring.Stage(r1, clock.Now().Add(time.Hour), secret(2), keyring.Options{})
	writeKeys(t, path, r2)
	k := openT(t, path, WithClock(clock.Now), WithSignals(), WithFileWatch(false), WithPollInterval(0))
	old, _ := k.Sign([]byte("p"))
	clock.Add(time.Hour + keyring.DefaultActivationDelay + keyring.DefaultVerifyWindow)
	if err := k.Verify([]byte("p"), old); !errors.Is(err, keyring.ErrExpiredKey) {
		t.Fatalf("expired key accepted: %v", err)
	}
}

func TestLegacySignaturesOption(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.json")
	r, _ := keyring.Stage(nil, time.Now(), secret(1), keyring.Options{})
	writeKeys(t, path, r)
	k := openT(t, path, WithLegacySignatures(true), WithSignals())
	sig, err := k.Sign([]byte("p"))
	if err != nil || len(sig) != 64 || strings.Contains(sig, ".") {
		t.Fatalf("sig %q %v", sig, err)
	}
	if err := k.Verify([]byte("p"), sig); err != nil {
		t.Fatal(err)
	}
}

func TestStatusHandlerAndCallback(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.json")
	r, _ := keyring.Stage(nil, time.Now(), secret(1), keyring.Options{RotatedBy: "ops", Reason: "test"})
	writeKeys(t, path, r)
	got := make(chan Status, 4)
	k := openT(t, path, WithSignals(), WithOnReload(func(s Status) { got <- s }))
	if s := <-got; s.Generation != 1 {
		t.Fatalf("callback %+v", s)
	}
	rec := httptest.NewRecorder()
	k.StatusHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/keysync/status", nil))
	var st Status
	if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil {
		t.Fatal(err)
	}
	if st.Generation != 1 || len(st.KeyIDs) != 1 || st.KeyIDs[0] != keyring.KeyID(secret(1)) || st.SigningKeyID != st.KeyIDs[0] || st.RotatedBy != "ops" {
		t.Fatalf("status %+v", st)
	}
	assertNoSecret(t, rec.Body.String(), secret(1))
	rec = httptest.NewRecorder()
	k.StatusHandler().ServeHTTP(rec, httptest.NewRequest("POST", "/", nil))
	if rec.Code != 405 {
		t.Fatalf("POST answered %d", rec.Code)
	}
}

func TestCloseIsIdempotentAndStopsGoroutines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.json")
	r, _ := keyring.Stage(nil, time.Now(), secret(1), keyring.Options{})
	writeKeys(t, path, r)
	before := runtime.NumGoroutine()
	for range 5 {
		k := openT(t, path)
		k.Close()
		k.Close()
		if _, err := k.Sign([]byte("p")); err != nil {
			t.Fatal("a closed handle must still sign with its last keyring")
		}
	}
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Fatalf("%d goroutines before, %d after", before, n)
	}
}

// TestTheDefaultHandleMeetsEachBoundaryOnTheRealClock: without WithClock a handle decides
// from a view its timer refreshes, so it must still switch to a new key when the key
// activates and refuse a key when it expires, with no reload in between, and never
// before: a signature with the new key returns only after its activation, and the old
// key is refused only by calls that return after its end. (Up to the timer's latency
// after a boundary the handle may still decide as before it: sign with the old key,
// which verifies everywhere for its whole window, or accept a key that has just
// ended.) After Close it reads the clock per call, and still refuses the expired key.
func TestTheDefaultHandleMeetsEachBoundaryOnTheRealClock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.json")
	now := time.Now()
	o := keyring.Options{ActivationDelay: 1500 * time.Millisecond, VerifyWindow: 1500 * time.Millisecond}
	r1, _ := keyring.Stage(nil, now.Add(-time.Hour), secret(1), keyring.Options{})
	r2, err := keyring.Stage(r1, now, secret(2), o)
	if err != nil {
		t.Fatal(err)
	}
	oldID, newID := r1.Keys[0].ID, r2.Keys[1].ID
	activates, expires := r2.Keys[1].NotBefore, r2.Keys[0].NotAfter
	writeKeys(t, path, r2)
	k := openT(t, path, WithSignals(), WithFileWatch(false), WithPollInterval(0))
	payload := []byte("p")
	oldSig, err := k.Sign(payload)
	if err != nil || !strings.Contains(oldSig, oldID) {
		t.Fatalf("signed with %q (%v) before the activation, want the old key %s", oldSig, err, oldID)
	}
	deadline := time.Now().Add(30 * time.Second)
	switched, refused := false, false
	for !(switched && refused) && time.Now().Before(deadline) {
		start := time.Now()
		sig, err := k.Sign(payload)
		verr := k.Verify(payload, oldSig)
		end := time.Now()
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(sig, newID) {
			if end.Before(activates) {
				t.Fatalf("signed with the new key at %v, before its activation at %v", end, activates)
			}
			switched = true
		}
		switch {
		case verr == nil:
			if refused {
				t.Fatalf("the old key verified at %v, after it had been refused", start)
			}
		case errors.Is(verr, keyring.ErrExpiredKey):
			if end.Before(expires) {
				t.Fatalf("the old key refused at %v, before its end at %v", end, expires)
			}
			refused = true
		default:
			t.Fatal(verr)
		}
		time.Sleep(time.Millisecond)
	}
	if !switched || !refused {
		t.Fatalf("30 s after the boundaries: new key signing %v, old key refused %v", switched, refused)
	}
	if got := k.Status().Reloads; got != 1 {
		t.Fatalf("%d reloads: the boundaries must be met without one", got)
	}

	// After Close nothing refreshes the view: the handle reads the clock per call.
	path2 := filepath.Join(t.TempDir(), "keys.json")
	r3, _ := keyring.Stage(r1, time.Now(), secret(3), keyring.Options{ActivationDelay: 50 * time.Millisecond, VerifyWindow: 300 * time.Millisecond})
	writeKeys(t, path2, r3)
	k2 := openT(t, path2, WithSignals(), WithFileWatch(false), WithPollInterval(0))
	k2.Close()
	for time.Now().Before(r3.Keys[0].NotAfter) {
		time.Sleep(10 * time.Millisecond)
	}
	if err := k2.Verify(payload, oldSig); !errors.Is(err, keyring.ErrExpiredKey) {
		t.Fatalf("after Close the expired key verified: %v", err)
	}
}
