package main

// One rotation of each scheme the benchmark compares: staged, gated, and the naive
// baseline (naive.go).

import (
	"context"
	"time"

	"github.com/sigil-dna/keysync/keyring"
	"github.com/sigil-dna/keysync/rotate"
)

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
