package awssm

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/sigil-dna/keysync/internal/awsapi"
	"github.com/sigil-dna/keysync/keyring"
	"github.com/sigil-dna/keysync/keyring/secretscan"
	"github.com/sigil-dna/keysync/store"
	"github.com/sigil-dna/keysync/store/storetest"
	"github.com/sigil-dna/keysync/test/awsfake"
)

func open(t *testing.T, name string, ac awsapi.Config) *Store {
	t.Helper()
	s, err := New(context.Background(), Config{Name: name, AWS: ac, Plain: storetest.Schedule})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// putValue is `aws secretsmanager create-secret` the first time and `put-secret-value`
// after, with the given staging labels (none: AWSCURRENT). It returns the version id.
func putValue(t *testing.T, st *Store, value string, stages ...string) string {
	t.Helper()
	if _, err := st.client.DescribeSecret(t.Context(), &secretsmanager.DescribeSecretInput{SecretId: &st.cfg.Name}); err != nil {
		out, err := st.client.CreateSecret(t.Context(), &secretsmanager.CreateSecretInput{Name: &st.cfg.Name, SecretString: &value})
		if err != nil {
			t.Fatal(err)
		}
		return aws.ToString(out.VersionId)
	}
	out, err := st.client.PutSecretValue(t.Context(), &secretsmanager.PutSecretValueInput{SecretId: &st.cfg.Name, SecretString: &value, VersionStages: stages})
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToString(out.VersionId)
}

func stagesOf(t *testing.T, st *Store) map[string][]string {
	t.Helper()
	d, err := st.client.DescribeSecret(t.Context(), &secretsmanager.DescribeSecretInput{SecretId: &st.cfg.Name})
	if err != nil {
		t.Fatal(err)
	}
	return d.VersionIdsToStages
}

func TestParseURL(t *testing.T) {
	for raw, want := range map[string]string{
		"secretsmanager://spiral-event-secret":                                           "spiral-event-secret",
		"secretsmanager://sigil/prod/spiral-event-secret":                                "sigil/prod/spiral-event-secret",
		"secretsmanager:///sigil/spiral":                                                 "sigil/spiral",
		"secretsmanager://arn:aws:secretsmanager:eu-west-1:123456789012:secret:s-AbCdEf": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:s-AbCdEf",
	} {
		if got, err := ParseURL(raw); err != nil || got != want {
			t.Errorf("%s: %q %v", raw, got, err)
		}
	}
	for _, bad := range []string{"secretsmanager://", "secretsmanager://a/", "ssm:///x"} {
		if _, err := ParseURL(bad); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

// TestContract runs on the fake only: kumo lacks UpdateSecretVersionStage, and its
// PutSecretValue with AWSPENDING moves AWSCURRENT, so the label protocol cannot run there.
// The read cases run on both (TestReadsOnKumoAndTheFake).
func TestReadsOnKumoAndTheFake(t *testing.T) {
	for name, ac := range map[string]awsapi.Config{"kumo": awsfake.Kumo(), "fake": awsfake.StartT(t).AWS()} {
		t.Run(name, func(t *testing.T) {
			st := open(t, awsfake.Unique("sigil/reads"), ac)
			if _, err := st.Read(t.Context()); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("missing secret: %v", err)
			}
			v1 := putValue(t, st, storetest.Plain1)
			snap, err := st.Read(t.Context())
			if err != nil || !snap.Plain || snap.Version != v1 || len(snap.Keyring.Keys) != 1 || string(snap.Keyring.Keys[0].Secret) != storetest.Plain1 {
				t.Fatalf("one plain value: %v %+v", err, snap)
			}
			v2 := putValue(t, st, storetest.Plain2)
			snap, err = st.Read(t.Context())
			if err != nil || snap.Version != v2 || len(snap.Keyring.Keys) != 2 {
				t.Fatalf("a second plain value: %v %+v", err, snap)
			}
			r := snap.Keyring
			if string(r.Keys[0].Secret) != storetest.Plain1 || string(r.Keys[1].Secret) != storetest.Plain2 || r.Keys[0].NotAfter.IsZero() || !r.Keys[1].NotAfter.IsZero() {
				t.Fatalf("AWSPREVIOUS is not the verify-only key before AWSCURRENT: %+v", r.Keys)
			}
			got, _ := st.client.GetSecretValue(t.Context(), &secretsmanager.GetSecretValueInput{SecretId: &st.cfg.Name})
			if want := aws.ToTime(got.CreatedDate).Add(storetest.Schedule.ActivationDelay); !r.Keys[1].NotBefore.Equal(want) {
				t.Fatalf("AWSCURRENT signs from %s, want its CreatedDate + the activation delay = %s", r.Keys[1].NotBefore, want)
			}
			if again, err := open(t, st.cfg.Name, ac).Read(t.Context()); err != nil || !again.Keyring.Equal(r) {
				t.Fatalf("another reader computes another keyring: %v", err)
			}
			doc, _ := keyring.Stage(r, time.Now(), storetest.Secret("doc"), keyring.Options{})
			enc, _ := keyring.Encode(doc)
			v3 := putValue(t, st, string(enc))
			if snap, err = st.Read(t.Context()); err != nil || snap.Plain || !snap.Keyring.Equal(doc) || snap.Version != v3 {
				t.Fatalf("a keyring document: %v %+v", err, snap)
			}
			putValue(t, st, `{"version": 1, "generation": "x"}`)
			_, err = st.Read(t.Context())
			if !errors.Is(err, keyring.ErrInvalid) || !strings.Contains(err.Error(), st.cfg.Name) {
				t.Fatalf("an invalid document: %v", err)
			}
		})
	}
}

// TestASecretCreatedEmptyTakesTheFirstRotation: a secret made beforehand without a value
// (for its resource policy, tags or KMS key, as Terraform often does) is not found, and
// the first rotation puts its value.
func TestASecretCreatedEmptyTakesTheFirstRotation(t *testing.T) {
	for name, ac := range map[string]awsapi.Config{"kumo": awsfake.Kumo(), "fake": awsfake.StartT(t).AWS()} {
		t.Run(name, func(t *testing.T) {
			st := open(t, awsfake.Unique("sigil/empty"), ac)
			if _, err := st.client.CreateSecret(t.Context(), &secretsmanager.CreateSecretInput{Name: &st.cfg.Name}); err != nil {
				t.Fatal(err)
			}
			if _, err := st.Read(t.Context()); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("an empty secret: %v", err)
			}
			first, _ := keyring.Stage(nil, time.Now(), storetest.Secret("first"), keyring.Options{})
			if _, err := st.Write(t.Context(), first, ""); err != nil {
				t.Fatal(err)
			}
			if snap, err := st.Read(t.Context()); err != nil || !snap.Keyring.Equal(first) {
				t.Fatalf("after the first rotation: %v", err)
			}
		})
	}
}

func TestPlainLabelsMapOntoPendingCurrentPrevious(t *testing.T) {
	st := open(t, awsfake.Unique("sigil/labels"), awsfake.StartT(t).AWS())
	putValue(t, st, storetest.Plain1)
	putValue(t, st, storetest.Plain2)
	v3 := putValue(t, st, storetest.Plain3, Pending) // a rotation Lambda's createSecret step
	snap, err := st.Read(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	r, now := snap.Keyring, time.Now()
	if len(r.Keys) != 3 {
		t.Fatalf("%d keys", len(r.Keys))
	}
	states := []keyring.State{r.StateAt(r.Keys[0], now), r.StateAt(r.Keys[1], now), r.StateAt(r.Keys[2], now)}
	if string(r.Keys[2].Secret) != storetest.Plain3 || !r.Keys[2].Held() || states[2] != keyring.StateHeld {
		t.Fatalf("AWSPENDING: %+v %v", r.Keys[2], states)
	}
	if sk, _ := r.SigningKey(now.Add(365 * 24 * time.Hour)); string(sk.Secret) != storetest.Plain2 {
		t.Fatal("an AWSPENDING value signs before it is made AWSCURRENT")
	}
	// finishSecret: AWSCURRENT moves to the pending version.
	cur := snap.Version
	if _, err := st.client.UpdateSecretVersionStage(t.Context(), &secretsmanager.UpdateSecretVersionStageInput{SecretId: &st.cfg.Name,
		VersionStage: aws.String(Current), MoveToVersionId: &v3, RemoveFromVersionId: &cur}); err != nil {
		t.Fatal(err)
	}
	// The first value, no longer labelled, still verifies (issue 29: it was dropped).
	if snap, err = st.Read(t.Context()); err != nil || snap.Version != v3 || len(snap.Keyring.Keys) != 3 || string(snap.Keyring.Keys[0].Secret) != storetest.Plain1 ||
		string(snap.Keyring.Keys[2].Secret) != storetest.Plain3 {
		t.Fatalf("after finishSecret: %v %+v", err, snap)
	}
	if snap.Keyring.Keys[2].Held() {
		t.Fatal("the value made AWSCURRENT still waits")
	}
}

// TestRotationUsesTheLabelsLikeAWSRotation: the new document is put as AWSPENDING, then
// AWSCURRENT moves to it and AWSPREVIOUS follows; nothing is left AWSPENDING.
func TestRotationUsesTheLabelsLikeAWSRotation(t *testing.T) {
	f := awsfake.StartT(t)
	st := open(t, awsfake.Unique("sigil/rotate"), f.AWS())
	v1 := putValue(t, st, storetest.Plain1)
	f.Calls()
	res := storetest.Rotate(t, st, keyring.Options{RotatedBy: "alice@sigil", Reason: "ticket B7"})
	calls := f.Calls()
	if calls["secretsmanager.PutSecretValue"] != 1 || calls["secretsmanager.UpdateSecretVersionStage"] != 2 || calls["secretsmanager.UpdateSecret"] != 1 {
		t.Fatalf("calls %v", calls)
	}
	snap, err := st.Read(t.Context())
	if err != nil || snap.Plain || snap.Keyring.Generation != res.Generation {
		t.Fatalf("%v %+v", err, snap)
	}
	stages := stagesOf(t, st)
	if !slices.Equal(stages[snap.Version], []string{Current}) || !slices.Equal(stages[v1], []string{Previous}) || len(stages) != 2 {
		t.Fatalf("labels %v (new %s, old %s)", stages, snap.Version, v1)
	}
	d, _ := st.client.DescribeSecret(t.Context(), &secretsmanager.DescribeSecretInput{SecretId: &st.cfg.Name})
	if desc := aws.ToString(d.Description); !strings.Contains(desc, "by alice@sigil") || !strings.Contains(desc, "reason: ticket B7") || !strings.Contains(desc, strings.Join(res.IDs(), ",")) {
		t.Fatalf("description %q", desc)
	}
}

// TestAConcurrentRotationIsRefusedByTheService: another rotation moves AWSCURRENT
// between this write's PutSecretValue and its label move; the service refuses the move
// (RemoveFromVersionId no longer holds AWSCURRENT) and the winner's document stays.
func TestAConcurrentRotationIsRefusedByTheService(t *testing.T) {
	f := awsfake.StartT(t)
	name := awsfake.Unique("sigil/race")
	st, other := open(t, name, f.AWS()), open(t, name, f.AWS())
	first, _ := keyring.Stage(nil, time.Now(), storetest.Secret("1"), keyring.Options{})
	v1, err := st.Write(t.Context(), first, "")
	if err != nil {
		t.Fatal(err)
	}
	winner, _ := keyring.Stage(first, time.Now(), storetest.Secret("winner"), keyring.Options{Reason: "winner"})
	loser, _ := keyring.Stage(first, time.Now(), storetest.Secret("loser"), keyring.Options{Reason: "loser"})
	var once atomic.Bool
	f.Before(func(op string) {
		if op == "secretsmanager.UpdateSecretVersionStage" && once.CompareAndSwap(false, true) {
			if _, err := other.Write(context.Background(), winner, v1); err != nil {
				t.Errorf("the winner: %v", err)
			}
		}
	})
	lv, err := st.Write(t.Context(), loser, v1)
	f.Before(nil)
	if !errors.Is(err, store.ErrConflict) {
		t.Fatalf("the loser: %q %v", lv, err)
	}
	snap, err := open(t, name, f.AWS()).Read(t.Context())
	if err != nil || !snap.Keyring.Equal(winner) {
		t.Fatalf("after the race: %v", err)
	}
	for id, stages := range stagesOf(t, st) {
		if slices.Contains(stages, Pending) {
			t.Fatalf("version %s left %v", id, stages)
		}
	}
}

// TestAnErrorQuotingTheValueIsWithheld: a refused PutSecretValue or CreateSecret whose
// message quotes the document keeps its code and loses its message.
func TestAnErrorQuotingTheValueIsWithheld(t *testing.T) {
	f := awsfake.StartT(t)
	st := open(t, awsfake.Unique("sigil/echo"), f.AWS())
	first, _ := keyring.Stage(nil, time.Now(), storetest.Secret("1"), keyring.Options{})
	f.RejectQuoting("secretsmanager.CreateSecret")
	_, err := st.Write(t.Context(), first, "")
	if err == nil || !strings.Contains(err.Error(), "message withheld") || secretscan.Count([]byte(err.Error()), storetest.Secret("1")) != 0 {
		t.Fatalf("CreateSecret: %v", err)
	}
	v1, err := st.Write(t.Context(), first, "")
	if err != nil {
		t.Fatal(err)
	}
	second, _ := keyring.Stage(first, time.Now(), storetest.Secret("2"), keyring.Options{})
	f.RejectQuoting("secretsmanager.PutSecretValue")
	_, err = st.Write(t.Context(), second, v1)
	if err == nil || awsapi.Code(err) != "ValidationException" || secretscan.Count([]byte(err.Error()), storetest.Secret("1"), storetest.Secret("2")) != 0 {
		t.Fatalf("PutSecretValue: %v", err)
	}
}

func TestARetriedWriteIsIdempotent(t *testing.T) {
	st := open(t, awsfake.Unique("sigil/retry"), awsfake.StartT(t).AWS())
	first, _ := keyring.Stage(nil, time.Now(), storetest.Secret("1"), keyring.Options{})
	v1, err := st.Write(t.Context(), first, "")
	if err != nil {
		t.Fatal(err)
	}
	if again, err := st.Write(t.Context(), first, ""); err != nil || again != v1 {
		t.Fatalf("a retried creation: %q %v", again, err)
	}
	second, _ := keyring.Stage(first, time.Now(), storetest.Secret("2"), keyring.Options{})
	v2, err := st.Write(t.Context(), second, v1)
	if err != nil {
		t.Fatal(err)
	}
	// The response was lost and the caller retries the same write: same version, no new one.
	if again, err := st.Write(t.Context(), second, v1); err != nil || again != v2 {
		t.Fatalf("a retried write: %q %v", again, err)
	}
	if n := len(stagesOf(t, st)); n != 2 {
		t.Fatalf("%d labelled versions", n)
	}
}

// TestPlainRollbackMovesTheLabelsBack: AWSCURRENT goes back to the AWSPREVIOUS version,
// the rolled-back value keeps verifying for the rest of its window, and a rollback after
// that window is refused.
func TestPlainRollbackMovesTheLabelsBack(t *testing.T) {
	f := awsfake.StartT(t)
	st := open(t, awsfake.Unique("sigil/rollback"), f.AWS())
	v1 := putValue(t, st, storetest.Plain1)
	v2 := putValue(t, st, storetest.Plain2)
	dry, err := st.RollbackPlain(t.Context(), v2, true)
	if err != nil || stagesOf(t, st)[v2][0] != Current {
		t.Fatalf("dry run: %v %v", err, stagesOf(t, st))
	}
	res, err := st.RollbackPlain(t.Context(), v2, false)
	if err != nil {
		t.Fatal(err)
	}
	stages := stagesOf(t, st)
	if !slices.Equal(stages[v1], []string{Current}) || !slices.Equal(stages[v2], []string{Previous}) {
		t.Fatalf("labels %v (v1 %s, v2 %s)", stages, v1, v2)
	}
	snap, err := st.Read(t.Context())
	now := time.Now()
	signs := func(r *keyring.Keyring) string { k, _ := r.SigningKey(now); return k.ID }
	if err != nil || snap.Version != v1 || !snap.Keyring.Equal(res) || signs(res) != keyring.KeyID(keyring.Secret(storetest.Plain1)) || signs(dry) != signs(res) {
		t.Fatalf("%v %+v %+v", err, snap, res)
	}
	r := snap.Keyring
	if sk, _ := r.SigningKey(now); string(sk.Secret) != storetest.Plain1 {
		t.Fatal("the rolled-back-to value does not sign at once")
	}
	v2at, _ := st.client.GetSecretValue(t.Context(), &secretsmanager.GetSecretValueInput{SecretId: &st.cfg.Name, VersionId: &v2})
	if k, _ := r.Key(keyring.KeyID(keyring.Secret(storetest.Plain2))); !k.ValidAt(now) || !k.NotAfter.Equal(aws.ToTime(v2at.CreatedDate).Add(storetest.Schedule.ActivationDelay+storetest.Schedule.VerifyWindow)) {
		t.Fatalf("the withdrawn value: %+v", k)
	}
	// Rolling the rollback back: the labels move again.
	putValue(t, st, storetest.Plain3)
	late := open(t, st.cfg.Name, f.AWS())
	late.cfg.Now = func() time.Time {
		return time.Now().Add(storetest.Schedule.ActivationDelay + storetest.Schedule.VerifyWindow + time.Minute)
	}
	latest, err := late.Read(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	_, err = late.RollbackPlain(t.Context(), latest.Version, false)
	if !errors.Is(err, keyring.ErrNoPrevious) || !strings.Contains(err.Error(), "stopped verifying") {
		t.Fatalf("a rollback after the window: %v", err)
	}
}

func TestADocumentRollbackWritesTheRollbackDocument(t *testing.T) {
	st := open(t, awsfake.Unique("sigil/docrollback"), awsfake.StartT(t).AWS())
	storetest.Rotate(t, st, keyring.Options{})
	storetest.Rotate(t, st, keyring.Options{})
	storetest.Rollback(t, st, keyring.Options{})
	snap, err := st.Read(t.Context())
	if err != nil || snap.Plain || snap.Keyring.Generation != 3 || len(stagesOf(t, st)) != 2 {
		t.Fatalf("%v %+v %v", err, snap, stagesOf(t, st))
	}
}

// TestASecretScheduledForDeletionIsNotFound: `aws secretsmanager delete-secret` (with its
// recovery window) makes the secret unreadable: a read says so as not found (a reader keeps
// its last good keys), and a write is refused.
func TestASecretScheduledForDeletionIsNotFound(t *testing.T) {
	f := awsfake.StartT(t)
	st := open(t, awsfake.Unique("sigil/deleted"), f.AWS())
	r := storetest.Rotate(t, st, keyring.Options{})
	if _, err := st.client.DeleteSecret(t.Context(), &secretsmanager.DeleteSecretInput{SecretId: &st.cfg.Name}); err != nil {
		t.Fatal(err)
	}
	_, err := st.Read(t.Context())
	if !errors.Is(err, store.ErrNotFound) || !strings.Contains(err.Error(), "scheduled for deletion") {
		t.Fatalf("err = %v", err)
	}
	next, _ := keyring.Stage(r, time.Now(), storetest.Secret("after delete"), keyring.Options{})
	if _, err := st.Write(t.Context(), next, ""); err == nil {
		t.Fatal("a rotation wrote to a secret scheduled for deletion")
	}
}

func TestAnIdlePollIsOneDescribeSecret(t *testing.T) {
	f := awsfake.StartT(t)
	st := open(t, awsfake.Unique("sigil/idle"), f.AWS())
	storetest.Rotate(t, st, keyring.Options{})
	const polls = 10
	storetest.IdlePolls(t, st, polls, func() { f.Calls() })
	if calls := f.Calls(); len(calls) != 1 || calls["secretsmanager.DescribeSecret"] != polls {
		t.Fatalf("%d idle polls made %v", polls, calls)
	}
}

func TestThrottlingBacksOffThenSucceedsOrSaysSo(t *testing.T) {
	f := awsfake.StartT(t)
	st := open(t, awsfake.Unique("sigil/throttle"), f.AWS())
	storetest.Rotate(t, st, keyring.Options{})
	f.Calls()
	f.Throttle("secretsmanager.DescribeSecret", 3)
	if _, err := open(t, st.cfg.Name, f.AWS()).Read(t.Context()); err != nil {
		t.Fatalf("after 3 throttled attempts: %v", err)
	}
	if c := f.Calls()["secretsmanager.DescribeSecret"]; c != 4 {
		t.Fatalf("%d DescribeSecret requests, want 3 throttled + 1", c)
	}
	f.Throttle("*", 100)
	_, err := open(t, st.cfg.Name, f.AWS()).Read(t.Context())
	if err == nil || !strings.Contains(err.Error(), "throttled by AWS, still after 6 attempts") || !strings.Contains(err.Error(), st.cfg.Name) {
		t.Fatalf("err = %v", err)
	}
}

// BenchmarkIdlePoll: go test -run '^$' -bench IdlePoll -benchmem ./store/aws...
func BenchmarkIdlePoll(b *testing.B) {
	f := awsfake.Start()
	defer f.Close()
	s, err := New(context.Background(), Config{Name: "bench", AWS: f.AWS()})
	if err != nil {
		b.Fatal(err)
	}
	storetest.BenchIdlePoll(b, s, f.Requests)
}
