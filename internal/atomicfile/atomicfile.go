// Package atomicfile replaces files so that a reader sees the old content or the new,
// never a mix, even when the writer is killed half-way. Atomic only on POSIX file
// systems, where rename within one directory is atomic.
package atomicfile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// tempPrefix marks the temporary files WriteFile makes, so RemoveStale can find the
// ones a killed writer left behind.
func tempPrefix(path string) string { return "." + filepath.Base(path) + ".tmp-" }

// WriteFile atomically replaces path with data and mode perm: a temporary file in the
// same directory is written, synced and renamed over path, then the directory is synced
// so the rename survives a crash. The temporary file is removed on every error path. It
// refuses to replace a symbolic link, which it did not make.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	return writeFile(path, data, perm, nil)
}

// OverwriteFile is WriteFile for a path that is this process's alone (the sidecar's keys
// file): a symbolic link found there was put by someone else and is replaced by the
// file, not followed.
func OverwriteFile(path string, data []byte, perm os.FileMode) error {
	return write(path, data, perm, nil)
}

func writeFile(path string, data []byte, perm os.FileMode, prepare func(*os.File) error) error {
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSymlink != 0 {
		return fmt.Errorf("refusing to replace %s: it is a symbolic link keysync did not make", path)
	}
	return write(path, data, perm, prepare)
}

func write(path string, data []byte, perm os.FileMode, prepare func(*os.File) error) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, tempPrefix(path))
	if err != nil {
		return fmt.Errorf("creating a temporary file in %s: %w", dir, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if prepare != nil {
		if err := prepare(f); err != nil {
			return err
		}
	}
	if err := f.Chmod(perm); err != nil {
		return fmt.Errorf("setting the mode of %s: %w", tmp, err)
	}
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("writing %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("closing %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("renaming into %s: %w", path, err)
	}
	return SyncDir(dir)
}

// ReplaceFile is WriteFile for a file that others own and read: when path exists, the new
// file gets its mode and its owner and group instead of perm and the writer's, so that a
// replacement by another user (root running `keysync rotate`) does not lock its readers
// out. It fails, leaving path as it was, when the owner cannot be kept (a writer that is
// neither root nor the owner).
func ReplaceFile(path string, data []byte, perm os.FileMode) error {
	fi, err := os.Stat(path)
	if err != nil {
		return WriteFile(path, data, perm)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return WriteFile(path, data, fi.Mode().Perm())
	}
	return writeFile(path, data, fi.Mode().Perm(), func(f *os.File) error {
		if int(st.Uid) == os.Geteuid() && int(st.Gid) == os.Getegid() {
			return nil
		}
		if err := f.Chown(int(st.Uid), int(st.Gid)); err != nil {
			return fmt.Errorf("keeping the owner %d:%d of %s (run as that user, or root): %w", st.Uid, st.Gid, path, err)
		}
		return nil
	})
}

// SyncDir fsyncs a directory so that renames in it are durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("opening directory %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return fmt.Errorf("syncing directory %s: %w", dir, err)
	}
	return nil
}

// RemoveStale deletes temporary files that a killed WriteFile of path left behind and
// returns how many it removed. Call it only while no other writer of path runs.
func RemoveStale(path string) (int, error) {
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), tempPrefix(path)) {
			if err := os.Remove(filepath.Join(filepath.Dir(path), e.Name())); err == nil {
				n++
			}
		}
	}
	return n, nil
}
