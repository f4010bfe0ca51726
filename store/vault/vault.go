// Package vault is the HashiCorp Vault KV version 2 store. A keyring document is kept as
// the string field "keyring" of the secret; a secret whose data is just value=<secret>
// (what `vault kv put secret/sigil/spiral-event-secret value=$(openssl rand -hex 32)`
// writes) is read as a plain value, with the previous KV version as the previous key and
// the versions' created_time as the schedule's clock. Writes use the KV v2 check-and-set
// option. An idle poll is one metadata read: the data is fetched only when
// current_version moved.
package vault

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/sigil-dna/keysync/keyring"
	"github.com/sigil-dna/keysync/store"
)

var _ store.Store = (*Store)(nil)

// Data fields of the KV secret.
const (
	FieldKeyring = "keyring"
	FieldValue   = "value"
)

// Config locates the secret and says how to log in. Address, TLS and namespace default
// to the usual VAULT_* environment variables (VAULT_ADDR, VAULT_CACERT, VAULT_CAPATH,
// VAULT_CLIENT_CERT, VAULT_CLIENT_KEY, VAULT_SKIP_VERIFY, VAULT_TLS_SERVER_NAME,
// VAULT_NAMESPACE); a non-empty field here wins.
type Config struct {
	Mount     string // KV v2 mount, e.g. "secret"
	Path      string // secret path under the mount, e.g. "sigil/spiral-event-secret"
	Address   string
	Namespace string
	CACert    string
	Auth      Auth
	Plain     store.PlainOptions
	Log       *slog.Logger
	// HTTPClient replaces the client's transport (tests count requests with it).
	HTTPClient *http.Client
}

// ParseURL splits vault://MOUNT/PATH into mount and path.
func ParseURL(raw string) (mount, path string, err error) {
	rest, ok := strings.CutPrefix(raw, "vault://")
	if !ok {
		return "", "", fmt.Errorf("vault: %q is not a vault://MOUNT/PATH URL", raw)
	}
	mount, path, _ = strings.Cut(strings.Trim(rest, "/"), "/")
	if mount == "" || path == "" {
		return "", "", fmt.Errorf("vault: %q needs a mount and a path, e.g. vault://secret/sigil/spiral-event-secret", raw)
	}
	return mount, path, nil
}

// Store is one KV v2 secret.
type Store struct {
	cfg    Config
	client *api.Client
	kv     *api.KVv2
	auth   *authenticator

	// cache holds the keyring of the version last read, so an idle poll is one metadata
	// read. It is keyed by version number and creation time: a Vault restored from
	// elsewhere may hold other data under the same number.
	cache store.Cache
}

// New connects and logs in. The context bounds the login.
func New(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	vc := api.DefaultConfig()
	if vc.Error != nil {
		return nil, fmt.Errorf("vault: reading VAULT_* settings: %w", vc.Error)
	}
	if cfg.HTTPClient != nil {
		vc.HttpClient = cfg.HTTPClient
	}
	if cfg.Address != "" {
		vc.Address = cfg.Address
	}
	if cfg.CACert != "" {
		if err := vc.ConfigureTLS(&api.TLSConfig{CACert: cfg.CACert}); err != nil {
			return nil, fmt.Errorf("vault: CA certificate %s: %w", cfg.CACert, err)
		}
	}
	vc.MaxRetries = 0 // store.Retry is the one retry policy (see call)
	client, err := api.NewClient(vc)
	if err != nil {
		return nil, fmt.Errorf("vault: %w", err)
	}
	client.ClearToken() // only the authenticator sets it, from the configured method
	if cfg.Namespace != "" {
		client.SetNamespace(cfg.Namespace)
	}
	s := &Store{cfg: cfg, client: client, kv: client.KVv2(cfg.Mount)}
	s.auth = newAuthenticator(client, cfg.Auth, cfg.Log)
	if err := s.auth.login(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// String implements store.Store.
func (s *Store) String() string {
	return "vault://" + s.cfg.Mount + "/" + s.cfg.Path + " at " + s.client.Address()
}

// Close implements store.Store: it stops token renewal.
func (s *Store) Close() error {
	s.auth.close()
	return nil
}

// do runs f, and after a 403 logs in again once and retries.
func (s *Store) do(ctx context.Context, f func() error) error {
	return s.call(ctx, retryable, f)
}

// write is do for a request that changes the store: retried only when Vault cannot have
// applied it (throttled, or the connection was never made), so that a write is never made
// twice.
func (s *Store) write(ctx context.Context, f func() error) error {
	return s.call(ctx, notApplied, f)
}

// call makes one request under the store package's retry policy (store.Retry: one attempt
// for the sidecar's poll, bounded retries with jitter otherwise; the client library's own
// retries are off), logging in again once on a 403.
func (s *Store) call(ctx context.Context, again func(error) bool, f func() error) error {
	attempt := func() error { return oneLine(f()) }
	err := store.Retry(ctx, store.Backoff{}, again, attempt)
	if isForbidden(err) {
		s.cfg.Log.Warn("vault answered 403, logging in again", "method", s.auth.method())
		if lerr := s.auth.login(ctx); lerr != nil {
			return fmt.Errorf("%w; then %w", err, lerr)
		}
		err = store.Retry(ctx, store.Backoff{}, again, attempt)
	}
	return err
}

// retryable: Vault did not serve the request: throttled (429: a rate-limit quota),
// unavailable (5xx: sealed, a standby, restarting) or not reached (a transport error). Any
// other answer is final.
func retryable(err error) bool {
	var re *api.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode == http.StatusTooManyRequests || re.StatusCode >= 500
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var ue *url.Error
	return errors.As(err, &ue)
}

// notApplied: Vault refused the request before acting on it (429) or was never reached
// (the connection was refused).
func notApplied(err error) bool {
	var re *api.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode == http.StatusTooManyRequests
	}
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

func isForbidden(err error) bool {
	var re *api.ResponseError
	return errors.As(err, &re) && re.StatusCode == http.StatusForbidden
}

// Read implements store.Store.
func (s *Store) Read(ctx context.Context) (*store.Snapshot, error) {
	var md *api.KVMetadata
	err := s.do(ctx, func() (err error) { md, err = s.kv.GetMetadata(ctx, s.cfg.Path); return err })
	if errors.Is(err, api.ErrSecretNotFound) {
		return nil, fmt.Errorf("vault %s: %w", s.cfg.Path, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("vault: reading metadata of %s: %w", s.cfg.Path, err)
	}
	cur, ok := md.Versions[strconv.Itoa(md.CurrentVersion)]
	if md.CurrentVersion == 0 || !ok || cur.Destroyed || !cur.DeletionTime.IsZero() {
		return nil, fmt.Errorf("vault %s: latest version %d is deleted or destroyed: %w", s.cfg.Path, md.CurrentVersion, store.ErrNotFound)
	}
	key := strconv.Itoa(md.CurrentVersion) + "@" + cur.CreatedTime.UTC().Format(time.RFC3339Nano)
	if snap := s.cache.Get(key); snap != nil {
		return snap, nil
	}
	data, err := s.version(ctx, md.CurrentVersion)
	if err != nil {
		return nil, err
	}
	snap, err := s.decode(ctx, md, data)
	if err != nil {
		return nil, store.Invalid(strconv.Itoa(md.CurrentVersion), err)
	}
	s.cache.Put(key, snap)
	return snap, nil
}

func (s *Store) version(ctx context.Context, v int) (map[string]any, error) {
	var sec *api.KVSecret
	err := s.do(ctx, func() (err error) { sec, err = s.kv.GetVersion(ctx, s.cfg.Path, v); return err })
	if errors.Is(err, api.ErrSecretNotFound) || (err == nil && (sec == nil || sec.Data == nil)) {
		return nil, fmt.Errorf("vault %s version %d: %w", s.cfg.Path, v, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("vault: reading %s version %d: %w", s.cfg.Path, v, err)
	}
	return sec.Data, nil
}

func (s *Store) decode(ctx context.Context, md *api.KVMetadata, data map[string]any) (*store.Snapshot, error) {
	version := strconv.Itoa(md.CurrentVersion)
	if doc, ok := data[FieldKeyring]; ok {
		str, ok := doc.(string)
		if !ok {
			return nil, fmt.Errorf("vault %s: field %q is not a string: %w", s.cfg.Path, FieldKeyring, keyring.ErrInvalid)
		}
		r, err := keyring.Parse([]byte(str))
		if err != nil {
			return nil, fmt.Errorf("vault %s version %s: %w", s.cfg.Path, version, err)
		}
		return &store.Snapshot{Keyring: r, Version: version}, nil
	}
	value, err := plainValue(data)
	if err != nil {
		return nil, fmt.Errorf("vault %s version %s: %w", s.cfg.Path, version, err)
	}
	// Every version still in the metadata, oldest first, ending with this one: the plain
	// values pods must keep verifying are read from it (keyring.FromPlainHistory).
	var versions []keyring.PlainValue
	for v := max(md.OldestVersion, 1); v < md.CurrentVersion; v++ {
		vm, ok := md.Versions[strconv.Itoa(v)]
		if !ok || vm.Destroyed || !vm.DeletionTime.IsZero() {
			versions = nil // a gap: the history starts after it
			continue
		}
		versions = append(versions, keyring.PlainValue{CreatedAt: vm.CreatedTime, Version: int64(v)})
	}
	versions = append(versions, keyring.PlainValue{Value: value, CreatedAt: md.Versions[version].CreatedTime, Version: int64(md.CurrentVersion)})
	r, err := store.PlainHistory(versions, time.Now(), s.cfg.Plain, "vault kv "+s.cfg.Mount+"/"+s.cfg.Path, func(pv keyring.PlainValue) (keyring.Secret, error) {
		data, err := s.version(ctx, int(pv.Version))
		if err != nil {
			return nil, fmt.Errorf("%w (an earlier plain value pods must keep verifying; the policy needs read on every version of the path)", err)
		}
		if v, err := plainValue(data); err == nil {
			return v, nil
		}
		if doc, ok := data[FieldKeyring].(string); ok {
			return keyring.Secret(doc), nil // a document: the plain values after it are staged after its keys
		}
		return nil, store.ErrNotPlain
	})
	if err != nil {
		return nil, fmt.Errorf("vault %s version %s: %w", s.cfg.Path, version, err)
	}
	return &store.Snapshot{Keyring: r, Version: version, Plain: true}, nil
}

func plainValue(data map[string]any) (keyring.Secret, error) {
	v, ok := data[FieldValue]
	if !ok || len(data) != 1 {
		return nil, fmt.Errorf("%w: the secret holds neither a %q document nor just a %q", keyring.ErrInvalid, FieldKeyring, FieldValue)
	}
	str, ok := v.(string)
	if !ok {
		return nil, fmt.Errorf("%w: field %q is not a string", keyring.ErrInvalid, FieldValue)
	}
	return keyring.Secret(str), nil
}

// Write implements store.Store with check-and-set, then records who, why and which key
// ids in the secret's custom metadata (KV v2 keeps custom metadata per secret, so it
// describes the latest rotation; the audit log keeps the history).
func (s *Store) Write(ctx context.Context, r *keyring.Keyring, ifVersion string) (string, error) {
	doc, err := keyring.Encode(r)
	if err != nil {
		return "", fmt.Errorf("vault: %w", err)
	}
	cas := 0
	if ifVersion != "" {
		if cas, err = strconv.Atoi(ifVersion); err != nil {
			return "", fmt.Errorf("vault: version %q is not a KV version", ifVersion)
		}
	} else if cas, err = s.deletedLatest(ctx); err != nil {
		return "", err
	}
	var sec *api.KVSecret
	err = s.write(ctx, func() (err error) {
		sec, err = s.kv.Put(ctx, s.cfg.Path, map[string]any{FieldKeyring: string(doc)}, api.WithCheckAndSet(cas))
		return err
	})
	if err != nil {
		if strings.Contains(err.Error(), "check-and-set parameter did not match") {
			return "", fmt.Errorf("vault %s: based on version %d: %w", s.cfg.Path, cas, store.ErrConflict)
		}
		return "", fmt.Errorf("vault: writing %s: %w", s.cfg.Path, err)
	}
	version := strconv.Itoa(sec.VersionMetadata.Version)
	meta := map[string]any{
		"keysync_generation": strconv.FormatInt(r.Generation, 10), "keysync_rotated_by": r.RotatedBy,
		"keysync_reason": r.Reason, "keysync_key_ids": strings.Join(r.IDs(), ","),
		"keysync_rotated_at": r.RotatedAt.UTC().Format("2006-01-02T15:04:05.000Z"), "keysync_version": version,
	}
	if err := s.write(ctx, func() error {
		return s.kv.PatchMetadata(ctx, s.cfg.Path, api.KVMetadataPatchInput{CustomMetadata: meta})
	}); err != nil {
		s.cfg.Log.Warn("keyring written, but recording the rotation in custom metadata failed", "path", s.cfg.Path, "error", err)
	}
	return version, nil
}

// deletedLatest returns the check-and-set version for a store that Read reported empty:
// 0 when the secret does not exist, its current version when that version is deleted.
func (s *Store) deletedLatest(ctx context.Context) (int, error) {
	var md *api.KVMetadata
	err := s.do(ctx, func() (err error) { md, err = s.kv.GetMetadata(ctx, s.cfg.Path); return err })
	switch {
	case errors.Is(err, api.ErrSecretNotFound):
		return 0, nil
	case err != nil:
		return 0, fmt.Errorf("vault: reading metadata of %s: %w", s.cfg.Path, err)
	}
	cur := md.Versions[strconv.Itoa(md.CurrentVersion)]
	if cur.Destroyed || !cur.DeletionTime.IsZero() {
		return md.CurrentVersion, nil
	}
	return 0, fmt.Errorf("vault %s: holds version %d: %w", s.cfg.Path, md.CurrentVersion, store.ErrConflict)
}
