package sidecar

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// lockOut takes an exclusive lock on the output directory for as long as the sidecar
// runs (it is released when the returned file is closed or the process ends): two
// sidecars writing one keys file overwrite each other's keyring, and each /status would
// describe a file that holds the other's. The lock is on the directory itself, so
// nothing is added to what the app watches; it is shared by every container of the pod
// that mounts the volume. It is taken before the sidecar touches the directory (it removes
// its own leftover temporary files there).
func lockOut(dir string) (*os.File, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, nil // start says what is wrong with the directory; a nil *os.File closes as a no-op
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			who := "another process"
			if pid := lockHolder(dir); pid > 0 {
				who = "process " + strconv.Itoa(pid)
			}
			return nil, fmt.Errorf("--out %s is already used by another sidecar (%s holds its lock): give each sidecar its own --out; two writing one keys file overwrite each other", dir, who)
		}
		return nil, fmt.Errorf("locking the output directory %s: %w", dir, err)
	}
	return f, nil
}

// lockHolder is the pid of the process that holds a flock on dir, from /proc/locks (0 if
// not found: another PID namespace shows no pid, or the lock is gone).
func lockHolder(dir string) int {
	var st syscall.Stat_t
	if syscall.Stat(dir, &st) != nil {
		return 0
	}
	f, err := os.Open("/proc/locks")
	if err != nil {
		return 0
	}
	defer f.Close()
	// "1: FLOCK  ADVISORY  WRITE 1234 00:2a:5678 0 EOF"
	inode := ":" + strconv.FormatUint(st.Ino, 10)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 6 && fields[1] == "FLOCK" && strings.HasSuffix(fields[5], inode) {
			if pid, err := strconv.Atoi(fields[4]); err == nil {
				return pid
			}
		}
	}
	return 0
}
