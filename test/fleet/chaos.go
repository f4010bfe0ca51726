package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/sigil-dna/keysync/harness/podfleet"
	"github.com/sigil-dna/keysync/keyring"
	"github.com/sigil-dna/keysync/rotate"
	"github.com/sigil-dna/keysync/store/vault"
)

// chaosBefore injects the configured faults at fixed points of the staged phase.
func (b *bench) chaosBefore(ctx context.Context, i, R int) error {
	switch {
	case b.cfg.StoreOutage > 0 && b.vault != nil && i == R/4+1:
		return b.outage(ctx)
	case b.cfg.InvalidDocument && i == 3*R/4+1:
		return b.invalidDocument(ctx)
	}
	return nil
}

func (b *bench) outage(ctx context.Context) error {
	doc := b.last
	b.note(fmt.Sprintf("store stopped for %s (Vault killed, then started again with the last keyring written back)", b.cfg.StoreOutage))
	b.vault.Stop()
	b.sleep(ctx, b.cfg.StoreOutage)
	if err := b.vault.Start(); err != nil {
		return err
	}
	b.st.Close()
	st, err := b.openVault(ctx)
	if err != nil {
		return err
	}
	b.st = st
	if _, err := b.st.Write(ctx, doc, ""); err != nil {
		return fmt.Errorf("fleet: writing the keyring back after the outage: %w", err)
	}
	b.outageEnd = time.Now()
	if b.cfg.RotateAtRecovery {
		b.note("the next rotation is written as soon as the store is back, while the sidecars still back off")
		return nil
	}
	// Rotations resume once every sidecar has retried (their backoff is capped).
	b.sleep(ctx, b.recoveryWindow())
	return nil
}

// recoveryWindow is the time in which every sidecar retries after the store returns:
// its backoff cap, then one poll, with margin.
func (b *bench) recoveryWindow() time.Duration { return b.cfg.BackoffCap + 2*b.cfg.Poll + time.Second }

func (b *bench) invalidDocument(ctx context.Context) error {
	b.note("invalid document written to the store (generation 0), the last good keyring written back after 3 polls")
	snap, err := b.st.Read(ctx)
	if err != nil {
		return err
	}
	bad := []byte(`{"version":1,"generation":0,"rotated_at":"2026-11-27T12:00:00Z","keys":[]}`)
	if b.rawPut != nil {
		if err := b.rawPut(ctx, bad); err != nil {
			return err
		}
		b.sleep(ctx, 3*b.cfg.Poll)
		return b.rawPut(ctx, mustEncode(snap.Keyring))
	}
	if b.vault == nil {
		if err := os.WriteFile(filepath.Join(b.cfg.Work, "store", "keys.json"), bad, 0o600); err != nil {
			return err
		}
	} else if err := b.vault.PutRaw(storePath, map[string]any{vault.FieldKeyring: string(bad)}); err != nil {
		return err
	}
	b.sleep(ctx, 3*b.cfg.Poll)
	good := snap.Keyring
	if b.vault == nil {
		return os.WriteFile(filepath.Join(b.cfg.Work, "store", "keys.json"), mustEncode(good), 0o600)
	}
	return b.vault.PutRaw(storePath, map[string]any{vault.FieldKeyring: string(mustEncode(good))})
}

func mustEncode(r *keyring.Keyring) []byte {
	b, err := keyring.Encode(r)
	if err != nil {
		panic(err)
	}
	return b
}

func (b *bench) killSidecar() {
	p := b.fleet.Pods[rand.IntN(len(b.fleet.Pods))]
	for _, pid := range p.HostPIDs("keysync") {
		if isSidecar(pid) {
			_ = killPID(pid)
			b.note(fmt.Sprintf("sidecar of pod %d killed with SIGKILL (restarted by its pod)", p.Index))
		}
	}
}

func (b *bench) killApp() {
	p := b.fleet.Pods[rand.IntN(len(b.fleet.Pods))]
	for _, pid := range p.HostPIDs("demo-app") {
		_ = killPID(pid)
		b.note(fmt.Sprintf("app of pod %d killed right after a rotation's store write (restarted by its pod)", p.Index))
	}
}

// emergency rotates with --emergency under traffic and counts the failures it causes
// (expected: events signed with the replaced key while pods reload).
func (b *bench) emergency(ctx context.Context) error {
	tr := &podfleet.Traffic{Fleet: b.fleet}
	tctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); tr.Run(tctx, b.cfg.Rate) }()
	b.sleep(ctx, time.Second)
	res, err := b.rotate(ctx, rotate.ActionEmergency)
	if err != nil {
		stop()
		wg.Wait()
		return err
	}
	mctx, cancel := context.WithTimeout(ctx, 2*b.worstPropagation())
	b.fleet.Measure(mctx, res.Generation, res.RotatedAt, 50*time.Millisecond, &podfleet.Latencies{})
	cancel()
	b.sleep(ctx, 2*time.Second)
	stop()
	wg.Wait()
	b.rep.EmergencyFailures = tr.Failed.Load()
	b.note(fmt.Sprintf("emergency rotation: %d verifications failed while pods reloaded (expected: the replaced key stops working)", tr.Failed.Load()))
	return nil
}

func (b *bench) settleForgeries(ctx context.Context) {
	b.forg.mu.Lock()
	var last time.Time
	for _, t := range b.forg.retiredAt {
		if t.After(last) {
			last = t
		}
	}
	b.forg.mu.Unlock()
	if d := time.Until(last); d > 0 {
		fmt.Fprintf(b.cfg.Progress, "fleet: waiting %s for the last verify window to close, to try every retired key\n", d.Round(time.Second))
		b.sleep(ctx, d+time.Second)
	}
	b.forg.due(ctx, b.fleet, time.Now().Add(time.Hour))
}

func (b *bench) note(s string) {
	b.rep.Chaos = append(b.rep.Chaos, s)
	fmt.Fprintf(b.cfg.Progress, "fleet chaos: %s\n", s)
}
