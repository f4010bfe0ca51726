package sidecar

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sigil-dna/keysync/keyring"
	"github.com/sigil-dna/keysync/store"
	"github.com/sigil-dna/keysync/store/file"
	"github.com/sigil-dna/keysync/store/storetest"
)

func get(t *testing.T, s *Sidecar, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
	b, _ := io.ReadAll(rec.Body)
	return rec.Code, string(b)
}

func TestStoreGoneKeepsTheFileAndReportsStaleness(t *testing.T) {
	dir := t.TempDir()
	storePath := filepath.Join(dir, "store.json")
	st, _ := file.New(storePath, store.PlainOptions{})
	r, _ := keyring.Stage(nil, time.Now(), storetest.Secret("a"), keyring.Options{})
	if _, err := st.Write(context.Background(), r, ""); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	os.Mkdir(out, 0o755)
	s, err := New(Config{Store: st, OutDir: out, Interval: 20 * time.Millisecond, MaxStale: 150 * time.Millisecond, BackoffCap: 30 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if code, _ := get(t, s, "/readyz"); code != 503 {
		t.Fatalf("ready before the first write: %d", code)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	defer func() { cancel(); <-done }()
	storetest.WaitFor(t, "readiness", func() bool { code, _ := get(t, s, "/readyz"); return code == 200 })
	written, _ := os.ReadFile(filepath.Join(out, "keys.json"))

	os.Remove(storePath) // the store is gone
	storetest.WaitFor(t, "readiness to fail after --max-stale", func() bool { code, _ := get(t, s, "/readyz"); return code == 503 })
	if code, _ := get(t, s, "/healthz"); code != 200 {
		t.Fatal("liveness failed because of staleness")
	}
	now, _ := os.ReadFile(filepath.Join(out, "keys.json"))
	if string(now) != string(written) {
		t.Fatal("the keys file changed while the store was gone")
	}
	_, metrics := get(t, s, "/metrics")
	for _, want := range []string{`keysync_syncs_total{result="error"}`, "keysync_stale_seconds", "keysync_generation 1", "keysync_keys_written_total 1"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(metrics, `keysync_syncs_total{result="error"} 0`) {
		t.Error("no sync error counted")
	}
	// The store comes back with a new generation: written, ready again.
	r2, _ := keyring.Stage(r, time.Now(), storetest.Secret("b"), keyring.Options{})
	if _, err := st.Write(context.Background(), r2, ""); err != nil {
		t.Fatal(err)
	}
	storetest.WaitFor(t, "recovery", func() bool { code, _ := get(t, s, "/readyz"); return code == 200 && s.Status().Generation == 2 })
}

func TestBackoffIsFullJitterAndCapped(t *testing.T) {
	st, _ := file.New(filepath.Join(t.TempDir(), "k.json"), store.PlainOptions{})
	s, _ := New(Config{Store: st, OutDir: t.TempDir(), BackoffCap: 4 * time.Second})
	for failures := 1; failures < 40; failures++ {
		for range 50 {
			w := s.nextWait(failures)
			ceiling := min(4*time.Second, time.Second<<min(failures-1, 16))
			if w <= 0 || w > ceiling {
				t.Fatalf("failure %d: wait %s outside (0, %s]", failures, w, ceiling)
			}
		}
	}
	for range 100 {
		if w := s.nextWait(0); w < 8*time.Second || w > 12*time.Second {
			t.Fatalf("poll wait %s outside 10s ± 20%%", w)
		}
	}
}

func TestConfigErrorsNameTheFlag(t *testing.T) {
	st, _ := file.New(filepath.Join(t.TempDir(), "k.json"), store.PlainOptions{})
	for name, tc := range map[string]struct {
		cfg  Config
		want string
	}{
		"no output directory":          {Config{Store: st}, "--out"},
		"both ways to find the app":    {Config{Store: st, OutDir: "/x", ProcessName: "a", PidFile: "/p"}, "--signal-process and --pid-file"},
		"a file name with a directory": {Config{Store: st, OutDir: "/x", FileName: "../k.json"}, "--file"},
		"jitter of one or more":        {Config{Store: st, OutDir: "/x", Jitter: 1}, "jitter"},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := New(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v", err)
			}
		})
	}
}

func TestParseSignal(t *testing.T) {
	for in, want := range map[string]syscall.Signal{"HUP": syscall.SIGHUP, "SIGUSR1": syscall.SIGUSR1, "usr2": syscall.SIGUSR2, "1": syscall.SIGHUP} {
		if got, err := ParseSignal(in); err != nil || got != want {
			t.Errorf("%s: %v %v", in, got, err)
		}
	}
	if _, err := ParseSignal("NOPE"); err == nil {
		t.Error("NOPE accepted")
	}
}

func TestAReusedPidIsNotSignalled(t *testing.T) {
	p, err := pinned(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	p.startTime++ // as if the pid now belonged to a process started later
	if err := p.signal(0); err == nil || !strings.Contains(err.Error(), "reused") {
		t.Fatalf("err = %v", err)
	}
}

// TestAYoungProcessIsNotSignalled: a process that started a moment ago may not handle
// SIGHUP yet, and SIGHUP's default action ends it (regression: an app restarted while a
// change was pending was killed by the sidecar's signal). `sleep` has no handler at all.
func TestAYoungProcessIsNotSignalled(t *testing.T) {
	for name, tc := range map[string]struct {
		minAge   time.Duration
		survives bool
	}{
		"younger than --signal-min-age: left alone, retried later": {time.Hour, true},
		"with the guard off: the signal ends it":                   {0, false},
	} {
		t.Run(name, func(t *testing.T) {
			app := exec.Command("sleep", "30")
			if err := app.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- app.Wait() }()
			defer app.Process.Kill()
			pidFile := filepath.Join(t.TempDir(), "app.pid")
			os.WriteFile(pidFile, []byte(fmt.Sprint(app.Process.Pid)), 0o644)
			p := &processSignaller{finder: finder{pidFile: pidFile}, sig: syscall.SIGHUP, minAge: tc.minAge}
			pids, err := p.signal()
			if tc.survives != errors.Is(err, ErrNoProcess) || tc.survives != errors.Is(err, errTooYoung) {
				t.Fatalf("pids %v, err %v", pids, err)
			}
			select {
			case <-exited:
				if tc.survives {
					t.Fatal("the young process was signalled and ended")
				}
			case <-time.After(500 * time.Millisecond):
				if !tc.survives {
					t.Fatal("the process was not signalled")
				}
			}
		})
	}
}
