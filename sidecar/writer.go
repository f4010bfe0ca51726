package sidecar

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

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

// intact reports whether the file still holds what this process wrote last; when it does
// not, found says what is there instead — its owner, mode and size, never its bytes.
func (f *keysFile) intact() (ok bool, found string) {
	if f.last == nil {
		return true, ""
	}
	fi, err := os.Lstat(f.path)
	switch {
	case err != nil:
		return false, "no file: " + errText(err)
	case fi.Mode()&fs.ModeSymlink != 0:
		return false, "a symbolic link " + describeFile(fi)
	case !fi.Mode().IsRegular():
		return false, "not a regular file: " + describeFile(fi)
	}
	data, err := readAtMost(f.path, len(f.last)+1)
	switch {
	case err != nil:
		return false, "unreadable: " + errText(err)
	case !bytes.Equal(data, f.last):
		return false, "other content: " + describeFile(fi)
	case fi.Mode().Perm() != f.mode.Perm():
		return false, "mode " + fi.Mode().Perm().String() + " instead of " + f.mode.Perm().String() + ": " + describeFile(fi)
	}
	return true, ""
}

// repair writes back what this process wrote last, over whatever is there (a symbolic
// link too: it is replaced, not followed).
func (f *keysFile) repair() error {
	return atomicfile.OverwriteFile(f.path, f.last, f.mode)
}

func readAtMost(path string, n int) ([]byte, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	return io.ReadAll(io.LimitReader(fh, int64(n)))
}

// describeFile is a file's owner, mode and size.
func describeFile(fi fs.FileInfo) string {
	out := fmt.Sprintf("mode %s, %d bytes", fi.Mode(), fi.Size())
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		out = fmt.Sprintf("owner %d:%d, ", st.Uid, st.Gid) + out
	}
	return out
}

// errText is an error without the path os adds (the caller names it).
func errText(err error) string {
	if pe, ok := err.(*fs.PathError); ok {
		return pe.Err.Error()
	}
	return err.Error()
}
