// Package procfs is the one reader of /proc for the harness, the tests and the
// benchmarks: a process's resident memory, open files, CPU time, command line, children,
// and the processes whose command line matches.
package procfs

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
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

// Cmdline is a process's arguments (/proc/PID/cmdline); nil when it is gone.
func Cmdline(pid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || len(b) == 0 {
		return nil
	}
	return strings.Split(string(bytes.TrimSuffix(b, []byte{0})), "\x00")
}

// Comm is a process's name (/proc/PID/comm); "" when it is gone.
func Comm(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	return strings.TrimSpace(string(b))
}

// Children lists a process's children: those of every one of its threads
// (/proc/PID/task/TID/children), since a multi-threaded parent (a Go program) forks from
// any of them.
func Children(pid int) []int {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	var out []int
	for _, t := range tasks {
		data, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(data)) {
			if n, err := strconv.Atoi(f); err == nil {
				out = append(out, n)
			}
		}
	}
	return out
}

// Find returns the pids of the processes (this one excepted) for which match holds,
// given each one's pid and arguments.
func Find(match func(pid int, args []string) bool) []int {
	var out []int
	entries, _ := os.ReadDir("/proc")
	for _, en := range entries {
		pid, err := strconv.Atoi(en.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		if args := Cmdline(pid); args != nil && match(pid, args) {
			out = append(out, pid)
		}
	}
	return out
}

// clockTicks is USER_HZ on Linux: /proc/PID/stat counts CPU time in these.
const clockTicks = 100

// CPUPercent is a process's mean CPU use since it started, in percent of one core
// (/proc/PID/stat and /proc/uptime).
func CPUPercent(pid int) (float64, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	if len(fields) < 20 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(fields))
	}
	utime, _ := strconv.ParseFloat(fields[11], 64)
	stime, _ := strconv.ParseFloat(fields[12], 64)
	start, _ := strconv.ParseFloat(fields[19], 64)
	up, err := os.ReadFile("/proc/uptime")
	if err != nil {
		return 0, err
	}
	uptime, _ := strconv.ParseFloat(strings.Fields(string(up))[0], 64)
	if alive := uptime - start/clockTicks; alive > 0 {
		return 100 * (utime + stime) / clockTicks / alive, nil
	}
	return 0, nil
}

// CPUTime is a process's time on a CPU, summed over its threads, from each thread's
// /proc/PID/task/TID/schedstat (nanoseconds; /proc/PID/stat counts in 10 ms ticks).
func CPUTime(pid int) (time.Duration, error) {
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	if err != nil || len(tasks) == 0 {
		return 0, fmt.Errorf("no threads of %d: %v", pid, err)
	}
	var total int64
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue // the thread ended
		}
		ns, err := strconv.ParseInt(strings.Fields(string(b))[0], 10, 64)
		if err != nil {
			return 0, err
		}
		total += ns
	}
	return time.Duration(total), nil
}

// SmapsRollup is /proc/PID/smaps_rollup, each field in bytes.
func SmapsRollup(pid int) (map[string]int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	m := map[string]int64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) == 3 && fs[2] == "kB" {
			n, _ := strconv.ParseInt(fs[1], 10, 64)
			m[strings.TrimSuffix(fs[0], ":")] = n << 10
		}
	}
	return m, sc.Err()
}

// Naming returns the processes (this one excepted) whose command line names dir: what a
// stopped server that keeps its state under dir may have left running.
func Naming(dir string) []int {
	return Find(func(_ int, args []string) bool { return strings.Contains(strings.Join(args, " "), dir) })
}

// MountsUnder lists the mount points at dir or under it (/proc/self/mountinfo), in the
// order they were mounted.
func MountsUnder(dir string) []string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			out = append(out, f[4])
		}
	}
	return out
}
