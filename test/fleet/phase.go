package main

// One phase: R rotations of a scheme under continuous signed traffic, with the chaos
// of chaos.go in the staged phase, and what the store saw meanwhile.

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/sigil-dna/keysync/harness/podfleet"
	"github.com/sigil-dna/keysync/rotate"
)

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
