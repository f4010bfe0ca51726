package node_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sigil-dna/keysync/test/servers"
)

// kustomizeOverlay writes an overlay of manifests/base as a user would: the images, the
// app's command, the process to signal, a faster poll.
func kustomizeOverlay(t *testing.T, dir, ns string) {
	t.Helper()
	base, err := filepath.Rel(dir, filepath.Join(servers.RepoRoot(), "manifests", "base"))
	if err != nil {
		t.Fatal(err)
	}
	k := fmt.Sprintf(`apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: %s
resources:
  - %s
images:
  - { name: ghcr.io/sigil-dna/keysync, newTag: %s-kube }
  - { name: ghcr.io/sigil-dna/sigil-app, newName: ghcr.io/sigil-dna/keysync-demo, newTag: %s }
patches:
  - target: { kind: Deployment, name: sigil-app }
    patch: |-
      - { op: replace, path: /spec/template/spec/initContainers/0/args/3, value: --signal-process=demo-app }
      - { op: add, path: /spec/template/spec/initContainers/0/args/-, value: --interval=2s }
      - { op: add, path: /spec/template/spec/containers/0/args, value: [--keys, /keys/keys.json, --listen, "0.0.0.0:8080", --watch=false, --poll=0] }
`, ns, base, imageTag, imageTag)
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(k), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestTheKustomizeBaseAndTheToggleOffOnARealNode applies manifests/base through an overlay
// (kubectl apply -k) and installs the chart with keysync off: the first runs like the
// chart, the second is the app alone, as if keysync did not exist.
func TestTheKustomizeBaseAndTheToggleOffOnARealNode(t *testing.T) {
	e := startEnv(t)
	ctx := context.Background()
	const ns = "sigil-kustomize"
	store := e.namespaceWithFirstKey(t, ns)
	overlay := filepath.Join(e.work, "overlay")
	if err := os.MkdirAll(overlay, 0o755); err != nil {
		t.Fatal(err)
	}
	kustomizeOverlay(t, overlay, ns)
	e.run(t, e.kubectl, "apply", "-k", overlay)
	e.run(t, e.kubectl, "-n", ns, "rollout", "status", "deployment/sigil-app", "--timeout=3m")
	l, err := e.c.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: appLabel})
	if err != nil || len(l.Items) != 2 {
		t.Fatalf("%v pods of the base, want 2: %v", len(l.Items), err)
	}
	g := int64(1)
	for _, p := range l.Items {
		if err := onGeneration(g)(p); err != nil {
			t.Errorf("pod %s: %v", p.Name, err)
		}
	}
	e.run(t, e.keysync, "rotate", "--store", store, "--activation-delay", "5s", "--min-propagation", "4s", "--reason", "node e2e", "--initiator", "node-e2e")
	deadline := time.Now().Add(time.Minute)
	for _, p := range l.Items {
		for err := onGeneration(g + 1)(p); err != nil; err = onGeneration(g + 1)(p) {
			if time.Now().After(deadline) {
				t.Fatalf("pod %s after a rotation: %v", p.Name, err)
			}
			time.Sleep(500 * time.Millisecond)
		}
	}

	// The toggle off: the chart's app alone (here the pause program stands for it).
	const off = "sigil-off"
	chart := filepath.Join(servers.RepoRoot(), "manifests", "helm", "keysync-app")
	e.run(t, e.helm, "install", "plain", chart, "--namespace", off, "--create-namespace", "--wait", "--timeout", "3m",
		"--set", "app.image="+pauseImage, "--set", "app.replicas=2")
	l, err = e.c.Client.CoreV1().Pods(off).List(ctx, metav1.ListOptions{})
	if err != nil || len(l.Items) != 2 {
		t.Fatalf("%v pods with keysync off, want 2: %v", len(l.Items), err)
	}
	for _, p := range l.Items {
		spec := p.Spec
		if len(spec.InitContainers) != 0 || len(spec.Containers) != 1 || spec.ShareProcessNamespace != nil ||
			spec.ServiceAccountName != "default" || len(spec.Volumes) != 1 /* the default token */ {
			t.Errorf("pod %s with keysync off is not the app alone: %d init containers, %d containers, share %v, service account %q, volumes %d",
				p.Name, len(spec.InitContainers), len(spec.Containers), spec.ShareProcessNamespace, spec.ServiceAccountName, len(spec.Volumes))
		}
		if !podReady(p) {
			t.Errorf("pod %s with keysync off is not Ready", p.Name)
		}
	}
	objs := e.run(t, e.kubectl, "get", "all,serviceaccounts,roles,rolebindings,cronjobs", "-n", off, "-o", "name")
	if strings.Contains(objs, "keysync") {
		t.Errorf("keysync objects with the toggle off:\n%s", objs)
	}
}

func podReady(p corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

// namespaceWithFirstKey creates ns and its Secret store's first keyring, from outside the
// cluster as an operator would, and returns the store URL.
func (e *env) namespaceWithFirstKey(t *testing.T, ns string) string {
	t.Helper()
	if _, err := e.c.Client.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	store := "k8s://" + ns + "/" + secretName
	e.run(t, e.keysync, "rotate", "--init", "--store", store, "--reason", "first key", "--initiator", "node-e2e")
	return store
}
