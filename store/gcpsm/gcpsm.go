// Package gcpsm is the Google Cloud Secret Manager store, with Application Default
// Credentials (Workload Identity on GKE). The keyring document, or a plain value, is the
// payload of the newest enabled version. An idle poll is one ListSecretVersions call
// (filter state:ENABLED, two results, no payload); the payload is accessed only when the
// newest enabled version or its etag changed, and its CRC32C is checked. A write claims
// the rotation with an etag-guarded UpdateSecret (Secret Manager has no compare-and-swap
// on AddSecretVersion: a concurrent rotation fails that update with ABORTED), then adds
// the version.
package gcpsm

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	secretmanager "cloud.google.com/go/secretmanager/apiv1"
	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"github.com/googleapis/gax-go/v2"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/sigil-dna/keysync/keyring"
	"github.com/sigil-dna/keysync/store"
)

var _ store.Store = (*Store)(nil)

var crc32c = crc32.MakeTable(crc32.Castagnoli)

// Annotation keys on the Secret recording the last rotation.
const annotation = "keysync.sigil-dna.io/"

// claimTTL bounds how long a rotation's claim blocks others.
const claimTTL = time.Minute

// Config locates the secret.
type Config struct {
	Project, Secret string
	// ClientOptions are passed to the client (an endpoint, credentials); none means ADC.
	ClientOptions []option.ClientOption
	// DisableOldVersions disables enabled versions older than OldAfter after each write.
	DisableOldVersions bool
	OldAfter           time.Duration
	Plain              store.PlainOptions
	Log                *slog.Logger
}

// ParseURL reads gcpsm://projects/PROJECT/secrets/NAME.
func ParseURL(raw string) (project, secret string, err error) {
	rest, ok := strings.CutPrefix(raw, "gcpsm://")
	parts := strings.Split(strings.Trim(rest, "/"), "/")
	if !ok || len(parts) != 4 || parts[0] != "projects" || parts[2] != "secrets" || parts[1] == "" || parts[3] == "" {
		return "", "", fmt.Errorf("gcpsm: %q is not a gcpsm://projects/PROJECT/secrets/NAME URL", raw)
	}
	return parts[1], parts[3], nil
}

// Store is one Secret Manager secret.
type Store struct {
	cfg    Config
	client *secretmanager.Client
	name   string

	cache store.Cache // keyed by the newest enabled version's name and etag

	closeOnce sync.Once
	closeErr  error
}

// New creates the client.
func New(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	// gRPC's reconnect backoff grows to two minutes by default: after an outage a sidecar
	// would fail fast for that long although the service is back. Cap it at 10 s.
	reconnect := option.WithGRPCDialOption(grpc.WithConnectParams(grpc.ConnectParams{
		Backoff: backoff.Config{BaseDelay: time.Second, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 10 * time.Second}, MinConnectTimeout: 5 * time.Second,
	}))
	c, err := secretmanager.NewClient(ctx, append([]option.ClientOption{reconnect}, cfg.ClientOptions...)...)
	if err != nil {
		return nil, fmt.Errorf("gcpsm: creating the client: %w", err)
	}
	// The library retries AccessSecretVersion by itself (2 s to 60 s on Unavailable and
	// ResourceExhausted), which multiplied the sidecar's own backoff; store.Retry is the one
	// retry policy (see Read and Write). Only its timeout is kept.
	c.CallOptions.AccessSecretVersion = []gax.CallOption{gax.WithTimeout(60 * time.Second)}
	return &Store{cfg: cfg, client: c, name: "projects/" + cfg.Project + "/secrets/" + cfg.Secret}, nil
}

// String implements store.Store.
func (s *Store) String() string { return "gcpsm://" + s.name }

// Close implements store.Store. It is idempotent.
func (s *Store) Close() error {
	s.closeOnce.Do(func() { s.closeErr = s.client.Close() })
	return s.closeErr
}

// enabled returns the newest enabled versions, newest first, at most n.
func (s *Store) enabled(ctx context.Context, n int32) ([]*secretmanagerpb.SecretVersion, error) {
	it := s.client.ListSecretVersions(ctx, &secretmanagerpb.ListSecretVersionsRequest{Parent: s.name, PageSize: n, Filter: "state:ENABLED"})
	var out []*secretmanagerpb.SecretVersion
	for len(out) < int(n) {
		v, err := it.Next()
		if errors.Is(err, iterator.Done) {
			break
		}
		if err != nil {
			return nil, s.apiError("listing versions", err)
		}
		out = append(out, v)
	}
	return out, nil
}

func (s *Store) apiError(what string, err error) error {
	if status.Code(err) == codes.NotFound {
		return fmt.Errorf("gcpsm %s: %s: %w", s.name, what, store.ErrNotFound)
	}
	if status.Code(err) == codes.ResourceExhausted {
		return fmt.Errorf("gcpsm %s: %s: throttled (a quota): %w", s.name, what, err)
	}
	return fmt.Errorf("gcpsm %s: %s: %w", s.name, what, err)
}

// retryable: Secret Manager did not serve the request (unavailable, or a quota).
func retryable(err error) bool {
	c := status.Code(err) // status.Code finds a wrapped status
	return c == codes.Unavailable || c == codes.ResourceExhausted
}

// notApplied: Secret Manager refused the request before acting on it (a quota).
func notApplied(err error) bool { return status.Code(err) == codes.ResourceExhausted }

// Read implements store.Store, under the store package's retry policy (store.Retry). The
// version is the name of the newest enabled version.
func (s *Store) Read(ctx context.Context) (*store.Snapshot, error) {
	var snap *store.Snapshot
	err := store.Retry(ctx, store.Backoff{}, retryable, func() (err error) { snap, err = s.read(ctx); return err })
	return snap, err
}

func (s *Store) read(ctx context.Context) (*store.Snapshot, error) {
	vs, err := s.enabled(ctx, 1)
	if err != nil {
		return nil, err
	}
	if len(vs) == 0 {
		return nil, fmt.Errorf("gcpsm %s: no enabled version: %w", s.name, store.ErrNotFound)
	}
	key := vs[0].Name + "@" + vs[0].Etag
	if snap := s.cache.Get(key); snap != nil {
		return snap, nil
	}
	data, err := s.access(ctx, vs[0].Name)
	if err != nil {
		return nil, store.Invalid(vs[0].Name, err)
	}
	snap, err := s.decode(ctx, vs, data)
	if err != nil {
		return nil, store.Invalid(vs[0].Name, err)
	}
	s.cache.Put(key, snap)
	return snap, nil
}

// access reads a version's payload and checks the CRC32C the API returns with it.
func (s *Store) access(ctx context.Context, name string) ([]byte, error) {
	resp, err := s.client.AccessSecretVersion(ctx, &secretmanagerpb.AccessSecretVersionRequest{Name: name})
	if err != nil {
		return nil, s.apiError("accessing "+name, err)
	}
	p := resp.GetPayload()
	if p.DataCrc32C == nil {
		return nil, fmt.Errorf("gcpsm %s: %s came without a CRC32C: %w", s.name, name, keyring.ErrInvalid)
	}
	if int64(crc32.Checksum(p.Data, crc32c)) != *p.DataCrc32C {
		return nil, fmt.Errorf("gcpsm %s: %s: the payload does not match its CRC32C (corrupted in transit or at rest): %w", s.name, name, keyring.ErrInvalid)
	}
	return p.Data, nil
}

func versionNumber(name string) int64 {
	n, _ := strconv.ParseInt(name[strings.LastIndexByte(name, '/')+1:], 10, 64)
	return n
}

func (s *Store) decode(ctx context.Context, vs []*secretmanagerpb.SecretVersion, data []byte) (*store.Snapshot, error) {
	cur := vs[0]
	if store.IsDocument(data) {
		r, err := keyring.Parse(data)
		if err != nil {
			return nil, fmt.Errorf("gcpsm %s: %s: %w", s.name, cur.Name, err)
		}
		return &store.Snapshot{Keyring: r, Version: cur.Name}, nil
	}
	// The enabled versions, newest first, as far back as a keyring can hold keys: the
	// plain values pods must keep verifying are read from them (keyring.FromPlainHistory).
	all, err := s.enabled(ctx, keyring.MaxKeys)
	if err != nil {
		return nil, err
	}
	if len(all) == 0 || all[0].Name != cur.Name {
		all = []*secretmanagerpb.SecretVersion{cur} // a version added meanwhile: the next read sees it
	}
	versions := make([]keyring.PlainValue, len(all))
	for i, v := range all {
		versions[len(all)-1-i] = keyring.PlainValue{CreatedAt: v.CreateTime.AsTime(), Version: versionNumber(v.Name)}
	}
	versions[len(versions)-1].Value = data
	r, err := store.PlainHistory(versions, time.Now(), s.cfg.Plain, "gcp secret manager "+s.name, func(pv keyring.PlainValue) (keyring.Secret, error) {
		return s.access(ctx, fmt.Sprintf("%s/versions/%d", s.name, pv.Version))
	})
	if err != nil {
		return nil, fmt.Errorf("gcpsm %s: %s: %w", s.name, cur.Name, err)
	}
	return &store.Snapshot{Keyring: r, Version: cur.Name, Plain: true}, nil
}

// Write implements store.Store, retried (store.Retry) only when Secret Manager refused a
// request before acting on it, so that no version is added twice.
func (s *Store) Write(ctx context.Context, r *keyring.Keyring, ifVersion string) (string, error) {
	var version string
	err := store.Retry(ctx, store.Backoff{}, notApplied, func() (err error) { version, err = s.write(ctx, r, ifVersion); return err })
	return version, err
}

func (s *Store) write(ctx context.Context, r *keyring.Keyring, ifVersion string) (string, error) {
	doc, err := keyring.Encode(r)
	if err != nil {
		return "", fmt.Errorf("gcpsm: %w", err)
	}
	sec, err := s.client.GetSecret(ctx, &secretmanagerpb.GetSecretRequest{Name: s.name})
	if status.Code(err) == codes.NotFound && ifVersion == "" {
		sec, err = s.client.CreateSecret(ctx, &secretmanagerpb.CreateSecretRequest{
			Parent: "projects/" + s.cfg.Project, SecretId: s.cfg.Secret,
			Secret: &secretmanagerpb.Secret{Replication: &secretmanagerpb.Replication{
				Replication: &secretmanagerpb.Replication_Automatic_{Automatic: &secretmanagerpb.Replication_Automatic{}}}},
		})
		if status.Code(err) == codes.AlreadyExists {
			return "", fmt.Errorf("gcpsm %s was created meanwhile: %w", s.name, store.ErrConflict)
		}
	}
	if err != nil {
		return "", s.apiError("reading the secret", err)
	}
	vs, err := s.enabled(ctx, 1)
	if err != nil {
		return "", err
	}
	current := ""
	if len(vs) > 0 {
		current = vs[0].Name
	}
	if current != ifVersion {
		return "", fmt.Errorf("gcpsm %s: newest enabled version is %q, the write was based on %q: %w", s.name, current, ifVersion, store.ErrConflict)
	}
	// Claim the rotation: the update carries the etag read above, so of two rotations
	// that read the same secret only one gets past here; and the claim names the version
	// it is based on, so a rotation that read the secret after another's claim but before
	// its new version sees the claim. A claim older than claimTTL is from a rotation that
	// died between claim and write, and is ignored.
	base := current
	if base == "" {
		base = "none"
	}
	if sec.Annotations[annotation+"based-on"] == base {
		if at, err := time.Parse(time.RFC3339Nano, sec.Annotations[annotation+"claimed-at"]); err == nil && time.Since(at) < claimTTL {
			return "", fmt.Errorf("gcpsm %s: another rotation based on %s is in progress: %w", s.name, base, store.ErrConflict)
		}
	}
	notes := map[string]string{}
	for k, v := range sec.Annotations {
		notes[k] = v
	}
	notes[annotation+"generation"] = strconv.FormatInt(r.Generation, 10)
	notes[annotation+"rotated-by"] = r.RotatedBy
	notes[annotation+"reason"] = r.Reason
	notes[annotation+"key-ids"] = strings.Join(r.IDs(), ",")
	notes[annotation+"based-on"] = base
	notes[annotation+"claimed-at"] = time.Now().UTC().Format(time.RFC3339Nano)
	_, err = s.client.UpdateSecret(ctx, &secretmanagerpb.UpdateSecretRequest{
		Secret:     &secretmanagerpb.Secret{Name: s.name, Etag: sec.Etag, Annotations: notes},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"annotations"}},
	})
	if c := status.Code(err); c == codes.Aborted || c == codes.FailedPrecondition {
		return "", fmt.Errorf("gcpsm %s: another rotation changed the secret (etag): %w", s.name, store.ErrConflict)
	}
	if err != nil {
		return "", s.apiError("claiming the rotation", err)
	}
	sum := int64(crc32.Checksum(doc, crc32c))
	v, err := s.client.AddSecretVersion(ctx, &secretmanagerpb.AddSecretVersionRequest{
		Parent: s.name, Payload: &secretmanagerpb.SecretPayload{Data: doc, DataCrc32C: &sum},
	})
	if err != nil {
		return "", s.apiError("adding a version", err)
	}
	if s.cfg.DisableOldVersions {
		s.disableOld(ctx, v.Name)
	}
	return v.Name, nil
}

// disableOld disables enabled versions, other than keep, created more than OldAfter ago:
// a keyring document carries every key it needs, so older versions only widen exposure.
func (s *Store) disableOld(ctx context.Context, keep string) {
	it := s.client.ListSecretVersions(ctx, &secretmanagerpb.ListSecretVersionsRequest{Parent: s.name, Filter: "state:ENABLED"})
	for {
		v, err := it.Next()
		if err != nil {
			return
		}
		if v.Name == keep || time.Since(v.CreateTime.AsTime()) < s.cfg.OldAfter {
			continue
		}
		if _, err := s.client.DisableSecretVersion(ctx, &secretmanagerpb.DisableSecretVersionRequest{Name: v.Name, Etag: v.Etag}); err != nil {
			s.cfg.Log.Warn("cannot disable an old version", "version", v.Name, "error", err)
		} else {
			s.cfg.Log.Info("old version disabled", "version", v.Name)
		}
	}
}
