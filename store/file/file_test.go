package file

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
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
