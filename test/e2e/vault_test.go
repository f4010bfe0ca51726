package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sigil-dna/keysync/harness/wait"
	"github.com/sigil-dna/keysync/keyring"
	"github.com/sigil-dna/keysync/store"
	"github.com/sigil-dna/keysync/store/vault"
	"github.com/sigil-dna/keysync/test/servers"
)

// TestVaultEndToEnd drives the real CLI against a real Vault dev server: rotate, status,
// a sidecar process feeding an app process, and rollback.
func TestVaultEndToEnd(t *testing.T) {
	bin, err := servers.VaultBinary()
	if err != nil {
		t.Fatal(err)
	}
	v, err := servers.StartVault(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Stop()
	t.Setenv("VAULT_ADDR", v.Addr)
	t.Setenv("VAULT_TOKEN", v.Token)
	e := newEnv(t)
	e.cliEndToEnd("vault://secret/sigil/spiral-event-secret", func() { e.recordVault(v) })
}

// cliEndToEnd drives the real CLI against storeURL: rotate, a pod (sidecar process and
// app process) following it, status, another rotation and a rollback, each confirmed by
// the app. record adds what the store holds to the output scan after each write.
func (e *env) cliEndToEnd(storeURL string, record func()) {
	t := e.t
	rotateArgs := []string{"--store", storeURL, "--activation-delay", "1s", "--min-propagation", "0s", "--reason", "e2e"}
	if out, stderr, err := e.keysync(append([]string{"rotate", "--init"}, rotateArgs...)...); err != nil || !strings.Contains(out, "generation 0 -> 1") {
		t.Fatalf("%v\n%s%s", err, out, stderr)
	}
	record()

	out := e.out("pod")
	port := freePort(t)
	appURL := fmt.Sprintf("http://127.0.0.1:%d", port)
	_, logPath := e.start("pod", e.podArgsFor(storeURL, out, appURL, port, "--pid-file", filepath.Join(e.mem, "pod.pid"))...)
	waitGeneration(t, appURL, 1)
	if _, stderr, err := e.keysync(append([]string{"rotate"}, rotateArgs...)...); err != nil {
		t.Fatal(err, stderr)
	}
	record()
	waitGeneration(t, appURL, 2)
	if st, _, err := e.keysync("status", "--store", storeURL); err != nil || !strings.Contains(st, "pending") && !strings.Contains(st, "previous") {
		t.Fatalf("status: %v\n%s", err, st)
	}
	if o, stderr, err := e.keysync(append([]string{"rollback"}, rotateArgs...)...); err != nil || !strings.Contains(o, "generation 2 -> 3") {
		t.Fatalf("rollback: %v\n%s%s", err, o, stderr)
	}
	record()
	waitGeneration(t, appURL, 3)
	defer func() {
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("pod output:\n%s", b)
		}
	}()
	// Generation 1 was written before the app ran and superseded before a signal was due.
	wait.For(t, "confirmations of generations 2 and 3", 10*time.Second, func() bool {
		seen := map[float64]bool{}
		for _, c := range logLines(t, logPath, "reload_confirmed") {
			seen[c["generation"].(float64)] = true
		}
		return seen[2] && seen[3]
	})
}

// podArgsFor is podArgs with another store URL.
func (e *env) podArgsFor(storeURL, out, appURL string, port int, sidecar ...string) []string {
	argv := e.podArgs(out, appURL, port, sidecar...)
	for i, a := range argv {
		if a == e.storeURL() {
			argv[i] = storeURL
		}
	}
	return argv
}

// recordVault adds the secrets Vault holds to the output scan.
func (e *env) recordVault(v *servers.Vault) {
	st, err := vault.New(e.t.Context(), vault.Config{Mount: "secret", Path: "sigil/spiral-event-secret", Address: v.Addr, Auth: vault.Auth{Token: keyring.Secret(v.Token)}})
	if err != nil {
		e.t.Fatal(err)
	}
	e.record(st)
}

// record adds the secrets st holds to the output scan.
func (e *env) record(st store.Store) {
	defer st.Close()
	snap, err := st.Read(e.t.Context())
	if err != nil {
		e.t.Fatal(err)
	}
	e.mu.Lock()
	e.secrets = append(e.secrets, secretsOf(snap.Keyring)...)
	e.mu.Unlock()
}
