// Package rotate is the rotation procedure: read the primary store, compute the next
// keyring (staged, emergency or rollback), write it with compare-and-swap, retrying a
// bounded number of times on conflict, copy it to the mirrors, and record an audit event.
// A fleet-confirmed rotation writes the new key held, waits at the gate (rotate/fleet)
// until every member's app holds it, then writes the promotion.
package rotate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/sigil-dna/keysync/keyring"
	"github.com/sigil-dna/keysync/rotate/fleet"
	"github.com/sigil-dna/keysync/store"
)

// Action is what a run does.
type Action string

// Actions.
const (
	ActionStage     Action = "stage"
	ActionEmergency Action = "emergency"
	ActionRollback  Action = "rollback"
	// ActionHold writes a new key held: it verifies everywhere and signs nowhere until
	// ActionPromote. A gated stage is a hold, the gate, and a promotion.
	ActionHold    Action = "hold"
	ActionPromote Action = "promote"
)

// Gate is what a fleet-confirmed rotation asks: *fleet.Gate.
type Gate interface {
	// Check runs before anything is written and fails on a fleet that cannot confirm.
	Check(ctx context.Context) (*fleet.Round, error)
	// Wait returns once every member's app holds keyID, or fails naming the laggards.
	Wait(ctx context.Context, keyID string, since time.Time) (*fleet.Result, error)
}

// Refusals of a rotation that would replace a key not yet signing everywhere; --force
// overrides them.
var (
	ErrKeyHeld    = errors.New("a key is held")
	ErrKeyPending = errors.New("a key is pending")
)

// Options configure a run.
type Options struct {
	Action  Action
	Bytes   int // new secret length, at least keyring.MinSecretBytes
	Keyring keyring.Options
	DryRun  bool
	// Retries bounds the re-reads after a compare-and-swap conflict: 0 fails at the
	// first conflict; the CLI's --retries defaults to DefaultRetries.
	Retries  int
	AuditLog string // append one JSON line per rotation, fsynced
	Now      func() time.Time
	Log      *slog.Logger
	// NewSecret makes the key; nil means keyring.NewSecret (crypto/rand).
	NewSecret func(n int) (keyring.Secret, error)
	// Gate, with ActionStage, makes the rotation fleet-confirmed (see the package doc).
	Gate Gate
	// MaxClockSkew: a promoted key signs from the promotion plus this margin.
	MaxClockSkew time.Duration
	// Force replaces a key that is held or still pending, which a stage otherwise refuses.
	Force bool
	// Init allows creating the first keyring in an empty store; without it, a rotation of
	// an empty store (a mistyped path or name) fails.
	Init bool
	// ResumeAfter, with a Gate: a gated rotation that finds a held key at least this old
	// (a rotation that timed out at its gate or was killed) resumes it: the gate, then
	// its promotion, and no new key. A younger held key is refused: another rotation may
	// still be gating it. 0: fleet.DefaultTimeout. Force replaces the held key instead.
	ResumeAfter time.Duration
	// IfOlderThan makes a stage idempotent (a CronJob's retry, a rerun after a kill):
	// when nothing is held or pending and the signing key has signed for less than this,
	// nothing is rotated and the mirrors are brought up to the primary. 0: always rotate.
	IfOlderThan time.Duration
	// ReplaceInvalid, with ActionEmergency, replaces a document that does not parse (the
	// write is based on the version holding it); the result says what was wrong with it.
	ReplaceInvalid bool
}

// DefaultRetries is how often a conflicting write is retried from a fresh read.
const DefaultRetries = 3

// Run performs one rotation on primary and copies the result to mirrors. A mirror
// failure is reported in the result and the error, after the primary has been written:
// the primary is the source of truth and the next run repairs the mirror.
func Run(ctx context.Context, primary store.Store, mirrors []store.Store, o Options) (*Result, error) {
	o = defaults(o)
	if o.IfOlderThan > 0 && (o.Action == ActionStage || o.Action == ActionHold) && !o.Force {
		if res, err := notDue(ctx, primary, mirrors, o); res != nil || err != nil {
			return res, err
		}
	}
	switch {
	case o.Action == ActionPromote:
		return Promote(ctx, primary, mirrors, o)
	case o.Gate != nil && o.Action == ActionStage:
		return runGated(ctx, primary, mirrors, o)
	}
	return write(ctx, primary, mirrors, o)
}

func defaults(o Options) Options {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.NewSecret == nil {
		o.NewSecret = keyring.NewSecret
	}
	if o.Bytes == 0 {
		o.Bytes = keyring.MinSecretBytes
	}
	if o.Action == "" {
		o.Action = ActionStage
	}
	o.Retries = max(o.Retries, 0)
	return o
}

// write performs one write (with retries on conflict), the mirrors and the audit record.
func write(ctx context.Context, primary store.Store, mirrors []store.Store, o Options) (*Result, error) {
	var res *Result
	var err error
	for attempt := 1; attempt <= o.Retries+1; attempt++ {
		res, err = attemptOnce(ctx, primary, o)
		if err == nil {
			res.Attempts = attempt
			break
		}
		if !errors.Is(err, store.ErrConflict) {
			break
		}
		o.Log.Warn("store changed during the rotation, reading it again", "store", primary.String(), "attempt", attempt)
	}
	if err != nil {
		return nil, err
	}
	if o.DryRun {
		return res, nil
	}
	res.Mirrors, err = mirror(ctx, res.Keyring, mirrors)
	if o.Action == ActionHold {
		res.Outcome = OutcomeHeld
	}
	return res, errors.Join(err, record(ctx, o, res, primary, mirrors))
}

func attemptOnce(ctx context.Context, primary store.Store, o Options) (*Result, error) {
	var prev *keyring.Keyring
	version := ""
	snap, err := primary.Read(ctx)
	var invalid *store.InvalidError
	replaced := ""
	switch {
	case errors.As(err, &invalid) && o.ReplaceInvalid && o.Action == ActionEmergency:
		replaced, version = invalid.Error(), invalid.Version
		err = nil
	case errors.As(err, &invalid):
		return nil, fmt.Errorf("reading %s: %w (in an incident, rotate --emergency --replace-invalid replaces it)", primary.String(), err)
	case errors.Is(err, store.ErrNotFound) && !o.Init && o.Action != ActionRollback:
		return nil, fmt.Errorf("reading %s: %w (use --init to create the first keyring)", primary.String(), err)
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return nil, fmt.Errorf("reading %s: %w", primary.String(), err)
	default:
		prev, version = snap.Keyring, snap.Version
	}
	now := o.Now()
	var next *keyring.Keyring
	newID := ""
	switch o.Action {
	case ActionStage, ActionEmergency, ActionHold:
		if err := refuse(prev, now, o); err != nil {
			return nil, fmt.Errorf("%s: %w", primary.String(), err)
		}
		secret, err := o.NewSecret(o.Bytes)
		if err != nil {
			return nil, err
		}
		newID = keyring.KeyID(secret)
		switch o.Action {
		case ActionEmergency:
			next, err = keyring.Emergency(prev, now, secret, o.Keyring)
		case ActionHold:
			next, err = keyring.Hold(prev, now, secret, o.Keyring)
		default:
			next, err = keyring.Stage(prev, now, secret, o.Keyring)
		}
		if err != nil {
			return nil, err
		}
	case ActionRollback:
		if prev == nil {
			return nil, fmt.Errorf("rollback: %s holds no keyring", primary.String())
		}
		if rb, ok := primary.(store.Rollbacker); ok && snap.Plain {
			// The store's own rollback (Secrets Manager: AWSCURRENT back to AWSPREVIOUS),
			// which says what readers will compute: asked first without writing, for the
			// intent record, then done.
			next, err = rb.RollbackPlain(ctx, version, true)
			if err != nil {
				return nil, fmt.Errorf("rollback of %s: %w", primary.String(), err)
			}
			res := describe(primary.String(), o, prev, next, "", now)
			res.BasedOn = version
			if o.DryRun {
				return res, nil
			}
			if err := intend(o, res); err != nil {
				return nil, err
			}
			if next, err = rb.RollbackPlain(ctx, version, false); err != nil {
				return nil, fmt.Errorf("rollback of %s: %w", primary.String(), err)
			}
			res = describe(primary.String(), o, prev, next, "", now)
			res.BasedOn = version
			return res, nil
		}
		ko := o.Keyring
		ko.Force = o.Force
		next, err = keyring.Rollback(prev, now, ko)
		if errors.Is(err, keyring.ErrNoPrevious) {
			return nil, fmt.Errorf("rollback of %s: %w%s; rotate to a new key instead (keysync rotate, or --emergency if the current key leaked)", primary.String(), err, lastEnded(prev, now))
		}
		if err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("unknown action %q", o.Action)
	}
	if replaced != "" {
		// The document replaced could not be read, nor its generation: pods may hold any
		// generation up to it. The replacement's is above every generation a counter from
		// 1 or a store's version number reaches: the time in milliseconds (issue 29: 500 -> 1).
		next.Generation = max(next.Generation, invalid.GenerationFloor()+1, now.UnixMilli())
	}
	res := describe(primary.String(), o, prev, next, newID, now)
	res.ReplacedInvalid, res.BasedOn = replaced, version
	if o.DryRun {
		return res, nil
	}
	if err := intend(o, res); err != nil {
		return nil, err
	}
	written, err := primary.Write(ctx, next, version)
	if err != nil {
		return nil, fmt.Errorf("writing %s: %w", primary.String(), err)
	}
	res.version = written
	return res, nil
}

// refuse stops a stage or a hold that would replace a key not yet signing everywhere:
// a held key (waiting for its fleet) or a pending one (waiting for its time). An
// emergency rotation is never refused; Force overrides.
func refuse(prev *keyring.Keyring, now time.Time, o Options) error {
	if prev == nil || o.Force || o.Action == ActionEmergency {
		return nil
	}
	if k, ok := prev.HeldKey(); ok {
		return fmt.Errorf("%w: key %s waits for its fleet since %s; promote it (keysync promote), withdraw it (keysync rollback), or rotate with --force to replace it",
			ErrKeyHeld, k.ID, prev.RotatedAt.Format(time.RFC3339))
	}
	for _, k := range prev.Keys {
		if k.NotBefore.After(now) {
			return fmt.Errorf("%w: key %s signs from %s; wait for it, withdraw it (keysync rollback), or rotate with --force",
				ErrKeyPending, k.ID, k.NotBefore.Format(time.RFC3339))
		}
	}
	return nil
}

func describe(name string, o Options, prev, next *keyring.Keyring, newID string, now time.Time) *Result {
	res := &Result{
		Action: o.Action, DryRun: o.DryRun, Force: o.Force, Store: name, Generation: next.Generation, NewKeyID: newID,
		KeyIDs: next.IDs(), RotatedBy: next.RotatedBy, Reason: next.Reason, RotatedAt: next.RotatedAt, Keyring: next,
	}
	// The key that will sign once this generation takes effect: the newest one that is
	// not held (a held key signs from its promotion).
	last := next.Keys[len(next.Keys)-1]
	if last.Held() {
		last = next.Keys[len(next.Keys)-2]
	}
	res.SigningKeyID, res.SigningFrom = last.ID, last.NotBefore
	if k, ok := next.SigningKey(now); ok && o.Action == ActionRollback && !last.NotBefore.After(now) {
		res.SigningKeyID, res.SigningFrom = k.ID, k.NotBefore
	}
	if prev != nil {
		res.PreviousGeneration = prev.Generation
		for _, id := range prev.IDs() {
			if !slices.Contains(res.KeyIDs, id) {
				res.RemovedKeyIDs = append(res.RemovedKeyIDs, id)
			}
		}
	}
	return res
}

func mirror(ctx context.Context, r *keyring.Keyring, mirrors []store.Store) ([]MirrorResult, error) {
	var out []MirrorResult
	var errs []error
	for _, m := range mirrors {
		version := ""
		snap, err := m.Read(ctx)
		switch {
		case err == nil:
			version = snap.Version
		case errors.Is(err, store.ErrNotFound), errors.Is(err, keyring.ErrInvalid):
			err = nil // an invalid mirror is overwritten by the primary's keyring
		}
		if err == nil {
			_, err = m.Write(ctx, r, version)
		}
		mr := MirrorResult{Store: m.String()}
		if err != nil {
			mr.Error = err.Error()
			errs = append(errs, fmt.Errorf("mirror %s: %w", m.String(), err))
		}
		out = append(out, mr)
	}
	return out, errors.Join(errs...)
}

// notDue answers an IfOlderThan stage: nil, nil when a rotation is due (or the store
// cannot be read, which the rotation reports); otherwise a result saying why not, after
// bringing every mirror that differs from the primary up to it (the part a killed
// rotation may have left undone). Nothing is written to the primary.
func notDue(ctx context.Context, primary store.Store, mirrors []store.Store, o Options) (*Result, error) {
	snap, err := primary.Read(ctx)
	if err != nil {
		return nil, nil
	}
	r, now := snap.Keyring, o.Now()
	if _, held := r.HeldKey(); held {
		return nil, nil // the gate resumes it, or the stage refuses it
	}
	k, ok := r.SigningKey(now)
	if !ok {
		return nil, nil
	}
	for _, p := range r.Keys {
		if p.NotBefore.After(now) {
			k = p // a pending key: the rotation already happened
		}
	}
	if now.Sub(k.NotBefore) >= o.IfOlderThan {
		return nil, nil
	}
	res := &Result{Action: o.Action, DryRun: o.DryRun, Store: primary.String(), Generation: r.Generation, PreviousGeneration: r.Generation,
		SigningKeyID: k.ID, SigningFrom: k.NotBefore, KeyIDs: r.IDs(), RotatedBy: o.Keyring.RotatedBy, Reason: o.Keyring.Reason,
		RotatedAt: r.RotatedAt, Keyring: r, Outcome: OutcomeNotDue}
	o.Log.Info("not due: the signing key is younger than --if-older-than", "event", "rotation_not_due", "store", primary.String(),
		"signing_key_id", k.ID, "signing_from", k.NotBefore, "if_older_than", o.IfOlderThan.String(), "generation", r.Generation)
	var stale []store.Store
	for _, m := range mirrors {
		if ms, err := m.Read(ctx); err != nil || ms.Keyring.Generation != r.Generation || !slices.Equal(ms.Keyring.IDs(), r.IDs()) {
			stale = append(stale, m)
		}
	}
	if len(stale) == 0 || o.DryRun {
		return res, nil
	}
	res.Mirrors, err = mirror(ctx, r, stale)
	return res, errors.Join(err, record(ctx, o, res, primary, mirrors))
}

// lastEnded says which key stopped verifying last before now, for a rollback that has
// nothing to go back to.
func lastEnded(r *keyring.Keyring, now time.Time) string {
	var last *keyring.Key
	for i, k := range r.Keys {
		if !k.NotAfter.IsZero() && !k.NotAfter.After(now) && (last == nil || k.NotAfter.After(last.NotAfter)) {
			last = &r.Keys[i]
		}
	}
	if last == nil {
		return " (the keyring holds no key before the current one)"
	}
	return fmt.Sprintf(" (the previous key %s stopped verifying at %s)", last.ID, last.NotAfter.UTC().Format(time.RFC3339))
}
