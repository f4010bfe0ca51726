package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/sigil-dna/keysync/internal/cli"
	"github.com/sigil-dna/keysync/internal/demo"
	"github.com/sigil-dna/keysync/internal/podfleet"
)

type demoFlags struct {
	cfg             demo.Config
	asJSON, noPIDNS bool
	log             cli.LogFlags
}

func demoCommand() (*cli.Command, *demoFlags) {
	c := cli.New("demo", "Run a local fleet on the embedded file store and rotate its key under load.", `
Starts --pods pods, each a real sidecar process and a real app process built on the
reload library (in a PID namespace of their own when run as root, so signals cross a
shared process namespace as in Kubernetes). Every app sends signed events to the others
while the key is rotated every --rotate-every. Prints progress each second and a
summary at the end; exits 1 if any verification failed or a secret appeared in any
process's output.`)
	f := &demoFlags{}
	cfg := &f.cfg
	c.IntVar(&cfg.Pods, "pods", 4, "number of pods")
	c.DurationVar(&cfg.Duration, "duration", 30*time.Second, "how long to run")
	c.DurationVar(&cfg.RotateEvery, "rotate-every", 4*time.Second, "time between rotations")
	c.DurationVar(&cfg.Interval, "interval", 2*time.Second, "sidecar poll interval (the file store is also watched)")
	c.DurationVar(&cfg.ActivationDelay, "activation-delay", 2*time.Second, "activation delay of each rotation")
	c.DurationVar(&cfg.VerifyWindow, "verify-window", 6*time.Second, "verify window of each rotation")
	c.IntVar(&cfg.Rate, "rate", 200, "events per second across all apps")
	c.StringVar(&cfg.Dir, "dir", "", "working directory to keep (default: a temporary one, removed after)")
	c.BoolVar(&f.noPIDNS, "no-pid-namespaces", false, "do not give each pod a PID namespace even when root")
	c.BoolVar(&f.asJSON, "json", false, "print the summary as one JSON object")
	f.log.Register(c)
	return c, f
}

func runDemo(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	c, f := demoCommand()
	if err := c.Parse(args, getenv, stdout); err != nil {
		return err
	}
	cfg, asJSON, noPIDNS, logFlags := f.cfg, f.asJSON, f.noPIDNS, f.log
	log, err := logFlags.Logger(stderr)
	if err != nil {
		return err
	}
	if cfg.Exe, err = os.Executable(); err != nil {
		return err
	}
	cfg.PIDNamespaces = !noPIDNS && podfleet.PIDNamespacesAvailable()
	cfg.Progress, cfg.Log = stderr, log
	sum, err := demo.Run(ctx, cfg)
	if err != nil {
		return err
	}
	if asJSON {
		out, _ := json.Marshal(sum)
		fmt.Fprintln(stdout, string(out))
	} else {
		printSummary(stdout, sum)
	}
	switch {
	case sum.FailedVerifications > 0:
		return fmt.Errorf("demo: %d failed verifications (first: %s)", sum.FailedVerifications, sum.FirstFailure)
	case sum.SecretsInOutput > 0:
		return fmt.Errorf("demo: a secret appeared %d times in process output", sum.SecretsInOutput)
	}
	return nil
}

func printSummary(w io.Writer, s *demo.Summary) {
	ns := "no (one process namespace, signals by pid file)"
	if s.PIDNamespaces {
		ns = "yes (one per pod, signals by process name)"
	}
	fmt.Fprintf(w, `
keysync demo summary
  pods                   %d
  own PID namespaces     %s
  duration               %.1fs
  rotations              %d
  events signed          %d
  events verified        %d
  failed verifications   %d
  delivery errors        %d
  reload after write     p50 %.1fms  p90 %.1fms  p99 %.1fms  max %.1fms  (%d reloads)
  secrets in any output  %d
`, s.Pods, ns, s.DurationSeconds, s.Rotations, s.EventsSigned, s.EventsVerified, s.FailedVerifications,
		s.DeliveryErrors, s.PropagationP50Ms, s.PropagationP90Ms, s.PropagationP99Ms, s.PropagationMaxMs, s.Reloads, s.SecretsInOutput)
}
