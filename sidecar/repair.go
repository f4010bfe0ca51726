package sidecar

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"syscall"

	"github.com/fsnotify/fsnotify"

	"github.com/sigil-dna/keysync/internal/dirwatch"
)

// checkFile compares the keys file with what this sidecar wrote last and, when someone
// else replaced or edited it (anyone who can write the output directory can), writes it
// back, counts it, and has the app reload and confirm it: the app must end on the store's
// keyring, never on a forged one. Only the loop's goroutine calls it.
func (s *Sidecar) checkFile() {
	ok, found := s.file.intact()
	if ok {
		return
	}
	s.metrics.repairs.Inc()
	s.mu.Lock()
	cur := s.current
	s.mu.Unlock()
	if err := s.file.repair(); err != nil {
		s.cfg.Log.Error("the keys file was changed by someone else and cannot be written back", "event", "keys_file_tampered",
			"path", s.file.path, "found", found, "error", err)
		return
	}
	now := s.cfg.Now()
	s.mu.Lock()
	s.written = now
	s.mu.Unlock()
	s.cfg.Log.Warn("the keys file was changed by someone else; written back and the app signalled", "event", "keys_file_repaired",
		"path", s.file.path, "found", found, "generation", cur.Generation)
	s.notify.offer(target{ring: cur, written: now})
}

// watchOut reports every change in the output directory, for checkFile; nil when the
// directory cannot be watched (the poll still checks).
func (s *Sidecar) watchOut(ctx context.Context) <-chan struct{} {
	w, err := fsnotify.NewWatcher()
	if err == nil {
		err = w.Add(s.cfg.OutDir)
	}
	if err != nil {
		s.cfg.Log.Warn("cannot watch the output directory; the keys file is checked at each poll only", "dir", s.cfg.OutDir, "error", err)
		if w != nil {
			w.Close()
		}
		return nil
	}
	return dirwatch.Changes(ctx, w, s.cfg.FileName)
}

// CheckOut warns about an output directory others could write: one that is not in
// memory (tmpfs), or that users other than the sidecar's own and its group may write.
// It returns the warnings (also logged).
func CheckOut(dir string, log *slog.Logger) []string {
	var out []string
	var fsst syscall.Statfs_t
	if err := syscall.Statfs(dir, &fsst); err == nil && fsst.Type != tmpfsMagic {
		out = append(out, "the output directory is not in memory (tmpfs): keys reach the disk; use an emptyDir with medium: Memory")
	}
	if fi, err := os.Stat(dir); err == nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			switch {
			case fi.Mode().Perm()&0o002 != 0 && fi.Mode()&os.ModeSticky == 0:
				out = append(out, fmt.Sprintf("the output directory (owner %d:%d, mode %s) is writable by every user: anyone in the pod may replace the keys file (it is written back at each poll and change)", st.Uid, st.Gid, fi.Mode()))
			case int(st.Uid) != os.Getuid() && fi.Mode().Perm()&0o200 != 0:
				out = append(out, fmt.Sprintf("the output directory is owned by user %d, not this sidecar's %d, who may replace the keys file", st.Uid, os.Getuid()))
			case fi.Mode().Perm()&0o020 != 0 && int(st.Gid) != os.Getgid():
				out = append(out, fmt.Sprintf("the output directory is writable by group %d, not this sidecar's %d", st.Gid, os.Getgid()))
			}
		}
	}
	for _, w := range out {
		log.Warn(w, "event", "output_directory", "dir", dir)
	}
	return out
}

// tmpfsMagic is TMPFS_MAGIC, statfs(2)'s f_type of a tmpfs.
const tmpfsMagic = 0x01021994
