package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/sigil-dna/keysync/test/procfs"
)

const clockTicks = 100 // USER_HZ on Linux

func isSidecar(pid int) bool {
	cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	args := bytes.Split(cmdline, []byte{0})
	return len(args) > 1 && string(args[1]) == "sidecar"
}

func killPID(pid int) error { return syscall.Kill(pid, syscall.SIGKILL) }

// procStat returns a process's resident memory in MiB and its mean CPU use since it
// started, in percent of one core.
func procStat(pid int) (rssMiB, cpuPercent float64, err error) {
	rss, err := procfs.RSS(pid)
	if err != nil && !errors.Is(err, procfs.ErrNoRSS) {
		return 0, 0, err
	}
	rssMiB = float64(rss) / (1 << 20)
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	utime, _ := strconv.ParseFloat(fields[11], 64)
	stime, _ := strconv.ParseFloat(fields[12], 64)
	start, _ := strconv.ParseFloat(fields[19], 64)
	up, err := os.ReadFile("/proc/uptime")
	if err != nil {
		return 0, 0, err
	}
	uptime, _ := strconv.ParseFloat(strings.Fields(string(up))[0], 64)
	if alive := uptime - start/clockTicks; alive > 0 {
		cpuPercent = 100 * (utime + stime) / clockTicks / alive
	}
	return rssMiB, cpuPercent, nil
}

// footprint records the sidecars' memory and CPU at the end of the staged phase.
func (b *bench) footprint() {
	var rss, cpu []float64
	for _, p := range b.fleet.Pods {
		for _, pid := range p.HostPIDs("keysync") {
			if !isSidecar(pid) {
				continue
			}
			if r, c, err := procStat(pid); err == nil {
				rss, cpu = append(rss, r), append(cpu, c)
			}
		}
	}
	if len(rss) == 0 {
		return
	}
	slices.Sort(rss)
	b.rep.SidecarRSSMiB = [2]float64{rss[len(rss)/2], rss[len(rss)-1]}
	s := 0.0
	for _, c := range cpu {
		s += c
	}
	b.rep.SidecarCPUPercent = s / float64(len(cpu))
}
