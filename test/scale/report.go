package scale

import (
	"fmt"
	"os"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// Markdown renders the results of one store, N ascending.
func Markdown(kind string, rs []*Result, o Options) string {
	var b strings.Builder
	fmt.Fprintf(&b, "### %s\n\n", storeTitle(kind))
	b.WriteString("| pods | sidecars | store requests/s idle (per pod per interval) | busiest idle second | during the rotation | busiest second during the outage | busiest second after it (× idle) | propagation p50 / p99 / max | CPU per pod |")
	if kind == "k8s" {
		b.WriteString(" apiserver RSS | watches on secrets |")
	}
	b.WriteString("\n|---|---|---|---|---|---|---|---|---|")
	if kind == "k8s" {
		b.WriteString("---|---|")
	}
	b.WriteString("\n")
	for _, r := range rs {
		perPod := r.IdleRPS * o.Interval.Seconds() / float64(r.Pods)
		ratio := "—"
		if r.IdleRPS > 0 && o.Outage > 0 {
			ratio = fmt.Sprintf("%d (%.2f×)", r.MaxAfterOutage, float64(r.MaxAfterOutage)/r.IdleRPS)
		} else if o.Outage > 0 {
			ratio = fmt.Sprintf("%d", r.MaxAfterOutage)
		}
		fmt.Fprintf(&b, "| %d | in-process | %.1f (%.2f) | %d | %.1f | %d | %s | %s / %s / %s | %s/s |", r.Pods, r.IdleRPS, perPod, r.MaxIdle, r.RotationRPS, r.MaxDuringOutage, ratio,
			ms(r.PropagationMs[0]), ms(r.PropagationMs[1]), ms(r.PropagationMs[2]), r.CPUPerPodSecond.Round(time.Microsecond))
		if kind == "k8s" {
			fmt.Fprintf(&b, " %.0f MiB | %d |", float64(r.APIServerRSS)/(1<<20), r.Watches)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// Chart writes one PNG for a store: on the left the requests per second it took against N
// (idle, during the rotation, the busiest second after the outage), on the right the
// propagation p50 and p99 against N with the goal (the interval + 1 s when polled, 1 s
// for the watch). N is on a logarithmic axis.
func Chart(kind string, rs []*Result, o Options, path string) error {
	load, prop := plot.New(), plot.New()
	load.Title.Text = storeTitle(kind) + ": store load"
	load.Y.Label.Text = "requests/s"
	prop.Title.Text = "propagation (store write to keys file)"
	prop.Y.Label.Text = "seconds"
	goal, goalName := (o.Interval + time.Second).Seconds(), "goal: interval + 1 s"
	if kind == "k8s" {
		goal, goalName = 1, "goal: 1 s"
	}
	var idle, rot, after, p50, p99, goals plotter.XYs
	for _, r := range rs {
		n := float64(r.Pods)
		idle = append(idle, plotter.XY{X: n, Y: r.IdleRPS})
		rot = append(rot, plotter.XY{X: n, Y: r.RotationRPS})
		after = append(after, plotter.XY{X: n, Y: float64(r.MaxAfterOutage)})
		p50 = append(p50, plotter.XY{X: n, Y: r.PropagationMs[0] / 1000})
		p99 = append(p99, plotter.XY{X: n, Y: r.PropagationMs[1] / 1000})
		goals = append(goals, plotter.XY{X: n, Y: goal})
	}
	for _, p := range []*plot.Plot{load, prop} {
		p.X.Label.Text = "sidecars (log scale)"
		p.X.Scale, p.X.Tick.Marker = plot.LogScale{}, plot.LogTicks{Prec: -1}
		p.Y.Min = 0
		p.Legend.Top, p.Legend.Left = true, true
	}
	if err := plotutil.AddLinePoints(load, "idle", idle, "during the rotation", rot, "busiest second after the outage", after); err != nil {
		return err
	}
	if err := plotutil.AddLinePoints(prop, "p50", p50, "p99", p99, goalName, goals); err != nil {
		return err
	}
	img := vgimg.New(12*vg.Inch, 4*vg.Inch)
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 1, Cols: 2, PadX: vg.Inch / 4, PadTop: vg.Inch / 8, PadBottom: vg.Inch / 8, PadLeft: vg.Inch / 8, PadRight: vg.Inch / 8}
	canvases := plot.Align([][]*plot.Plot{{load, prop}}, tiles, dc)
	load.Draw(canvases[0][0])
	prop.Draw(canvases[0][1])
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func ms(v float64) string {
	if v >= 1000 {
		return fmt.Sprintf("%.2f s", v/1000)
	}
	return fmt.Sprintf("%.0f ms", v)
}

func storeTitle(kind string) string {
	switch kind {
	case "vault":
		return "Vault v1.21.1 dev server (KV v2), polled"
	case "k8s":
		return "Kubernetes Secret on kube-apiserver v1.37.2 with etcd, watched"
	case "ssm":
		return "AWS SSM Parameter Store on kumo, polled"
	case "secretsmanager":
		return "AWS Secrets Manager on the AWS fake, polled"
	case "gcpsm":
		return "Google Secret Manager on the gRPC fake, polled"
	}
	return kind
}
