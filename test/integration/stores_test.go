package integration

import (
	"bytes"
	"errors"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/sigil-dna/keysync/keyring"
	"github.com/sigil-dna/keysync/reload"
	"github.com/sigil-dna/keysync/rotate"
	"github.com/sigil-dna/keysync/sidecar/sidecartest"
	"github.com/sigil-dna/keysync/store/awssm/awssmtest"
	"github.com/sigil-dna/keysync/store/awsssm/awsssmtest"
	"github.com/sigil-dna/keysync/store/file/filetest"
	"github.com/sigil-dna/keysync/store/gcpsm/gcpsmtest"
	"github.com/sigil-dna/keysync/store/kube/kubetest"
	"github.com/sigil-dna/keysync/store/storetest"
	"github.com/sigil-dna/keysync/store/vault/vaulttest"
	"github.com/sigil-dna/keysync/test/awsfake"
	"github.com/sigil-dna/keysync/test/gcpfake"
)

// TestStoreToSidecarToApp is the cross-layer story, once, over every backend on its real
// test server: the store's first value (the ticket's plain command where the backend
// has one), a rotation, an invalid document, an outage and a rollback, each followed from
// the store through a real sidecar (in this process) into the app's reload library. What
// the app holds changes only when the store holds a good new keyring.
func TestStoreToSidecarToApp(t *testing.T) {
	ssmFake, smFake := awsfake.StartT(t), awsfake.StartT(t)
	gcp, _ := gcpfake.Start(t)
	backends := map[string]storetest.Backend{
		"file":                             filetest.Backend(),
		"vault":                            vaulttest.Backend(vaultServer),
		"kubernetes":                       kubetest.Backend(kubeServer),
		"parameter store on kumo":          awsssmtest.Backend(awsfake.Kumo(), nil),
		"parameter store on the fake":      awsssmtest.Backend(ssmFake.AWS(), ssmFake),
		"secrets manager on the fake":      awssmtest.Backend(smFake),
		"google secret manager, gRPC fake": gcpsmtest.Backend(gcp),
	}
	for name, b := range backends {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := b.Open(t)
			// The sidecar reads through f.Store, which an outage cuts; rotations write
			// through another store on the same location.
			writer := f.Another()
			rot := rotate.Options{Init: true, Keyring: keyring.Options{ActivationDelay: time.Second, VerifyWindow: time.Minute, RotatedBy: "integration"}}
			if f.PutPlain != nil {
				f.PutPlain(storetest.Plain1)
			} else if _, err := rotate.Run(t.Context(), writer, nil, rot); err != nil {
				t.Fatal(err)
			}
			sc, path, app := sidecartest.WithApp(t, f.Store, 20*time.Millisecond)
			if f.PutPlain != nil && !slices.Equal(app.Status().KeyIDs, []string{keyring.KeyID(keyring.Secret(storetest.Plain1))}) {
				t.Fatalf("the app does not hold the plain value: %+v", app.Status())
			}

			res, err := rotate.Run(t.Context(), writer, nil, rot)
			if err != nil {
				t.Fatal(err)
			}
			waitApp(t, app, "the rotation", res.Generation, res.NewKeyID)

			unchanged := func(what string, since []byte) {
				t.Helper()
				time.Sleep(200 * time.Millisecond) // ten polls
				if now, _ := os.ReadFile(path); !bytes.Equal(now, since) || app.Status().Generation != res.Generation {
					t.Fatalf("%s changed the keys file or the app", what)
				}
			}
			good, _ := os.ReadFile(path)
			if f.PutRaw != nil {
				f.PutRaw(`{"version":1,"generation":0,"rotated_at":"2026-11-27T12:00:00Z","keys":[]}`)
				if _, err := writer.Read(t.Context()); !errors.Is(err, keyring.ErrInvalid) {
					t.Fatalf("the invalid document reads as %v", err)
				}
				unchanged("an invalid document", good)
				doc, _ := keyring.Encode(res.Keyring)
				f.PutRaw(string(doc)) // written back by hand
			}
			if f.Outage != nil {
				restore := f.Outage()
				storetest.WaitFor(t, "the sidecar to report the outage", func() bool { return sc.Status().StoreError != "" })
				unchanged("an outage", good)
				restore()
				storetest.WaitFor(t, "the sidecar to read the store again", func() bool { return sc.Status().StoreError == "" })
			}

			rb := rot
			rb.Action = rotate.ActionRollback
			back, err := rotate.Run(t.Context(), writer, nil, rb)
			if err != nil {
				t.Fatal(err)
			}
			waitApp(t, app, "the rollback", back.Generation, back.SigningKeyID)
		})
	}
}

// waitApp waits until the app holds generation gen with key id among its keys.
func waitApp(t *testing.T, app *reload.Handle, what string, gen int64, id string) {
	t.Helper()
	storetest.WaitFor(t, "the app to load "+what, func() bool {
		st := app.Status()
		return st.Generation >= gen && slices.Contains(st.KeyIDs, id)
	})
}
