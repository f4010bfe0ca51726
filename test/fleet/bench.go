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
	"slices"
	"sync"
	"time"

	"github.com/sigil-dna/keysync/demo/podfleet"
	"github.com/sigil-dna/keysync/keyring"
	"github.com/sigil-dna/keysync/rotate"
	"github.com/sigil-dna/keysync/store"
	"github.com/sigil-dna/keysync/store/file"
	"github.com/sigil-dna/keysync/store/vault"
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
	Config                Config     `json:"-"`
	Pods                  int        `json:"pods"`
	PIDNamespaces         bool       `json:"pid_namespaces"`
	Store                 string     `json:"store"`
	Phases                []*Phase   `json:"phases"`
	StoreReqPerSecSteady  float64    `json:"store_requests_per_second_steady"`
	StoreReqPerSecMaxPost float64    `json:"store_requests_per_second_max_after_outage"`
	Chaos                 []string   `json:"chaos"`
	EmergencyFailures     int64      `json:"emergency_failed_verifications"`
	ForgeriesAttempted    int        `json:"forgeries_attempted"`
	ForgeriesRefused      int        `json:"forgeries_refused"`
	ForgeriesAccepted     []string   `json:"forgeries_accepted,omitempty"`
	SecretsInOutput       int        `json:"secrets_in_output"`
	BytesScanned          int64      `json:"bytes_scanned"`
	SidecarRSSMiB         [2]float64 `json:"sidecar_rss_mib_median_max"`
	SidecarCPUPercent     float64    `json:"sidecar_cpu_percent_mean"`
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
		SidecarArgs: []string{"--backoff-cap", cfg.BackoffCap.String(), "--log-level", "info"},
	})
	if err != nil {
		return nil, err
	}
	rep.PIDNamespaces = b.fleet.PIDNamespaces
	if err := b.fleet.WaitReady(ctx, 1); err != nil {
		return nil, err
	}
	b.startedAt = time.Now()

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

func (b *bench) startStore(ctx context.Context) error {
	plain := store.PlainOptions{}
	if b.cfg.Store == "file" {
		path := filepath.Join(b.cfg.Work, "store", "keys.json")
		st, err := file.New(path, plain)
		if err != nil {
			return err
		}
		b.st, b.sidecarStore = st, "file://"+path
		return nil
	}
	if b.cfg.Store == "ssm" || b.cfg.Store == "secretsmanager" {
		return b.startAWS(ctx)
	}
	v, err := servers.StartVault(b.cfg.VaultBin)
	if err != nil {
		return err
	}
	b.vault = v
	if b.proxy, err = counting.Start(v.Addr); err != nil {
		return err
	}
	b.env = []string{"VAULT_ADDR=" + b.proxy.URL(), "VAULT_TOKEN=" + v.Token}
	b.sidecarStore = "vault://secret/" + storePath
	b.st, err = b.openVault(ctx)
	return err
}

// openVault is the harness's own client, straight to Vault: its requests are not counted.
func (b *bench) openVault(ctx context.Context) (store.Store, error) {
	return vault.New(ctx, vault.Config{Mount: "secret", Path: storePath, Address: b.vault.Addr, Auth: vault.Auth{Token: keyring.Secret(b.vault.Token)}})
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

// actionNaive is the baseline scheme, which keysync does not offer: see naive.
// actionGated is a fleet-confirmed rotation: a stage through the gate.
const (
	actionNaive rotate.Action = "naive"
	actionGated rotate.Action = "gated"
)

func (b *bench) rotate(ctx context.Context, action rotate.Action) (*rotate.Result, error) {
	o := keyring.Options{ActivationDelay: b.cfg.ActivationDelay, VerifyWindow: b.cfg.VerifyWindow, RotatedBy: "fleet benchmark", Reason: string(action)}
	newSecret := func(n int) (keyring.Secret, error) {
		s, err := keyring.NewSecret(n)
		if err == nil {
			b.forg.remember(s)
		}
		return s, err
	}
	var res *rotate.Result
	var err error
	switch action {
	case actionNaive:
		res, err = b.rotateNaive(ctx, newSecret, o)
	case actionGated:
		res, err = rotate.Run(ctx, b.st, nil, rotate.Options{Action: rotate.ActionStage, Gate: b.gate(), MaxClockSkew: b.cfg.Skew,
			Log: b.cfg.Log, Keyring: o, NewSecret: newSecret, Force: true})
	default:
		res, err = rotate.Run(ctx, b.st, nil, rotate.Options{Action: action, Log: b.cfg.Log, Keyring: o, NewSecret: newSecret, Force: true, Init: true})
	}
	if err != nil {
		return nil, err
	}
	b.forg.observe(b.last, res.Keyring, res.RotatedAt, b.cfg.Skew, b.worstPropagation())
	b.last = res.Keyring
	return res, nil
}

// rotateNaive writes one rotation of the baseline scheme with compare-and-swap.
func (b *bench) rotateNaive(ctx context.Context, newSecret func(int) (keyring.Secret, error), o keyring.Options) (*rotate.Result, error) {
	snap, err := b.st.Read(ctx)
	if err != nil {
		return nil, err
	}
	secret, err := newSecret(keyring.MinSecretBytes)
	if err != nil {
		return nil, err
	}
	next, err := naive(snap.Keyring, time.Now(), secret, o)
	if err != nil {
		return nil, err
	}
	if _, err := b.st.Write(ctx, next, snap.Version); err != nil {
		return nil, err
	}
	return &rotate.Result{Action: actionNaive, Generation: next.Generation, RotatedAt: next.RotatedAt, Keyring: next}, nil
}

// worstPropagation bounds the time for every pod to load a new document.
// A partitioned pod reads nothing until the partition ends: it keeps accepting a key the
// others have retired until then (the forgeries are tried after that).
func (b *bench) worstPropagation() time.Duration {
	return time.Duration(float64(b.cfg.Poll)*1.2) + b.cfg.BackoffCap + 2*time.Second + b.cfg.Partition
}

func (b *bench) sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// phase runs R rotations of one scheme under continuous traffic; chaos only in the
// staged phase, which is the one that must show zero failures.
func (b *bench) phase(ctx context.Context, name string, action rotate.Action, chaos bool) (*Phase, error) {
	ph := &Phase{Scheme: name}
	tr := &podfleet.Traffic{Fleet: b.fleet}
	trafficCtx, stopTraffic := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); tr.Run(trafficCtx, b.cfg.Rate) }()
	prop := &podfleet.Latencies{}
	start := time.Now()
	var measures sync.WaitGroup
	var perRotation []*podfleet.Latencies
	R := b.cfg.Rotations
	var runErr error
	for i := 1; i <= R && ctx.Err() == nil; i++ {
		if chaos {
			if err := b.chaosBefore(ctx, i, R); err != nil {
				runErr = err
				break
			}
		}
		if action == actionGated && b.cfg.RotateAtRecovery && b.cfg.StoreOutage > 0 && b.vault != nil && i == R/4+1 {
			if err := b.outage(ctx); err != nil {
				runErr = err
				break
			}
		}
		if i == 2 && b.cfg.Partition > 0 && action != actionNaive {
			measures.Add(1)
			go func() { defer measures.Done(); b.partition(ctx, name) }()
		}
		res, err := b.rotate(ctx, action)
		if err != nil {
			runErr = fmt.Errorf("fleet: %s rotation %d: %w", name, i, err)
			break
		}
		ph.Rotations++
		if res.Fleet != nil {
			ph.GateWaitSeconds = append(ph.GateWaitSeconds, res.Fleet.WaitedSeconds)
		}
		one := &podfleet.Latencies{}
		perRotation = append(perRotation, one)
		measures.Add(1)
		go func() {
			defer measures.Done()
			mctx, cancel := context.WithTimeout(ctx, 2*b.worstPropagation()+b.cfg.StoreOutage)
			defer cancel()
			b.fleet.Measure(mctx, res.Generation, res.RotatedAt, 50*time.Millisecond, one)
		}()
		if chaos && b.cfg.RestartApp && i == R/2 {
			b.killApp()
		}
		// Sidecar kills, but not while the sidecars recover from the outage: that window
		// measures the request burst of the recovery alone.
		if chaos && b.cfg.KillSidecars && i%max(R/10, 2) == 0 && time.Since(b.outageEnd) > b.recoveryWindow() {
			b.killSidecar()
		}
		fmt.Fprintf(b.cfg.Progress, "fleet %-8s %5.0fs  rotation %3d/%d  events %6d  failed %d  delivery errors %d\n",
			firstWord(name), time.Since(b.startedAt).Seconds(), i, R, tr.Signed.Load(), tr.Failed.Load(), tr.DeliveryErrors.Load())
		b.sleep(ctx, b.cfg.RotateEvery)
	}
	measures.Wait()
	// Traffic goes on until the last switch has happened everywhere.
	b.sleep(ctx, b.cfg.ActivationDelay+b.cfg.Skew+time.Second)
	stopTraffic()
	wg.Wait()
	for _, l := range perRotation {
		for _, d := range l.Durations() {
			prop.Add(d)
		}
		ph.PerRotationMaxMs = append(ph.PerRotationMaxMs, l.Percentiles()[3])
	}
	ph.EventsSigned, ph.EventsVerified, ph.FailedVerifications = tr.Signed.Load(), tr.Verified.Load(), tr.Failed.Load()
	ph.DeliveryErrors, ph.FirstFailure = tr.DeliveryErrors.Load(), tr.FirstFailure()
	ph.Reloads, ph.PropagationMs = prop.Count(), prop.Percentiles()
	for _, t := range tr.FailureTimes() {
		ph.FailureSeconds = append(ph.FailureSeconds, t.Sub(start).Seconds())
	}
	ph.DurationSeconds = time.Since(start).Seconds()
	if chaos && b.proxy != nil {
		b.storeLoad(start)
	}
	return ph, runErr
}

func firstWord(s string) string {
	for i, c := range s {
		if c == ' ' {
			return s[:i]
		}
	}
	return s
}

// storeLoad computes the steady request rate — the median requests per second of the
// staged phase, robust to the chaos spikes — and the peak while the sidecars recovered
// from the outage.
func (b *bench) storeLoad(start time.Time) {
	all := b.proxy.Window(start.Add(5*time.Second), time.Now())
	b.rep.StoreReqPerSecSteady = median(all)
	if !b.outageEnd.IsZero() {
		for _, c := range b.proxy.Window(b.outageEnd, b.outageEnd.Add(b.recoveryWindow())) {
			b.rep.StoreReqPerSecMaxPost = max(b.rep.StoreReqPerSecMaxPost, float64(c))
		}
	}
}

func median(xs []int) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return float64(s[len(s)/2])
}

func (b *bench) scan() (int, int64, error) {
	files := b.fleet.LogFiles()
	if b.progressLog != "" {
		files = append(files, b.progressLog)
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
