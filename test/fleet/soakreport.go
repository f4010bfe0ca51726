package main

import (
	"fmt"
	"path/filepath"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"

	"github.com/sigil-dna/keysync/test/docsection"
)

// Markdown is the soak's section of docs/benchmarks.md.
func (r *SoakReport) Markdown(command, chartPrefix string, pods int, secrets int, scanned int64) string {
	c := r.Config
	var b strings.Builder
	fmt.Fprintf(&b, "Command: `%s` (%s, %d pods, one \"month\" every %s; gate timeout %s, Job backoffLimit %d from %s doubling, deadline %s, `--if-older-than %s`).\n\n",
		command, r.Duration.Round(1e9), pods, c.Month, c.GateTimeout, c.BackoffLimit, c.Backoff, c.JobDeadline, c.IfOlderThan)
	fmt.Fprintf(&b, "| | |\n|---|---|\n")
	fmt.Fprintf(&b, "| scheduled rotations due / took effect | %d / %d |\n", r.Due, r.Completed)
	fmt.Fprintf(&b, "| longest time between two scheduled rotations that took effect | %.2f months |\n", r.LongestStuck)
	fmt.Fprintf(&b, "| events signed | %d |\n", r.Events)
	fmt.Fprintf(&b, "| failed verifications (goal 0) | **%d** |\n", r.Failed)
	fmt.Fprintf(&b, "| failed verifications in the emergency's own window (expected: the replaced key stops at once) | %d |\n", r.EmergencyFailed)
	fmt.Fprintf(&b, "| keysync's store writes (Vault versions; %d plain `vault kv put` left out) / intent records before a write / outcome records of a write | %d / %d / %d |\n", r.PlainPuts, r.StoreWrites, r.Intents, r.Outcomes)
	fmt.Fprintf(&b, "| sidecar RSS, largest per month: median and max of the first 3 months → of the last 3 | %.1f, %.1f MiB → %.1f, %.1f MiB |\n", r.RSSFirst[0], r.RSSFirst[1], r.RSSLast[0], r.RSSLast[1])
	fmt.Fprintf(&b, "| sidecar open files, same | %d, %d → %d, %d |\n", r.FDsFirst[0], r.FDsFirst[1], r.FDsLast[0], r.FDsLast[1])
	fmt.Fprintf(&b, "| secrets found in %d bytes of output | %d |\n\n", scanned, secrets)
	b.WriteString("The calendar, month by month (each Job attempt: how it ended):\n\n| month | chaos | attempts | new signing key |\n|---|---|---|---|\n")
	for _, m := range r.Months {
		rot := ""
		if m.Rotated {
			rot = m.Signing
		}
		fmt.Fprintf(&b, "| %d | %s | %s | %s |\n", m.Month, m.Chaos, strings.Join(m.Attempts, "; "), rot)
	}
	fmt.Fprintf(&b, "\n![sidecar memory and open files per month](%s-footprint.png)\n", chartPrefix)
	return b.String()
}

// WriteDocs replaces the soak's section of the benchmarks file and writes its chart.
func (r *SoakReport) WriteDocs(benchmarks, command, name string, pods, secrets int, scanned int64) error {
	if err := r.Chart(filepath.Join(filepath.Dir(benchmarks), name)); err != nil {
		return err
	}
	return docsection.Replace(benchmarks, name, r.Markdown(command, name, pods, secrets, scanned))
}

// Chart writes PREFIX-footprint.png: the largest sidecar RSS and open-file count per month.
func (r *SoakReport) Chart(prefix string) error {
	p := plot.New()
	p.Title.Text = "Largest sidecar, per month of the soak"
	p.X.Label.Text = "month"
	rss, fds := make(plotter.XYs, len(r.Months)), make(plotter.XYs, len(r.Months))
	for i, m := range r.Months {
		rss[i] = plotter.XY{X: float64(m.Month), Y: m.SidecarRSSMax}
		fds[i] = plotter.XY{X: float64(m.Month), Y: float64(m.SidecarFDsMax)}
	}
	if err := plotutil.AddLinePoints(p, "RSS (MiB)", rss, "open files", fds); err != nil {
		return err
	}
	return p.Save(8*vg.Inch, 4*vg.Inch, prefix+"-footprint.png")
}
