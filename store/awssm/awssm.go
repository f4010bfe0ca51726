// Package awssm is the AWS Secrets Manager backend, using the service's staging labels
// the way its own rotation does.
//
// Reading: an idle poll is one DescribeSecret, which lists the versions' staging labels
// and no value; values are fetched (GetSecretValue by version id) only when a label moved.
// AWSCURRENT holds the keyring document, or a plain value (`aws secretsmanager
// put-secret-value --secret-string …`, or a rotation Lambda's). For a plain value the
// labels map onto the keyring: AWSCURRENT signs (from its creation plus the activation
// delay, as every plain store does), AWSPREVIOUS keeps verifying for the verify window,
// and AWSPENDING — a Lambda's createSecret step — verifies but never signs until it is
// made AWSCURRENT.
//
// Writing follows AWS's rotation protocol: PutSecretValue puts the new document as
// AWSPENDING with a ClientRequestToken derived from the document (a retried call is
// idempotent), then UpdateSecretVersionStage moves AWSCURRENT to it with
// RemoveFromVersionId set to the version the write was based on — the service refuses
// the move if AWSCURRENT is no longer there, which makes it a real compare-and-swap — and
// AWSPREVIOUS follows to the version it came from. AWSPENDING is then removed, as at the
// end of a rotation. Rolling back a plain value moves AWSCURRENT back to the AWSPREVIOUS
// version (RollbackPlain); a keyring document is rolled back by writing the rollback
// document, which keeps the key being withdrawn verifying for its window.
package awssm

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/sigil-dna/keysync/internal/awsapi"
	"github.com/sigil-dna/keysync/keyring"
	"github.com/sigil-dna/keysync/store"
)

var (
	_ store.Store      = (*Store)(nil)
	_ store.Rollbacker = (*Store)(nil)
)

// Staging labels.
const (
	Current  = "AWSCURRENT"
	Pending  = "AWSPENDING"
	Previous = "AWSPREVIOUS"
)

// errNoCurrent: the secret exists but has no value (created empty, for its policy or tags).
var errNoCurrent = errors.New("no version is " + Current)

// Config locates the secret.
type Config struct {
	// Name is the secret's name or ARN.
	Name string
	// KMSKeyID encrypts the secret when keysync creates it; empty means aws/secretsmanager.
	KMSKeyID string
	AWS      awsapi.Config
	Plain    store.PlainOptions
	Log      *slog.Logger
	// Now is the clock RollbackPlain checks the verify window with; nil means time.Now.
	Now func() time.Time
}

// ParseURL reads secretsmanager://NAME (a name may contain slashes, or be an ARN).
func ParseURL(raw string) (string, error) {
	rest, ok := strings.CutPrefix(raw, "secretsmanager://")
	rest = strings.TrimPrefix(rest, "/")
	if !ok || rest == "" || strings.HasSuffix(rest, "/") {
		return "", fmt.Errorf("secretsmanager: %q is not a secretsmanager://NAME URL (for example secretsmanager://sigil/spiral-event-secret)", raw)
	}
	return rest, nil
}

// Store is one secret.
type Store struct {
	cfg    Config
	client *secretsmanager.Client

	cache      store.Cache // keyed by where the labels are and LastChangedDate
	listWarned atomic.Bool
}

// New creates the client. No request is made.
func New(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Name == "" {
		return nil, errors.New("secretsmanager: no secret name")
	}
	ac, err := awsapi.Load(ctx, cfg.AWS)
	if err != nil {
		return nil, fmt.Errorf("secretsmanager %s: %w", cfg.Name, err)
	}
	return &Store{cfg: cfg, client: secretsmanager.NewFromConfig(ac)}, nil
}

// String implements store.Store.
func (s *Store) String() string { return "secretsmanager://" + s.cfg.Name }

// once makes a call with ctx a single attempt when the caller retries (awsapi.Attempts).
func (s *Store) once(ctx context.Context) func(*secretsmanager.Options) {
	n := awsapi.Attempts(ctx)
	return func(o *secretsmanager.Options) {
		if n > 0 {
			o.RetryMaxAttempts = n
		}
	}
}

// Close implements store.Store.
func (s *Store) Close() error { return nil }

func (s *Store) fail(call string, err error) error {
	if awsapi.Code(err) == "ResourceNotFoundException" {
		return fmt.Errorf("secretsmanager %s: %s: %w", s.cfg.Name, call, store.ErrNotFound)
	}
	return fmt.Errorf("secretsmanager %s: %w", s.cfg.Name, awsapi.Describe(call, err))
}

// labels is where the staging labels are, from one DescribeSecret.
type labels struct {
	current, pending, previous string
	changed                    time.Time
}

func (l labels) key() string {
	return l.current + "|" + l.pending + "|" + l.previous + "|" + l.changed.Format(time.RFC3339Nano)
}

func (s *Store) labels(ctx context.Context) (labels, error) {
	d, err := s.client.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: &s.cfg.Name}, s.once(ctx))
	if err != nil {
		return labels{}, s.fail("DescribeSecret", err)
	}
	if d.DeletedDate != nil {
		return labels{}, fmt.Errorf("secretsmanager %s is scheduled for deletion: %w", s.cfg.Name, store.ErrNotFound)
	}
	l := labels{changed: aws.ToTime(d.LastChangedDate).UTC()}
	for id, stages := range d.VersionIdsToStages {
		for _, st := range stages {
			switch st {
			case Current:
				l.current = id
			case Pending:
				l.pending = id
			case Previous:
				l.previous = id
			}
		}
	}
	if l.current == "" {
		return labels{}, fmt.Errorf("secretsmanager %s: %w: %w", s.cfg.Name, errNoCurrent, store.ErrNotFound)
	}
	return l, nil
}

type value struct {
	secret  keyring.Secret
	created time.Time
	id      string
}

func (s *Store) get(ctx context.Context, id string) (value, error) {
	out, err := s.client.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: &s.cfg.Name, VersionId: &id}, s.once(ctx))
	if err != nil {
		return value{}, s.fail("GetSecretValue "+id, err)
	}
	v := value{secret: keyring.Secret(aws.ToString(out.SecretString)), created: aws.ToTime(out.CreatedDate).UTC(), id: id}
	if out.SecretString == nil {
		v.secret = out.SecretBinary
	}
	return v, nil
}

// Read implements store.Store. The version is the AWSCURRENT version id.
func (s *Store) Read(ctx context.Context) (*store.Snapshot, error) {
	l, err := s.labels(ctx)
	if err != nil {
		return nil, err
	}
	if snap := s.cache.Get(l.key()); snap != nil {
		return snap, nil
	}
	snap, err := s.decode(ctx, l)
	if err != nil {
		return nil, store.Invalid(l.current, err)
	}
	s.cache.Put(l.key(), snap)
	return snap, nil
}

func (s *Store) decode(ctx context.Context, l labels) (*store.Snapshot, error) {
	where := fmt.Sprintf("secretsmanager %s %s %s", s.cfg.Name, Current, l.current)
	cur, err := s.get(ctx, l.current)
	if err != nil {
		return nil, err
	}
	if store.IsDocument(cur.secret) {
		r, err := keyring.Parse(cur.secret)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		return &store.Snapshot{Keyring: r, Version: l.current}, nil
	}
	var prev, pend *value
	for _, x := range []struct {
		id  string
		dst **value
	}{{l.previous, &prev}, {l.pending, &pend}} {
		if x.id == "" || x.id == l.current {
			continue
		}
		v, err := s.get(ctx, x.id)
		if err != nil {
			return nil, err
		}
		// A keyring document as AWSPREVIOUS (the ticket's put-secret-value over a secret
		// keysync rotates) is kept: the plain value is staged after its keys.
		if !store.IsDocument(v.secret) || (x.dst == &prev && !v.created.After(cur.created)) {
			*x.dst = &v
		}
	}
	var earlier []value
	// Values older than AWSPREVIOUS verify until the window after AWSPREVIOUS signed.
	if prev != nil && !store.IsDocument(prev.secret) && !prev.created.After(cur.created) && s.cfg.Now().Before(prev.created.Add(s.cfg.Plain.Delay()+s.cfg.Plain.Window())) {
		var err error
		if earlier, err = s.deprecated(ctx, l, prev.created); err != nil {
			// Without the listing (an IAM policy without it, an emulator without it) the
			// labelled values are all there is: say so once, keep reading.
			if s.listWarned.CompareAndSwap(false, true) {
				s.cfg.Log.Warn("cannot list the secret's earlier versions; a value replaced twice within the activation delay stops verifying early (grant secretsmanager:ListSecretVersionIds)",
					"store", s.String(), "error", err)
			}
			earlier = nil
		}
	}
	r, err := s.plain(ctx, l, cur, prev, pend, earlier)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	return &store.Snapshot{Keyring: r, Version: l.current, Plain: true}, nil
}

// token is the ClientRequestToken of a document: derived from its bytes, so a retried
// PutSecretValue of the same document is the same version, and shaped like the UUIDs
// AWS makes.
func token(doc []byte) string {
	h := sha256.Sum256(doc)
	h[6] = h[6]&0x0f | 0x40
	h[8] = h[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}

// MaxDescription is Secrets Manager's limit on a secret's description.
const MaxDescription = 2048

// Description is what a write records on the secret: who, why, which keys.
func Description(r *keyring.Keyring) string { return awsapi.Description(r, MaxDescription) }

// Write implements store.Store.
func (s *Store) Write(ctx context.Context, r *keyring.Keyring, ifVersion string) (string, error) {
	doc, err := keyring.Encode(r)
	if err != nil {
		return "", fmt.Errorf("secretsmanager %s: %w", s.cfg.Name, err)
	}
	tok := token(doc)
	if ifVersion == "" {
		return s.create(ctx, r, doc, tok)
	}
	if _, err := s.client.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: &s.cfg.Name,
		SecretString: aws.String(string(doc)), ClientRequestToken: &tok, VersionStages: []string{Pending}}, s.once(ctx)); err != nil {
		err = awsapi.Redact(err, doc)
		if errors.Is(s.fail("", err), store.ErrNotFound) {
			return "", fmt.Errorf("secretsmanager %s was deleted since it was read: %w", s.cfg.Name, store.ErrConflict)
		}
		return "", s.fail("PutSecretValue ("+Pending+")", err)
	}
	_, err = s.client.UpdateSecretVersionStage(ctx, &secretsmanager.UpdateSecretVersionStageInput{SecretId: &s.cfg.Name,
		VersionStage: aws.String(Current), MoveToVersionId: &tok, RemoveFromVersionId: &ifVersion}, s.once(ctx))
	if err != nil {
		l, lerr := s.labels(ctx)
		switch {
		case lerr == nil && l.current == tok: // a retry of a move that had succeeded
		case lerr == nil && l.current != ifVersion:
			s.unpend(ctx, tok)
			return "", fmt.Errorf("secretsmanager %s: %s is version %s, the write was based on %s: %w", s.cfg.Name, Current, l.current, ifVersion, store.ErrConflict)
		default:
			return "", s.fail("UpdateSecretVersionStage ("+Current+")", err)
		}
	}
	s.unpend(ctx, tok)
	s.describe(ctx, r)
	return tok, nil
}

func (s *Store) create(ctx context.Context, r *keyring.Keyring, doc []byte, tok string) (string, error) {
	in := &secretsmanager.CreateSecretInput{Name: &s.cfg.Name, SecretString: aws.String(string(doc)),
		ClientRequestToken: &tok, Description: aws.String(Description(r))}
	if s.cfg.KMSKeyID != "" {
		in.KmsKeyId = &s.cfg.KMSKeyID
	}
	_, err := s.client.CreateSecret(ctx, in, s.once(ctx))
	if err == nil {
		return tok, nil
	}
	err = awsapi.Redact(err, doc)
	if awsapi.Code(err) != "ResourceExistsException" {
		return "", s.fail("CreateSecret", err)
	}
	l, lerr := s.labels(ctx)
	switch {
	case lerr == nil && l.current == tok: // a retried creation
		return tok, nil
	case lerr == nil:
		return "", fmt.Errorf("secretsmanager %s was created meanwhile: %w", s.cfg.Name, store.ErrConflict)
	case errors.Is(lerr, errNoCurrent):
		// The secret exists without a value (created empty, for its policy or tags):
		// this first value becomes AWSCURRENT.
		if _, err := s.client.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: &s.cfg.Name,
			SecretString: aws.String(string(doc)), ClientRequestToken: &tok}, s.once(ctx)); err != nil {
			return "", s.fail("PutSecretValue", awsapi.Redact(err, doc))
		}
		s.describe(ctx, r)
		return tok, nil
	}
	return "", lerr
}

// unpend removes AWSPENDING from version id if it is there, as the end of a rotation does.
func (s *Store) unpend(ctx context.Context, id string) {
	if _, err := s.client.UpdateSecretVersionStage(ctx, &secretsmanager.UpdateSecretVersionStageInput{SecretId: &s.cfg.Name,
		VersionStage: aws.String(Pending), RemoveFromVersionId: &id}, s.once(ctx)); err != nil {
		s.cfg.Log.Debug("AWSPENDING left in place", "store", s.String(), "version", id, "error", s.fail("UpdateSecretVersionStage", err))
	}
}

// describe records who rotated, why and the key ids in the secret's description.
func (s *Store) describe(ctx context.Context, r *keyring.Keyring) {
	if _, err := s.client.UpdateSecret(ctx, &secretsmanager.UpdateSecretInput{SecretId: &s.cfg.Name, Description: aws.String(Description(r))}, s.once(ctx)); err != nil {
		s.cfg.Log.Warn("cannot record the rotation in the secret's description", "store", s.String(), "error", s.fail("UpdateSecret", err))
	}
}
