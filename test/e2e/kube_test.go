package e2e

import (
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sigil-dna/keysync/store/kube"
	"github.com/sigil-dna/keysync/test/servers"
)

// TestKubeEndToEnd drives the real CLI against a real kube-apiserver: rotate into a
// Secret, a sidecar process following it by watch, an app process reloading.
func TestKubeEndToEnd(t *testing.T) {
	k, err := servers.StartKube(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer k.Stop()
	e := newEnv(t)
	url := "k8s://default/spiral-event-secret"
	rotateArgs := []string{"--store", url, "--kubeconfig", k.Kubeconfig, "--activation-delay", "1s", "--min-propagation", "0s", "--force", "--init", "--reason", "e2e"}
	record := func() {
		st, err := kube.New(kube.Config{Namespace: "default", Name: "spiral-event-secret", REST: k.Config})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		snap, err := st.Read(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		e.mu.Lock()
		e.secrets = append(e.secrets, secretsOf(snap.Keyring)...)
		e.mu.Unlock()
	}
	if out, stderr, err := e.keysync(append([]string{"rotate"}, rotateArgs...)...); err != nil || !strings.Contains(out, "generation 0 -> 1") {
		t.Fatalf("%v\n%s%s", err, out, stderr)
	}
	record()
	out := e.out("pod")
	port := freePort(t)
	appURL := fmt.Sprintf("http://127.0.0.1:%d", port)
	argv := e.podArgsFor(url, out, appURL, port, "--pid-file", filepath.Join(e.mem, "pod.pid"), "--kubeconfig", k.Kubeconfig, "--interval", "1m")
	t0 := time.Now()
	cmd, _ := e.start("pod", argv...)
	// Stop the pod before the API server: kube-apiserver's graceful shutdown otherwise
	// waits about 20 s for the sidecar's open watch.
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}()
	waitGeneration(t, appURL, 1)
	t.Logf("pod ready after %s", time.Since(t0).Round(time.Millisecond))
	for gen := int64(2); gen <= 3; gen++ {
		start := time.Now()
		if _, stderr, err := e.keysync(append([]string{"rotate"}, rotateArgs...)...); err != nil {
			t.Fatal(err, stderr)
		}
		record()
		waitGeneration(t, appURL, gen) // the poll is 1 minute: only the watch is this fast
		t.Logf("generation %d reached the app %s after the rotate command began", gen, time.Since(start).Round(time.Millisecond))
	}
	if st, _, err := e.keysync("status", "--store", url, "--kubeconfig", k.Kubeconfig); err != nil || !strings.Contains(st, "generation 3") {
		t.Fatalf("status: %v\n%s", err, st)
	}
}
