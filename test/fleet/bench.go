package main

// The fleet benchmark and chaos suite: N real pods (sidecar + app processes) against a
// real store, signed traffic between every app, R staged rotations and then R rotations
// of the ticket's own scheme (the naive baseline) under the same traffic, chaos on the
// way, and a report with propagation, failures, forgeries refused, store load and
// sidecar footprint.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/sigil-dna/keysync/harness/podfleet"
	"github.com/sigil-dna/keysync/keyring"
	"github.com/sigil-dna/keysync/rotate"
	"github.com/sigil-dna/keysync/store"
	"github.com/sigil-dna/keysync/test/awsfake"
	"github.com/sigil-dna/keysync/test/counting"
	"github.com/sigil-dna/keysync/test/servers"
)

// Config shapes a run.
type Config struct {
	Pods            int
	Rotations       int           // per scheme
	RotateEvery     time.Duration // between rotations
	Poll            time.Duration // sidecar poll interval
	BackoffCap      time.Duration // sidecar --backoff-cap
	Store           string        // "vault" (default), "file", "ssm" (the kumo emulator) or "secretsmanager" (the fake)
	Rate            int           // events per second, all apps together
	Skew            time.Duration // app clocks spread over ±Skew
	ActivationDelay time.Duration // staged scheme
	VerifyWindow    time.Duration // both schemes: how long old keys verify
	Naive           bool          // also run the ticket's scheme as a baseline
	// Chaos, each off when zero or false.
	StoreOutage     time.Duration
	KillSidecars    bool
	InvalidDocument bool
	RestartApp      bool
	Emergency       bool
	// Partition cuts pod 0 off the store for this long, from the second rotation of each
	// phase that is not the baseline (0: no partition).
	Partition time.Duration
	// Gated adds a phase of fleet-confirmed rotations (rotate --confirm-fleet over every
	// pod's sidecar) after the timer-staged one, with the same traffic and partition.
	Gated bool
	// RotateAtRecovery writes the rotation after a store outage as soon as the store is
	// back (the sidecars may still back off), instead of after every sidecar has retried;
	// and the gated phase gets the same outage.
	RotateAtRecovery bool
	// NoForgeries skips the forgery checks and the wait for the last verify window (long
	// with the default 15 min window).
	NoForgeries bool
	// Soak, with Months > 0, runs the compressed-calendar soak (soak.go) instead of the
	// phases.
	Soak SoakConfig

	Keysync, Demo, VaultBin, Work string    // the keysync and keysync-demo binaries
	Progress                      io.Writer // progress lines
	LogOutput                     io.Writer // the harness's JSON log (rotations); nil discards
	Log                           *slog.Logger
}

// Phase is the result of one scheme.
type Phase struct {
	Scheme              string     `json:"scheme"`
	Rotations           int        `json:"rotations"`
	EventsSigned        int64      `json:"events_signed"`
	EventsVerified      int64      `json:"events_verified"`
	FailedVerifications int64      `json:"failed_verifications"`
	DeliveryErrors      int64      `json:"delivery_errors"`
	FirstFailure        string     `json:"first_failure,omitempty"`
	Reloads             int        `json:"reloads_measured"`
	PropagationMs       [4]float64 `json:"propagation_ms_p50_p90_p99_max"`
	PerRotationMaxMs    []float64  `json:"-"`
	GateWaitSeconds     []float64  `json:"gate_wait_seconds,omitempty"` // per fleet-confirmed rotation: from the held write to the last confirmation
	FailureSeconds      []float64  `json:"-"`                           // failure instants, seconds from the phase start
	DurationSeconds     float64    `json:"duration_seconds"`
}

// Report is the whole run.
type Report struct {
	Config                Config      `json:"-"`
	Pods                  int         `json:"pods"`
	PIDNamespaces         bool        `json:"pid_namespaces"`
	Store                 string      `json:"store"`
	Phases                []*Phase    `json:"phases"`
	StoreReqPerSecSteady  float64     `json:"store_requests_per_second_steady"`
	StoreReqPerSecMaxPost float64     `json:"store_requests_per_second_max_after_outage"`
	Chaos                 []string    `json:"chaos"`
	EmergencyFailures     int64       `json:"emergency_failed_verifications"`
	ForgeriesAttempted    int         `json:"forgeries_attempted"`
	ForgeriesRefused      int         `json:"forgeries_refused"`
	ForgeriesAccepted     []string    `json:"forgeries_accepted,omitempty"`
	SecretsInOutput       int         `json:"secrets_in_output"`
	BytesScanned          int64       `json:"bytes_scanned"`
	SidecarRSSMiB         [2]float64  `json:"sidecar_rss_mib_median_max"`
	SidecarCPUPercent     float64     `json:"sidecar_cpu_percent_mean"`
	Soak                  *SoakReport `json:"soak,omitempty"`
}

const storePath = "sigil/fleet"

// Run runs the benchmark. The error reports a broken run, not a failed verification:
// the report carries those.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if cfg.Progress == nil {
		cfg.Progress = io.Discard
	}
	if cfg.LogOutput == nil {
		cfg.LogOutput = io.Discard
	}
	if err := os.MkdirAll(cfg.Work, 0o700); err != nil {
		return nil, err
	}
	// Everything the harness prints is kept for the secret scan too.
	own, err := os.Create(filepath.Join(cfg.Work, "harness-output.log"))
	if err != nil {
		return nil, err
	}
	defer own.Close()
	cfg.Progress = io.MultiWriter(cfg.Progress, own)
	cfg.Log = slog.New(slog.NewJSONHandler(io.MultiWriter(cfg.LogOutput, own), nil))
	rep := &Report{Config: cfg, Pods: cfg.Pods, Store: cfg.Store}
	b := &bench{cfg: cfg, rep: rep, forg: newForgeries(), progressLog: own.Name()}
	defer b.close()
	if err := b.startStore(ctx); err != nil {
		return nil, err
	}
	if _, err := b.rotate(ctx, rotate.ActionStage); err != nil {
		return nil, fmt.Errorf("fleet: first keyring: %w", err)
	}
	offsets := make([]time.Duration, cfg.Pods)
	for i := range offsets { // spread over [-Skew, +Skew]
		if cfg.Pods > 1 {
			offsets[i] = -cfg.Skew + time.Duration(int64(2*cfg.Skew)*int64(i)/int64(cfg.Pods-1))
		}
	}
	podStore, err := b.setupPartition()
	if err != nil {
		return nil, err
	}
	b.fleet, err = podfleet.Start(ctx, podfleet.Config{
		Work: cfg.Work, Keysync: cfg.Keysync, Demo: cfg.Demo, Store: b.sidecarStore, Pods: cfg.Pods, PIDNamespaces: podfleet.PIDNamespacesAvailable(),
		Interval: cfg.Poll, ClockOffsets: offsets, Env: b.env, Log: cfg.Log, PodStore: podStore,
		SidecarArgs: append([]string{"--backoff-cap", cfg.BackoffCap.String(), "--log-level", "info"}, b.soakSidecarArgs()...),
	})
	if err != nil {
		return nil, err
	}
	rep.PIDNamespaces = b.fleet.PIDNamespaces
	if err := b.fleet.WaitReady(ctx, 1); err != nil {
		return nil, err
	}
	b.startedAt = time.Now()
	if cfg.Soak.Months > 0 {
		rep.Soak, err = b.soak(ctx, cfg.Soak)
		b.fleet.Stop()
		if err != nil {
			return nil, err
		}
		rep.SecretsInOutput, rep.BytesScanned, err = b.scan()
		return rep, err
	}

	checkCtx, stopChecks := context.WithCancel(ctx)
	var checks sync.WaitGroup
	checks.Add(1)
	go func() {
		defer checks.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-checkCtx.Done():
				return
			case now := <-t.C:
				if !cfg.NoForgeries {
					b.forg.due(checkCtx, b.fleet, now)
				}
			}
		}
	}()

	staged, err := b.phase(ctx, "staged (timer)", rotate.ActionStage, true)
	if err != nil {
		stopChecks()
		checks.Wait()
		return nil, err
	}
	rep.Phases = append(rep.Phases, staged)
	b.footprint()
	if cfg.Gated {
		b.sleep(ctx, cfg.ActivationDelay+cfg.Skew)
		gated, err := b.phase(ctx, "fleet-confirmed (gated)", actionGated, false)
		if err != nil {
			stopChecks()
			checks.Wait()
			return nil, err
		}
		rep.Phases = append(rep.Phases, gated)
	}
	if cfg.Naive {
		// Let every staged key become active, so the baseline starts from a settled fleet.
		b.sleep(ctx, cfg.ActivationDelay+cfg.Skew)
		naive, err := b.phase(ctx, "naive (the ticket's scheme, baseline)", actionNaive, false)
		if err != nil {
			stopChecks()
			checks.Wait()
			return nil, err
		}
		rep.Phases = append(rep.Phases, naive)
	}
	if cfg.Emergency {
		if err := b.emergency(ctx); err != nil {
			stopChecks()
			checks.Wait()
			return nil, err
		}
	}
	// Wait until every key made has been retired for every app, and try each forgery.
	if !cfg.NoForgeries {
		b.settleForgeries(ctx)
	}
	stopChecks()
	checks.Wait()
	b.fleet.Stop()
	rep.ForgeriesAttempted, rep.ForgeriesRefused, rep.ForgeriesAccepted = b.forg.attempts, b.forg.refused, b.forg.accepted
	rep.SecretsInOutput, rep.BytesScanned, err = b.scan()
	return rep, err
}

type bench struct {
	cfg          Config
	rep          *Report
	forg         *forgeries
	fleet        *podfleet.Fleet
	vault        *servers.Vault
	proxy        *counting.Proxy
	st           store.Store
	sidecarStore string
	env          []string
	awsFake      *awsfake.Server
	rawPut       func(ctx context.Context, doc []byte) error // writes bytes as they are
	last         *keyring.Keyring
	startedAt    time.Time
	outageEnd    time.Time
	progressLog  string
	cut          func() (restore func()) // cuts pod 0 off the store
	closers      []func()
}

func (b *bench) close() {
	if b.fleet != nil {
		b.fleet.Stop()
	}
	for _, c := range b.closers {
		c()
	}
	if b.st != nil {
		b.st.Close()
	}
	if b.proxy != nil {
		b.proxy.Close()
	}
	if b.vault != nil {
		b.vault.Stop()
	}
	if b.awsFake != nil {
		b.awsFake.Close()
	}
}

func (b *bench) scan() (int, int64, error) {
	files := b.fleet.LogFiles()
	if b.progressLog != "" {
		files = append(files, b.progressLog)
	}
	if rotator := filepath.Join(b.cfg.Work, "soak-rotator.log"); fileExists(rotator) {
		files = append(files, rotator)
	}
	var bytes int64
	for _, f := range files {
		if fi, err := os.Stat(f); err == nil {
			bytes += fi.Size()
		}
	}
	n, err := podfleet.ScanForSecrets(files, b.forg.all())
	if err != nil {
		return 0, bytes, errors.Join(errors.New("fleet: scanning output"), err)
	}
	return n, bytes, nil
}

func fileExists(path string) bool { _, err := os.Stat(path); return err == nil }
