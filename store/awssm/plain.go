package awssm

// Plain values in Secrets Manager: the labelled versions (and those that lost their label)
// mapped onto a keyring, and the store's own rollback of a plain value.

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/sigil-dna/keysync/keyring"
	"github.com/sigil-dna/keysync/store"
)

// plain maps the labelled plain values onto a keyring, the same on every reader: it
// depends only on the values, their creation dates and the secret's LastChangedDate
// (the generation, which grows with every put and label move).
//
// earlier are the versions without a label created before AWSPREVIOUS, oldest first, by
// id and date only: a burst of put-secret-value calls moves AWSPREVIOUS on before the
// value it took it from has stopped verifying.
func (s *Store) plain(ctx context.Context, l labels, cur value, prev, pend *value, earlier []value) (*keyring.Keyring, error) {
	gen := l.changed.UnixMilli()
	if gen <= 0 {
		gen = cur.created.UnixMilli()
	}
	now := keyring.PlainValue{Value: cur.secret, CreatedAt: cur.created, Version: gen}
	rotatedBy := "aws secretsmanager " + s.cfg.Name
	var r *keyring.Keyring
	var err error
	if prev != nil && prev.created.After(cur.created) && !store.IsDocument(prev.secret) {
		// Rolled back: AWSCURRENT was moved back to an older value, which every pod still
		// verifies, so it signs at once. The newer value keeps verifying until the end of
		// the window it gave its predecessor, as pods that have not seen the move yet
		// still sign with it.
		if r, err = keyring.FromPlain(now, nil, s.cfg.Plain, rotatedBy); err != nil {
			return nil, err
		}
		withdrawn := keyring.Key{ID: keyring.KeyID(prev.secret), Secret: prev.secret, NotBefore: r.Keys[0].NotBefore.Add(-time.Millisecond),
			NotAfter: rolledBackUntil(prev.created, s.cfg.Plain)}
		if withdrawn.ID != r.Keys[0].ID {
			r.Keys = []keyring.Key{withdrawn, r.Keys[0]}
		}
	} else {
		var versions []keyring.PlainValue
		for i, e := range earlier {
			versions = append(versions, keyring.PlainValue{CreatedAt: e.created, Version: int64(i + 1)})
		}
		if prev != nil {
			versions = append(versions, keyring.PlainValue{Value: prev.secret, CreatedAt: prev.created, Version: int64(len(earlier) + 1)})
		}
		versions = append(versions, now)
		r, err = store.PlainHistory(versions, s.cfg.Now(), s.cfg.Plain, rotatedBy, func(pv keyring.PlainValue) (keyring.Secret, error) {
			v, err := s.get(ctx, earlier[pv.Version-1].id)
			if err != nil {
				return nil, fmt.Errorf("%w (an earlier value pods must keep verifying)", err)
			}
			return v.secret, nil
		})
		if err != nil {
			return nil, err
		}
	}
	if pend != nil {
		if _, dup := r.Key(keyring.KeyID(pend.secret)); !dup {
			// Held: it verifies, and signs only once it is made AWSCURRENT.
			r.Keys = append(r.Keys, keyring.Key{ID: keyring.KeyID(pend.secret), Secret: pend.secret})
		}
	}
	return r, keyring.Validate(r)
}

// deprecated lists the versions without a staging label created before before, oldest
// first, at most keyring.MaxKeys of them (the newest).
func (s *Store) deprecated(ctx context.Context, l labels, before time.Time) ([]value, error) {
	out, err := s.client.ListSecretVersionIds(ctx, &secretsmanager.ListSecretVersionIdsInput{SecretId: &s.cfg.Name,
		IncludeDeprecated: aws.Bool(true), MaxResults: aws.Int32(100)}, s.once(ctx))
	if err != nil {
		return nil, s.fail("ListSecretVersionIds", err)
	}
	var vs []value
	for _, v := range out.Versions {
		id, created := aws.ToString(v.VersionId), aws.ToTime(v.CreatedDate).UTC()
		if len(v.VersionStages) > 0 || id == l.pending || !created.Before(before) {
			continue
		}
		vs = append(vs, value{id: id, created: created})
	}
	slices.SortFunc(vs, func(a, b value) int { return a.created.Compare(b.created) })
	if len(vs) > keyring.MaxKeys {
		vs = vs[len(vs)-keyring.MaxKeys:]
	}
	return vs, nil
}

// rolledBackUntil is when a plain value made AWSCURRENT at created stops verifying once
// it is rolled back: the end of its verify window as a previous value would have been.
func rolledBackUntil(created time.Time, o store.PlainOptions) time.Time {
	return created.Truncate(time.Millisecond).Add(o.Delay() + o.Window())
}

// RollbackPlain implements store.Rollbacker: it moves AWSCURRENT from ifVersion back to
// the AWSPREVIOUS version — the rollback AWS documents — and returns the keyring readers
// compute after the move. It refuses when the previous value's verify window has closed
// (pods that have not seen the move would refuse its signatures: rotate instead), and
// when AWSCURRENT is no longer on ifVersion. With dryRun it only computes.
func (s *Store) RollbackPlain(ctx context.Context, ifVersion string, dryRun bool) (*keyring.Keyring, error) {
	l, err := s.labels(ctx)
	if err != nil {
		return nil, err
	}
	if l.current != ifVersion {
		return nil, fmt.Errorf("secretsmanager %s: %s is version %s, the rollback was based on %s: %w", s.cfg.Name, Current, l.current, ifVersion, store.ErrConflict)
	}
	if l.previous == "" || l.previous == l.current {
		return nil, fmt.Errorf("secretsmanager %s: no %s version to roll back to: %w", s.cfg.Name, Previous, keyring.ErrNoPrevious)
	}
	cur, err := s.get(ctx, l.current)
	if err != nil {
		return nil, err
	}
	prev, err := s.get(ctx, l.previous)
	if err != nil {
		return nil, err
	}
	if store.IsDocument(cur.secret) || store.IsDocument(prev.secret) {
		return nil, fmt.Errorf("secretsmanager %s holds a keyring document: roll back with a new document, not by moving labels", s.cfg.Name)
	}
	if until := rolledBackUntil(cur.created, s.cfg.Plain); !s.cfg.Now().Before(until) {
		return nil, fmt.Errorf("secretsmanager %s: the %s value stopped verifying at %s; pods would refuse its signatures: rotate to a new value instead: %w",
			s.cfg.Name, Previous, until.Format(time.RFC3339), keyring.ErrNoPrevious)
	}
	after := labels{current: l.previous, previous: l.current, changed: s.cfg.Now().UTC()}
	if !dryRun {
		if _, err := s.client.UpdateSecretVersionStage(ctx, &secretsmanager.UpdateSecretVersionStageInput{SecretId: &s.cfg.Name,
			VersionStage: aws.String(Current), MoveToVersionId: &l.previous, RemoveFromVersionId: &l.current}, s.once(ctx)); err != nil {
			if l2, err2 := s.labels(ctx); err2 == nil && l2.current != ifVersion {
				return nil, fmt.Errorf("secretsmanager %s: %s moved meanwhile: %w", s.cfg.Name, Current, store.ErrConflict)
			}
			return nil, s.fail("UpdateSecretVersionStage ("+Current+" back)", err)
		}
		if after, err = s.labels(ctx); err != nil {
			return nil, err
		}
	}
	return s.plain(ctx, after, prev, &cur, nil, nil)
}
