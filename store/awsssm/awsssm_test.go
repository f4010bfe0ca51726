package awsssm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/aws-sdk-go-v2/service/ssm/types"

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

func TestParseURL(t *testing.T) {
	for raw, want := range map[string]string{
		"ssm:///spiral-event-secret":            "spiral-event-secret",
		"ssm:///sigil/prod/spiral-event-secret": "/sigil/prod/spiral-event-secret",
		"ssm:////spiral-event-secret":           "/spiral-event-secret",
	} {
		got, err := ParseURL(raw)
		if err != nil || got != want {
			t.Errorf("%s: %q %v, want %q", raw, got, err, want)
		}
		st := &Store{cfg: Config{Name: got}}
		if st.String() != raw {
			t.Errorf("%q prints as %s, want %s", got, st.String(), raw)
		}
	}
	for _, bad := range []string{"ssm://", "ssm:///", "ssm://name", "ssm:///a/", "secretsmanager://x"} {
		if _, err := ParseURL(bad); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

// putPlain is the ticket's `aws ssm put-parameter --name … --type SecureString --overwrite`.
func putPlain(t *testing.T, st *Store, value string) int64 {
	t.Helper()
	out, err := st.client.PutParameter(t.Context(), &ssm.PutParameterInput{Name: &st.cfg.Name, Value: &value,
		Type: types.ParameterTypeSecureString, Overwrite: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	return out.Version
}

func TestPlainValueWithThePreviousFromHistory(t *testing.T) {
	st := open(t, awsfake.Unique("plain"), awsfake.StartT(t).AWS())
	putPlain(t, st, storetest.Plain1)
	snap, err := st.Read(t.Context())
	if err != nil || !snap.Plain || len(snap.Keyring.Keys) != 1 || snap.Version != "1" {
		t.Fatalf("version 1: %v %+v", err, snap)
	}
	putPlain(t, st, storetest.Plain2)
	snap, err = st.Read(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	r := snap.Keyring
	if !snap.Plain || r.Generation != 2 || snap.Version != "2" || len(r.Keys) != 2 {
		t.Fatalf("%+v", snap)
	}
	if string(r.Keys[0].Secret) != storetest.Plain1 || string(r.Keys[1].Secret) != storetest.Plain2 {
		t.Fatal("the keys are not the previous and the current value, byte for byte")
	}
	// Times come from the history's LastModifiedDate, the same for every reader.
	hist, err := st.client.GetParameterHistory(t.Context(), &ssm.GetParameterHistoryInput{Name: &st.cfg.Name})
	if err != nil {
		t.Fatal(err)
	}
	at2 := aws.ToTime(hist.Parameters[1].LastModifiedDate)
	o := storetest.Schedule
	if !r.Keys[1].NotBefore.Equal(at2.Add(o.ActivationDelay)) || !r.Keys[0].NotAfter.Equal(at2.Add(o.ActivationDelay+o.VerifyWindow)) {
		t.Fatalf("schedule %+v from version 2 at %s (%v)", r.Keys, at2, o)
	}
	// Another reader computes the same keyring.
	other := open(t, st.cfg.Name, st.cfg.AWS)
	if snap2, err := other.Read(t.Context()); err != nil || !snap2.Keyring.Equal(r) {
		t.Fatalf("a second reader: %v", err)
	}
}

// kumo has no GetParameterHistory: a plain value past version 1 must fail loudly, naming
// the permission, rather than silently drop the previous key pods still verify.
func TestPlainValueWithoutHistoryFailsLoudly(t *testing.T) {
	st := open(t, awsfake.Unique("nohistory"), awsfake.Kumo())
	putPlain(t, st, storetest.Plain1)
	if _, err := st.Read(t.Context()); err != nil {
		t.Fatal(err)
	}
	putPlain(t, st, storetest.Plain2)
	_, err := st.Read(t.Context())
	if err == nil || !strings.Contains(err.Error(), "ssm:GetParameterHistory") {
		t.Fatalf("err = %v", err)
	}
	for _, v := range []string{storetest.Plain1, storetest.Plain2} {
		if strings.Contains(err.Error(), v) {
			t.Fatal("the error carries a value")
		}
	}
}

func TestRotateAndRollbackRecordWhoWhyAndKeys(t *testing.T) {
	st := open(t, awsfake.Unique("rotate"), awsfake.StartT(t).AWS())
	putPlain(t, st, storetest.Plain1)
	storetest.Rotate(t, st, keyring.Options{RotatedBy: "alice@sigil", Reason: "ticket B7 stage"})
	storetest.Rotate(t, st, keyring.Options{RotatedBy: "alice@sigil", Reason: "ticket B7 stage"})
	last := storetest.Rollback(t, st, keyring.Options{RotatedBy: "alice@sigil", Reason: "ticket B7 rollback"})
	snap, err := st.Read(t.Context())
	if err != nil || snap.Plain || snap.Version != "4" || snap.Keyring.Generation != 4 {
		t.Fatalf("%v %+v", err, snap)
	}
	hist, err := st.client.GetParameterHistory(t.Context(), &ssm.GetParameterHistoryInput{Name: &st.cfg.Name})
	if err != nil {
		t.Fatal(err)
	}
	d := aws.ToString(hist.Parameters[3].Description)
	if !strings.Contains(d, "by alice@sigil") || !strings.Contains(d, "reason: ticket B7 rollback") || !strings.Contains(d, strings.Join(last.IDs(), ",")) {
		t.Fatalf("description %q", d)
	}
	if hist.Parameters[3].Type != types.ParameterTypeSecureString {
		t.Fatal("written as", hist.Parameters[3].Type)
	}
}

func TestAnIdlePollIsOneGetParameterWithoutDecryption(t *testing.T) {
	f := awsfake.StartT(t)
	st := open(t, awsfake.Unique("idle"), f.AWS())
	storetest.Rotate(t, st, keyring.Options{})
	const polls = 10
	storetest.IdlePolls(t, st, polls, func() { f.Calls() })
	if calls := f.Calls(); len(calls) != 1 || calls["ssm.GetParameter"] != polls {
		t.Fatalf("%d idle polls made %v", polls, calls)
	}
	// A change costs the check and one decrypted read.
	storetest.Rotate(t, st, keyring.Options{})
	f.Calls()
	if _, err := st.Read(t.Context()); err != nil {
		t.Fatal(err)
	}
	if calls := f.Calls(); calls["ssm.GetParameter"] != 2 || len(calls) != 1 {
		t.Fatalf("a changed parameter cost %v", calls)
	}
}

// TestALostRaceIsAConflictAndTheWinnerStays: another rotation's PutParameter lands
// between this write's version check and its own PutParameter — the window no
// Parameter Store client can close. The loser must report a conflict and leave the
// winner's document current.
func TestALostRaceIsAConflictAndTheWinnerStays(t *testing.T) {
	f := awsfake.StartT(t)
	name := awsfake.Unique("race")
	st := open(t, name, f.AWS())
	other := open(t, name, f.AWS())
	first, _ := keyring.Stage(nil, time.Now(), storetest.Secret("1"), keyring.Options{})
	v1, err := st.Write(t.Context(), first, "")
	if err != nil {
		t.Fatal(err)
	}
	winner, _ := keyring.Stage(first, time.Now(), storetest.Secret("winner"), keyring.Options{Reason: "winner"})
	loser, _ := keyring.Stage(first, time.Now(), storetest.Secret("loser"), keyring.Options{Reason: "loser"})
	var once atomic.Bool
	f.Before(func(op string) {
		if op == "ssm.PutParameter" && once.CompareAndSwap(false, true) {
			if _, err := other.Write(context.Background(), winner, v1); err != nil {
				t.Errorf("the winner: %v", err)
			}
		}
	})
	_, err = st.Write(t.Context(), loser, v1)
	if !errors.Is(err, store.ErrConflict) || !strings.Contains(err.Error(), "put back as version 4") {
		t.Fatalf("the loser: %v", err)
	}
	f.Before(nil)
	snap, err := open(t, name, f.AWS()).Read(t.Context())
	if err != nil || !snap.Keyring.Equal(winner) || snap.Version != "4" {
		t.Fatalf("after the race: %v, reason %q version %s", err, snap.Keyring.Reason, snap.Version)
	}
}

// TestAWriteAppliedTwiceIsNotAConflict: PutParameter's response is lost and the SDK's
// retry applies the same document again, so this write gets version N+2 with its own
// document at N+1. That is a success, not a lost race.
func TestAWriteAppliedTwiceIsNotAConflict(t *testing.T) {
	f := awsfake.StartT(t)
	name := awsfake.Unique("twice")
	st := open(t, name, f.AWS())
	first, _ := keyring.Stage(nil, time.Now(), storetest.Secret("1"), keyring.Options{})
	v1, err := st.Write(t.Context(), first, "")
	if err != nil {
		t.Fatal(err)
	}
	second, _ := keyring.Stage(first, time.Now(), storetest.Secret("2"), keyring.Options{})
	doc, _ := keyring.Encode(second)
	var once atomic.Bool
	f.Before(func(op string) {
		if op == "ssm.PutParameter" && once.CompareAndSwap(false, true) {
			// the first attempt, applied, its response lost
			if _, err := st.client.PutParameter(context.Background(), &ssm.PutParameterInput{Name: &name, Value: aws.String(string(doc)),
				Type: types.ParameterTypeSecureString, Overwrite: aws.Bool(true)}); err != nil {
				t.Error(err)
			}
		}
	})
	v, err := st.Write(t.Context(), second, v1)
	f.Before(nil)
	if err != nil || v != "3" {
		t.Fatalf("version %q, %v", v, err)
	}
	if snap, err := st.Read(t.Context()); err != nil || !snap.Keyring.Equal(second) {
		t.Fatalf("%v", err)
	}
}

// TestAnErrorQuotingTheValueIsWithheld: a refusal whose message quotes the request (the
// document with its keys) keeps its code and loses its message.
func TestAnErrorQuotingTheValueIsWithheld(t *testing.T) {
	f := awsfake.StartT(t)
	st := open(t, awsfake.Unique("echo"), f.AWS())
	first, _ := keyring.Stage(nil, time.Now(), storetest.Secret("1"), keyring.Options{})
	v1, err := st.Write(t.Context(), first, "")
	if err != nil {
		t.Fatal(err)
	}
	second, _ := keyring.Stage(first, time.Now(), storetest.Secret("2"), keyring.Options{})
	f.RejectQuoting("ssm.PutParameter")
	_, err = st.Write(t.Context(), second, v1)
	if err == nil || awsapi.Code(err) != "ValidationException" || !strings.Contains(err.Error(), "message withheld") {
		t.Fatalf("err = %v", err)
	}
	if n := secretscan.Count([]byte(err.Error()), storetest.Secret("1"), storetest.Secret("2")); n != 0 {
		t.Fatalf("the error carries a key %d times: %v", n, err)
	}
}

func TestThrottlingBacksOffThenSucceedsOrSaysSo(t *testing.T) {
	f := awsfake.StartT(t)
	st := open(t, awsfake.Unique("throttle"), f.AWS())
	storetest.Rotate(t, st, keyring.Options{})
	f.Calls()
	f.Throttle("ssm.GetParameter", 3)
	snap, err := open(t, st.cfg.Name, f.AWS()).Read(t.Context())
	if err != nil || snap.Keyring.Generation != 1 {
		t.Fatalf("after 3 throttled attempts: %v", err)
	}
	if c := f.Calls()["ssm.GetParameter"]; c != 3+2 {
		t.Fatalf("%d GetParameter requests, want 3 throttled + check + decrypted read", c)
	}
	f.Throttle("*", 100)
	_, err = open(t, st.cfg.Name, f.AWS()).Read(t.Context())
	if err == nil || !strings.Contains(err.Error(), "throttled by AWS, still after 6 attempts") || !strings.Contains(err.Error(), "ssm "+st.cfg.Name) {
		t.Fatalf("err = %v", err)
	}
	if c := f.Calls()["ssm.GetParameter"]; c != awsapi.DefaultMaxAttempts {
		t.Fatalf("%d attempts", c)
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

// TestBadValuesAreRejectedNamingTheVersion: a short plain value and an invalid document
// are refused as invalid (so a reader keeps its last good keys), naming the parameter
// version, and no error carries a value.
func TestBadValuesAreRejectedNamingTheVersion(t *testing.T) {
	f := awsfake.StartT(t)
	st := open(t, awsfake.Unique("bad"), f.AWS())
	putPlain(t, st, storetest.Plain1)
	if _, err := st.Read(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"0123456789abcdef", `{"version": 1, "generation": 2, "keys": "` + storetest.Plain2 + `"}`} {
		v := putPlain(t, st, bad)
		_, err := st.Read(t.Context())
		if !errors.Is(err, keyring.ErrInvalid) || !strings.Contains(err.Error(), fmt.Sprintf("version %d", v)) {
			t.Fatalf("%d: err = %v", v, err)
		}
		for _, secret := range []string{bad, storetest.Plain1, storetest.Plain2} {
			if strings.Contains(err.Error(), secret) {
				t.Fatalf("the error carries a value: %v", err)
			}
		}
	}
}

// TestAStringParameterIsReadWithOneWarning: a secret kept as a plain String parameter is
// stored unencrypted; keysync reads it, says so once, and writes SecureString.
func TestAStringParameterIsReadWithOneWarning(t *testing.T) {
	f := awsfake.StartT(t)
	var logs strings.Builder
	st, err := New(t.Context(), Config{Name: awsfake.Unique("string"), AWS: f.AWS(), Log: slog.New(slog.NewJSONHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.client.PutParameter(t.Context(), &ssm.PutParameterInput{Name: &st.cfg.Name, Value: aws.String(storetest.Plain1), Type: types.ParameterTypeString}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		st.cache.Put("", nil)
		if snap, err := st.Read(t.Context()); err != nil || !snap.Plain {
			t.Fatalf("%v %+v", err, snap)
		}
	}
	if n := strings.Count(logs.String(), "not a SecureString"); n != 1 || strings.Contains(logs.String(), storetest.Plain1) {
		t.Fatalf("%d warnings:\n%s", n, logs.String())
	}
	storetest.Rotate(t, st, keyring.Options{})
	out, _ := st.client.GetParameter(t.Context(), &ssm.GetParameterInput{Name: &st.cfg.Name})
	if out.Parameter.Type != types.ParameterTypeSecureString {
		t.Fatalf("rotated into a %s", out.Parameter.Type)
	}
}
