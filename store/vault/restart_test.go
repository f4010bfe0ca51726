package vault

import (
	"errors"
	"testing"

	"github.com/sigil-dna/keysync/keyring"
	"github.com/sigil-dna/keysync/store"
	"github.com/sigil-dna/keysync/store/storetest"
	"github.com/sigil-dna/keysync/test/servers"
)

// TestARestartedVaultIsReadAgainNotFromTheCache kills the Vault server under a store that
// has read a document, and starts it again empty (a dev server keeps nothing): the store
// reports the outage as an error, then the empty secret as not found — never the document
// it read before — and follows the document once it is written back. The idle-poll cache
// is keyed on the version and its created_time, so a restored server cannot serve stale
// data through it.
func TestARestartedVaultIsReadAgainNotFromTheCache(t *testing.T) {
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
	first := storetest.Rotate(t, st, keyring.Options{})
	if got := mustRead(t, st); !got.Equal(first) {
		t.Fatal("the document written is not read back")
	}

	v.Stop()
	if _, err := st.Read(t.Context()); err == nil || errors.Is(err, store.ErrNotFound) {
		t.Fatalf("read while Vault is down: err = %v, want a connection error", err)
	}
	if err := v.Start(); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Read(t.Context()); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("read of the restarted, empty Vault: err = %v, want ErrNotFound", err)
	}
	doc, err := keyring.Encode(first)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.PutRaw(cfg.Path, map[string]any{FieldKeyring: string(doc)}); err != nil {
		t.Fatal(err)
	}
	if got := mustRead(t, st); !got.Equal(first) {
		t.Fatal("the document written back is not read")
	}
	if next := storetest.Rotate(t, st, keyring.Options{}); mustRead(t, st).Generation != 2 || next.Generation != 2 {
		t.Fatal("no rotation after the restart")
	}
}

func mustRead(t *testing.T, s *Store) *keyring.Keyring {
	t.Helper()
	snap, err := s.Read(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return snap.Keyring
}
