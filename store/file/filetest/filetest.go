// Package filetest is the file store's fixture for the store contract and the
// cross-layer tests: a fresh file in a test directory, written by hand the way
// `openssl rand -hex 32 > FILE` or an editor would.
package filetest

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/sigil-dna/keysync/store"
	"github.com/sigil-dna/keysync/store/file"
	"github.com/sigil-dna/keysync/store/storetest"
)

// Backend describes the file store to the contract: watched, no plain-value history.
func Backend() storetest.Backend {
	return storetest.Backend{Watches: true, Open: Open}
}

// Open returns a fixture on a fresh file (its directory exists: a watch needs it).
func Open(t *testing.T) *storetest.Fixture {
	t.Helper()
	path := filepath.Join(t.TempDir(), "store", "keys.json")
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	put := func(data string) {
		if err := os.WriteFile(path+".tmp", []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(path+".tmp", path); err != nil {
			t.Fatal(err)
		}
	}
	return &storetest.Fixture{
		Store:    OpenAt(t, path),
		URL:      "file://" + path,
		Another:  func() store.Store { return OpenAt(t, path) },
		PutPlain: func(v string) { put(v + "\n") }, // as `openssl rand -hex 32 > FILE` writes it
		PutRaw:   put,
	}
}

// OpenAt opens the file store at path with the contract's plain-value schedule, closed
// when the test ends.
func OpenAt(t *testing.T, path string) *file.Store {
	t.Helper()
	s, err := file.New(path, storetest.Schedule)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
