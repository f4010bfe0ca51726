// Package awsssm is the AWS Systems Manager Parameter Store backend: one SecureString
// parameter holding the keyring document, or a plain value as the ticket writes it
// (`aws ssm put-parameter --name spiral-event-secret --type SecureString --overwrite`).
//
// An idle poll is one GetParameter without decryption: it returns the version and its
// date but not the value, and costs no KMS decrypt; the value is fetched (decrypted) only
// when the version changed. A plain value's predecessor comes from GetParameterHistory,
// with its LastModifiedDate as the clock every pod shares.
//
// Parameter Store has no compare-and-swap. A write checks that the parameter still holds
// the version it was based on immediately before PutParameter (one round trip apart, the
// smallest window the API allows), and PutParameter's returned version shows whether
// another write landed in that window: versions are sequential, so the write that got
// version N+1 is the one that won. A write that finds it did not get N+1 lost the race;
// it puts the winner's document back on top (so the parameter ends with the winner's
// document, not the loser's) and reports a conflict.
package awsssm

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/sigil-dna/keysync/internal/awsapi"
	"github.com/sigil-dna/keysync/keyring"
	"github.com/sigil-dna/keysync/store"
)

var _ store.Store = (*Store)(nil)

// MaxDescription is Parameter Store's limit on a parameter's description.
const MaxDescription = 1024

// Config locates the parameter.
type Config struct {
	// Name is the parameter name: "spiral-event-secret" or "/sigil/prod/spiral-event-secret".
	Name string
	// KMSKeyID encrypts written versions; empty means the account's aws/ssm key.
	KMSKeyID string
	AWS      awsapi.Config
	Plain    store.PlainOptions
	Log      *slog.Logger
}

// ParseURL reads ssm:///NAME. A one-level name is written without its slash
// (ssm:///spiral-event-secret is the parameter spiral-event-secret); a hierarchical name
// keeps it (ssm:///sigil/prod/spiral-event-secret is /sigil/prod/spiral-event-secret);
// ssm:////NAME names the one-level parameter /NAME.
func ParseURL(raw string) (string, error) {
	rest, ok := strings.CutPrefix(raw, "ssm://")
	if !ok || !strings.HasPrefix(rest, "/") || len(rest) < 2 || strings.HasSuffix(rest, "/") || strings.Contains(rest, "///") {
		return "", fmt.Errorf("ssm: %q is not an ssm:///NAME URL (for example ssm:///spiral-event-secret or ssm:///sigil/prod/spiral-event-secret)", raw)
	}
	name := rest[1:]
	if strings.Contains(name, "/") && !strings.HasPrefix(name, "/") {
		name = "/" + name
	}
	return name, nil
}

// Store is one parameter.
type Store struct {
	cfg    Config
	client *ssm.Client

	cache  store.Cache // keyed by version and date
	warned atomic.Bool
}

// New creates the client. No request is made.
func New(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Name == "" {
		return nil, errors.New("ssm: no parameter name")
	}
	ac, err := awsapi.Load(ctx, cfg.AWS)
	if err != nil {
		return nil, fmt.Errorf("ssm %s: %w", cfg.Name, err)
	}
	return &Store{cfg: cfg, client: ssm.NewFromConfig(ac)}, nil
}

// String implements store.Store.
func (s *Store) String() string {
	if strings.HasPrefix(s.cfg.Name, "/") && strings.Count(s.cfg.Name, "/") == 1 {
		return "ssm:///" + s.cfg.Name
	}
	return "ssm:///" + strings.TrimPrefix(s.cfg.Name, "/")
}

// once makes a call with ctx a single attempt when the caller retries (awsapi.Attempts).
func (s *Store) once(ctx context.Context) func(*ssm.Options) {
	n := awsapi.Attempts(ctx)
	return func(o *ssm.Options) {
		if n > 0 {
			o.RetryMaxAttempts = n
		}
	}
}

// Close implements store.Store.
func (s *Store) Close() error { return nil }

func (s *Store) fail(call string, err error) error {
	if awsapi.Code(err) == "ParameterNotFound" {
		return fmt.Errorf("ssm %s: %s: %w", s.cfg.Name, call, store.ErrNotFound)
	}
	return fmt.Errorf("ssm %s: %w", s.cfg.Name, awsapi.Describe(call, err))
}

// meta reads the parameter without decryption: its version and date, not its value.
func (s *Store) meta(ctx context.Context) (*types.Parameter, error) {
	out, err := s.client.GetParameter(ctx, &ssm.GetParameterInput{Name: &s.cfg.Name, WithDecryption: aws.Bool(false)}, s.once(ctx))
	if err != nil {
		return nil, s.fail("GetParameter", err)
	}
	return out.Parameter, nil
}

func cacheKey(p *types.Parameter) string {
	return strconv.FormatInt(p.Version, 10) + "@" + aws.ToTime(p.LastModifiedDate).UTC().Format(time.RFC3339Nano)
}

// Read implements store.Store. The version is the parameter's version number.
func (s *Store) Read(ctx context.Context) (*store.Snapshot, error) {
	m, err := s.meta(ctx)
	if err != nil {
		return nil, err
	}
	if snap := s.cache.Get(cacheKey(m)); snap != nil {
		return snap, nil
	}
	out, err := s.client.GetParameter(ctx, &ssm.GetParameterInput{Name: &s.cfg.Name, WithDecryption: aws.Bool(true)}, s.once(ctx))
	if err != nil {
		return nil, s.fail("GetParameter with decryption", err)
	}
	p := out.Parameter
	snap, err := s.decode(ctx, p)
	if err != nil {
		return nil, store.Invalid(strconv.FormatInt(p.Version, 10), err)
	}
	s.cache.Put(cacheKey(p), snap)
	return snap, nil
}

func (s *Store) decode(ctx context.Context, p *types.Parameter) (*store.Snapshot, error) {
	where := fmt.Sprintf("ssm %s version %d", s.cfg.Name, p.Version)
	if p.Type != types.ParameterTypeSecureString && s.warned.CompareAndSwap(false, true) {
		s.cfg.Log.Warn("the parameter is not a SecureString: its value is stored unencrypted and shown in the console; rotate to make it one",
			"store", s.String(), "type", string(p.Type))
	}
	value := aws.ToString(p.Value)
	version := strconv.FormatInt(p.Version, 10)
	if store.IsDocument([]byte(value)) {
		r, err := keyring.Parse([]byte(value))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		return &store.Snapshot{Keyring: r, Version: version}, nil
	}
	versions := []keyring.PlainValue{{Value: keyring.Secret(value), CreatedAt: aws.ToTime(p.LastModifiedDate), Version: p.Version}}
	if p.Version > 1 {
		earlier, err := s.history(ctx, p.Version)
		if err != nil {
			return nil, fmt.Errorf("%s: the earlier values, which pods must keep verifying, are unreadable (the role needs ssm:GetParameterHistory): %w", where, err)
		}
		versions = append(earlier, versions...)
	}
	r, err := store.PlainHistory(versions, time.Now(), s.cfg.Plain, "aws ssm "+s.cfg.Name, func(keyring.PlainValue) (keyring.Secret, error) {
		return nil, store.ErrNotPlain // the history holds every value it has
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	return &store.Snapshot{Keyring: r, Version: version, Plain: true}, nil
}

// history returns the parameter's values older than version, oldest first, as far back
// as Parameter Store keeps them (100 versions); a gap in the version numbers (a version
// aged out, or a label-only history) starts it after the gap.
func (s *Store) history(ctx context.Context, version int64) ([]keyring.PlainValue, error) {
	var out []keyring.PlainValue
	p := ssm.NewGetParameterHistoryPaginator(s.client, &ssm.GetParameterHistoryInput{
		Name: &s.cfg.Name, WithDecryption: aws.Bool(true), MaxResults: aws.Int32(50)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx, s.once(ctx))
		if err != nil {
			return nil, s.fail("GetParameterHistory", err)
		}
		for _, h := range page.Parameters {
			if h.Version < version {
				out = append(out, keyring.PlainValue{Value: keyring.Secret(aws.ToString(h.Value)), CreatedAt: aws.ToTime(h.LastModifiedDate), Version: h.Version})
			}
		}
	}
	slices.SortFunc(out, func(a, b keyring.PlainValue) int { return cmp.Compare(a.Version, b.Version) })
	start, want := len(out), version-1
	for start > 0 && out[start-1].Version == want {
		start, want = start-1, want-1
	}
	return out[start:], nil
}

// Description is what a write records on the version: who, why, which keys. Parameter
// Store keeps it per version, so GetParameterHistory is the rotation history.
func Description(r *keyring.Keyring) string { return awsapi.Description(r, MaxDescription) }

func (s *Store) put(ctx context.Context, value, description string, overwrite bool) (int64, error) {
	in := &ssm.PutParameterInput{Name: &s.cfg.Name, Value: &value, Type: types.ParameterTypeSecureString,
		Overwrite: aws.Bool(overwrite), Description: &description}
	if s.cfg.KMSKeyID != "" {
		in.KeyId = &s.cfg.KMSKeyID
	}
	out, err := s.client.PutParameter(ctx, in, s.once(ctx))
	if err != nil {
		err = awsapi.Redact(err, []byte(value))
		switch awsapi.Code(err) {
		case "ParameterAlreadyExists":
			return 0, fmt.Errorf("ssm %s was created meanwhile: %w", s.cfg.Name, store.ErrConflict)
		case "TooManyUpdates":
			return 0, fmt.Errorf("ssm %s: another write is in progress (TooManyUpdates): %w", s.cfg.Name, store.ErrConflict)
		}
		return 0, s.fail("PutParameter", err)
	}
	return out.Version, nil
}

// Write implements store.Store.
func (s *Store) Write(ctx context.Context, r *keyring.Keyring, ifVersion string) (string, error) {
	doc, err := keyring.Encode(r)
	if err != nil {
		return "", fmt.Errorf("ssm %s: %w", s.cfg.Name, err)
	}
	if ifVersion == "" { // creation is the one atomic check Parameter Store has
		v, err := s.put(ctx, string(doc), Description(r), false)
		if err != nil {
			return "", err
		}
		return strconv.FormatInt(v, 10), nil
	}
	base, err := strconv.ParseInt(ifVersion, 10, 64)
	if err != nil {
		return "", fmt.Errorf("ssm %s: %q is not a parameter version: %w", s.cfg.Name, ifVersion, store.ErrConflict)
	}
	m, err := s.meta(ctx)
	if errors.Is(err, store.ErrNotFound) {
		return "", fmt.Errorf("ssm %s was deleted since version %d was read: %w", s.cfg.Name, base, store.ErrConflict)
	}
	if err != nil {
		return "", err
	}
	if m.Version != base {
		return "", fmt.Errorf("ssm %s: holds version %d, the write was based on %d: %w", s.cfg.Name, m.Version, base, store.ErrConflict)
	}
	got, err := s.put(ctx, string(doc), Description(r), true)
	if err != nil {
		return "", err
	}
	if got == base+1 {
		return strconv.FormatInt(got, 10), nil
	}
	return s.restore(ctx, base+1, got, string(doc))
}

// restore handles a write that did not get version winner: another write made it between
// this write's check and its PutParameter, which made version ours. If winner holds this
// very document, it was this write's own PutParameter, applied once more by a retry after
// a lost response: the write succeeded. Otherwise it puts the winner's document back on
// top unless the parameter has changed again, and returns the conflict.
func (s *Store) restore(ctx context.Context, winner, ours int64, doc string) (string, error) {
	lost := fmt.Errorf("ssm %s: another write made version %d between this write's version check and its PutParameter (this write became version %d)", s.cfg.Name, winner, ours)
	sel := s.cfg.Name + ":" + strconv.FormatInt(winner, 10)
	w, err := s.client.GetParameter(ctx, &ssm.GetParameterInput{Name: &sel, WithDecryption: aws.Bool(true)}, s.once(ctx))
	if err != nil {
		s.cfg.Log.Error("lost a write race and cannot read the winning version back: the parameter holds this write's document, not the winner's",
			"store", s.String(), "winner", winner, "ours", ours, "error", s.fail("GetParameter "+sel, err))
		return "", fmt.Errorf("%w; reading version %d back failed, so version %d (this write) stays: %w", lost, winner, ours, store.ErrConflict)
	}
	if aws.ToString(w.Parameter.Value) == doc {
		s.cfg.Log.Info("the write was applied twice (a retried PutParameter)", "store", s.String(), "versions", []int64{winner, ours})
		return strconv.FormatInt(ours, 10), nil
	}
	m, err := s.meta(ctx)
	if err != nil || m.Version != ours {
		return "", fmt.Errorf("%w; the parameter changed again, left as it is: %w", lost, store.ErrConflict)
	}
	restored, err := s.put(ctx, aws.ToString(w.Parameter.Value),
		fmt.Sprintf("keysync: version %d restored after a concurrent write made version %d", winner, ours), true)
	if err != nil {
		return "", fmt.Errorf("%w; restoring version %d failed: %v: %w", lost, winner, err, store.ErrConflict)
	}
	s.cfg.Log.Warn("lost a write race; the winning document was put back", "store", s.String(),
		"winner", winner, "ours", ours, "restored_as", restored)
	return "", fmt.Errorf("%w; version %d's document was put back as version %d: %w", lost, winner, restored, store.ErrConflict)
}
