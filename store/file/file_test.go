package file

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sigil-dna/keysync/keyring"
	"github.com/sigil-dna/keysync/store/storetest"
)

func newStore(t *testing.T) *Store {
	t.Helper()
	s, err := New(filepath.Join(t.TempDir(), "store", "keys.json"), storetest.Schedule)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestInvalidDocumentIsRejectedNamingTheFile(t *testing.T) {
	s := newStore(t)
	os.MkdirAll(filepath.Dir(s.path), 0o700)
	os.WriteFile(s.path, []byte(`{"version":1,"generation":0}`), 0o600)
	_, err := s.Read(context.Background())
	if !errors.Is(err, keyring.ErrInvalid) || !strings.Contains(err.Error(), s.path) {
		t.Fatalf("err = %v", err)
	}
}

func TestPlainValueFile(t *testing.T) {
	s := newStore(t)
	os.MkdirAll(filepath.Dir(s.path), 0o700)
	value := "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
	os.WriteFile(s.path, []byte(value+"\n"), 0o600) // as `openssl rand -hex 32 > FILE` writes it
	snap, err := s.Read(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !snap.Plain || len(snap.Keyring.Keys) != 1 || string(snap.Keyring.Keys[0].Secret) != value {
		t.Fatalf("%+v", snap)
	}
	// rotate over a plain value: the write is based on the plain version.
	next, _ := keyring.Stage(snap.Keyring, time.Now(), storetest.Secret("n"), keyring.Options{})
	if _, err := s.Write(context.Background(), next, snap.Version); err != nil {
		t.Fatal(err)
	}
	if snap, err = s.Read(context.Background()); err != nil || snap.Plain || len(snap.Keyring.Keys) != 2 {
		t.Fatalf("%v %+v", err, snap)
	}
}

func TestWatchSeesAtomicReplace(t *testing.T) {
	s := newStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	os.MkdirAll(filepath.Dir(s.path), 0o700)
	ch, err := s.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r, _ := keyring.Stage(nil, time.Now(), storetest.Secret("w"), keyring.Options{})
	if _, err := s.Write(ctx, r, ""); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatal("no change seen")
	}
	cancel()
	for range ch { // the channel closes when ctx ends
	}
}

func TestWriteWaitsForTheLockUntilTheContextEnds(t *testing.T) {
	s := newStore(t)
	unlock, err := s.lock(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	r, _ := keyring.Stage(nil, time.Now(), storetest.Secret("l"), keyring.Options{})
	if _, err := s.Write(ctx, r, ""); !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), ".lock") {
		t.Fatalf("err = %v", err)
	}
}

// TestAnOversizedDocumentSaysSo: a 10 MB file was reported as "document is 65537 bytes"
// (what the bounded read had taken); it is larger than the limit, and said so (regression).
func TestAnOversizedDocumentSaysSo(t *testing.T) {
	s := newStore(t)
	os.MkdirAll(filepath.Dir(s.path), 0o700)
	os.WriteFile(s.path, []byte(`{"version":1,"reason":"`+strings.Repeat("x", 10<<20)+`"}`), 0o600)
	_, err := s.Read(context.Background())
	if !errors.Is(err, keyring.ErrInvalid) || strings.Contains(err.Error(), "65537") || !strings.Contains(err.Error(), "larger than the limit of 65536 bytes") {
		t.Fatalf("err = %v", err)
	}
}

// TestARotationKeepsTheFilesOwnerAndMode: `keysync rotate` run as another user (root)
// replaced the store file with a new one owned by root, mode 0600, which locked the
// sidecar (the file's owner) out of its store: the new key never reached the fleet
// (regression). The replaced file keeps its owner, group and mode.
func TestARotationKeepsTheFilesOwnerAndMode(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("precondition: a second UID needs root (CI runs as root)")
	}
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	path := filepath.Join(dir, "keys.json")
	s, err := New(path, storetest.Schedule)
	if err != nil {
		t.Fatal(err)
	}
	first, _ := keyring.Stage(nil, time.Now(), storetest.Secret("1"), keyring.Options{})
	v, err := s.Write(context.Background(), first, "")
	if err != nil {
		t.Fatal(err)
	}
	const nobody = 65534
	if err := os.Chown(path, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	os.Chmod(path, 0o640)
	second, _ := keyring.Stage(first, time.Now(), storetest.Secret("2"), keyring.Options{})
	if _, err := s.Write(context.Background(), second, v); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if st.Uid != nobody || st.Gid != nobody || fi.Mode().Perm() != 0o640 {
		t.Fatalf("after the rotation: uid %d gid %d mode %v, want %d %d 0640", st.Uid, st.Gid, fi.Mode().Perm(), nobody, nobody)
	}
}
