package vault

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sigil-dna/keysync/keyring"
	"github.com/sigil-dna/keysync/rotate"
	"github.com/sigil-dna/keysync/sidecar"
	"github.com/sigil-dna/keysync/sidecar/sidecartest"
	"github.com/sigil-dna/keysync/store/storetest"
	"github.com/sigil-dna/keysync/test/servers"
)

// TestVaultRestartIsSurvived kills the Vault server under a running sidecar, starts it
// again (a dev server comes back empty), writes the same document back, and rotates: the
// keys file stays untouched while Vault is away and follows it again afterwards.
func TestVaultRestartIsSurvived(t *testing.T) {
	v, err := servers.StartVault(server.Bin)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Stop()
	cfg := Config{Mount: "secret", Path: "sigil/restart", Address: v.Addr, Auth: Auth{Token: keyring.Secret(v.Token)}}
	st, err := New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := rotate.Run(t.Context(), st, nil, rotate.Options{}); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	keys := filepath.Join(out, "keys.json")
	sc := sidecartest.Run(t, sidecar.Config{Store: st, OutDir: out, Interval: 100 * time.Millisecond, BackoffCap: 300 * time.Millisecond})
	storetest.WaitFor(t, "the first keys file", func() bool { _, err := os.Stat(keys); return err == nil })
	before, _ := os.ReadFile(keys)
	doc, err := keyring.Encode(mustRead(t, st))
	if err != nil {
		t.Fatal(err)
	}

	v.Stop()
	storetest.WaitFor(t, "staleness to be reported", func() bool { return sc.Status().StaleSeconds > 1 })
	if now, _ := os.ReadFile(keys); !bytes.Equal(now, before) {
		t.Fatal("the keys file changed while Vault was down")
	}
	if ok, _ := sc.Ready(); !ok {
		t.Fatal("not ready while stale, without --max-stale")
	}

	if err := v.Start(); err != nil {
		t.Fatal(err)
	}
	root, _ := New(t.Context(), cfg)
	defer root.Close()
	if _, err := root.kv.Put(t.Context(), cfg.Path, map[string]any{FieldKeyring: string(doc)}); err != nil {
		t.Fatal(err)
	}
	storetest.WaitFor(t, "a good read after the restart", func() bool { return sc.Status().StaleSeconds < 0.5 })
	if now, _ := os.ReadFile(keys); !bytes.Equal(now, before) {
		t.Fatal("the same document written back changed the keys file")
	}
	if _, err := rotate.Run(t.Context(), root, nil, rotate.Options{Keyring: keyring.Options{ActivationDelay: time.Second}}); err != nil {
		t.Fatal(err)
	}
	storetest.WaitFor(t, "generation 2 in the keys file", func() bool { return sc.Status().Generation == 2 })
}

func mustRead(t *testing.T, s *Store) *keyring.Keyring {
	t.Helper()
	snap, err := s.Read(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return snap.Keyring
}
