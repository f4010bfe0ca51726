// Package demo runs keysync's main job on the embedded default: a file store, N pods
// (each a real sidecar process and a real app process, in a PID namespace of their own
// when run as root), signed events flowing between every app, rotations under that load,
// live progress and a summary.
package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sigil-dna/keysync/harness/podfleet"
	"github.com/sigil-dna/keysync/keyring"
	"github.com/sigil-dna/keysync/rotate"
	"github.com/sigil-dna/keysync/store/file"
)

// Config shapes a demo run.
type Config struct {
	Pods            int
	Duration        time.Duration
	RotateEvery     time.Duration
	Interval        time.Duration // sidecar poll interval (the file store is also watched)
	ActivationDelay time.Duration
	VerifyWindow    time.Duration
	Rate            int    // events per second, all senders together
	Keysync         string // the keysync binary: the sidecars
	Demo            string // the keysync-demo binary: the pods and their apps
	Dir             string // working directory; empty: a new temporary one, removed after
	PIDNamespaces   bool   // one PID namespace per pod (needs root and unshare)
	Progress        io.Writer
	// Terminal: Progress is a terminal, which gets a table of the pods redrawn in place;
	// otherwise plain lines.
	Terminal bool
	Log      *slog.Logger
}

// Summary is the outcome, printed by `keysync demo` (and as JSON with --json).
type Summary struct {
	Pods                int     `json:"pods"`
	PIDNamespaces       bool    `json:"pid_namespaces"`
	DurationSeconds     float64 `json:"duration_seconds"`
	Rotations           int     `json:"rotations"`
	EventsSigned        int64   `json:"events_signed"`
	EventsVerified      int64   `json:"events_verified"`
	FailedVerifications int64   `json:"failed_verifications"`
	DeliveryErrors      int64   `json:"delivery_errors"`
	Reloads             int     `json:"reloads_measured"`
	PropagationP50Ms    float64 `json:"propagation_p50_ms"`
	PropagationP90Ms    float64 `json:"propagation_p90_ms"`
	PropagationP99Ms    float64 `json:"propagation_p99_ms"`
	PropagationMaxMs    float64 `json:"propagation_max_ms"`
	SecretsInOutput     int     `json:"secrets_in_output"`
	FirstFailure        string  `json:"first_failure,omitempty"`
	// PodsKilledAtStop counts the pods that did not stop when asked (SIGTERM) and were
	// killed after 5 s.
	PodsKilledAtStop int `json:"pods_killed_at_stop"`
}

// Run runs the demo until cfg.Duration passes or ctx ends.
func Run(ctx context.Context, cfg Config) (*Summary, error) {
	if cfg.Pods < 2 {
		return nil, errors.New("demo: at least 2 pods are needed to send events between them")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Progress == nil {
		cfg.Progress = io.Discard
	}
	work, cleanup, err := workDir(cfg.Dir)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	st, err := file.New(filepath.Join(work, "store", "keys.json"), keyring.Options{})
	if err != nil {
		return nil, err
	}
	defer st.Close()

	var secretsMu sync.Mutex
	var secrets []keyring.Secret
	rot := rotate.Options{
		Init:    true,
		Keyring: keyring.Options{ActivationDelay: cfg.ActivationDelay, VerifyWindow: cfg.VerifyWindow, RotatedBy: "keysync demo", Reason: "demo"},
		NewSecret: func(n int) (keyring.Secret, error) {
			s, err := keyring.NewSecret(n)
			secretsMu.Lock()
			secrets = append(secrets, s)
			secretsMu.Unlock()
			return s, err
		},
		Log: cfg.Log,
	}
	if _, err := rotate.Run(ctx, st, nil, rot); err != nil {
		return nil, fmt.Errorf("demo: first keyring: %w", err)
	}
	fl, err := podfleet.Start(ctx, podfleet.Config{Work: work, Store: st.String(), Pods: cfg.Pods, Keysync: cfg.Keysync, Demo: cfg.Demo,
		PIDNamespaces: cfg.PIDNamespaces, Interval: cfg.Interval, Log: cfg.Log})
	if err != nil {
		return nil, err
	}
	defer fl.Stop()
	if err := fl.WaitReady(ctx, 1); err != nil {
		return nil, err
	}

	show := &display{w: cfg.Progress, tty: cfg.Terminal}
	runCtx, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()
	start := time.Now()
	tr := &podfleet.Traffic{Fleet: fl}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); tr.Run(runCtx, cfg.Rate) }()

	var rotations atomic.Int64
	prop := &podfleet.Latencies{}
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTimer(min(2*time.Second, cfg.RotateEvery))
		defer t.Stop()
		for {
			select {
			case <-runCtx.Done():
				return
			case <-t.C:
			}
			res, err := rotate.Run(runCtx, st, nil, rot)
			if err != nil {
				if runCtx.Err() == nil {
					cfg.Log.Error("demo rotation failed", "error", err)
				}
				return
			}
			show.rotated(int(rotations.Add(1)), res)
			wg.Add(1)
			go func() { defer wg.Done(); fl.Measure(runCtx, res.Generation, res.RotatedAt, 5*time.Millisecond, prop) }()
			t.Reset(cfg.RotateEvery)
		}
	}()
	progress := time.NewTicker(time.Second)
	defer progress.Stop()
loop:
	for {
		select {
		case <-runCtx.Done():
			break loop
		case <-progress.C:
			p, n := prop.Percentiles(), prop.Count() > 0
			totals := fmt.Sprintf("pods %d  rotations %d  events signed %d  verified %d  failed %d  reload p50 %s p99 %s",
				cfg.Pods, rotations.Load(), tr.Signed.Load(), tr.Verified.Load(), tr.Failed.Load(), ms(p[0], n), ms(p[2], n))
			var pods []podView
			if cfg.Terminal {
				pods = views(ctx, fl, tr) // not runCtx: the last table comes as it ends
			}
			show.tick(time.Since(start), pods, totals)
		}
	}
	wg.Wait()
	elapsed := time.Since(start)
	killed := fl.Stop()

	p := prop.Percentiles()
	sum := &Summary{
		Pods: cfg.Pods, PIDNamespaces: fl.PIDNamespaces, DurationSeconds: elapsed.Round(time.Millisecond).Seconds(),
		Rotations: int(rotations.Load()), EventsSigned: tr.Signed.Load(), EventsVerified: tr.Verified.Load(),
		FailedVerifications: tr.Failed.Load(), DeliveryErrors: tr.DeliveryErrors.Load(), Reloads: prop.Count(),
		PropagationP50Ms: p[0], PropagationP90Ms: p[1], PropagationP99Ms: p[2], PropagationMaxMs: p[3],
		FirstFailure: tr.FirstFailure(), PodsKilledAtStop: killed,
	}
	secretsMu.Lock()
	sum.SecretsInOutput, err = podfleet.ScanForSecrets(fl.LogFiles(), secrets)
	secretsMu.Unlock()
	return sum, err
}

func workDir(dir string) (string, func(), error) {
	if dir != "" {
		return dir, func() {}, os.MkdirAll(dir, 0o700)
	}
	d, err := os.MkdirTemp("", "keysync-demo-")
	if err != nil {
		return "", nil, err
	}
	return d, func() { os.RemoveAll(d) }, nil
}
