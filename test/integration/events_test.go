package integration

import (
	"bytes"
	"context"
	"log/slog"
	"os/exec"
	"slices"
	"strings"
	"testing"

	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/sigil-dna/keysync/keyring"
	"github.com/sigil-dna/keysync/keyring/secretscan"
	"github.com/sigil-dna/keysync/rotate"
	"github.com/sigil-dna/keysync/store/kube"
)

// TestRotationsLeaveEventsOnTheSecret: on the real kube-apiserver, with the shipped
// rotation Role through a TokenRequest token, a rotation, an emergency rotation and a
// rollback each leave an Event on the Secret (kubectl events --for shows them) naming
// generations and key ids, never a secret. An account that may not create Events still
// rotates; the rotation logs a warning.
func TestRotationsLeaveEventsOnTheSecret(t *testing.T) {
	admin := kubernetes.NewForConfigOrDie(kubeServer.Config)
	const secret = "spiral-event-secret"
	newNS := func(name string) string {
		if _, err := admin.CoreV1().Namespaces().Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		// The first keyring, as an administrator creates it (`keysync rotate --init`).
		st := kubeStore(t, name, secret, kubeServer.Config)
		if _, err := rotate.Run(t.Context(), st, nil, rotate.Options{Init: true}); err != nil {
			t.Fatal(err)
		}
		return name
	}
	token := func(ns, sa string) *rest.Config {
		tr, err := admin.CoreV1().ServiceAccounts(ns).CreateToken(t.Context(), sa,
			&authv1.TokenRequest{Spec: authv1.TokenRequestSpec{ExpirationSeconds: new(int64(600))}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		rc := rest.AnonymousClientConfig(kubeServer.Config)
		rc.BearerToken = tr.Status.Token
		return rc
	}
	events := func(ns string) []corev1.Event {
		list, err := admin.CoreV1().Events(ns).List(t.Context(), metav1.ListOptions{FieldSelector: "involvedObject.name=" + secret})
		if err != nil {
			t.Fatal(err)
		}
		return list.Items
	}

	t.Run("the shipped Role", func(t *testing.T) {
		ns := newNS("events-shipped")
		apply := exec.Command("bash", "-c", "kubectl kustomize ../../manifests/rotation | kubectl apply -n "+ns+" -f -")
		apply.Env = kubeServer.CommandEnv(t.TempDir())
		if out, err := apply.CombinedOutput(); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		initial := len(events(ns)) // the administrator's first keyring
		st := kubeStore(t, ns, secret, token(ns, "keysync-rotate"))
		opts := rotate.Options{Keyring: keyring.Options{RotatedBy: "cronjob/keysync-rotate", Reason: "monthly"}}
		var secrets [][]byte
		keep := func(r *rotate.Result) {
			for _, k := range r.Keyring.Keys {
				secrets = append(secrets, k.Secret)
			}
		}
		staged, err := rotate.Run(t.Context(), st, nil, opts)
		if err != nil {
			t.Fatal(err)
		}
		keep(staged)
		// Rolled back while the new key is pending, then an emergency rotation (after
		// which the old key, leaked, cannot be rolled back to).
		for _, action := range []rotate.Action{rotate.ActionRollback, rotate.ActionEmergency} {
			opts.Action = action
			res, err := rotate.Run(t.Context(), st, nil, opts)
			if err != nil {
				t.Fatalf("%s: %v", action, err)
			}
			keep(res)
		}
		all := events(ns)
		slices.SortFunc(all, func(a, b corev1.Event) int { return a.FirstTimestamp.Compare(b.FirstTimestamp.Time) })
		if len(all) != initial+3 {
			t.Fatalf("%d events after %d and three rotations", len(all), initial)
		}
		got := all[initial:]
		want := map[string]string{"KeyStaged": corev1.EventTypeNormal, "EmergencyRotation": corev1.EventTypeWarning, "KeyRolledBack": corev1.EventTypeWarning}
		var reasons []string
		for _, e := range got {
			reasons = append(reasons, e.Reason)
			if typ, ok := want[e.Reason]; !ok || e.Type != typ || e.Source.Component != kube.EventComponent || e.InvolvedObject.Kind != "Secret" {
				t.Errorf("event %s %s from %q on %s", e.Type, e.Reason, e.Source.Component, e.InvolvedObject.Kind)
			}
			if !strings.Contains(e.Message, "by cronjob/keysync-rotate: monthly") {
				t.Errorf("%s: message %q does not say who and why", e.Reason, e.Message)
			}
		}
		for reason := range want {
			if !slices.Contains(reasons, reason) {
				t.Errorf("no %s event; got %v", reason, reasons)
			}
		}
		for _, e := range got {
			if e.Reason == "KeyStaged" && !strings.Contains(e.Message, "new key "+staged.NewKeyID) {
				t.Errorf("KeyStaged: %q does not name the new key %s", e.Message, staged.NewKeyID)
			}
		}
		// No secret in any event: every key the store held, as bytes, hex and base64.
		snap, err := kubeStore(t, ns, secret, kubeServer.Config).Read(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		var messages bytes.Buffer
		for _, e := range got {
			messages.WriteString(e.Message)
		}
		for _, k := range snap.Keyring.Keys {
			secrets = append(secrets, k.Secret)
		}
		if n := secretscan.Count(messages.Bytes(), secrets...); n != 0 {
			t.Fatalf("events carry a secret %d times", n)
		}
		// kubectl finds them for the Secret (`kubectl describe secret` prints no events for
		// any Secret; `kubectl events --for` does).
		list := exec.Command("kubectl", "events", "--for", "secret/"+secret, "-n", ns)
		list.Env = kubeServer.CommandEnv(t.TempDir())
		out, err := list.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "EmergencyRotation") || !strings.Contains(string(out), "KeyRolledBack") {
			t.Fatalf("kubectl events --for secret/%s: %v\n%s", secret, err, out)
		}
	})

	t.Run("an account that may not create Events still rotates", func(t *testing.T) {
		ns := newNS("events-forbidden")
		rules := []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"}, ResourceNames: []string{secret}, Verbs: []string{"get", "update"}}}
		if err := errOf(admin.CoreV1().ServiceAccounts(ns).Create(context.Background(), &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "rotator"}}, metav1.CreateOptions{})); err != nil {
			t.Fatal(err)
		}
		if err := errOf(admin.RbacV1().Roles(ns).Create(context.Background(), &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "rotator"}, Rules: rules}, metav1.CreateOptions{})); err != nil {
			t.Fatal(err)
		}
		if err := errOf(admin.RbacV1().RoleBindings(ns).Create(context.Background(), &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "rotator"},
			RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "rotator"},
			Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "rotator", Namespace: ns}}}, metav1.CreateOptions{})); err != nil {
			t.Fatal(err)
		}
		initial := len(events(ns)) // the administrator's first keyring
		var logs bytes.Buffer
		st := kubeStore(t, ns, secret, token(ns, "rotator"))
		res, err := rotate.Run(t.Context(), st, nil, rotate.Options{Log: slog.New(slog.NewJSONHandler(&logs, nil))})
		if err != nil {
			t.Fatalf("a forbidden Event failed the rotation: %v", err)
		}
		if res.Generation != 2 {
			t.Fatalf("generation %d", res.Generation)
		}
		if !strings.Contains(logs.String(), "could not record the rotation as an event") || !strings.Contains(logs.String(), "forbidden") {
			t.Fatalf("no warning about the Event:\n%s", logs.String())
		}
		if got := events(ns); len(got) != initial {
			t.Fatalf("%d events, %d before the rotation", len(got), initial)
		}
	})
}

func kubeStore(t *testing.T, ns, name string, rc *rest.Config) *kube.Store {
	t.Helper()
	st, err := kube.New(kube.Config{Namespace: ns, Name: name, REST: rc})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// errOf drops a call's value and keeps its error.
func errOf[T any](_ T, err error) error { return err }
