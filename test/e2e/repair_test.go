package e2e

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sigil-dna/keysync/harness/wait"
	"github.com/sigil-dna/keysync/keyring"
)

// TestAForgedKeysFileDoesNotStayWithTheApp: someone in the pod who can write the shared
// emptyDir puts a keyring of their own in place of the sidecar's keys file, and the app,
// which watches its file, loads it. The sidecar sees the change in its output directory
// (its poll is an hour away), writes the store's keyring back and signals the app, which
// ends on the store's keys, not the forged ones.
func TestAForgedKeysFileDoesNotStayWithTheApp(t *testing.T) {
	e := newEnv(t)
	e.rotate()
	out := e.out("pod")
	port := freePort(t)
	appURL := fmt.Sprintf("http://127.0.0.1:%d", port)
	argv := e.podArgs(out, appURL, port, "--pid-file", filepath.Join(e.mem, "pod.pid"), "--interval", "1h")
	argv[slices.Index(argv, "--watch=false")] = "--watch=true" // the app loads whatever lands in its file
	_, logPath := e.start("pod", argv...)
	waitGeneration(t, appURL, 1)
	keys := filepath.Join(out, "keys.json")
	want := mustRead(t, keys)
	storeRing, err := keyring.Parse(mustRead(t, e.store))
	if err != nil {
		t.Fatal(err)
	}

	forgedSecret := make(keyring.Secret, 32)
	copy(forgedSecret, "an attacker's own 32-byte secret")
	forged, err := keyring.Stage(nil, time.Now().Add(-time.Hour), forgedSecret, keyring.Options{})
	if err != nil {
		t.Fatal(err)
	}
	forged.Generation = 99
	doc, err := keyring.Encode(forged)
	if err != nil {
		t.Fatal(err)
	}
	e.mu.Lock()
	e.secrets = append(e.secrets, forgedSecret)
	e.mu.Unlock()
	tmp := filepath.Join(out, ".planted")
	if err := os.WriteFile(tmp, doc, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, keys); err != nil {
		t.Fatal(err)
	}

	wait.For(t, "the sidecar to write the store's keyring back", 20*time.Second, func() bool {
		got, err := os.ReadFile(keys)
		return err == nil && bytes.Equal(got, want)
	})
	wait.For(t, "the app to end on the store's keyring", 20*time.Second, func() bool {
		st, err := appStatus(appURL)
		return err == nil && st.Generation == storeRing.Generation && slices.Equal(st.KeyIDs, storeRing.IDs())
	})
	// It stays there: nothing puts the forged keyring back.
	time.Sleep(time.Second)
	if st, _ := appStatus(appURL); st.Generation != storeRing.Generation {
		t.Fatalf("the app left the store's keyring: %+v", st)
	}
	repaired := logLines(t, logPath, "keys_file_repaired")
	if len(repaired) == 0 {
		t.Fatal("no keys_file_repaired event logged")
	}
	if found, _ := repaired[0]["found"].(string); !strings.Contains(found, "other content") {
		t.Fatalf("the event does not say what was found: %v", repaired[0])
	}
	fi, err := os.Stat(keys)
	if err != nil || fi.Mode().Perm() != 0o440 {
		t.Fatalf("the keys file is %v after the repair (%v), want 0440", fi.Mode(), err)
	}
}

// TestAKeysFileModeOthersCouldReadIsRefused: --mode beyond 0640 is a usage error unless
// --allow-mode says it is meant.
func TestAKeysFileModeOthersCouldReadIsRefused(t *testing.T) {
	e := newEnv(t)
	e.rotate()
	out := e.out("once")
	_, stderr, err := e.keysync("sidecar", "--once", "--store", e.storeURL(), "--out", out, "--mode", "0644")
	if exitCode(err) != 2 || !strings.Contains(stderr, "--mode 0644") || !strings.Contains(stderr, "--allow-mode") {
		t.Fatalf("--mode 0644: exit %d:\n%s", exitCode(err), stderr)
	}
	if _, err := os.Stat(filepath.Join(out, "keys.json")); err == nil {
		t.Fatal("a keys file was written despite the refused mode")
	}
	if _, stderr, err := e.keysync("sidecar", "--once", "--store", e.storeURL(), "--out", out, "--mode", "0644", "--allow-mode"); err != nil {
		t.Fatalf("--mode 0644 --allow-mode: %v\n%s", err, stderr)
	}
	if fi, err := os.Stat(filepath.Join(out, "keys.json")); err != nil || fi.Mode().Perm() != 0o644 {
		t.Fatalf("keys file %v (%v), want 0644", fi, err)
	}
}
