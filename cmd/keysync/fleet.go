package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/sigil-dna/keysync/internal/cli"
	"github.com/sigil-dna/keysync/rotate/fleet"
	"github.com/sigil-dna/keysync/sidecar"
)

// fleetFlags are the flags that name a fleet and how to ask it.
type fleetFlags struct {
	confirm, check        cli.FieldList
	timeout, maxClockSkew time.Duration
	concurrency           int
}

const fleetSyntax = "k8s://NAMESPACE?selector=LABELS[&port=9102][&container=keysync][&context=CTX], dns://NAME:PORT[?server=HOST:PORT], or http://HOST:PORT[,http://…]"

// registerGate adds the flags of a command that waits at the gate (rotate, promote).
func (f *fleetFlags) registerGate(c *cli.Command, name string) {
	usage := "`fleet` whose members must all hold the new key before it signs: it is written held, the gate waits, then the promotion is written (repeatable: several clusters or regions; in the variable, separated by spaces). " + fleetSyntax
	if name == "promote" {
		usage = "`fleet` whose members must all hold the held key before it is promoted (repeatable). " + fleetSyntax
	}
	c.Var(&f.confirm, "confirm-fleet", usage)
	c.DurationVar(&f.timeout, "confirm-timeout", fleet.DefaultTimeout, "how long the gate waits for every member; then the key stays held, is not promoted, and the laggards are named")
	c.DurationVar(&f.maxClockSkew, "max-clock-skew", fleet.DefaultMaxClockSkew, "the promoted key signs from the promotion plus this margin")
	c.IntVar(&f.concurrency, "fleet-concurrency", fleet.DefaultConcurrency, "members asked at once")
}

// sources parses the given fleets.
func (f *fleetFlags) sources(raw []string, kubeconfig string) ([]fleet.Source, error) {
	var out []fleet.Source
	for _, r := range raw {
		s, err := fleet.ParseSource(r, fleet.SourceOptions{Kube: func(raw string) (fleet.Source, error) {
			if kubeFleet == nil {
				return nil, notInThisBuild("fleet "+raw, familyByName("kube"))
			}
			return kubeFleet(raw, kubeconfig)
		}})
		if err != nil {
			return nil, cli.UsageError{Err: err}
		}
		out = append(out, s)
	}
	return out, nil
}

// gate builds the gate of --confirm-fleet, printing its progress to w; nil without one.
func (f *fleetFlags) gate(kubeconfig string, w io.Writer) (*fleet.Gate, error) {
	if len(f.confirm) == 0 {
		return nil, nil
	}
	srcs, err := f.sources(f.confirm, kubeconfig)
	if err != nil {
		return nil, err
	}
	if f.timeout <= 0 {
		return nil, cli.Usagef("--confirm-timeout %s: must be positive", f.timeout)
	}
	return &fleet.Gate{Sources: srcs, Client: fleet.NewClient(f.concurrency, 0), Timeout: f.timeout,
		Progress: func(line string) { fmt.Fprintln(w, "gate:", line) }}, nil
}

// checkTimer is --check-fleet: a timer rotation asks the fleet first and refuses an
// activation delay below the slowest member's worst propagation plus the clock skew.
func (f *fleetFlags) checkTimer(ctx context.Context, delay time.Duration, kubeconfig string) error {
	if len(f.check) == 0 {
		return nil
	}
	srcs, err := f.sources(f.check, kubeconfig)
	if err != nil {
		return err
	}
	g := &fleet.Gate{Sources: srcs, Client: fleet.NewClient(f.concurrency, 0)}
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	r, err := g.Round(ctx)
	if err != nil {
		return err
	}
	worst, who, asked := time.Duration(0), "", 0
	var problems []string
	for _, o := range r.Observations {
		switch {
		case o.Member.Skip != "":
		case o.Member.Lag != "":
			problems = append(problems, fmt.Sprintf("%s: %s", o.Member.Name, o.Member.Lag))
		case o.Err != nil:
			problems = append(problems, fmt.Sprintf("%s: %v", o.Member.Name, o.Err))
		default:
			asked++
			if w := time.Duration(o.Status.Settings.WorstPropagation * float64(time.Second)); w > worst {
				worst, who = w, o.Member.Name
			}
		}
	}
	switch {
	case len(problems) > 0:
		return fmt.Errorf("--check-fleet: nothing was written:\n  %s", strings.Join(problems, "\n  "))
	case asked == 0:
		return fmt.Errorf("--check-fleet: %w; nothing was written", fleet.ErrEmpty)
	case delay < worst+f.maxClockSkew:
		return cli.Usagef("--activation-delay %s is below the fleet's worst propagation %s (%s: its poll interval with jitter or backoff cap, plus a read timeout) plus --max-clock-skew %s: a pod could miss the switch. Raise the delay, or rotate with --confirm-fleet",
			delay, worst, who, f.maxClockSkew)
	}
	return nil
}

// defaultMinPropagation is the worst propagation of a sidecar with the default settings,
// plus the default clock skew: what a timer rotation's delay must exceed by default.
func defaultMinPropagation() time.Duration {
	return sidecar.WorstPropagation(sidecar.DefaultInterval, sidecar.DefaultJitter, sidecar.DefaultBackoffCap) + fleet.DefaultMaxClockSkew
}
