package rotate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sigil-dna/keysync/keyring"
	"github.com/sigil-dna/keysync/rotate/fleet"
	"github.com/sigil-dna/keysync/store"
	"github.com/sigil-dna/keysync/store/awssm/awssmtest"
	"github.com/sigil-dna/keysync/store/file"
	"github.com/sigil-dna/keysync/store/storetest"
	"github.com/sigil-dna/keysync/test/awsfake"
)

func fileStore(t *testing.T, name string) *file.Store {
	t.Helper()
	s, err := file.New(filepath.Join(t.TempDir(), name), store.PlainOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// racingStore is a fake: it lets another writer win between the read and the write,
// a conflict a real file store only shows under an exact interleaving.
type racingStore struct {
	*file.Store
	races int
}

func (r *racingStore) Write(ctx context.Context, k *keyring.Keyring, ifVersion string) (string, error) {
	if r.races > 0 {
		r.races--
		snap, _ := r.Store.Read(ctx)
		s, _ := keyring.NewSecret(32)
		other, _ := keyring.Stage(snap.Keyring, time.Now().Add(time.Duration(r.races+1)*time.Second), s, keyring.Options{RotatedBy: "other"})
		if _, err := r.Store.Write(ctx, other, snap.Version); err != nil {
			return "", err
		}
	}
	return r.Store.Write(ctx, k, ifVersion)
}

func TestRotateStageEmergencyRollbackWithAuditAndMirror(t *testing.T) {
	ctx := context.Background()
	primary, mirror := fileStore(t, "primary.json"), fileStore(t, "mirror.json")
	auditPath := filepath.Join(t.TempDir(), "audit.jsonl")
	var logs bytes.Buffer
	var secrets []keyring.Secret
	o := Options{
		Init: true, AuditLog: auditPath, Log: slog.New(slog.NewJSONHandler(&logs, nil)),
		Keyring: keyring.Options{RotatedBy: "alice@host", Reason: "cadence"},
		NewSecret: func(n int) (keyring.Secret, error) {
			s, err := keyring.NewSecret(n)
			secrets = append(secrets, s)
			return s, err
		},
	}
	steps := []struct {
		action Action
		check  func(t *testing.T, r *Result)
	}{
		{ActionStage, func(t *testing.T, r *Result) {
			if r.Generation != 1 || r.PreviousGeneration != 0 || len(r.KeyIDs) != 1 {
				t.Fatalf("%+v", r)
			}
		}},
		{ActionStage, func(t *testing.T, r *Result) {
			if r.Generation != 2 || len(r.KeyIDs) != 2 || r.SigningKeyID != r.NewKeyID || !r.SigningFrom.After(r.RotatedAt) {
				t.Fatalf("%+v", r)
			}
		}},
		{ActionRollback, func(t *testing.T, r *Result) {
			if r.Generation != 3 || len(r.KeyIDs) != 1 || r.NewKeyID != "" {
				t.Fatalf("rollback of a pending key: %+v", r)
			}
		}},
		{ActionEmergency, func(t *testing.T, r *Result) {
			if r.Generation != 4 || len(r.KeyIDs) != 1 || len(r.RemovedKeyIDs) != 1 {
				t.Fatalf("%+v", r)
			}
		}},
	}
	for _, st := range steps {
		o.Action = st.action
		r, err := Run(ctx, primary, []store.Store{mirror}, o)
		if err != nil {
			t.Fatalf("%s: %v", st.action, err)
		}
		st.check(t, r)
		for _, s := range []store.Store{primary, mirror} {
			snap, err := s.Read(ctx)
			if err != nil || snap.Keyring.Generation != r.Generation {
				t.Fatalf("%s: %s holds %v %v", st.action, s, snap, err)
			}
		}
	}
	// Each write is an intent before it and an outcome after it.
	lines := strings.Split(strings.TrimSpace(readFile(t, auditPath)), "\n")
	if len(lines) != 8 {
		t.Fatalf("%d audit lines, want 8 (intent and outcome of 4 writes)", len(lines))
	}
	for i, l := range lines {
		var r map[string]any
		json.Unmarshal([]byte(l), &r)
		if want := []string{"intent", "rotation"}[i%2]; r["event"] != want {
			t.Fatalf("audit line %d is %v, want event %s", i, r["event"], want)
		}
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(lines[7]), &rec); err != nil {
		t.Fatal(err)
	}
	if rec["event"] != "rotation" || rec["action"] != "emergency" || rec["rotated_by"] != "alice@host" || rec["reason"] != "cadence" || rec["generation"] != 4.0 {
		t.Fatalf("audit record %v", rec)
	}
	all := logs.String() + readFile(t, auditPath)
	if !strings.Contains(logs.String(), `"event":"rotation"`) {
		t.Fatal("no audit event logged")
	}
	for _, s := range secrets {
		for _, enc := range []string{string(s)} {
			if strings.Contains(all, enc) {
				t.Fatal("secret in audit output")
			}
		}
	}
}

func TestDryRunWritesNothing(t *testing.T) {
	ctx := context.Background()
	s := fileStore(t, "k.json")
	if _, err := Run(ctx, s, nil, Options{Init: true}); err != nil {
		t.Fatal(err)
	}
	r, err := Run(ctx, s, nil, Options{DryRun: true})
	if err != nil || !r.DryRun || r.Generation != 2 {
		t.Fatalf("%v %+v", err, r)
	}
	if snap, _ := s.Read(ctx); snap.Keyring.Generation != 1 {
		t.Fatal("dry run wrote")
	}
}

// TestRunPromotes: Run with ActionPromote is Promote (it was refused as an unknown action).
func TestRunPromotes(t *testing.T) {
	ctx := context.Background()
	s := fileStore(t, "k.json")
	if _, err := Run(ctx, s, nil, Options{Init: true}); err != nil {
		t.Fatal(err)
	}
	held, err := Run(ctx, s, nil, Options{Action: ActionHold, Force: true})
	if err != nil || held.Outcome != OutcomeHeld {
		t.Fatalf("%v %+v", err, held)
	}
	r, err := Run(ctx, s, nil, Options{Action: ActionPromote})
	if err != nil || r.Action != ActionPromote || r.Outcome != OutcomePromoted || r.SigningKeyID != held.NewKeyID {
		t.Fatalf("%v %+v", err, r)
	}
	after, _ := s.Read(ctx)
	if _, stillHeld := after.Keyring.HeldKey(); stillHeld {
		t.Fatal("the key is still held after Run promoted it")
	}
}

// TestPromoteDryRunWritesNothing: `keysync promote --dry-run` says what it would promote
// and leaves the held key held (issue 29: it wrote the promotion).
func TestPromoteDryRunWritesNothing(t *testing.T) {
	ctx := context.Background()
	s := fileStore(t, "k.json")
	audit := filepath.Join(t.TempDir(), "audit.jsonl")
	if _, err := Run(ctx, s, nil, Options{Init: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := Run(ctx, s, nil, Options{Action: ActionHold, Force: true}); err != nil {
		t.Fatal(err)
	}
	before, _ := s.Read(ctx)
	r, err := Promote(ctx, s, nil, Options{DryRun: true, AuditLog: audit})
	if err != nil || !r.DryRun || r.Generation != before.Keyring.Generation+1 {
		t.Fatalf("%v %+v", err, r)
	}
	after, _ := s.Read(ctx)
	if after.Version != before.Version || after.Keyring.Generation != before.Keyring.Generation {
		t.Fatalf("promote --dry-run wrote: generation %d -> %d", before.Keyring.Generation, after.Keyring.Generation)
	}
	if _, held := after.Keyring.HeldKey(); !held {
		t.Fatal("the held key is no longer held after a dry run")
	}
	if data, err := os.ReadFile(audit); err == nil && len(data) > 0 {
		t.Fatalf("a dry run was audited as a promotion: %s", data)
	}
}

// TestTheAuditRecordComesBeforeTheWrite: an audit log that cannot be written stops the
// rotation with the store untouched (issue 29: the record came after the write, so a real
// rotation could go unrecorded), and --force is in the record.
func TestTheAuditRecordComesBeforeTheWrite(t *testing.T) {
	ctx := context.Background()
	s := fileStore(t, "k.json")
	if _, err := Run(ctx, s, nil, Options{Init: true}); err != nil {
		t.Fatal(err)
	}
	before, _ := s.Read(ctx)
	unwritable := t.TempDir() // a directory: no process, root included, can append to it
	// (A rollback writes through the same path; this keyring has nothing to roll back to.)
	for _, o := range []Options{{}, {Action: ActionEmergency}, {Action: ActionHold, Force: true}} {
		o.AuditLog = unwritable
		if _, err := Run(ctx, s, nil, o); err == nil || !strings.Contains(err.Error(), "nothing was written") {
			t.Fatalf("%s with an unwritable audit log: %v", o.Action, err)
		}
		if after, _ := s.Read(ctx); after.Version != before.Version {
			t.Fatalf("%s wrote the store although its audit log cannot be written", o.Action)
		}
	}
	audit := filepath.Join(t.TempDir(), "audit.jsonl")
	if _, err := Run(ctx, s, nil, Options{Action: ActionHold, Force: true, AuditLog: audit}); err != nil {
		t.Fatal(err)
	}
	if _, err := Promote(ctx, s, nil, Options{AuditLog: unwritable}); err == nil {
		t.Fatal("a promotion with an unwritable audit log succeeded")
	}
	if after, _ := s.Read(ctx); !held(after.Keyring) {
		t.Fatal("the promotion was written although its audit log cannot be written")
	}
	var recs []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(readFile(t, audit)), "\n") {
		var r map[string]any
		json.Unmarshal([]byte(l), &r)
		recs = append(recs, r)
	}
	if len(recs) != 2 || recs[0]["event"] != "intent" || recs[0]["force"] != true || recs[0]["based_on_version"] != before.Version ||
		recs[1]["event"] != "rotation" || recs[1]["force"] != true {
		t.Fatalf("audit records %v", recs)
	}
}

func TestConflictIsRetriedAndThenReported(t *testing.T) {
	ctx := context.Background()
	s := &racingStore{Store: fileStore(t, "k.json")}
	if _, err := Run(ctx, s.Store, nil, Options{Init: true}); err != nil {
		t.Fatal(err)
	}
	s.races = 2
	// Force: the racing writer leaves pending keys, which a stage otherwise refuses.
	r, err := Run(ctx, s, nil, Options{Retries: 3, Force: true})
	if err != nil || r.Attempts != 3 || r.Generation != 4 {
		t.Fatalf("after two lost races: %v %+v", err, r)
	}
	s.races = 5
	_, err = Run(ctx, s, nil, Options{Retries: 0, Force: true})
	if !errors.Is(err, store.ErrConflict) {
		t.Fatalf("err = %v", err)
	}
}

func TestRollbackOfAnEmptyStore(t *testing.T) {
	_, err := Run(context.Background(), fileStore(t, "k.json"), nil, Options{Action: ActionRollback})
	if err == nil || !strings.Contains(err.Error(), "holds no keyring") {
		t.Fatalf("err = %v", err)
	}
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestAStageRefusesToReplaceAKeyNotYetSigning: a rotation while a key is held (waiting
// for its fleet) or pending (waiting for its time) would pile keys up or drop one that
// pods already verify; it is refused with what to do, unless forced. An emergency is
// never refused, and neither is a rollback.
func TestAStageRefusesToReplaceAKeyNotYetSigning(t *testing.T) {
	ctx := context.Background()
	s := fileStore(t, "k.json")
	if _, err := Run(ctx, s, nil, Options{Init: true}); err != nil {
		t.Fatal(err)
	}
	pending, err := Run(ctx, s, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = Run(ctx, s, nil, Options{})
	if !errors.Is(err, ErrKeyPending) || !strings.Contains(err.Error(), pending.NewKeyID) || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("a stage over a pending key: %v", err)
	}
	if snap, _ := s.Read(ctx); snap.Keyring.Generation != 2 {
		t.Fatal("a refused rotation wrote")
	}
	forced, err := Run(ctx, s, nil, Options{Force: true})
	if err != nil || forced.Generation != 3 {
		t.Fatalf("forced: %v", err)
	}
	held, err := Run(ctx, s, nil, Options{Action: ActionHold, Force: true})
	if err != nil || held.Outcome != "held" {
		t.Fatalf("hold: %v %+v", err, held)
	}
	for name, o := range map[string]Options{"a stage": {}, "a hold": {Action: ActionHold}} {
		if _, err := Run(ctx, s, nil, o); !errors.Is(err, ErrKeyHeld) || !strings.Contains(err.Error(), "keysync promote") {
			t.Fatalf("%s over a held key: %v", name, err)
		}
	}
	if _, err := Run(ctx, s, nil, Options{Action: ActionEmergency}); err != nil {
		t.Fatalf("an emergency was refused: %v", err)
	}
	if _, err := Run(ctx, s, nil, Options{}); err != nil {
		t.Fatalf("a stage after the emergency key signs: %v", err)
	}
}

// TestAnEmptyStoreNeedsInit: a rotation of a store that holds nothing (a mistyped path,
// Vault path or Secret name) fails and writes nothing unless --init says to create it.
func TestAnEmptyStoreNeedsInit(t *testing.T) {
	ctx := context.Background()
	s := fileStore(t, "k.json")
	for _, a := range []Action{ActionStage, ActionEmergency, ActionHold} {
		_, err := Run(ctx, s, nil, Options{Action: a})
		if !errors.Is(err, store.ErrNotFound) || !strings.Contains(err.Error(), "use --init to create the first keyring") {
			t.Fatalf("%s of an empty store: %v", a, err)
		}
	}
	if _, err := s.Read(ctx); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a refused rotation created the store: %v", err)
	}
	if r, err := Run(ctx, s, nil, Options{Init: true}); err != nil || r.Generation != 1 {
		t.Fatalf("--init: %v", err)
	}
}

func held(r *keyring.Keyring) bool {
	_, ok := r.HeldKey()
	return ok
}

// confirmingGate is a fake gate whose fleet confirms every key at once (the real gate
// runs against real sidecars in rotate/fleet and test/e2e); waits counts its waits.
type confirmingGate struct{ waits int }

func (g *confirmingGate) Check(context.Context) (*fleet.Round, error) { return &fleet.Round{}, nil }
func (g *confirmingGate) Wait(_ context.Context, keyID string, _ time.Time) (*fleet.Result, error) {
	g.waits++
	return &fleet.Result{KeyID: keyID, Members: 1, Confirmed: 1}, nil
}

// TestAGatedRotationResumesAHeldKey: issue 29, the wedge. A gated rotation that timed out
// left its key held; every later scheduled run refused ("a key is held") until a human
// acted. Now a held key older than the gate's timeout is resumed (gate, promotion, no new
// key), a younger one is refused naming why, and --if-older-than makes a rerun harmless.
func TestAGatedRotationResumesAHeldKey(t *testing.T) {
	ctx := context.Background()
	s := fileStore(t, "k.json")
	t0 := time.Now()
	at := func(d time.Duration) func() time.Time { return func() time.Time { return t0.Add(d) } }
	audit := filepath.Join(t.TempDir(), "audit.jsonl")
	if _, err := Run(ctx, s, nil, Options{Init: true, Now: at(-48 * time.Hour), Keyring: keyring.Options{ActivationDelay: time.Minute}}); err != nil {
		t.Fatal(err)
	}
	timedOut, err := Run(ctx, s, nil, Options{Action: ActionHold, Now: at(0), Keyring: keyring.Options{RotatedBy: "cronjob/first", Reason: "scheduled rotation"}})
	if err != nil {
		t.Fatal(err)
	}
	gated := func(now time.Duration, extra Options) (*Result, error) {
		o := extra
		o.Gate, o.Now, o.ResumeAfter, o.AuditLog = &confirmingGate{}, at(now), 10*time.Minute, audit
		o.Keyring.RotatedBy, o.Keyring.Reason = "cronjob/second", "scheduled rotation"
		return Run(ctx, s, nil, o)
	}

	before, _ := s.Read(ctx)
	_, err = gated(time.Minute, Options{})
	if !errors.Is(err, ErrKeyHeld) || !strings.Contains(err.Error(), "another rotation may still be waiting at its gate") ||
		!strings.Contains(err.Error(), "cronjob/first") || !strings.Contains(err.Error(), t0.Add(10*time.Minute).UTC().Format(time.RFC3339)) {
		t.Fatalf("a held key one minute old: %v", err)
	}
	if after, _ := s.Read(ctx); after.Version != before.Version {
		t.Fatal("the refusal wrote")
	}

	res, err := gated(11*time.Minute, Options{})
	if err != nil {
		t.Fatalf("resume: %v", err)
	}
	if res.Action != ActionPromote || res.Outcome != "promoted" || res.Resumed == nil || res.Resumed.KeyID != timedOut.NewKeyID ||
		res.Resumed.HeldBy != "cronjob/first" || res.SigningKeyID != timedOut.NewKeyID {
		t.Fatalf("resumed %+v (resumed %+v), want the held key %s promoted", res, res.Resumed, timedOut.NewKeyID)
	}
	after, _ := s.Read(ctx)
	if _, held := after.Keyring.HeldKey(); held || after.Keyring.Generation != before.Keyring.Generation+1 || len(after.Keyring.Keys) != len(before.Keyring.Keys) {
		t.Fatalf("after the resume: generation %d -> %d, keys %v -> %v", before.Keyring.Generation, after.Keyring.Generation, before.Keyring.IDs(), after.Keyring.IDs())
	}
	lines := strings.Split(strings.TrimSpace(readFile(t, audit)), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], `"event":"intent"`) || !strings.Contains(lines[1], `"held_by":"cronjob/first"`) {
		t.Fatalf("the audit trail of the resume:\n%s", strings.Join(lines, "\n"))
	}

	// The job's retry, or a rerun after the rotator was killed past the promotion: with
	// --if-older-than nothing is rotated, and nothing is written.
	again, err := gated(12*time.Minute, Options{IfOlderThan: 20 * 24 * time.Hour})
	if err != nil || again.Outcome != "not due" || again.SigningKeyID != timedOut.NewKeyID {
		t.Fatalf("a rerun: %v %+v", err, again)
	}
	if now, _ := s.Read(ctx); now.Version != after.Version {
		t.Fatal("a rotation that was not due wrote")
	}
	// A month later it is due: a new key, held, and promoted.
	month, err := gated(31*24*time.Hour, Options{IfOlderThan: 20 * 24 * time.Hour})
	if err != nil || month.Outcome != "promoted" || month.Resumed != nil || month.SigningKeyID == timedOut.NewKeyID {
		t.Fatalf("next month: %v %+v", err, month)
	}
	// --force replaces a held key instead of resuming it.
	if _, err := Run(ctx, s, nil, Options{Action: ActionHold, Now: at(32 * 24 * time.Hour), Force: true}); err != nil {
		t.Fatal(err)
	}
	forced, err := gated(32*24*time.Hour+time.Minute, Options{Force: true})
	if err != nil || forced.Resumed != nil || forced.Outcome != "promoted" {
		t.Fatalf("forced: %v %+v", err, forced)
	}
}

// TestANotDueRunRepairsTheMirrors: a rotator killed after the primary's write and before
// the mirrors' leaves them behind; the next run, not due, brings them up to the primary.
func TestANotDueRunRepairsTheMirrors(t *testing.T) {
	ctx := context.Background()
	primary, mirror := fileStore(t, "primary.json"), fileStore(t, "mirror.json")
	if _, err := Run(ctx, primary, []store.Store{mirror}, Options{Init: true, Now: func() time.Time { return time.Now().Add(-48 * time.Hour) }}); err != nil {
		t.Fatal(err)
	}
	if _, err := Run(ctx, primary, nil, Options{Now: func() time.Time { return time.Now().Add(-time.Hour) }}); err != nil {
		t.Fatal(err) // the primary only: as a rotator killed before its mirrors
	}
	res, err := Run(ctx, primary, []store.Store{mirror}, Options{IfOlderThan: 24 * time.Hour})
	if err != nil || res.Outcome != "not due" || len(res.Mirrors) != 1 || res.Mirrors[0].Error != "" {
		t.Fatalf("%v %+v", err, res)
	}
	p, _ := primary.Read(ctx)
	m, err := mirror.Read(ctx)
	if err != nil || m.Keyring.Generation != p.Keyring.Generation {
		t.Fatalf("mirror generation %v, primary %d (%v)", m, p.Keyring.Generation, err)
	}
	// Once in step, a not-due run writes nothing at all.
	res, err = Run(ctx, primary, []store.Store{mirror}, Options{IfOlderThan: 24 * time.Hour})
	if m2, _ := mirror.Read(ctx); err != nil || len(res.Mirrors) != 0 || m2.Version != m.Version {
		t.Fatalf("a second not-due run wrote the mirror: %v %+v", err, res)
	}
}

// TestAReplacementNeverGoesBackInGenerations: issue 29. --emergency --replace-invalid
// restarted the generation at 1 (500 -> 1): pods holding 500 saw it go backwards and the
// file store's version "1" came back.
func TestAReplacementNeverGoesBackInGenerations(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "k.json")
	s, _ := file.New(path, store.PlainOptions{})
	r, _ := keyring.Stage(nil, time.Now(), keyring.Secret(strings.Repeat("k", 32)), keyring.Options{})
	r.Generation = 500
	if _, err := s.Write(ctx, r, ""); err != nil {
		t.Fatal(err)
	}
	doc, _ := os.ReadFile(path)
	os.WriteFile(path, doc[:len(doc)/2], 0o600) // truncated: not even its generation can be read
	res, err := Run(ctx, s, nil, Options{Action: ActionEmergency, ReplaceInvalid: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Generation <= 500 {
		t.Fatalf("the replacement is generation %d, after 500", res.Generation)
	}
	// A version number the store gives is a floor too.
	invalid := &store.InvalidError{Version: "projects/p/secrets/s/versions/9000000000000", Err: keyring.ErrInvalid}
	if f := invalid.GenerationFloor(); f != 9000000000000 {
		t.Fatalf("floor %d", f)
	}
}

// TestASecretsManagerRollbackIsAuditedBeforeTheLabelsMove: the store's own rollback
// (AWSCURRENT back to AWSPREVIOUS) moved the labels before any record was written.
func TestASecretsManagerRollbackIsAuditedBeforeTheLabelsMove(t *testing.T) {
	ctx := context.Background()
	f := awssmtest.Open(t, awsfake.StartT(t))
	f.PutPlain(storetest.Plain1)
	time.Sleep(1100 * time.Millisecond)
	f.PutPlain(storetest.Plain2)
	before, err := f.Store.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Run(ctx, f.Store, nil, Options{Action: ActionRollback, AuditLog: t.TempDir()}); err == nil || !strings.Contains(err.Error(), "nothing was written") {
		t.Fatalf("a rollback with an unwritable audit log: %v", err)
	}
	if after, _ := f.Store.Read(ctx); after.Version != before.Version {
		t.Fatal("AWSCURRENT moved although the audit log cannot be written")
	}
	audit := filepath.Join(t.TempDir(), "audit.jsonl")
	res, err := Run(ctx, f.Store, nil, Options{Action: ActionRollback, AuditLog: audit})
	if err != nil {
		t.Fatal(err)
	}
	if after, _ := f.Store.Read(ctx); after.Version == before.Version || res.SigningKeyID != keyring.KeyID(keyring.Secret(storetest.Plain1)) {
		t.Fatalf("the rollback: version %s -> %s, signing %s", before.Version, after.Version, res.SigningKeyID)
	}
	lines := strings.Split(strings.TrimSpace(readFile(t, audit)), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], `"event":"intent"`) || !strings.Contains(lines[0], `"based_on_version":"`+before.Version+`"`) ||
		!strings.Contains(lines[1], `"event":"rotation"`) {
		t.Fatalf("audit records:\n%s", strings.Join(lines, "\n"))
	}
}
