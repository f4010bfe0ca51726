// Command fleet is the fleet benchmark and chaos suite: `make bench-fleet` runs it with
// the defaults (20 pods × 200 rotations per scheme against a real Vault) and writes the
// report into docs/benchmarks.md with two PNG charts.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/sigil-dna/keysync/test/servers"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "fleet:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	var c Config
	var keysyncBin, report, section string
	var asJSON bool
	flag.IntVar(&c.Pods, "pods", 20, "pods (sidecar + app each)")
	flag.IntVar(&c.Rotations, "rotations", 200, "rotations per scheme")
	flag.DurationVar(&c.RotateEvery, "rotate-every", 3*time.Second, "time between rotations")
	flag.DurationVar(&c.Poll, "poll", 2*time.Second, "sidecar poll interval")
	flag.DurationVar(&c.BackoffCap, "backoff-cap", 4*time.Second, "sidecar backoff cap")
	flag.StringVar(&c.Store, "store", "vault", "store: vault, file, ssm (kumo emulator, in process) or secretsmanager (the AWS fake, in process)")
	flag.IntVar(&c.Rate, "rate", 200, "events per second, all apps together")
	flag.DurationVar(&c.Skew, "skew", 5*time.Second, "app clocks spread over ±skew")
	flag.DurationVar(&c.ActivationDelay, "activation-delay", 15*time.Second, "staged activation delay (> skew + poll×1.2 + backoff cap)")
	flag.DurationVar(&c.VerifyWindow, "verify-window", 24*time.Second, "how long replaced keys verify, both schemes")
	flag.BoolVar(&c.Naive, "naive", true, "also run the ticket's scheme (new key at once, old+new for the window) as a baseline")
	flag.DurationVar(&c.StoreOutage, "store-outage", 60*time.Second, "stop the store this long mid-run (0: no outage)")
	flag.BoolVar(&c.KillSidecars, "kill-sidecars", true, "SIGKILL random sidecars during the staged phase")
	flag.BoolVar(&c.InvalidDocument, "invalid-document", true, "write an invalid document to the store mid-run")
	flag.BoolVar(&c.RestartApp, "restart-app", true, "kill an app right after a rotation's store write")
	flag.BoolVar(&c.Emergency, "emergency", true, "end with an emergency rotation")
	flag.DurationVar(&c.Partition, "partition", 0, "cut pod 0 off the store this long from the second rotation of the timer and the gated phase (0: none)")
	flag.BoolVar(&c.RotateAtRecovery, "rotate-at-recovery", false, "after a store outage, rotate as soon as the store is back (and give the gated phase the same outage)")
	flag.BoolVar(&c.NoForgeries, "no-forgeries", false, "skip the forgery checks and the wait for the last verify window")
	flag.BoolVar(&c.Gated, "gated", false, "add a phase of fleet-confirmed rotations after the timer phase, same traffic and partition")
	flag.IntVar(&c.Soak.Months, "soak", 0, "run the compressed-calendar soak of this many monthly gated rotations instead of the phases (36: three years)")
	flag.DurationVar(&c.Soak.Month, "soak-month", 45*time.Second, "soak: one month")
	flag.DurationVar(&c.Soak.GateTimeout, "soak-gate-timeout", 6*time.Second, "soak: the rotation's --confirm-timeout")
	flag.StringVar(&keysyncBin, "keysync", "", "keysync binary (default: built into the work dir); keysync-demo is always built there")
	flag.StringVar(&c.Work, "work", "", "work dir (default: a temporary one, removed after)")
	flag.StringVar(&report, "report", "", "benchmarks file whose fleet section is replaced (e.g. docs/benchmarks.md)")
	flag.StringVar(&section, "section", "fleet", "name of the report's section in --report, and of its charts")
	flag.BoolVar(&asJSON, "json", false, "print the report as JSON")
	flag.Parse()
	if c.Work == "" {
		d, err := os.MkdirTemp("", "keysync-fleet-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		c.Work = d
	}
	if keysyncBin == "" {
		keysyncBin = filepath.Join(c.Work, "keysync")
		if err := build(keysyncBin, "./cmd/keysync"); err != nil {
			return err
		}
	}
	c.Keysync, c.Demo = keysyncBin, filepath.Join(c.Work, "keysync-demo")
	if err := build(c.Demo, "./cmd/keysync-demo"); err != nil {
		return err
	}
	if c.Store == "vault" {
		bin, err := servers.VaultBinary()
		if err != nil {
			return err
		}
		c.VaultBin = bin
	}
	c.Progress = os.Stderr
	if c.Soak.Months > 0 {
		c.Soak = soakDefaults(c.Soak)
		c.Partition = c.Soak.GateTimeout * 5 / 2 // pod 0 gets a way to the store the calendar can cut
		c.Naive, c.Gated = false, false
		if section == "fleet" {
			section = "soak"
		}
	}
	rep, err := Run(ctx, c)
	if err != nil {
		return err
	}
	if s := rep.Soak; s != nil {
		command := "go run ./test/fleet " + strings.Join(os.Args[1:], " ")
		fmt.Println(s.Markdown(command, section, rep.Pods, rep.SecretsInOutput, rep.BytesScanned))
		if report != "" {
			if err := s.WriteDocs(report, command, section, rep.Pods, rep.SecretsInOutput, rep.BytesScanned); err != nil {
				return err
			}
		}
		if s.Failed > 0 || rep.SecretsInOutput > 0 || s.Intents < int(s.StoreWrites) {
			return fmt.Errorf("soak: %d failed verifications, %d secrets in output, %d intent records for %d store writes", s.Failed, rep.SecretsInOutput, s.Intents, s.StoreWrites)
		}
		return nil
	}
	if asJSON {
		out, _ := json.MarshalIndent(rep, "", "  ")
		fmt.Println(string(out))
	} else {
		fmt.Println(rep.Markdown("go run ./test/fleet "+strings.Join(os.Args[1:], " "), section))
	}
	if report != "" {
		if err := rep.WriteDocs(report, "go run ./test/fleet "+strings.Join(os.Args[1:], " "), section); err != nil {
			return err
		}
	}
	// The timer phase is expected to fail under a partition longer than its delay: that is
	// what the gated phase is compared with.
	for _, p := range rep.Phases {
		if p.FailedVerifications > 0 && !strings.HasPrefix(p.Scheme, "naive") && (c.Partition == 0 || !strings.HasPrefix(p.Scheme, "staged")) {
			return fmt.Errorf("%s: %d failed verifications", p.Scheme, p.FailedVerifications)
		}
	}
	if rep.SecretsInOutput > 0 || len(rep.ForgeriesAccepted) > 0 {
		return fmt.Errorf("%d secrets in output, %d forgeries accepted", rep.SecretsInOutput, len(rep.ForgeriesAccepted))
	}
	return nil
}

// build compiles one of the repository's commands into out.
func build(out, pkg string) error {
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir, cmd.Stderr = servers.RepoRoot(), os.Stderr
	return cmd.Run()
}
