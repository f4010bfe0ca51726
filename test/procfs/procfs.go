// Package procfs reads what the benchmarks measure of a process from /proc: its
// resident memory and its open files.
package procfs

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// RSS is a process's resident memory (VmRSS), in bytes.
func RSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			if f := strings.Fields(v); len(f) > 0 {
				kb, err := strconv.ParseInt(f[0], 10, 64)
				return kb << 10, err
			}
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: %w", pid, ErrNoRSS)
}

// ErrNoRSS: the process has no resident set to report (a zombie, a kernel thread).
var ErrNoRSS = errors.New("no VmRSS (a zombie, or a kernel thread)")

// OpenFiles is how many file descriptors a process holds.
func OpenFiles(pid int) (int, error) {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	return len(ents), err
}
