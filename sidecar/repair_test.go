package sidecar

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sigil-dna/keysync/keyring"
	"github.com/sigil-dna/keysync/store"
	"github.com/sigil-dna/keysync/store/file"
	"github.com/sigil-dna/keysync/store/storetest"
)

// TestAReplacedKeysFileIsWrittenBack: anyone who can write the output directory (an
// emptyDir is 0777) can put their own keyring in place of the sidecar's. The sidecar
// notices through its directory watch (the poll here is an hour away), writes its own
// back, counts it and logs what it found without any of its bytes.
func TestAReplacedKeysFileIsWrittenBack(t *testing.T) {
	dir := t.TempDir()
	st, _ := file.New(filepath.Join(dir, "store.json"), store.PlainOptions{})
	storetest.Rotate(t, st, keyring.Options{})
	out := filepath.Join(dir, "out")
	os.Mkdir(out, 0o700)
	s, logged := runSidecar(t, Config{Store: st, OutDir: out, Interval: time.Hour})
	path := filepath.Join(out, DefaultFileName)
	storetest.WaitFor(t, "the first write", func() bool { _, err := os.Stat(path); return err == nil })
	want, _ := os.ReadFile(path)

	forged := storetest.Secret("forged")
	ring, err := keyring.Stage(nil, time.Now().Add(-time.Hour), forged, keyring.Options{})
	if err != nil {
		t.Fatal(err)
	}
	doc, err := keyring.Encode(ring)
	if err != nil {
		t.Fatal(err)
	}
	forge := []struct {
		name string
		do   func() error
	}{
		{"a valid keyring of someone else's key, renamed into place", func() error {
			tmp := filepath.Join(out, ".forged")
			if err := os.WriteFile(tmp, doc, 0o644); err != nil {
				return err
			}
			return os.Rename(tmp, path)
		}},
		{"the same bytes with the mode widened", func() error { return os.Chmod(path, 0o644) }},
		{"a symbolic link to another file", func() error {
			other := filepath.Join(dir, "elsewhere.json")
			if err := os.WriteFile(other, doc, 0o400); err != nil {
				return err
			}
			tmp := filepath.Join(out, ".link")
			if err := os.Symlink(other, tmp); err != nil {
				return err
			}
			return os.Rename(tmp, path)
		}},
		{"removed", func() error { return os.Remove(path) }},
	}
	for i, f := range forge {
		if err := f.do(); err != nil {
			t.Fatalf("%s: %v", f.name, err)
		}
		storetest.WaitFor(t, "the keys file written back after "+f.name, func() bool {
			fi, err := os.Lstat(path)
			if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o440 {
				return false
			}
			got, _ := os.ReadFile(path)
			return bytes.Equal(got, want)
		})
		if n := testutil.ToFloat64(s.metrics.repairs); n != float64(i+1) {
			t.Errorf("after %s: keysync_keys_file_repaired_total %v, want %d", f.name, n, i+1)
		}
	}
	log := logged.String()
	if c := strings.Count(log, `"event":"keys_file_repaired"`); c != len(forge) {
		t.Errorf("%d keys_file_repaired events for %d repairs:\n%s", c, len(forge), log)
	}
	for _, w := range []string{"other content: owner", "mode -rw-r--r-- instead of -r--r-----: owner", "a symbolic link", "no file: no such file"} {
		if !strings.Contains(log, w) {
			t.Errorf("the log does not say %q:\n%s", w, log)
		}
	}
	snap, _ := st.Read(context.Background())
	for _, k := range append(snap.Keyring.Keys, keyring.Key{Secret: forged}) {
		for _, enc := range []string{hex.EncodeToString(k.Secret), base64.StdEncoding.EncodeToString(k.Secret), base64.RawURLEncoding.EncodeToString(k.Secret)} {
			if strings.Contains(log, enc) {
				t.Fatalf("a secret is in the log:\n%s", log)
			}
		}
	}
}

// TestTheOutputDirectoryIsChecked: a directory on disk or writable by everyone is named
// at start, with what to do about it.
func TestTheOutputDirectoryIsChecked(t *testing.T) {
	dir := t.TempDir()
	os.Chmod(dir, 0o777)
	var logged logs
	got := CheckOut(dir, slog.New(slog.NewJSONHandler(&logged, nil)))
	joined := strings.Join(got, "\n")
	if !strings.Contains(joined, "writable by every user") {
		t.Errorf("a 0777 directory without the sticky bit is not reported: %q", got)
	}
	if os.Chmod(dir, 0o700); len(CheckOut(dir, slog.New(slog.DiscardHandler))) >= len(got) {
		t.Errorf("a 0700 directory is reported as much as a 0777 one")
	}
	if !strings.Contains(logged.String(), `"event":"output_directory"`) {
		t.Errorf("no output_directory event logged: %s", logged.String())
	}
	if shm := "/dev/shm"; isTmpfs(shm) {
		for _, w := range CheckOut(shm, slog.New(slog.DiscardHandler)) {
			if strings.Contains(w, "not in memory") {
				t.Errorf("%s is tmpfs but reported as not in memory", shm)
			}
		}
	}
}

func isTmpfs(dir string) bool {
	var st syscall.Statfs_t
	return syscall.Statfs(dir, &st) == nil && st.Type == tmpfsMagic
}

// TestAKeyAnEmergencyRemovedIsNotCalledExpired (issue 33): the sidecar logged
// "key_expired" with "expired": false for keys an emergency rotation removed.
func TestAKeyAnEmergencyRemovedIsNotCalledExpired(t *testing.T) {
	dir := t.TempDir()
	st, _ := file.New(filepath.Join(dir, "store.json"), store.PlainOptions{})
	before := storetest.Rotate(t, st, keyring.Options{})
	out := filepath.Join(dir, "out")
	os.Mkdir(out, 0o700)
	s, logged := runSidecar(t, Config{Store: st, OutDir: out, Interval: 50 * time.Millisecond})
	storetest.WaitFor(t, "the first write", func() bool { return s.Status().Generation == before.Generation })
	snap, _ := st.Read(t.Context())
	em, err := keyring.Emergency(snap.Keyring, time.Now(), storetest.Secret("emergency"), keyring.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Write(t.Context(), em, snap.Version); err != nil {
		t.Fatal(err)
	}
	storetest.WaitFor(t, "the emergency keyring", func() bool { return s.Status().Generation == em.Generation })
	storetest.WaitFor(t, "its log line", func() bool { return strings.Contains(logged.String(), `"event":"key_removed"`) })
	if strings.Contains(logged.String(), `"event":"key_expired"`) || !strings.Contains(logged.String(), before.Keys[0].ID) {
		t.Fatalf("log:\n%s", logged.String())
	}
}

// runSidecar runs a sidecar of cfg, its JSON log kept, until the test ends.
func runSidecar(t *testing.T, cfg Config) (*Sidecar, *logs) {
	t.Helper()
	logged := &logs{}
	cfg.Log = slog.New(slog.NewJSONHandler(logged, nil))
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return s, logged
}
