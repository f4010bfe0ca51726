package scale

import (
	"fmt"
	"strings"
	"time"
)

// Markdown renders the results of one store, N ascending.
func Markdown(kind string, rs []*Result, o Options) string {
	var b strings.Builder
	fmt.Fprintf(&b, "### %s\n\n", storeTitle(kind))
	b.WriteString("| pods | sidecars | store requests/s idle (per pod per interval) | during the rotation | busiest second during the outage | busiest second after it (× idle) | propagation p50 / p99 / max | CPU per pod |")
	if kind == "k8s" {
		b.WriteString(" apiserver RSS | watches on secrets |")
	}
	b.WriteString("\n|---|---|---|---|---|---|---|---|")
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
		fmt.Fprintf(&b, "| %d | in-process | %.1f (%.2f) | %.1f | %d | %s | %s / %s / %s | %s/s |", r.Pods, r.IdleRPS, perPod, r.RotationRPS, r.MaxDuringOutage, ratio,
			ms(r.PropagationMs[0]), ms(r.PropagationMs[1]), ms(r.PropagationMs[2]), r.CPUPerPodSecond.Round(time.Microsecond))
		if kind == "k8s" {
			fmt.Fprintf(&b, " %.0f MiB | %d |", float64(r.APIServerRSS)/(1<<20), r.Watches)
		}
		b.WriteString("\n")
	}
	return b.String()
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
