package kube

import (
	"bytes"
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
	"github.com/sigil-dna/keysync/rotate"
	"github.com/sigil-dna/keysync/sidecar"
	"github.com/sigil-dna/keysync/sidecar/sidecartest"
	"github.com/sigil-dna/keysync/store"
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
	s, err := New(Config{Namespace: ns, Name: name, REST: rc})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestContract(t *testing.T) {
	ns := namespace(t)
	storetest.Run(t, func(t *testing.T) store.Store { return newStore(t, ns, fmt.Sprintf("s%d", seq.Add(1)), nil) })
}

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

func runSidecar(t *testing.T, st store.Store, out string) *sidecar.Sidecar {
	t.Helper()
	// A one-minute poll: anything faster than that came through the watch.
	return sidecartest.Run(t, sidecar.Config{Store: st, OutDir: out, Interval: time.Minute, Jitter: 0.01})
}

// TestTheSidecarFollowsSecretUpdatesThroughTheWatch measures, over 20 rotations, the time
// from the API server accepting the update to the keys file holding the new generation.
func TestTheSidecarFollowsSecretUpdatesThroughTheWatch(t *testing.T) {
	ns := namespace(t)
	writer := newStore(t, ns, "spiral-event-secret", nil)
	if _, err := rotate.Run(t.Context(), writer, nil, rotate.Options{}); err != nil {
		t.Fatal(err)
	}
	sc := runSidecar(t, newStore(t, ns, "spiral-event-secret", nil), t.TempDir())
	storetest.WaitFor(t, "the first write", func() bool { return sc.Status().Generation == 1 })
	var lat []time.Duration
	for i := 0; i < 20; i++ {
		res, err := rotate.Run(t.Context(), writer, nil, rotate.Options{Action: rotate.ActionEmergency})
		if err != nil {
			t.Fatal(err)
		}
		written := time.Now()
		storetest.WaitFor(t, fmt.Sprintf("generation %d", res.Generation), func() bool { return sc.Status().Generation == res.Generation })
		lat = append(lat, sc.Status().WrittenAt.Sub(written))
	}
	slices.Sort(lat)
	t.Logf("secret update -> keys file written, 20 updates: p50 %s, p90 %s, max %s", lat[10], lat[18], lat[19])
}

// TestPlainValueFromTheTicketsKubectlPipeline runs the ticket's own command twice; the
// sidecar keeps the previous value from the keys file it wrote.
func TestPlainValueFromTheTicketsKubectlPipeline(t *testing.T) {
	ns := namespace(t)
	kubectl := func() {
		cmd := exec.Command("bash", "-c", "kubectl create secret generic spiral-event-secret --from-literal=value=$(openssl rand -hex 32) --dry-run=client -o yaml | kubectl apply -f -")
		cmd.Env = cluster.CommandEnv(t.TempDir())
		cmd.Args[2] = strings.ReplaceAll(cmd.Args[2], "kubectl ", "kubectl -n "+ns+" ")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
	}
	kubectl()
	st := newStore(t, ns, "spiral-event-secret", nil)
	out := t.TempDir()
	sc := runSidecar(t, st, out)
	storetest.WaitFor(t, "the first plain value", func() bool { return len(sc.Status().KeyIDs) == 1 })
	first := sc.Status()
	kubectl()
	storetest.WaitFor(t, "the second plain value", func() bool { return len(sc.Status().KeyIDs) == 2 })
	data, _ := os.ReadFile(filepath.Join(out, "keys.json"))
	r, err := keyring.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	if r.Keys[0].ID != first.KeyIDs[0] || r.Keys[0].NotAfter.IsZero() || !r.Keys[1].NotAfter.IsZero() {
		t.Fatalf("previous value not kept as a verify-only key: %+v", r.Keys)
	}
	sec, _ := admin.CoreV1().Secrets(ns).Get(t.Context(), "spiral-event-secret", metav1.GetOptions{})
	if fmt.Sprint(r.Generation) != sec.ResourceVersion {
		t.Fatalf("generation %d, resourceVersion %s", r.Generation, sec.ResourceVersion)
	}
	// The value itself is the key, byte for byte.
	if string(r.Keys[1].Secret) != string(sec.Data["value"]) {
		t.Fatal("the plain value is not the key")
	}
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
	if _, err := rotate.Run(t.Context(), ownerStore, nil, rotate.Options{}); err != nil {
		t.Fatal(err)
	}
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
		if _, err := rotate.Run(t.Context(), ownerStore, nil, rotate.Options{}); err != nil {
			t.Fatal(err)
		}
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
		if _, err := rotate.Run(t.Context(), newStore(t, ns, "spiral-event-secret", rotateRC), nil, rotate.Options{}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("the CronJob's account may not update another Secret", func(t *testing.T) {
		_, err := rotate.Run(t.Context(), newStore(t, ns, "other", rotateRC), nil, rotate.Options{})
		if err == nil || !strings.Contains(err.Error(), "forbidden") {
			t.Fatalf("err = %v, want forbidden", err)
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

// racingStore is a fake around the real store: another rotation wins between this one's
// read and its write, an interleaving the API server cannot be made to show on demand.
type racingStore struct {
	*Store
	other *Store
	races int
}

func (r *racingStore) Write(ctx context.Context, k *keyring.Keyring, ifVersion string) (string, error) {
	if r.races > 0 {
		r.races--
		if _, err := rotate.Run(ctx, r.other, nil, rotate.Options{Action: rotate.ActionEmergency}); err != nil {
			return "", err
		}
	}
	return r.Store.Write(ctx, k, ifVersion)
}

func TestRotateWithAStaleResourceVersionConflictsAndRetries(t *testing.T) {
	ns := namespace(t)
	s := &racingStore{Store: newStore(t, ns, "spiral-event-secret", nil), other: newStore(t, ns, "spiral-event-secret", nil), races: 1}
	if _, err := rotate.Run(t.Context(), s.other, nil, rotate.Options{}); err != nil {
		t.Fatal(err)
	}
	res, err := rotate.Run(t.Context(), s, nil, rotate.Options{})
	if err != nil || res.Attempts != 2 || res.Generation != 3 {
		t.Fatalf("after one lost race: %v %+v", err, res)
	}
	snap, _ := s.Read(t.Context())
	if snap.Keyring.Generation != 3 {
		t.Fatalf("generation %d", snap.Keyring.Generation)
	}
	sec, _ := admin.CoreV1().Secrets(ns).Get(t.Context(), "spiral-event-secret", metav1.GetOptions{})
	if sec.Annotations["keysync.sigil-dna.io/generation"] != "3" || sec.Annotations["keysync.sigil-dna.io/key-ids"] == "" {
		t.Fatalf("annotations %v", sec.Annotations)
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

// TestAMetadataOnlyEditDoesNotRestage: GitOps tools touch a Secret's labels and
// annotations all the time. After the ticket's pipeline ran twice, a `kubectl label` must
// leave the keys file as it is: no new generation, the new value's switch not postponed,
// the old value's window not moved (regression: every touch re-staged the unchanged value).
func TestAMetadataOnlyEditDoesNotRestage(t *testing.T) {
	ns := namespace(t)
	kubectl := func(script string) {
		t.Helper()
		cmd := exec.Command("bash", "-c", script)
		cmd.Env = cluster.CommandEnv(t.TempDir())
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
	}
	apply := "kubectl -n " + ns + " create secret generic spiral-event-secret --from-literal=value=$(openssl rand -hex 32) --dry-run=client -o yaml | kubectl -n " + ns + " apply -f -"
	kubectl(apply)
	out := t.TempDir()
	sc := runSidecar(t, newStore(t, ns, "spiral-event-secret", nil), out)
	storetest.WaitFor(t, "the first plain value", func() bool { return len(sc.Status().KeyIDs) == 1 })
	time.Sleep(1100 * time.Millisecond) // managedFields times have one-second precision
	kubectl(apply)
	storetest.WaitFor(t, "the second plain value", func() bool { return len(sc.Status().KeyIDs) == 2 })
	before, _ := os.ReadFile(filepath.Join(out, "keys.json"))
	time.Sleep(1100 * time.Millisecond)
	kubectl("kubectl -n " + ns + " label secret spiral-event-secret team=payments")
	sec, _ := admin.CoreV1().Secrets(ns).Get(t.Context(), "spiral-event-secret", metav1.GetOptions{})
	if sec.Labels["team"] != "payments" {
		t.Fatal("the label was not set")
	}
	// The watch delivers the edit within milliseconds; give the sidecar time to act on it.
	time.Sleep(2 * time.Second)
	after, _ := os.ReadFile(filepath.Join(out, "keys.json"))
	if !bytes.Equal(before, after) {
		rb, _ := keyring.Parse(before)
		ra, _ := keyring.Parse(after)
		t.Fatalf("a label re-staged the keys: generation %d -> %d, new key signs from %s -> %s, old key verifies until %s -> %s",
			rb.Generation, ra.Generation, rb.Keys[1].NotBefore, ra.Keys[1].NotBefore, rb.Keys[0].NotAfter, ra.Keys[0].NotAfter)
	}
}
