package integration

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/vault/api"
	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/sigil-dna/keysync/keyring"
	"github.com/sigil-dna/keysync/rotate"
	"github.com/sigil-dna/keysync/store/vault"
)

// TestVaultKubernetesAuth: the sidecar logs in to a real Vault with the Kubernetes auth
// method, using a ServiceAccount token of a real kube-apiserver, which Vault checks with
// a TokenReview against that apiserver.
func TestVaultKubernetesAuth(t *testing.T) {
	kube, v := kubeServer, vaultServer
	ctx := context.Background()
	k := kubernetes.NewForConfigOrDie(kube.Config)
	const ns = "sigil"
	mustK(t, func() error {
		_, err := k.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
		return err
	})
	for _, sa := range []string{"vault-reviewer", "sigil-app-keysync"} {
		mustK(t, func() error {
			_, err := k.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{})
			return err
		})
	}
	mustK(t, func() error {
		_, err := k.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "vault-reviewer"},
			RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "system:auth-delegator"},
			Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "vault-reviewer", Namespace: ns}},
		}, metav1.CreateOptions{})
		return err
	})
	token := func(sa string) string {
		tr, err := k.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa, &authv1.TokenRequest{Spec: authv1.TokenRequestSpec{}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return tr.Status.Token
	}

	cfg := api.DefaultConfig()
	cfg.Address = v.Addr
	root, _ := api.NewClient(cfg)
	root.SetToken(v.Token)
	if err := root.Sys().EnableAuthWithOptions("kubernetes", &api.EnableAuthOptions{Type: "kubernetes"}); err != nil {
		t.Fatal(err)
	}
	writes := map[string]map[string]any{
		"auth/kubernetes/config": {"kubernetes_host": kube.Config.Host, "kubernetes_ca_cert": string(kube.Config.CAData), "token_reviewer_jwt": token("vault-reviewer")},
		"auth/kubernetes/role/keysync": {"bound_service_account_names": "sigil-app-keysync", "bound_service_account_namespaces": ns,
			"token_policies": "keysync", "token_ttl": "1h"},
	}
	if err := root.Sys().PutPolicy("keysync", `path "secret/data/sigil/*" { capabilities = ["read", "create", "update"] }
path "secret/metadata/sigil/*" { capabilities = ["read", "patch"] }`); err != nil {
		t.Fatal(err)
	}
	for path, body := range writes {
		if _, err := root.Logical().Write(path, body); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
	}

	jwt := filepath.Join(t.TempDir(), "token")
	os.WriteFile(jwt, []byte(token("sigil-app-keysync")), 0o600)
	st, err := vault.New(ctx, vault.Config{Mount: "secret", Path: "sigil/spiral-event-secret", Address: v.Addr,
		Auth: vault.Auth{Method: vault.MethodKubernetes, Role: "keysync", JWTFile: jwt}})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := rotate.Run(ctx, st, nil, rotate.Options{Init: true, Keyring: keyring.Options{RotatedBy: "k8s auth test"}}); err != nil {
		t.Fatal(err)
	}
	snap, err := st.Read(ctx)
	if err != nil || snap.Keyring.RotatedBy != "k8s auth test" {
		t.Fatalf("%v %+v", err, snap)
	}

	// Another account's token is refused by Vault after the TokenReview.
	os.WriteFile(jwt, []byte(token("vault-reviewer")), 0o600)
	if _, err := vault.New(ctx, vault.Config{Mount: "secret", Path: "sigil/x", Address: v.Addr,
		Auth: vault.Auth{Method: vault.MethodKubernetes, Role: "keysync", JWTFile: jwt}}); err == nil {
		t.Fatal("a token of another ServiceAccount logged in")
	}
}

func mustK(t *testing.T, f func() error) {
	t.Helper()
	if err := f(); err != nil {
		t.Fatal(err)
	}
}
