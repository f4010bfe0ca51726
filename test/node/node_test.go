package node_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sigil-dna/keysync/internal/statusapi"
	"github.com/sigil-dna/keysync/reload"
	"github.com/sigil-dna/keysync/test/node"
	"github.com/sigil-dna/keysync/test/servers"
)

// Image names the tests build: non-latest tags, so that IfNotPresent never pulls.
const (
	pauseImage   = "keysync.test/pause:1"
	keysyncRepo  = "ghcr.io/sigil-dna/keysync"
	imageTag     = "node-e2e"
	demoImage    = "ghcr.io/sigil-dna/keysync-demo:" + imageTag
	namespace    = "sigil"
	release      = "sigil"
	cronJob      = "sigil-app-keysync-rotate" // the app's name, app.name
	secretName   = "spiral-event-secret"
	appLabel     = "app.kubernetes.io/name=sigil-app"
	sidecarName  = "keysync"
	appContainer = "app"
	appReplicas  = 3
)

// env is one node and the tools that drive it; each test starts its own (7 s), and its
// steps build on one another.
type env struct {
	c       *node.Cluster
	dir     string
	work    string // the test's folder: HOME for helm and kubectl, the kustomize overlay
	keysync string // the host's keysync, for the operator's commands
	helm    string
	kubectl string
	cmdEnv  []string
}

// built holds the binaries of the package's tests: built once, in the folder TestMain
// removes.
var built struct {
	once sync.Once
	dir  string
	bins map[string]string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

// binaries builds, statically as the Dockerfile does, keysync (full and the kube flavor),
// the demo app and the pause program, once for every test of the package.
func binaries(t *testing.T) map[string]string {
	t.Helper()
	built.once.Do(func() { built.bins, built.err = build() })
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.bins
}

func build() (map[string]string, error) {
	dir, err := os.MkdirTemp("", "keysync-node-bins-")
	if err != nil {
		return nil, err
	}
	built.dir = dir
	tags := func(flavor string) (string, error) {
		out, err := exec.Command("sh", filepath.Join(servers.RepoRoot(), "build", "flavor-tags.sh"), flavor).Output()
		if err != nil {
			return "", fmt.Errorf("flavor-tags.sh %s: %w", flavor, err)
		}
		return strings.TrimSpace(string(out)), nil
	}
	full, err := tags("full")
	if err != nil {
		return nil, err
	}
	kube, err := tags("kube")
	if err != nil {
		return nil, err
	}
	bins := map[string][]string{
		"keysync":      {"-tags", full, "./cmd/keysync"},
		"keysync-kube": {"-tags", kube, "./cmd/keysync"},
		"keysync-demo": {"./cmd/keysync-demo"},
		"pause":        {"./test/node/pause"},
	}
	out := map[string]string{}
	for name, args := range bins {
		out[name] = filepath.Join(dir, name)
		cmd := exec.Command("go", append([]string{"build", "-trimpath", "-ldflags", "-s -w", "-o", out[name]}, args...)...)
		cmd.Dir = servers.RepoRoot()
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("building %s: %w\n%s", name, err, b)
		}
	}
	return out, nil
}

// images are what the Dockerfile describes (static binary, user 65532, entrypoint), the
// demo app under its own name, and the sandbox image containerd is configured with.
func images(bins map[string]string) []node.Image {
	return []node.Image{
		{Ref: pauseImage, Files: map[string]string{"/pause": bins["pause"]}, Entrypoint: []string{"/pause"}, User: "65535:65535"},
		{Ref: keysyncRepo + ":" + imageTag, Files: map[string]string{"/keysync": bins["keysync"]},
			Entrypoint: []string{"/keysync"}, Cmd: []string{"--help"}, User: "65532:65532"},
		{Ref: keysyncRepo + ":" + imageTag + "-kube", Files: map[string]string{"/keysync": bins["keysync-kube"]},
			Entrypoint: []string{"/keysync"}, Cmd: []string{"--help"}, User: "65532:65532"},
		{Ref: demoImage, Files: map[string]string{"/keysync-demo": bins["keysync-demo"]},
			Links: map[string]string{"/demo-app": "keysync-demo"}, Entrypoint: []string{"/demo-app"}, User: "65532:65532"},
	}
}

func startEnv(t *testing.T) *env {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("a real node needs root (containerd, runc, mounts, a bridge): run the suite as root, as CI does")
	}
	assets, err := servers.NodeAssets()
	if err != nil {
		t.Fatal(err)
	}
	helm, err := servers.HelmBinary()
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	bins := binaries(t)
	// A short folder: containerd's sockets live in it (a Unix socket path has 107 bytes).
	dir, err := os.MkdirTemp("", "ksnode-")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c, err := node.Start(ctx, node.Options{Bin: assets, Dir: dir, PauseImage: pauseImage, Images: images(bins)})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{c: c, dir: dir, work: work, keysync: bins["keysync"], helm: helm, kubectl: filepath.Join(assets, "kubectl")}
	t.Cleanup(func() {
		if t.Failed() {
			for _, name := range []string{"kubelet", "containerd"} {
				t.Logf("%s log, last lines:\n%s", name, c.Log(name, 30))
			}
		}
		if err := c.Stop(); err != nil {
			t.Errorf("stopping the node: %v", err)
		}
		if left := node.Leftovers(dir); len(left) > 0 {
			t.Errorf("the node left behind: %v", left)
		} else {
			os.RemoveAll(dir)
		}
	})
	t.Logf("node %s Ready %v after start (etcd, apiserver, controller-manager, scheduler, kube-proxy, containerd, kubelet)",
		node.NodeName, c.StartedIn.Round(time.Millisecond))
	home := filepath.Join(work, "home")
	e.cmdEnv = append(os.Environ(), "KUBECONFIG="+c.Kubeconfig, "HOME="+home, "KUBERNETES_SERVICE_HOST=",
		"PATH="+assets+string(os.PathListSeparator)+os.Getenv("PATH"))
	return e
}

// run runs a command with the cluster's kubeconfig and returns its output.
func (e *env) run(t *testing.T, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env, cmd.Dir = e.cmdEnv, servers.RepoRoot()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
	}
	return string(out)
}

func (e *env) pods(t *testing.T) []corev1.Pod {
	t.Helper()
	l, err := e.c.Client.CoreV1().Pods(namespace).List(context.Background(), metav1.ListOptions{LabelSelector: appLabel})
	if err != nil {
		t.Fatal(err)
	}
	return l.Items
}

// sidecarStatus reads a pod's sidecar /status from the host, over the pods' bridge.
func sidecarStatus(p corev1.Pod) (statusapi.Status, error) {
	var st statusapi.Status
	err := getJSON("http://"+p.Status.PodIP+":9102/status", &st)
	return st, err
}

func appStatus(p corev1.Pod) (reload.Status, error) {
	var st reload.Status
	err := getJSON("http://"+p.Status.PodIP+":8080/keysync/status", &st)
	return st, err
}

var client = &http.Client{Timeout: 5 * time.Second}

func getJSON(url string, v any) error {
	resp, err := client.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, b)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// traffic makes every app send signed events to every other app until stop, from the
// host through each app's /send: the apps sign and verify, the host only asks.
type traffic struct {
	sent, failed atomic.Int64
	mu           sync.Mutex
	first        string
	stop         chan struct{}
	done         chan struct{}
}

func startTraffic(ips []string) *traffic {
	tr := &traffic{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(tr.done)
		for i := 0; ; i++ {
			select {
			case <-tr.stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			from, to := ips[i%len(ips)], ips[(i+1+i/len(ips))%len(ips)]
			if from == to {
				continue
			}
			var res struct {
				Signed, Verified bool
				Error            string
			}
			url := fmt.Sprintf("http://%s:8080/send?to=http://%s:8080", from, to)
			resp, err := client.Post(url, "application/octet-stream", bytes.NewReader(fmt.Appendf(nil, "event %d", i)))
			if err == nil {
				err = json.NewDecoder(resp.Body).Decode(&res)
				resp.Body.Close()
			}
			tr.sent.Add(1)
			if err != nil || !res.Verified {
				tr.failed.Add(1)
				tr.mu.Lock()
				if tr.first == "" {
					tr.first = fmt.Sprintf("%s → %s: %v %s", from, to, err, res.Error)
				}
				tr.mu.Unlock()
			}
		}
	}()
	return tr
}

// none ends the traffic and fails the test unless events flowed and none failed.
func (tr *traffic) none(t *testing.T, what string) {
	t.Helper()
	sent, failed, first := tr.end()
	t.Logf("%s: %d events sent, %d failed", what, sent, failed)
	if sent == 0 || failed != 0 {
		t.Errorf("%s: %d of %d events failed (first: %s)", what, failed, sent, first)
	}
}

func (tr *traffic) end() (sent, failed int64, first string) {
	close(tr.stop)
	<-tr.done
	return tr.sent.Load(), tr.failed.Load(), tr.first
}

// waitAll waits until all appReplicas app pods exist and f holds for each, or fails with
// the last reason.
func (e *env) waitAll(t *testing.T, limit time.Duration, what string, f func(corev1.Pod) error) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		var last error
		pods := e.pods(t)
		if len(pods) != appReplicas {
			last = fmt.Errorf("%d app pods, want %d", len(pods), appReplicas)
		}
		for _, p := range pods {
			if last != nil {
				break
			}
			if err := f(p); err != nil {
				last = fmt.Errorf("pod %s: %w", p.Name, err)
			}
		}
		if last == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %v: %v", what, limit, last)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func container(statuses []corev1.ContainerStatus, name string) (corev1.ContainerStatus, bool) {
	for _, s := range statuses {
		if s.Name == name {
			return s, true
		}
	}
	return corev1.ContainerStatus{}, false
}

// onGeneration holds when the pod's sidecar wrote generation g and its app confirmed it.
func onGeneration(g int64) func(corev1.Pod) error {
	return func(p corev1.Pod) error {
		st, err := sidecarStatus(p)
		if err != nil {
			return err
		}
		if st.Generation != g || st.App.Generation != g || !st.App.Confirmed {
			return fmt.Errorf("file generation %d, app generation %d confirmed %v, want %d", st.Generation, st.App.Generation, st.App.Confirmed, g)
		}
		return nil
	}
}

func (e *env) secretGeneration(t *testing.T) int64 {
	t.Helper()
	out := e.run(t, e.keysync, "status", "--store", "k8s://"+namespace+"/"+secretName, "-o", "json")
	var st struct {
		Generation int64 `json:"generation"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("keysync status -o json: %v\n%s", err, out)
	}
	return st.Generation
}

var emergencyFailures atomic.Int64

// isTmpfs reports whether dir is a tmpfs mount (an emptyDir with medium Memory).
func isTmpfs(t *testing.T, dir string) bool {
	var fs syscall.Statfs_t
	if err := syscall.Statfs(dir, &fs); err != nil {
		t.Fatal(err)
	}
	return fs.Type == 0x01021994 // TMPFS_MAGIC
}

func podIPs(pods []corev1.Pod) []string {
	var ips []string
	for _, p := range pods {
		ips = append(ips, p.Status.PodIP)
	}
	return ips
}

// verifications sums an app's own counts: good ones and every other result.
func verifications(st reload.Status) (ok, failed uint64) {
	for _, c := range st.Usage.Verifications {
		if c.Result == "ok" {
			ok += c.N
		} else {
			failed += c.N
		}
	}
	return ok, failed
}

// TestTheChartOnARealNode installs the shipped chart with keysync on, 3 replicas of the demo
// app on the Kubernetes store, on a node of real pods, and runs what operators run through
// it: the rotation CronJob (fleet-confirmed), an emergency rotation, a rollback, a sidecar
// and an app container stopped behind the kubelet's back.
func TestTheChartOnARealNode(t *testing.T) {
	e := startEnv(t)
	ctx := context.Background()
	if _, err := e.c.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	store := "k8s://" + namespace + "/" + secretName
	chart := filepath.Join(servers.RepoRoot(), "manifests", "helm", "keysync-app")
	// The app reloads on the sidecar's signal alone (no file watch, no poll), so that each
	// reload below is a signal that crossed containers.
	e.run(t, e.helm, "install", release, chart, "--namespace", namespace,
		"--set", "app.image="+demoImage, "--set", fmt.Sprintf("app.replicas=%d", appReplicas),
		"--set-json", `app.args=["--keys","/keys/keys.json","--listen","0.0.0.0:8080","--watch=false","--poll=0"]`,
		"--set", "keysync.enabled=true", "--set", "keysync.image.tag="+imageTag,
		"--set", "keysync.processName=demo-app", "--set", "keysync.interval=2s",
		// Every Job the test starts rotates: not the CronJob's monthly --if-older-than.
		"--set", "keysync.rotation.enabled=true", "--set", "keysync.rotation.ifOlderThan=", "--set", "keysync.rotation.confirmTimeout=3m",
		"--set", "keysync.rotation.maxClockSkew=1s")

	t.Run("without keys no app container starts and no pod is Ready", func(t *testing.T) {
		// The store holds nothing yet: each sidecar runs but its startup probe (/readyz)
		// fails, so the kubelet starts no app container.
		e.waitAll(t, 2*time.Minute, "every sidecar running, waiting for keys", func(p corev1.Pod) error {
			sc, ok := container(p.Status.InitContainerStatuses, sidecarName)
			if !ok || sc.State.Running == nil {
				return fmt.Errorf("sidecar not running yet: %+v", sc.State)
			}
			return nil
		})
		time.Sleep(5 * time.Second) // five startup probes
		pods := e.pods(t)
		if len(pods) != appReplicas {
			t.Fatalf("%d app pods, want %d", len(pods), appReplicas)
		}
		for _, p := range pods {
			sc, _ := container(p.Status.InitContainerStatuses, sidecarName)
			if sc.Started != nil && *sc.Started || sc.Ready {
				t.Errorf("pod %s: a sidecar without keys counts as started %v / ready %v", p.Name, sc.Started, sc.Ready)
			}
			if app, ok := container(p.Status.ContainerStatuses, appContainer); ok && (app.State.Running != nil || app.Ready) {
				t.Errorf("pod %s: the app started before its sidecar had keys: %+v", p.Name, app.State)
			}
			for _, c := range p.Status.Conditions {
				if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
					t.Errorf("pod %s is Ready without keys", p.Name)
				}
			}
		}
	})

	// The operator's first key, from outside the cluster.
	e.run(t, e.keysync, "rotate", "--init", "--store", store, "--reason", "first key", "--initiator", "node-e2e")
	g := e.secretGeneration(t)
	e.run(t, e.kubectl, "-n", namespace, "rollout", "status", "deployment/sigil-app", "--timeout=3m")

	pods := e.pods(t)
	if len(pods) != appReplicas {
		t.Fatalf("%d app pods, want %d", len(pods), appReplicas)
	}
	t.Run("every pod starts after its sidecar's first write and is Ready", func(t *testing.T) {
		for _, p := range pods {
			sc, ok := container(p.Status.InitContainerStatuses, sidecarName)
			if !ok || sc.Started == nil || !*sc.Started || !sc.Ready || sc.State.Running == nil {
				t.Fatalf("pod %s: the sidecar is not a started, ready native sidecar: %+v", p.Name, sc)
			}
			app, ok := container(p.Status.ContainerStatuses, appContainer)
			if !ok || !app.Ready || app.State.Running == nil {
				t.Fatalf("pod %s: the app is not running and ready: %+v", p.Name, app)
			}
			st, err := sidecarStatus(p)
			if err != nil {
				t.Fatal(err)
			}
			// The kubelet reports seconds: the app started in or after the second of the
			// sidecar's first write, and after the sidecar itself.
			if app.State.Running.StartedAt.Time.Before(st.WrittenAt.Truncate(time.Second)) ||
				app.State.Running.StartedAt.Time.Before(sc.State.Running.StartedAt.Time) {
				t.Errorf("pod %s: app started %v, sidecar started %v and first wrote %v", p.Name,
					app.State.Running.StartedAt, sc.State.Running.StartedAt, st.WrittenAt)
			}
			if app.RestartCount != 0 {
				t.Errorf("pod %s: the app restarted %d times", p.Name, app.RestartCount)
			}
			ready := false
			for _, c := range p.Status.Conditions {
				ready = ready || c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue
			}
			if !ready || st.Generation != g || !st.Ready {
				t.Errorf("pod %s: Ready %v, sidecar ready %v on generation %d (store: %d)", p.Name, ready, st.Ready, st.Generation, g)
			}
			// The app, another container, read the sidecar's file: 0440, group fsGroup.
			as, err := appStatus(p)
			if err != nil || as.Generation != g {
				t.Errorf("pod %s: app status %+v, %v", p.Name, as, err)
			}
			keys := filepath.Join(e.dir, "kubelet", "pods", string(p.UID), "volumes", "kubernetes.io~empty-dir", "keysync-keys", "keys.json")
			fi, err := os.Stat(keys)
			if err != nil {
				t.Fatal(err)
			}
			if st := fi.Sys().(*syscall.Stat_t); fi.Mode().Perm() != 0o440 || st.Gid != 65532 {
				t.Errorf("pod %s: keys file mode %v group %d, want 0440 and the pod's fsGroup 65532", p.Name, fi.Mode().Perm(), st.Gid)
			}
			if !isTmpfs(t, filepath.Dir(keys)) {
				t.Errorf("pod %s: the keys volume is not in memory", p.Name)
			}
		}
	})

	// Issue 34: NOTES.txt said `kubectl port-forward … && curl …`, which blocks, and
	// port-forward reaches loopback where the sidecar did not listen.
	t.Run("NOTES.txt's check runs as written", func(t *testing.T) {
		notes := e.run(t, e.helm, "get", "notes", release, "--namespace", namespace)
		_, check, ok := strings.Cut(notes, "Check it:")
		if !ok {
			t.Fatalf("no check in the notes:\n%s", notes)
		}
		check, _, _ = strings.Cut(check, "\n")
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "sh", "-c", check)
		cmd.Env, cmd.Dir = e.cmdEnv, servers.RepoRoot()
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "1 members: 1 answered, 1 ready, 1 apps confirmed") {
			t.Fatalf("%s: %v\n%s", check, err, out)
		}
	})

	ips := podIPs(pods)
	t.Run("the rotation CronJob, fleet-confirmed, under traffic", func(t *testing.T) {
		tr := startTraffic(ips)
		e.run(t, e.kubectl, "-n", namespace, "create", "job", "rotate-1", "--from=cronjob/"+cronJob)
		e.run(t, e.kubectl, "-n", namespace, "wait", "--for=condition=complete", "job/rotate-1", "--timeout=5m")
		g2 := e.secretGeneration(t)
		if g2 <= g {
			t.Fatalf("generation %d after the rotation Job, was %d", g2, g)
		}
		e.waitAll(t, time.Minute, "every pod on the promoted key", onGeneration(g2))
		time.Sleep(2 * time.Second) // traffic signed with the new key everywhere
		tr.none(t, "rotation Job")
		g = g2
	})

	t.Run("a sidecar stopped behind the kubelet's back restarts; the app keeps its keys", func(t *testing.T) {
		p := pods[0]
		tr := startTraffic(ips)
		e.stopAndWaitRestart(t, p, sidecarName)
		as, err := appStatus(p)
		if err != nil || as.Generation != g {
			t.Errorf("the app lost its keys while the sidecar was down: %+v %v", as, err)
		}
		tr.none(t, "sidecar restart")
	})

	t.Run("an app container restarted is found and signalled again", func(t *testing.T) {
		p := pods[1]
		e.stopAndWaitRestart(t, p, appContainer)
		// A staged rollback under traffic: the restarted app must be signalled to reload.
		tr := startTraffic(ips)
		e.run(t, e.keysync, "rollback", "--store", store, "--activation-delay", "10s", "--min-propagation", "8s", "--reason", "node e2e", "--initiator", "node-e2e")
		g2 := e.secretGeneration(t)
		e.waitAll(t, time.Minute, "every pod on the rollback", onGeneration(g2))
		as, err := appStatus(p)
		if err != nil || as.Generation != g2 || as.Reloads < 2 {
			t.Errorf("the restarted app did not reload on the signal: %+v %v", as, err)
		}
		// Issue 34: a retried rollback withdrew the key the first one restored.
		again := exec.Command(e.keysync, "rollback", "--store", store, "--activation-delay", "10s", "--min-propagation", "8s", "--reason", "node e2e, again", "--initiator", "node-e2e")
		again.Env = e.cmdEnv
		if out, err := again.CombinedOutput(); err == nil || !strings.Contains(string(out), "restored by the last rollback") || e.secretGeneration(t) != g2 {
			t.Errorf("a second rollback while the first's key is pending: %v\n%s", err, out)
		}
		time.Sleep(12 * time.Second) // past the activation: the old key signs again everywhere
		tr.none(t, "rollback")
		g = g2
	})

	t.Run("an emergency rotation reaches every pod", func(t *testing.T) {
		// Emergency drops every other key at once, by design: events in flight while the
		// pods load it may fail, and are counted; once every pod holds it, none does.
		during := startTraffic(ips)
		e.run(t, e.keysync, "rotate", "--emergency", "--store", store, "--reason", "node e2e emergency", "--initiator", "node-e2e")
		g2 := e.secretGeneration(t)
		e.waitAll(t, time.Minute, "every pod on the emergency key", onGeneration(g2))
		sent, failed, first := during.end()
		t.Logf("emergency rotation: %d events sent while it propagated, %d failed (first: %s)", sent, failed, first)
		emergencyFailures.Store(failed)
		tr := startTraffic(ips)
		time.Sleep(3 * time.Second)
		tr.none(t, "after the emergency rotation reached every pod")
	})

	t.Run("the apps' own counters", func(t *testing.T) {
		var total, totalFailed uint64
		for _, p := range e.pods(t) {
			as, err := appStatus(p)
			if err != nil {
				t.Fatal(err)
			}
			ok, failed := verifications(as)
			total += ok
			totalFailed += failed
			t.Logf("pod %s: %d verified, %d failed, %d reloads", p.Name, ok, failed, as.Reloads)
		}
		// Only the emergency rotation may have refused events (those the traffic saw fail).
		if total == 0 || totalFailed > uint64(emergencyFailures.Load()) {
			t.Errorf("apps verified %d events and refused %d; the traffic saw %d fail during the emergency rotation",
				total, totalFailed, emergencyFailures.Load())
		}
	})
}

// stopAndWaitRestart stops a container of pod p through the CRI, as `crictl stop` would
// behind the kubelet's back, and waits until the kubelet has restarted it and it is ready
// again.
func (e *env) stopAndWaitRestart(t *testing.T, p corev1.Pod, name string) {
	t.Helper()
	ctx := context.Background()
	cri, err := node.DialCRI(e.c.Socket)
	if err != nil {
		t.Fatal(err)
	}
	defer cri.Close()
	id, err := cri.ContainerID(ctx, namespace, p.Name, name)
	if err != nil {
		t.Fatal(err)
	}
	if err := cri.StopContainer(ctx, id, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	e.waitAll(t, 2*time.Minute, name+" restarted and ready", func(q corev1.Pod) error {
		if q.Name != p.Name {
			return nil
		}
		st, _ := container(append(q.Status.InitContainerStatuses, q.Status.ContainerStatuses...), name)
		if st.RestartCount < 1 || !st.Ready {
			return fmt.Errorf("%s restarts %d ready %v", name, st.RestartCount, st.Ready)
		}
		return nil
	})
}
