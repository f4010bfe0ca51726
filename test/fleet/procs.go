package main

import (
	"errors"
	"slices"
	"syscall"

	"github.com/sigil-dna/keysync/harness/procfs"
)

func isSidecar(pid int) bool {
	args := procfs.Cmdline(pid)
	return len(args) > 1 && args[1] == "sidecar"
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
	cpuPercent, err = procfs.CPUPercent(pid)
	return rssMiB, cpuPercent, err
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
