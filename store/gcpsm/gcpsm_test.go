package gcpsm

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/sigil-dna/keysync/keyring"
	"github.com/sigil-dna/keysync/store"
	"github.com/sigil-dna/keysync/store/storetest"
	"github.com/sigil-dna/keysync/test/gcpfake"
)

func open(t *testing.T, cfg Config) *Store {
	t.Helper()
	s, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestParseURL(t *testing.T) {
	p, s, err := ParseURL("gcpsm://projects/sigil/secrets/spiral-event-secret")
	if err != nil || p != "sigil" || s != "spiral-event-secret" {
		t.Fatal(p, s, err)
	}
	for _, bad := range []string{"gcpsm://sigil/spiral", "gcpsm://projects/p/secrets/", "vault://a/b"} {
		if _, _, err := ParseURL(bad); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

// addPlain adds a bare secret, as `gcloud secrets versions add --data-file=-` would.
func addPlain(t *testing.T, st *Store, value string) {
	t.Helper()
	if _, err := st.client.GetSecret(t.Context(), &secretmanagerpb.GetSecretRequest{Name: st.name}); err != nil {
		if _, err := st.client.CreateSecret(t.Context(), &secretmanagerpb.CreateSecretRequest{Parent: "projects/" + st.cfg.Project, SecretId: st.cfg.Secret,
			Secret: &secretmanagerpb.Secret{}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.client.AddSecretVersion(t.Context(), &secretmanagerpb.AddSecretVersionRequest{Parent: st.name,
		Payload: &secretmanagerpb.SecretPayload{Data: []byte(value)}}); err != nil {
		t.Fatal(err)
	}
}

func TestPlainValueWithThePreviousVersion(t *testing.T) {
	_, opts := gcpfake.Start(t)
	st := open(t, Config{Project: "sigil", Secret: "plain", ClientOptions: opts})
	addPlain(t, st, storetest.Plain1)
	addPlain(t, st, storetest.Plain2)
	snap, err := st.Read(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	r := snap.Keyring
	if !snap.Plain || r.Generation != 2 || len(r.Keys) != 2 || string(r.Keys[1].Secret) != storetest.Plain2 {
		t.Fatalf("%+v", r)
	}
	if r.Keys[0].NotAfter.IsZero() || !r.Keys[1].NotAfter.IsZero() {
		t.Fatal("the previous version is not a verify-only key")
	}
	// A disabled previous version is not used.
	if _, err := st.client.DisableSecretVersion(t.Context(), &secretmanagerpb.DisableSecretVersionRequest{Name: st.name + "/versions/1"}); err != nil {
		t.Fatal(err)
	}
	addPlain(t, st, storetest.Plain3)
	if snap, err = st.Read(t.Context()); err != nil || len(snap.Keyring.Keys) != 2 || snap.Keyring.Generation != 3 {
		t.Fatalf("%v %+v", err, snap)
	}
}

func TestRotateAndRollbackAddVersionsWithAnnotations(t *testing.T) {
	_, opts := gcpfake.Start(t)
	st := open(t, Config{Project: "sigil", Secret: "rot", ClientOptions: opts})
	storetest.Rotate(t, st, keyring.Options{RotatedBy: "ops", Reason: "stage"})
	storetest.Rotate(t, st, keyring.Options{RotatedBy: "ops", Reason: "stage"})
	storetest.Rollback(t, st, keyring.Options{RotatedBy: "ops", Reason: "rollback"})
	snap, err := st.Read(t.Context())
	if err != nil || snap.Keyring.Generation != 3 || snap.Version != st.name+"/versions/3" {
		t.Fatalf("%v %+v", err, snap)
	}
	sec, _ := st.client.GetSecret(t.Context(), &secretmanagerpb.GetSecretRequest{Name: st.name})
	if sec.Annotations[annotation+"reason"] != "rollback" || sec.Annotations[annotation+"generation"] != "3" || sec.Annotations[annotation+"key-ids"] == "" {
		t.Fatalf("annotations %v", sec.Annotations)
	}
}

func TestAStaleEtagIsAConflict(t *testing.T) {
	_, opts := gcpfake.Start(t)
	st := open(t, Config{Project: "sigil", Secret: "etag", ClientOptions: opts})
	first, _ := keyring.Stage(nil, time.Now(), storetest.Secret("1"), keyring.Options{})
	v1, err := st.Write(t.Context(), first, "")
	if err != nil {
		t.Fatal(err)
	}
	// Another rotator claims a rotation based on v1 (and has not added its version yet).
	other := open(t, Config{Project: "sigil", Secret: "etag", ClientOptions: opts})
	sec, _ := other.client.GetSecret(t.Context(), &secretmanagerpb.GetSecretRequest{Name: other.name})
	second, _ := keyring.Stage(first, time.Now(), storetest.Secret("2"), keyring.Options{})
	if _, err := other.Write(t.Context(), second, v1); err != nil {
		t.Fatal(err)
	}
	// An update with the etag read before that is refused by the service.
	_, err = st.client.UpdateSecret(t.Context(), &secretmanagerpb.UpdateSecretRequest{Secret: &secretmanagerpb.Secret{Name: st.name, Etag: sec.Etag, Annotations: map[string]string{"x": "y"}},
		UpdateMask: fieldMask("annotations")})
	if err == nil {
		t.Fatal("a stale etag was accepted")
	}
	third, _ := keyring.Stage(first, time.Now(), storetest.Secret("3"), keyring.Options{})
	if _, err := st.Write(t.Context(), third, v1); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("write based on v1 after another rotation: %v", err)
	}
}

// TestACorruptedPayloadIsRejected: a payload that does not match its CRC32C is refused
// as an invalid document (so a reader keeps its last good keys), and the next good
// version is read again.
func TestACorruptedPayloadIsRejected(t *testing.T) {
	f, opts := gcpfake.Start(t)
	st := open(t, Config{Project: "sigil", Secret: "crc", ClientOptions: opts})
	storetest.Rotate(t, st, keyring.Options{})
	if _, err := st.Read(t.Context()); err != nil {
		t.Fatal(err)
	}
	storetest.Rotate(t, st, keyring.Options{ActivationDelay: time.Second})
	f.Corrupt(st.name)
	_, err := st.Read(t.Context())
	if !errors.Is(err, keyring.ErrInvalid) || !strings.Contains(err.Error(), "CRC32C") {
		t.Fatalf("a corrupted payload was accepted: %v", err)
	}
}

func TestAnIdlePollIsOneListCall(t *testing.T) {
	f, opts := gcpfake.Start(t)
	st := open(t, Config{Project: "sigil", Secret: "idle", ClientOptions: opts})
	storetest.Rotate(t, st, keyring.Options{})
	const polls = 10
	storetest.IdlePolls(t, st, polls, func() { f.Calls() })
	calls := f.Calls()
	if len(calls) != 1 || calls["ListSecretVersions"] != polls {
		t.Fatalf("%d idle polls made %v", polls, calls)
	}
	t.Logf("idle poll: 1 request per poll (ListSecretVersions, state:ENABLED, page size 1, no payload)")
}

func TestDisableOldVersions(t *testing.T) {
	_, opts := gcpfake.Start(t)
	st := open(t, Config{Project: "sigil", Secret: "old", ClientOptions: opts, DisableOldVersions: true, OldAfter: 0})
	for range 3 {
		storetest.Rotate(t, st, keyring.Options{})
	}
	vs, err := st.enabled(t.Context(), 10)
	if err != nil || len(vs) != 1 || vs[0].Name != st.name+"/versions/3" {
		t.Fatalf("enabled after disabling old versions: %v %v", vs, err)
	}
}

func fieldMask(paths ...string) *fieldmaskpb.FieldMask { return &fieldmaskpb.FieldMask{Paths: paths} }

// TestAClaimBlocksARotationFromTheSameVersion: a rotation that reads the secret after
// another's claim, but before that one's new version exists, must not also win; a claim
// left by a rotation that died long ago does not block.
func TestAClaimBlocksARotationFromTheSameVersion(t *testing.T) {
	_, opts := gcpfake.Start(t)
	st := open(t, Config{Project: "sigil", Secret: "claim", ClientOptions: opts})
	first, _ := keyring.Stage(nil, time.Now(), storetest.Secret("1"), keyring.Options{})
	v1, err := st.Write(t.Context(), first, "")
	if err != nil {
		t.Fatal(err)
	}
	claim := func(at time.Time) {
		sec, _ := st.client.GetSecret(t.Context(), &secretmanagerpb.GetSecretRequest{Name: st.name})
		notes := map[string]string{annotation + "based-on": v1, annotation + "claimed-at": at.UTC().Format(time.RFC3339Nano)}
		if _, err := st.client.UpdateSecret(t.Context(), &secretmanagerpb.UpdateSecretRequest{
			Secret: &secretmanagerpb.Secret{Name: st.name, Etag: sec.Etag, Annotations: notes}, UpdateMask: fieldMask("annotations")}); err != nil {
			t.Fatal(err)
		}
	}
	next, _ := keyring.Stage(first, time.Now(), storetest.Secret("2"), keyring.Options{})
	claim(time.Now())
	if _, err := st.Write(t.Context(), next, v1); !errors.Is(err, store.ErrConflict) || !strings.Contains(err.Error(), "in progress") {
		t.Fatalf("a second rotation from %s: %v", v1, err)
	}
	claim(time.Now().Add(-2 * claimTTL))
	if _, err := st.Write(t.Context(), next, v1); err != nil {
		t.Fatalf("a stale claim blocked the rotation: %v", err)
	}
}
