package kube

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/sigil-dna/keysync/keyring"
	"github.com/sigil-dna/keysync/store/storetest"
	"github.com/sigil-dna/keysync/test/servers"
)

var (
	cluster *servers.Kube
	admin   kubernetes.Interface
)

func TestMain(m *testing.M) {
	dir, _ := os.MkdirTemp("", "keysync-kube-")
	var err error
	cluster, err = servers.StartKube(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	admin = kubernetes.NewForConfigOrDie(cluster.Config)
	code := m.Run()
	cluster.Stop()
	os.RemoveAll(dir)
	os.Exit(code)
}

var seq atomic.Int64

func namespace(t *testing.T) string {
	t.Helper()
	name := fmt.Sprintf("t%d-%d", time.Now().UnixNano()%1e6, seq.Add(1))
	if _, err := admin.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return name
}

func newStore(t *testing.T, ns, name string, rc *rest.Config) *Store {
	t.Helper()
	if rc == nil {
		rc = cluster.Config
	}
	s, err := New(Config{Namespace: ns, Name: name, REST: rc, Plain: storetest.Schedule})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// Cluster is the package's control plane, for the external contract test.
func Cluster() *servers.Kube { return cluster }

func TestParseURL(t *testing.T) {
	ns, name, err := ParseURL("k8s://sigil/spiral-event-secret")
	if err != nil || ns != "sigil" || name != "spiral-event-secret" {
		t.Fatal(ns, name, err)
	}
	for _, bad := range []string{"k8s://sigil", "k8s://a/b/c", "vault://a/b"} {
		if _, _, err := ParseURL(bad); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

// TestTheWatchSeesUpdatesAtOnce measures, over 20 updates, the time from the API server
// accepting an update to a watching store reading it (what the sidecar reacts to).
func TestTheWatchSeesUpdatesAtOnce(t *testing.T) {
	ns := namespace(t)
	writer := newStore(t, ns, "spiral-event-secret", nil)
	storetest.Rotate(t, writer, keyring.Options{})
	reader := newStore(t, ns, "spiral-event-secret", nil)
	ch, err := reader.Watch(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var lat []time.Duration
	for i := 0; i < 20; i++ {
		snap, err := writer.Read(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		r, err := keyring.Emergency(snap.Keyring, time.Now(), storetest.Secret(fmt.Sprint("watch ", i)), keyring.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := writer.Write(t.Context(), r, snap.Version); err != nil {
			t.Fatal(err)
		}
		written := time.Now()
		for {
			select {
			case <-ch:
			case <-time.After(10 * time.Second):
				t.Fatalf("no watch event for generation %d", r.Generation)
			}
			if snap, err := reader.Read(t.Context()); err == nil && snap.Keyring.Generation == r.Generation {
				break
			}
		}
		lat = append(lat, time.Since(written))
	}
	slices.Sort(lat)
	t.Logf("secret update -> read through the watch, 20 updates: p50 %s, p90 %s, max %s", lat[10], lat[18], lat[19])
}

// TestPlainValueFromTheTicketsKubectlPipeline runs the ticket's own command twice; a
// reader completes the second value with the keys it holds (keyring.CompletePlain).
func TestPlainValueFromTheTicketsKubectlPipeline(t *testing.T) {
	ns := namespace(t)
	st := newStore(t, ns, "spiral-event-secret", nil)
	kubectl(t, ticketPipeline(ns))
	r1 := readComplete(t, st, nil)
	if len(r1.Keys) != 1 {
		t.Fatalf("the first plain value: %+v", r1.Keys)
	}
	time.Sleep(1100 * time.Millisecond) // managedFields times have one-second precision
	kubectl(t, ticketPipeline(ns))
	r2 := readComplete(t, st, r1)
	if len(r2.Keys) != 2 || r2.Keys[0].ID != r1.Keys[0].ID || r2.Keys[0].NotAfter.IsZero() || !r2.Keys[1].NotAfter.IsZero() {
		t.Fatalf("previous value not kept as a verify-only key: %+v", r2.Keys)
	}
	sec, _ := admin.CoreV1().Secrets(ns).Get(t.Context(), "spiral-event-secret", metav1.GetOptions{})
	if fmt.Sprint(r2.Generation) != sec.ResourceVersion {
		t.Fatalf("generation %d, resourceVersion %s", r2.Generation, sec.ResourceVersion)
	}
	// The value itself is the key, byte for byte.
	if string(r2.Keys[1].Secret) != string(sec.Data["value"]) {
		t.Fatal("the plain value is not the key")
	}
}

// TestAMetadataOnlyEditDoesNotRestage: GitOps tools touch a Secret's labels and
// annotations all the time. After the ticket's pipeline ran twice, a `kubectl label` must
// leave what a reader holds as it is: no new generation, the new value's switch not
// postponed, the old value's window not moved (regression: every touch re-staged the
// unchanged value, seen by hand as generation 222 -> 226 with the switch moved by 5 s).
func TestAMetadataOnlyEditDoesNotRestage(t *testing.T) {
	ns := namespace(t)
	st := newStore(t, ns, "spiral-event-secret", nil)
	kubectl(t, ticketPipeline(ns))
	r1 := readComplete(t, st, nil)
	time.Sleep(1100 * time.Millisecond)
	kubectl(t, ticketPipeline(ns))
	r2 := readComplete(t, st, r1)
	time.Sleep(1100 * time.Millisecond)
	kubectl(t, "kubectl -n "+ns+" label secret spiral-event-secret team=payments")
	snap, err := st.Read(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(r2.Generation) == snap.Version {
		t.Fatal("the label did not change the Secret's resourceVersion: the test shows nothing")
	}
	r3, err := snap.Complete(r2)
	if err != nil {
		t.Fatal(err)
	}
	if !r3.Equal(r2) {
		t.Fatalf("a label re-staged the keys: generation %d -> %d, new key signs from %s -> %s, old key verifies until %s -> %s",
			r2.Generation, r3.Generation, r2.Keys[1].NotBefore, r3.Keys[1].NotBefore, r2.Keys[0].NotAfter, r3.Keys[0].NotAfter)
	}
	// A reader that starts now (no keys yet) computes the value's schedule from the time
	// its data was written, not from the label's.
	if fresh := readComplete(t, st, nil); !fresh.Keys[0].NotBefore.Equal(r2.Keys[1].NotBefore.Add(-storetest.Schedule.ActivationDelay)) {
		t.Fatalf("a new reader dates the value %s, the data was written at %s", fresh.Keys[0].NotBefore,
			r2.Keys[1].NotBefore.Add(-storetest.Schedule.ActivationDelay))
	}
}

func ticketPipeline(ns string) string {
	return "kubectl -n " + ns + " create secret generic spiral-event-secret --from-literal=value=$(openssl rand -hex 32) --dry-run=client -o yaml | kubectl -n " + ns + " apply -f -"
}

func kubectl(t *testing.T, script string) {
	t.Helper()
	cmd := exec.Command("bash", "-c", script)
	cmd.Env = cluster.CommandEnv(t.TempDir())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
}

// readComplete reads st and completes a plain value with have, as the sidecar does.
func readComplete(t *testing.T, st *Store, have *keyring.Keyring) *keyring.Keyring {
	t.Helper()
	snap, err := st.Read(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	r, err := snap.Complete(have)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// tokenFor returns a REST config authenticated as a ServiceAccount, by TokenRequest.
func tokenFor(t *testing.T, ns, sa string) *rest.Config {
	t.Helper()
	tr, err := admin.CoreV1().ServiceAccounts(ns).CreateToken(t.Context(), sa, &authv1.TokenRequest{
		Spec: authv1.TokenRequestSpec{ExpirationSeconds: ptr(int64(600))}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rc := rest.AnonymousClientConfig(cluster.Config)
	rc.BearerToken = tr.Status.Token
	return rc
}

func ptr[T any](v T) *T { return &v }

func applyShipped(t *testing.T, ns, dir string) {
	t.Helper()
	cmd := exec.Command("bash", "-c", "kubectl kustomize "+dir+" | kubectl apply -n "+ns+" -f -")
	cmd.Env = cluster.CommandEnv(t.TempDir())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
}

// TestShippedRBAC applies the kustomize base and the rotation manifests to the real API
// server and acts with the ServiceAccounts they define.
func TestShippedRBAC(t *testing.T) {
	ns := namespace(t)
	root := servers.RepoRoot()
	applyShipped(t, ns, filepath.Join(root, "manifests", "base"))
	applyShipped(t, ns, filepath.Join(root, "manifests", "rotation"))
	ownerStore := newStore(t, ns, "spiral-event-secret", nil)
	storetest.Rotate(t, ownerStore, keyring.Options{})
	if _, err := newStore(t, ns, "other", nil).Write(t.Context(), mustStage(t), ""); err != nil {
		t.Fatal(err)
	}

	sidecarRC := tokenFor(t, ns, "sigil-app-keysync")
	t.Run("the sidecar's account reads and watches its Secret", func(t *testing.T) {
		s := newStore(t, ns, "spiral-event-secret", sidecarRC)
		if _, err := s.Read(t.Context()); err != nil {
			t.Fatal(err)
		}
		ch, err := s.Watch(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		storetest.Rotate(t, ownerStore, keyring.Options{})
		select {
		case <-ch:
		case <-time.After(10 * time.Second):
			t.Fatal("no watch event: list/watch with the field selector is not allowed")
		}
	})
	client := kubernetes.NewForConfigOrDie(sidecarRC)
	forbidden := map[string]func() error{
		"get another Secret": func() error {
			_, err := client.CoreV1().Secrets(ns).Get(t.Context(), "other", metav1.GetOptions{})
			return err
		},
		"list all Secrets": func() error {
			_, err := client.CoreV1().Secrets(ns).List(t.Context(), metav1.ListOptions{})
			return err
		},
		"update its own Secret": func() error {
			_, err := newStore(t, ns, "spiral-event-secret", sidecarRC).Write(t.Context(), mustStage(t), "1")
			return err
		},
	}
	for name, f := range forbidden {
		t.Run("the sidecar's account may not "+name, func(t *testing.T) {
			if err := f(); !apierrors.IsForbidden(errors.Unwrap(err)) && !apierrors.IsForbidden(err) {
				t.Fatalf("err = %v, want Forbidden", err)
			}
		})
	}

	rotateRC := tokenFor(t, ns, "keysync-rotate")
	t.Run("the CronJob's account rotates its Secret", func(t *testing.T) {
		storetest.Rotate(t, newStore(t, ns, "spiral-event-secret", rotateRC), keyring.Options{})
	})
	t.Run("the CronJob's account may not read or update another Secret", func(t *testing.T) {
		other := newStore(t, ns, "other", rotateRC)
		_, rerr := other.Read(t.Context())
		_, werr := other.Write(t.Context(), mustStage(t), "1")
		for _, err := range []error{rerr, werr} {
			if err == nil || !strings.Contains(err.Error(), "forbidden") {
				t.Fatalf("err = %v, want forbidden", err)
			}
		}
	})
}

func mustStage(t *testing.T) *keyring.Keyring {
	s, _ := keyring.NewSecret(32)
	r, err := keyring.Stage(nil, time.Now(), s, keyring.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestWritesRecordTheRotationAsAnnotations: who, why, which generation and key ids are
// on the Secret after each write, so `kubectl describe` shows the last rotation.
func TestWritesRecordTheRotationAsAnnotations(t *testing.T) {
	ns := namespace(t)
	s := newStore(t, ns, "spiral-event-secret", nil)
	storetest.Rotate(t, s, keyring.Options{})
	storetest.Rotate(t, s, keyring.Options{})
	r := storetest.Rotate(t, s, keyring.Options{RotatedBy: "alice@host", Reason: "cadence"})
	sec, _ := admin.CoreV1().Secrets(ns).Get(t.Context(), "spiral-event-secret", metav1.GetOptions{})
	a := sec.Annotations
	if a["keysync.sigil-dna.io/generation"] != "3" || a["keysync.sigil-dna.io/key-ids"] != strings.Join(r.IDs(), ",") ||
		a["keysync.sigil-dna.io/rotated-by"] != "alice@host" || a["keysync.sigil-dna.io/reason"] != "cadence" {
		t.Fatalf("annotations %v", a)
	}
}

// TestCloseIsPromptWhenTheAPIServerIsDown: a pod must stop on SIGTERM even while its API
// server cannot be reached (regression: Close waited for the informer's retries).
func TestCloseIsPromptWhenTheAPIServerIsDown(t *testing.T) {
	rc := rest.CopyConfig(cluster.Config)
	rc.Host = "https://127.0.0.1:1" // nothing listens there
	s, err := New(Config{Namespace: "default", Name: "x", REST: rc})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Watch(t.Context()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := s.Read(ctx); err == nil {
		t.Fatal("read from a dead API server succeeded")
	}
	time.Sleep(300 * time.Millisecond) // let the informer fail and back off
	done := make(chan struct{})
	go func() { s.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		t.Fatal("Close blocks while the API server is down")
	}
}

// TestAPodStartedInsideTheVerifyWindow pins down the documented limit of plain values in
// a Secret, which keeps no history: a pod whose sidecar first reads the Secret after the
// value changed never saw the previous value. Until the new value activates (activation
// delay) it signs with the new value at once, which every older pod verifies (pending
// there); but it cannot verify what older pods still sign with the previous value, and
// later it cannot verify events signed with the previous value in the verify window.
func TestAPodStartedInsideTheVerifyWindow(t *testing.T) {
	ns := namespace(t)
	st := newStore(t, ns, "spiral-event-secret", nil)
	kubectl(t, ticketPipeline(ns))
	older := readComplete(t, st, nil) // a pod running since the first value
	time.Sleep(1100 * time.Millisecond)
	kubectl(t, ticketPipeline(ns))
	older = readComplete(t, st, older)
	fresh := readComplete(t, st, nil) // a pod started now
	if len(older.Keys) != 2 || len(fresh.Keys) != 1 || fresh.Keys[0].ID != older.Keys[1].ID {
		t.Fatalf("older pod %v, fresh pod %v", older.IDs(), fresh.IDs())
	}
	now := time.Now()
	payload := []byte(`{"type":"spiral"}`)
	oldSig, _ := keyring.NewSigner(older).Sign(now, payload) // older pods still sign with the previous value
	freshSig, _ := keyring.NewSigner(fresh).Sign(now, payload)
	if k, _ := fresh.SigningKey(now); k.ID != older.Keys[1].ID {
		t.Fatal("the fresh pod does not sign with the new value")
	}
	if err := keyring.NewSigner(older).Verify(now, payload, freshSig); err != nil {
		t.Fatalf("an older pod rejects the fresh pod's signature: %v", err)
	}
	if err := keyring.NewSigner(fresh).Verify(now, payload, oldSig); !errors.Is(err, keyring.ErrUnknownKey) {
		t.Fatalf("the fresh pod verified a signature of the previous value it never saw: %v", err)
	}
}
