package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sigil-dna/keysync/test/servers"
)

// TestFleetShort is the benchmark's short mode (5 pods, 10 rotations per scheme) with
// every chaos scenario, against a real Vault: the staged scheme must show no failed
// verification, every forgery with a retired key must be refused, and no secret may
// appear in any output.
func TestFleetShort(t *testing.T) {
	work, exe, demo := buildBinaries(t)
	vaultBin, err := servers.VaultBinary()
	if err != nil {
		t.Fatal(err)
	}
	var progress strings.Builder
	rep, err := Run(t.Context(), Config{
		Pods: 5, Rotations: 10, RotateEvery: 2 * time.Second, Poll: time.Second, BackoffCap: 2 * time.Second,
		Store: "vault", Rate: 100, Skew: 2 * time.Second, ActivationDelay: 7 * time.Second, VerifyWindow: 10 * time.Second,
		Naive: true, StoreOutage: 5 * time.Second, KillSidecars: true, InvalidDocument: true, RestartApp: true, Emergency: true,
		Keysync: exe, Demo: demo, VaultBin: vaultBin, Work: filepath.Join(work, "run"), Progress: &progress,
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, progress.String())
	}
	check(t, rep, 10)
	if len(rep.Phases) != 2 || rep.Phases[1].Rotations != 10 {
		t.Errorf("the naive baseline did not run")
	}
	if len(rep.Chaos) < 4 {
		t.Errorf("chaos scenarios that ran: %v", rep.Chaos)
	}
	docs := filepath.Join(work, "benchmarks.md")
	if err := rep.WriteDocs(docs, "go test ./test/fleet", "fleet"); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"fleet-propagation.png", "fleet-failures.png"} {
		if fi, err := os.Stat(filepath.Join(work, f)); err != nil || fi.Size() < 1000 {
			t.Errorf("chart %s: %v", f, err)
		}
	}
}

// TestFleetShortAWS: the same with Parameter Store (kumo) and Secrets Manager (the fake),
// with killed sidecars, a restarted app, an invalid document and an emergency rotation.
func TestFleetShortAWS(t *testing.T) {
	work, exe, demo := buildBinaries(t)
	for _, st := range []string{"ssm", "secretsmanager"} {
		t.Run(st, func(t *testing.T) {
			t.Parallel()
			var progress strings.Builder
			rep, err := Run(t.Context(), Config{
				Pods: 4, Rotations: 8, RotateEvery: 2 * time.Second, Poll: time.Second, BackoffCap: 2 * time.Second,
				Store: st, Rate: 80, Skew: 2 * time.Second, ActivationDelay: 7 * time.Second, VerifyWindow: 10 * time.Second,
				KillSidecars: true, InvalidDocument: true, RestartApp: true, Emergency: true,
				Keysync: exe, Demo: demo, Work: filepath.Join(work, st), Progress: &progress,
			})
			if err != nil {
				t.Fatalf("%v\n%s", err, progress.String())
			}
			check(t, rep, 8)
			if rep.StoreReqPerSecSteady == 0 {
				t.Error("no store request was counted")
			}
			if !slices.ContainsFunc(rep.Chaos, func(c string) bool { return strings.HasPrefix(c, "invalid document") }) {
				t.Errorf("chaos scenarios that ran: %v", rep.Chaos)
			}
		})
	}
}

func buildBinaries(t *testing.T) (work, keysync, demo string) {
	work = t.TempDir()
	keysync, demo = filepath.Join(work, "keysync"), filepath.Join(work, "keysync-demo")
	for out, pkg := range map[string]string{keysync: "./cmd/keysync", demo: "./cmd/keysync-demo"} {
		build := exec.Command("go", "build", "-o", out, pkg)
		build.Dir = servers.RepoRoot()
		if b, err := build.CombinedOutput(); err != nil {
			t.Fatalf("%v\n%s", err, b)
		}
	}
	return work, keysync, demo
}

// check holds every fleet run to the acceptance criteria: the staged phase ran with
// traffic and reloads and no failed verification, every forgery with a retired key was
// refused, and no secret appeared in any output.
func check(t *testing.T, rep *Report, rotations int) {
	t.Helper()
	staged := rep.Phases[0]
	t.Logf("\n%s", rep.Markdown("go test ./test/fleet", "fleet"))
	if staged.Rotations != rotations || staged.EventsVerified == 0 || staged.Reloads == 0 {
		t.Fatalf("the staged phase did not run: %+v", staged)
	}
	if staged.FailedVerifications != 0 {
		t.Errorf("staged scheme: %d failed verifications (first: %s)", staged.FailedVerifications, staged.FirstFailure)
	}
	if rep.ForgeriesAttempted == 0 || rep.ForgeriesRefused != rep.ForgeriesAttempted {
		t.Errorf("forgeries: %d attempted, %d refused: %v", rep.ForgeriesAttempted, rep.ForgeriesRefused, rep.ForgeriesAccepted)
	}
	if rep.SecretsInOutput != 0 || rep.BytesScanned == 0 {
		t.Errorf("secret scan: %d hits in %d bytes", rep.SecretsInOutput, rep.BytesScanned)
	}
}

// TestFleetShortPartition: one pod cut off the store for three activation delays, under
// timer-staged rotations and then fleet-confirmed ones with the same traffic. The timer
// lets the cut pod miss switches (its failed verifications are counted, and there must be
// some, or the partition showed nothing); the gate waits for it, and nothing fails.
func TestFleetShortPartition(t *testing.T) {
	work, exe, demo := buildBinaries(t)
	var progress strings.Builder
	rep, err := Run(t.Context(), Config{
		Pods: 4, Rotations: 6, RotateEvery: 2 * time.Second, Poll: 500 * time.Millisecond, BackoffCap: time.Second,
		Store: "file", Rate: 80, Skew: time.Second, ActivationDelay: 3 * time.Second, VerifyWindow: 12 * time.Second,
		Partition: 9 * time.Second, Gated: true,
		Keysync: exe, Demo: demo, Work: filepath.Join(work, "run"), Progress: &progress,
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, progress.String())
	}
	t.Logf("\n%s", rep.Markdown("go test ./test/fleet -run Partition", "fleet-partition"))
	if len(rep.Phases) != 2 {
		t.Fatalf("phases %+v", rep.Phases)
	}
	timer, gated := rep.Phases[0], rep.Phases[1]
	if timer.FailedVerifications == 0 {
		t.Errorf("the timer phase shows no failure under a partition of three activation delays: the partition did nothing")
	}
	if gated.Rotations != 6 || gated.EventsVerified == 0 || gated.FailedVerifications != 0 || len(gated.GateWaitSeconds) != 6 {
		t.Errorf("gated phase %+v (first failure %s)", gated, gated.FirstFailure)
	}
	if slices.Max(gated.GateWaitSeconds) < 5 {
		t.Errorf("no gate waited for the cut pod: %v", gated.GateWaitSeconds)
	}
	if rep.ForgeriesAttempted == 0 || rep.ForgeriesRefused != rep.ForgeriesAttempted || rep.SecretsInOutput != 0 {
		t.Errorf("forgeries %d/%d refused, %d secrets in output", rep.ForgeriesRefused, rep.ForgeriesAttempted, rep.SecretsInOutput)
	}
}

// TestSoakShort is the soak's first four months (the third with a pod lagging past the
// gate's timeout): the CronJob-like scheduler's retries resume the held key in the same
// Job, no verification fails, every store write is announced by an intent record.
func TestSoakShort(t *testing.T) {
	work, exe, demo := buildBinaries(t)
	vaultBin, err := servers.VaultBinary()
	if err != nil {
		t.Fatal(err)
	}
	sc := soakDefaults(SoakConfig{Months: 4, Month: 25 * time.Second, GateTimeout: 4 * time.Second})
	var progress strings.Builder
	rep, err := Run(t.Context(), Config{
		Pods: 3, Poll: time.Second, BackoffCap: 2 * time.Second, Store: "vault", Rate: 30, Skew: time.Second,
		ActivationDelay: 7 * time.Second, VerifyWindow: 10 * time.Second, Partition: sc.GateTimeout * 5 / 2, Soak: sc,
		Keysync: exe, Demo: demo, VaultBin: vaultBin, Work: filepath.Join(work, "soak"), Progress: &progress,
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, progress.String())
	}
	s := rep.Soak
	if s == nil || len(s.Months) != 4 {
		t.Fatalf("soak report %+v\n%s", s, progress.String())
	}
	// The lag month's Job times out at the gate, then a retry (or, on a slow machine, next
	// month's Job) resumes the held key.
	lag := strings.Join(s.Months[2].Attempts, "; ")
	after := lag + "; " + strings.Join(s.Months[3].Attempts, "; ")
	if !strings.Contains(lag, "not promoted") || !strings.Contains(after, "ok (resumed, promoted)") {
		t.Errorf("months 3 and 4, a pod lagging past the gate's timeout: %s\n%s", after, progress.String())
	}
	if s.Failed != 0 || rep.SecretsInOutput != 0 || s.Intents < int(s.StoreWrites) || s.StoreWrites == 0 || s.Completed < 2 {
		t.Errorf("%d failed, %d secrets in output, %d intents for %d writes, %d rotations took effect\n%s",
			s.Failed, rep.SecretsInOutput, s.Intents, s.StoreWrites, s.Completed, progress.String())
	}
	docs := filepath.Join(work, "benchmarks.md")
	if err := s.WriteDocs(docs, "go test ./test/fleet", "soak", rep.Pods, rep.SecretsInOutput, rep.BytesScanned); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(work, "soak-footprint.png")); err != nil || fi.Size() < 1000 {
		t.Errorf("chart: %v", err)
	}
}
