package node_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sigil-dna/keysync/test/servers"
)

// TestTheComponentOnAnAppOfAnotherUID (issue 34): the kustomize Component added to a
// user's own Deployment, in a namespace of its own, whose app runs as UID 1000. Before:
// the RBAC objects named no namespace, the 0440 keys file was unreadable to the app, and
// the docs' fix (CAP_KILL) cannot work for a non-root container. Now the pod's fsGroup
// gives the app the keys file's group, the sidecar runs as its own UID and, refused the
// signal, confirms the app's own reload by its file watch.
func TestTheComponentOnAnAppOfAnotherUID(t *testing.T) {
	e := startEnv(t)
	ctx := context.Background()
	const ns = "orders-prod"
	store := e.namespaceWithFirstKey(t, ns)

	dir := filepath.Join(e.work, "component")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	component, err := filepath.Rel(dir, filepath.Join(servers.RepoRoot(), "manifests", "components", "keysync"))
	if err != nil {
		t.Fatal(err)
	}
	// The user's Deployment, as it was before keysync: an app of UID 1000, an empty env
	// and volumeMounts list (the Component appends to them).
	deployment := fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: { name: orders }
spec:
  replicas: 1
  selector: { matchLabels: { app.kubernetes.io/name: orders } }
  template:
    metadata: { labels: { app.kubernetes.io/name: orders } }
    spec:
      containers:
        - name: app
          image: %s
          args: [--keys, /keys/keys.json, --listen, "0.0.0.0:8080"]
          env: []
          volumeMounts: []
          securityContext: { runAsNonRoot: true, runAsUser: 1000, runAsGroup: 1000, allowPrivilegeEscalation: false, capabilities: { drop: ["ALL"] } }
`, demoImage)
	kustomization := fmt.Sprintf(`apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: %s
resources: [deployment.yaml]
components: [%s]
images:
  - { name: ghcr.io/sigil-dna/keysync, newTag: %s-kube }
patches:
  - target: { kind: Deployment, name: orders }
    patch: |-
      - { op: add, path: /spec/template/spec/initContainers/0/env/-, value: { name: KEYSYNC_SIGNAL_PROCESS, value: demo-app } }
      - { op: add, path: /spec/template/spec/initContainers/0/env/-, value: { name: KEYSYNC_INTERVAL, value: 2s } }
`, ns, component, imageTag)
	for name, body := range map[string]string{"deployment.yaml": deployment, "kustomization.yaml": kustomization} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	e.run(t, e.kubectl, "apply", "-k", dir)
	e.run(t, e.kubectl, "-n", ns, "rollout", "status", "deployment/orders", "--timeout=3m")

	var rb struct {
		Subjects []struct{ Kind, Name, Namespace string } `json:"subjects"`
	}
	if err := json.Unmarshal([]byte(e.run(t, e.kubectl, "-n", ns, "get", "rolebinding", "keysync-sidecar", "-o", "json")), &rb); err != nil ||
		len(rb.Subjects) != 1 || rb.Subjects[0].Namespace != ns {
		t.Fatalf("the RoleBinding's subject: %+v %v", rb.Subjects, err)
	}
	l, err := e.c.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=orders"})
	if err != nil || len(l.Items) != 1 {
		t.Fatalf("%d pods: %v", len(l.Items), err)
	}
	p := l.Items[0]
	if err := onGeneration(1)(p); err != nil {
		t.Fatalf("the app of UID 1000 did not load the first keys: %v", err)
	}
	// Past --signal-min-age (2 s): the sidecar then tries the signal, which the kernel
	// refuses, before the app's own file watch reloads it.
	time.Sleep(3 * time.Second)
	e.run(t, e.keysync, "rotate", "--store", store, "--activation-delay", "5s", "--min-propagation", "4s", "--reason", "node e2e", "--initiator", "node-e2e")
	deadline := time.Now().Add(time.Minute)
	for err := onGeneration(2)(p); err != nil; err = onGeneration(2)(p) {
		if time.Now().After(deadline) {
			t.Fatalf("after a rotation: %v", err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	st, err := sidecarStatus(p)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(st.App.SignalError, "its own UID") {
		cmd := exec.Command(e.kubectl, "-n", ns, "logs", p.Name, "-c", "keysync")
		cmd.Env = e.cmdEnv
		logs, _ := cmd.CombinedOutput()
		t.Errorf("the sidecar does not say why it could not signal the app of another UID: %+v\nits log:\n%s", st.App, logs)
	}
}
