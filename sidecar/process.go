package sidecar

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	ps "github.com/mitchellh/go-ps"
	"golang.org/x/sys/unix"
)

// ErrNoProcess means the app is not running (yet): a normal, retried state.
var ErrNoProcess = errors.New("app process not found")

// errTooYoung means the app started a moment ago and may not have installed its signal
// handler yet: a SIGHUP would then end it. It wraps ErrNoProcess, so it is retried soon.
var errTooYoung = fmt.Errorf("%w: it started too recently to have installed its signal handler", ErrNoProcess)

// ErrNotPermitted means the kernel refused the signal; the message says how to fix it.
var ErrNotPermitted = errors.New("not permitted to signal the app: a sidecar signals only a process of its own UID (a non-root container gets no ambient capability, so adding CAP_KILL does not help): run the sidecar with the app's UID, or let the app reload by its own file watch")

// process is a running process pinned by its start time, so a reused pid is never taken
// for it.
type process struct {
	pid       int
	startTime uint64 // clock ticks after boot, /proc/PID/stat field 22
}

// finder locates the app: by executable name (through go-ps) or by a pid file.
type finder struct {
	name    string
	pidFile string
	self    int
}

func (f finder) String() string {
	if f.pidFile != "" {
		return "pid file " + f.pidFile
	}
	return "process " + f.name
}

// find returns every matching process. With a shared process namespace a name may match
// several (a Node cluster's workers); each of them loads the keys itself.
func (f finder) find() ([]process, error) {
	if f.pidFile != "" {
		data, err := os.ReadFile(f.pidFile)
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w: pid file %s does not exist", ErrNoProcess, f.pidFile)
		}
		if err != nil {
			return nil, fmt.Errorf("reading pid file: %w", err)
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
		if err != nil || pid <= 0 {
			return nil, fmt.Errorf("pid file %s does not hold a pid", f.pidFile)
		}
		p, err := pinned(pid)
		if err != nil {
			return nil, fmt.Errorf("%w: pid %d from %s is gone", ErrNoProcess, pid, f.pidFile)
		}
		return []process{p}, nil
	}
	all, err := ps.Processes()
	if err != nil {
		return nil, fmt.Errorf("listing processes: %w", err)
	}
	var out []process
	for _, pr := range all {
		if pr.Pid() == f.self || !f.matches(pr) {
			continue
		}
		if p, err := pinned(pr.Pid()); err == nil {
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: no process named %q", ErrNoProcess, f.name)
	}
	return out, nil
}

// matches compares the kernel's comm (at most 15 bytes) and, for longer names or
// interpreters, the base name of argv[0].
func (f finder) matches(pr ps.Process) bool {
	comm := pr.Executable()
	if comm == f.name || (len(f.name) > 15 && comm == f.name[:15]) {
		return true
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pr.Pid()))
	if err != nil {
		return false
	}
	argv0, _, _ := bytes.Cut(cmdline, []byte{0})
	return filepath.Base(string(argv0)) == f.name
}

// pinned reads the start time of pid.
func pinned(pid int) (process, error) {
	st, err := startTime(pid)
	if err != nil {
		return process{}, err
	}
	return process{pid: pid, startTime: st}, nil
}

func startTime(pid int) (uint64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// comm may hold spaces and parentheses: fields start after the last ')'.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, fmt.Errorf("unexpected /proc/%d/stat", pid)
	}
	fields := strings.Fields(string(data[i+1:]))
	if len(fields) < 20 {
		return 0, fmt.Errorf("unexpected /proc/%d/stat", pid)
	}
	return strconv.ParseUint(fields[19], 10, 64) // field 22 overall; state is field 3
}

// age is how long ago p started, from its start time and the system's uptime.
func (p process) age() (time.Duration, error) {
	up, err := os.ReadFile("/proc/uptime")
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(up))
	if len(f) == 0 {
		return 0, fmt.Errorf("unexpected /proc/uptime")
	}
	uptime, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return 0, err
	}
	const clockTicks = 100 // USER_HZ
	return time.Duration((uptime - float64(p.startTime)/clockTicks) * float64(time.Second)), nil
}

// signal sends sig to p if p is still the process that was found. With a pidfd (Linux
// 5.3+) the check and the signal are race-free: the pidfd pins the process while its
// start time is compared.
func (p process) signal(sig syscall.Signal) error {
	fd, err := unix.PidfdOpen(p.pid, 0)
	if err == nil {
		defer unix.Close(fd)
		if st, err := startTime(p.pid); err != nil || st != p.startTime {
			return fmt.Errorf("%w: pid %d was reused by another process", ErrNoProcess, p.pid)
		}
		return signalError(p.pid, unix.PidfdSendSignal(fd, sig, nil, 0))
	}
	if errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("%w: pid %d exited", ErrNoProcess, p.pid)
	}
	// No pidfd support: check, then signal (a small window remains).
	if st, err := startTime(p.pid); err != nil || st != p.startTime {
		return fmt.Errorf("%w: pid %d exited or was reused", ErrNoProcess, p.pid)
	}
	return signalError(p.pid, unix.Kill(p.pid, sig))
}

func signalError(pid int, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.EPERM):
		return fmt.Errorf("pid %d: %w", pid, ErrNotPermitted)
	case errors.Is(err, unix.ESRCH):
		return fmt.Errorf("%w: pid %d exited", ErrNoProcess, pid)
	}
	return fmt.Errorf("signalling pid %d: %w", pid, err)
}

// processSignaller signals the app's processes, found anew before each signal.
type processSignaller struct {
	finder finder
	sig    syscall.Signal
	minAge time.Duration
}

var _ signaller = (*processSignaller)(nil)

func (p *processSignaller) String() string { return p.finder.String() }

// signal sends the signal to every matching process, none of them if one is younger than
// minAge (it may not handle the signal yet; it reads the keys file when it starts).
func (p *processSignaller) signal() ([]int, error) {
	procs, err := p.finder.find()
	if err != nil {
		return nil, err
	}
	for _, pr := range procs {
		if age, err := pr.age(); err == nil && age < p.minAge {
			return nil, fmt.Errorf("pid %d: %w", pr.pid, errTooYoung)
		}
	}
	var pids []int
	for _, pr := range procs {
		if err := pr.signal(p.sig); err != nil {
			return pids, err
		}
		pids = append(pids, pr.pid)
	}
	return pids, nil
}

// permitted checks with signal 0 that every process found can be signalled.
func (p *processSignaller) permitted() error {
	procs, err := p.finder.find()
	if err != nil {
		return err
	}
	for _, pr := range procs {
		if err := pr.signal(0); err != nil {
			return err
		}
	}
	return nil
}

// ParseSignal accepts HUP, SIGHUP, hup or a number.
func ParseSignal(s string) (syscall.Signal, error) {
	if n, err := strconv.Atoi(s); err == nil && n > 0 && n < 65 {
		return syscall.Signal(n), nil
	}
	name := strings.ToUpper(strings.TrimPrefix(strings.ToUpper(s), "SIG"))
	if sig := unix.SignalNum("SIG" + name); sig != 0 {
		return sig, nil
	}
	return 0, fmt.Errorf("unknown signal %q (use a name such as HUP or USR1, or a number)", s)
}
