package sidecar

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"

	"github.com/sigil-dna/keysync/internal/atomicfile"
	"github.com/sigil-dna/keysync/keyring"
)

// keysFile is the file the app reads. It is written only when its content changes.
type keysFile struct {
	path string
	mode os.FileMode
	last []byte // what the file holds, as far as this process knows
}

// open removes temporary files a killed sidecar left and remembers a valid existing file,
// so a restarted sidecar neither rewrites it nor signals the app for nothing.
func (f *keysFile) open() (removed int, existing *keyring.Keyring, err error) {
	dir := filepath.Dir(f.path)
	if fi, err := os.Stat(dir); err != nil {
		return 0, nil, fmt.Errorf("output directory: %w", err)
	} else if !fi.IsDir() {
		return 0, nil, fmt.Errorf("output directory %s is not a directory", dir)
	}
	removed, err = atomicfile.RemoveStale(f.path)
	if err != nil {
		return 0, nil, fmt.Errorf("cleaning %s: %w", filepath.Dir(f.path), err)
	}
	if data, err := os.ReadFile(f.path); err == nil {
		if r, err := keyring.Parse(data); err == nil {
			f.last, existing = data, r
		}
	}
	return removed, existing, nil
}

// write encodes r and replaces the file if the content differs. It reports whether it wrote.
func (f *keysFile) write(r *keyring.Keyring) (bool, error) {
	data, err := keyring.Encode(r)
	if err != nil {
		return false, err
	}
	if bytes.Equal(data, f.last) {
		return false, nil
	}
	if err := atomicfile.WriteFile(f.path, data, f.mode); err != nil {
		return false, err
	}
	f.last = data
	return true, nil
}
