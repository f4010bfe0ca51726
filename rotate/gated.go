package rotate

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sigil-dna/keysync/keyring"
	"github.com/sigil-dna/keysync/rotate/fleet"
	"github.com/sigil-dna/keysync/store"
)

// runGated is a fleet-confirmed rotation: the gate's check (nothing written if it fails),
// the new key written held, the gate's wait, then the promotion with compare-and-swap on
// the held write's version. A fleet that does not converge leaves the held key in place
// (it harms nothing) and the result says who lags.
func runGated(ctx context.Context, primary store.Store, mirrors []store.Store, o Options) (*Result, error) {
	if _, err := o.Gate.Check(ctx); err != nil {
		return nil, err
	}
	if !o.Force {
		// A held key left by an earlier rotation (timed out at its gate, or killed) is
		// this rotation's work: resume it rather than refuse or replace it. Any read error
		// is write's to report.
		if snap, err := primary.Read(ctx); err == nil {
			if k, ok := snap.Keyring.HeldKey(); ok {
				return resume(ctx, primary, mirrors, o, snap, k)
			}
		}
	}
	hold := o
	hold.Action = ActionHold
	held, err := write(ctx, primary, mirrors, hold)
	if err != nil || o.DryRun {
		return held, err
	}
	return gateAndPromote(ctx, primary, mirrors, o, held.Keyring, held.version, held.NewKeyID, held.RotatedAt, held)
}

// resume takes over the held key k of snap: refused while it is younger than
// o.ResumeAfter (its own rotation may still be at its gate), promoted through the gate
// otherwise.
func resume(ctx context.Context, primary store.Store, mirrors []store.Store, o Options, snap *store.Snapshot, k keyring.Key) (*Result, error) {
	after := o.ResumeAfter
	if after <= 0 {
		after = fleet.DefaultTimeout
	}
	r := snap.Keyring
	now := o.Now()
	if age := now.Sub(r.RotatedAt); age < after {
		return nil, fmt.Errorf("%s: %w: key %s was written held %s ago by %s, less than the gate's timeout (%s): another rotation may still be waiting at its gate; "+
			"run again from %s to resume it, promote it (keysync promote), or rotate with --force to replace it",
			primary.String(), ErrKeyHeld, k.ID, age.Round(time.Second), fleet.Clean(r.RotatedBy), after, r.RotatedAt.Add(after).UTC().Format(time.RFC3339))
	}
	o.Log.Info("resuming the held key of an earlier rotation", "event", "rotation_resumed", "store", primary.String(), "key_id", k.ID,
		"held_since", r.RotatedAt, "held_by", r.RotatedBy, "generation", r.Generation)
	held := &Result{Action: ActionHold, Store: primary.String(), Generation: r.Generation, PreviousGeneration: r.Generation, NewKeyID: k.ID,
		KeyIDs: r.IDs(), RotatedBy: o.Keyring.RotatedBy, Reason: o.Keyring.Reason, RotatedAt: r.RotatedAt, Keyring: r,
		Resumed: &Resumed{KeyID: k.ID, HeldSince: r.RotatedAt, HeldBy: r.RotatedBy, Reason: r.Reason}}
	return gateAndPromote(ctx, primary, mirrors, o, r, snap.Version, k.ID, now, held)
}

// Promote promotes the held key of primary: through the gate when o.Gate is set, at
// once otherwise (the caller vouches for the fleet).
func Promote(ctx context.Context, primary store.Store, mirrors []store.Store, o Options) (*Result, error) {
	o = defaults(o)
	snap, err := primary.Read(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", primary.String(), err)
	}
	k, ok := snap.Keyring.HeldKey()
	if !ok {
		return nil, fmt.Errorf("%s holds no held key (generation %d): nothing to promote", primary.String(), snap.Keyring.Generation)
	}
	if o.Gate != nil {
		if _, err := o.Gate.Check(ctx); err != nil {
			return nil, err
		}
	}
	held := &Result{Action: ActionHold, Store: primary.String(), Generation: snap.Keyring.Generation, NewKeyID: k.ID,
		RotatedAt: snap.Keyring.RotatedAt, Keyring: snap.Keyring}
	return gateAndPromote(ctx, primary, mirrors, o, snap.Keyring, snap.Version, k.ID, snap.Keyring.RotatedAt, held)
}

func gateAndPromote(ctx context.Context, primary store.Store, mirrors []store.Store, o Options, r *keyring.Keyring,
	version, keyID string, since time.Time, held *Result) (*Result, error) {
	var evidence = held.Fleet
	if o.Gate != nil && !o.DryRun { // a dry run checks the fleet (Promote did) and waits for nothing
		ev, err := o.Gate.Wait(ctx, keyID, since)
		evidence = ev
		if err != nil {
			held.Outcome, held.Fleet = OutcomeNotPromoted, ev
			if rerr := record(ctx, o, held, primary, mirrors); rerr != nil {
				err = errors.Join(err, rerr)
			}
			next := "finish with keysync promote --confirm-fleet FLEET once the laggards hold it (the next scheduled rotation resumes it too), or withdraw it with keysync rollback"
			if errors.Is(err, context.Canceled) {
				err = errors.New("interrupted")
			}
			return held, fmt.Errorf("key %s held in %s, not promoted: %w; it stays held (it verifies everywhere and signs nowhere, which is safe): %s", keyID, primary.String(), err, next)
		}
	}
	now := o.Now()
	next, err := keyring.Promote(r, now, keyID, o.MaxClockSkew, o.Keyring)
	if err != nil {
		return held, err
	}
	res := describe(primary.String(), Options{Action: ActionPromote}, r, next, keyID, now)
	res.Action, res.Outcome, res.Fleet, res.Attempts = ActionPromote, OutcomePromoted, evidence, 1
	res.Force, res.BasedOn, res.Resumed = o.Force, version, held.Resumed
	if o.DryRun {
		res.DryRun, res.Outcome, res.Attempts = true, "", 0
		return res, nil
	}
	if err := intend(o, res); err != nil {
		return held, err
	}
	if _, err := primary.Write(ctx, next, version); err != nil {
		if errors.Is(err, store.ErrConflict) {
			err = fmt.Errorf("%w: the store changed during the gate (another rotation or a rollback?); the held key %s stays and was not promoted", err, keyID)
		}
		return held, fmt.Errorf("writing the promotion to %s: %w", primary.String(), err)
	}
	res.Mirrors, err = mirror(ctx, next, mirrors)
	return res, errors.Join(err, record(ctx, o, res, primary, mirrors))
}
