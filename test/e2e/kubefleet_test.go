package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	authv1 "k8s.io/api/authentication/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"github.com/sigil-dna/keysync/harness/wait"
	"github.com/sigil-dna/keysync/keyring"
	"github.com/sigil-dna/keysync/store/kube"
	"github.com/sigil-dna/keysync/store/storetest"
	"github.com/sigil-dna/keysync/test/servers"
)

// kubeFleet is a namespace of a real kube-apiserver whose pods are objects created
// through the API, each with status.podIP set to a loopback address where a real sidecar
// process and a real app process listen. Each sidecar reaches the API server through a
// proxy of its own, which cut makes unreachable (its store reads fail).
type kubeFleet struct {
	t          *testing.T
	e          *env
	k          *servers.Kube
	admin      kubernetes.Interface
	ns, secret string
	port       int // every sidecar's status port, at its own pod IP
	mu         sync.Mutex
	pods       map[string]*kubePod
	nextIP     int
}

type kubePod struct {
	name, ip, appURL string
	proxy            *storetest.Proxy
}

const fleetLabel = "app.kubernetes.io/name=sigil-app"

func newKubeFleet(t *testing.T, e *env, k *servers.Kube) *kubeFleet {
	f := &kubeFleet{t: t, e: e, k: k, admin: kubernetes.NewForConfigOrDie(k.Config), ns: "sigil", secret: "spiral-event-secret",
		pods: map[string]*kubePod{}, nextIP: 10}
	if _, err := f.admin.CoreV1().Namespaces().Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: f.ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// A port free at the pod IPs the test uses.
	for range 100 {
		p := freePort(t)
		ok := true
		for i := 10; i < 20; i++ {
			ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.%d:%d", i, p))
			if err != nil {
				ok = false
				break
			}
			ln.Close()
		}
		if ok {
			f.port = p
			break
		}
	}
	return f
}

// addPod creates a pod object, starts its sidecar and app processes on the next loopback
// IP and sets the pod's status as the kubelet would: running, sidecar started.
func (f *kubeFleet) addPod(name string, running bool) *kubePod {
	t := f.t
	f.mu.Lock()
	ip := fmt.Sprintf("127.0.0.%d", f.nextIP)
	f.nextIP++
	f.mu.Unlock()
	p := &kubePod{name: name, ip: ip, proxy: storetest.NewProxy(t, strings.Trim(strings.TrimPrefix(f.k.Config.Host, "https://"), "/"))}
	rc := rest.CopyConfig(f.k.Config)
	rc.Host = "https://" + p.proxy.Addr()
	kc := filepath.Join(f.e.dir, name+".kubeconfig")
	if err := servers.WriteKubeconfig(kc, rc); err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app.kubernetes.io/name": "sigil-app"}},
		Spec: corev1.PodSpec{
			InitContainers: []corev1.Container{{Name: "keysync", Image: "ghcr.io/sigil-dna/keysync:test", RestartPolicy: ptr(corev1.ContainerRestartPolicyAlways)}},
			Containers:     []corev1.Container{{Name: "app", Image: "ghcr.io/sigil-dna/sigil-app:test"}},
		},
	}
	pods := f.admin.CoreV1().Pods(f.ns)
	created, err := pods.Create(t.Context(), pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !running {
		return p // no IP, no sidecar: as a pod not started yet
	}
	out := f.e.out(name)
	appPort := freePort(t)
	p.appURL = fmt.Sprintf("http://%s:%d", ip, appPort)
	app := []string{f.e.app, "--keys", filepath.Join(out, "keys.json"), "--listen", net.JoinHostPort(ip, strconv.Itoa(appPort)), "--poll", "0"}
	sc := []string{keysyncBin, "sidecar", "--store", "k8s://" + f.ns + "/" + f.secret, "--kubeconfig", kc, "--out", out,
		"--interval", "300ms", "--backoff-cap", "500ms", "--listen", net.JoinHostPort(ip, strconv.Itoa(f.port)),
		"--confirm-url", p.appURL + "/keysync/status", "--log-format", "json"}
	f.e.start(name, append(append(append([]string{demoBin, "pod"}, app...), "---"), sc...)...)
	created.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}},
		InitContainerStatuses: []corev1.ContainerStatus{{Name: "keysync", Ready: true, Started: ptr(true),
			State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.Now()}}}}}
	if _, err := pods.UpdateStatus(t.Context(), created, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	f.pods[name] = p
	f.mu.Unlock()
	return p
}

func ptr[T any](v T) *T { return &v }

// rotatorKubeconfig is the shipped rotation ServiceAccount's, by TokenRequest.
func (f *kubeFleet) rotatorKubeconfig() (string, *rest.Config) {
	t := f.t
	tr, err := f.admin.CoreV1().ServiceAccounts(f.ns).CreateToken(t.Context(), "keysync-rotate",
		&authv1.TokenRequest{Spec: authv1.TokenRequestSpec{ExpirationSeconds: ptr(int64(3600))}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rc := rest.AnonymousClientConfig(f.k.Config)
	rc.BearerToken = tr.Status.Token
	path := filepath.Join(f.e.dir, "rotator.kubeconfig")
	if err := servers.WriteKubeconfig(path, rc); err != nil {
		t.Fatal(err)
	}
	return path, rc
}

func (f *kubeFleet) fleetURL() string {
	return fmt.Sprintf("k8s://%s?selector=%s&port=%d", f.ns, fleetLabel, f.port)
}

// record adds what the Secret holds, if anything, to the output scan.
func (f *kubeFleet) record() {
	st, _ := kube.New(kube.Config{Namespace: f.ns, Name: f.secret, REST: f.k.Config})
	defer st.Close()
	if snap, err := st.Read(f.t.Context()); err == nil {
		f.e.mu.Lock()
		f.e.secrets = append(f.e.secrets, secretsOf(snap.Keyring)...)
		f.e.mu.Unlock()
	}
}

func (f *kubeFleet) storeKeyring() *keyring.Keyring {
	st, err := kube.New(kube.Config{Namespace: f.ns, Name: f.secret, REST: f.k.Config})
	if err != nil {
		f.t.Fatal(err)
	}
	defer st.Close()
	snap, err := st.Read(f.t.Context())
	if err != nil {
		f.t.Fatal(err)
	}
	f.e.mu.Lock()
	f.e.secrets = append(f.e.secrets, secretsOf(snap.Keyring)...)
	f.e.mu.Unlock()
	return snap.Keyring
}

// TestFleetConfirmedRotationOnKubernetes runs the gate the way the shipped CronJob does,
// against a real kube-apiserver, with the shipped rotation Role through a TokenRequest
// token, over pods whose sidecars and apps are real processes.
func TestFleetConfirmedRotationOnKubernetes(t *testing.T) {
	k, err := servers.StartKube(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer k.Stop()
	e := newEnv(t)
	f := newKubeFleet(t, e, k)
	apply := exec.Command("bash", "-c", "kubectl kustomize ../../manifests/rotation | kubectl apply -n "+f.ns+" -f -")
	apply.Env = k.CommandEnv(t.TempDir())
	if out, err := apply.CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	kc, rc := f.rotatorKubeconfig()
	storeURL := "k8s://" + f.ns + "/" + f.secret
	rotate := func(extra ...string) (string, string, error) {
		args := append([]string{"rotate", "--store", storeURL, "--kubeconfig", kc, "--confirm-fleet", f.fleetURL(),
			"--max-clock-skew", "1s", "--verify-window", "1m", "--reason", "gated on kubernetes", "--log-format", "json"}, extra...)
		out, stderr, err := e.keysync(args...)
		f.record()
		return out, stderr, err
	}
	// Stop the pods before the API server: its graceful shutdown waits for open watches.
	defer func() {
		for _, p := range f.pods {
			p.proxy.Cut()
		}
	}()

	t.Run("the rotator's account lists pods and can do nothing more with them", func(t *testing.T) {
		c := kubernetes.NewForConfigOrDie(rc)
		pods := c.CoreV1().Pods(f.ns)
		if _, err := pods.List(t.Context(), metav1.ListOptions{LabelSelector: fleetLabel}); err != nil {
			t.Fatalf("list: %v", err)
		}
		forbidden := map[string]func() error{
			"get":    func() error { _, err := pods.Get(t.Context(), "x", metav1.GetOptions{}); return err },
			"watch":  func() error { _, err := pods.Watch(t.Context(), metav1.ListOptions{}); return err },
			"delete": func() error { return pods.Delete(t.Context(), "x", metav1.DeleteOptions{}) },
			"create": func() error {
				_, err := pods.Create(t.Context(), &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "x"}}, metav1.CreateOptions{})
				return err
			},
			"exec": func() error {
				return c.CoreV1().RESTClient().Post().Namespace(f.ns).Resource("pods").Name("x").SubResource("exec").Do(t.Context()).Error()
			},
		}
		for verb, do := range forbidden {
			if err := do(); !apierrors.IsForbidden(err) {
				t.Errorf("%s pods: err = %v, want Forbidden", verb, err)
			}
		}
	})

	// Issue 29: --initiator defaulted to the OS user ("root@vm" in every container), in a
	// pod now its ServiceAccount, from a token the real API server issued.
	t.Run("the initiator defaults to the pod's ServiceAccount", func(t *testing.T) {
		tr, err := f.admin.CoreV1().ServiceAccounts(f.ns).CreateToken(t.Context(), "keysync-rotate",
			&authv1.TokenRequest{Spec: authv1.TokenRequestSpec{ExpirationSeconds: ptr(int64(600))}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "token"), []byte(tr.Status.Token), 0o600); err != nil {
			t.Fatal(err)
		}
		t.Setenv("KEYSYNC_SERVICEACCOUNT_DIR", dir)
		store := "file://" + filepath.Join(t.TempDir(), "keys.json")
		out, stderr, err := e.keysync("rotate", "--store", store, "--init", "--dry-run", "-o", "json")
		host, _ := os.Hostname()
		if err != nil || !strings.Contains(out, `"rotated_by": "system:serviceaccount:`+f.ns+`:keysync-rotate@`+host+`"`) {
			t.Fatalf("%v\n%s%s", err, out, stderr)
		}
		if strings.Contains(out+stderr, tr.Status.Token[:40]) {
			t.Fatal("the token reached the output")
		}
	})

	t.Run("a selector matching no pod writes nothing", func(t *testing.T) {
		_, stderr, err := rotate()
		if exitCode(err) != 1 || !strings.Contains(stderr, "the fleet has no member") || !strings.Contains(stderr, "nothing was written") {
			t.Fatalf("exit %d\n%s", exitCode(err), stderr)
		}
	})

	// The first keyring, then three pods following it.
	// The Secret is created by its owner (the rotator may only get and update it).
	if out, stderr, err := e.keysync("rotate", "--store", storeURL, "--kubeconfig", k.Kubeconfig, "--init", "--reason", "first"); err != nil {
		t.Fatalf("%v\n%s%s", err, out, stderr)
	}
	for _, name := range []string{"pod-a", "pod-b", "pod-c"} {
		p := f.addPod(name, true)
		waitGeneration(t, p.appURL, 1)
	}

	t.Run("an API server that cannot be reached writes nothing", func(t *testing.T) {
		bad := rest.CopyConfig(rc)
		bad.Host = "https://127.0.0.1:1"
		path := filepath.Join(e.dir, "dead.kubeconfig")
		servers.WriteKubeconfig(path, bad)
		before := f.storeKeyring()
		_, stderr, err := e.keysync("rotate", "--store", storeURL, "--kubeconfig", path, "--confirm-fleet", f.fleetURL(), "--force", "--reason", "e2e")
		if exitCode(err) != 1 || !strings.Contains(stderr, "listing pods") || !strings.Contains(stderr, "nothing was written") ||
			f.storeKeyring().Generation != before.Generation {
			t.Fatalf("exit %d, generation %d -> %d\n%s", exitCode(err), before.Generation, f.storeKeyring().Generation, stderr)
		}
	})

	t.Run("the gate waits for a pod that cannot read the store and promotes once it recovers", func(t *testing.T) {
		c := f.pods["pod-c"]
		restore := c.proxy.Cut()
		done := make(chan error, 1)
		var stderr string
		go func() {
			var err error
			_, stderr, err = rotate("--confirm-timeout", "1m")
			done <- err
		}()
		wait.For(t, "the held key in the store", 20*time.Second, func() bool { _, ok := f.storeKeyring().HeldKey(); return ok })
		time.Sleep(2 * time.Second)
		select {
		case err := <-done:
			t.Fatalf("promoted while pod-c could not read the store: %v\n%s", err, stderr)
		default:
		}
		restore()
		if err := <-done; err != nil {
			t.Fatalf("%v\n%s", err, stderr)
		}
		if !strings.Contains(stderr, f.ns+"/pod-c (store read failing for") {
			t.Fatalf("the progress never named pod-c and why:\n%s", stderr)
		}
		if _, held := f.storeKeyring().HeldKey(); held {
			t.Fatal("not promoted")
		}
	})

	t.Run("a timeout leaves the key held, exits 1 and names the pod", func(t *testing.T) {
		restore := f.pods["pod-b"].proxy.Cut()
		defer restore()
		out, stderr, err := rotate("--confirm-timeout", "3s", "--force")
		if exitCode(err) != 1 || !strings.Contains(stderr, f.ns+"/pod-b") || !strings.Contains(out, "held, not promoted") {
			t.Fatalf("exit %d\n%s%s", exitCode(err), out, stderr)
		}
		if _, held := f.storeKeyring().HeldKey(); !held {
			t.Fatal("the held key did not stay")
		}
		restore()
		out, stderr, err = e.keysync("promote", "--store", storeURL, "--kubeconfig", kc, "--confirm-fleet", f.fleetURL(), "--max-clock-skew", "1s")
		if err != nil || !strings.Contains(out, "3/3 members hold") {
			t.Fatalf("promote: %v\n%s%s", err, out, stderr)
		}
		f.storeKeyring()
		// The gated rotations left their Events on the Secret, through the shipped Role.
		evs, err := f.admin.CoreV1().Events(f.ns).List(t.Context(), metav1.ListOptions{FieldSelector: "involvedObject.name=" + f.secret})
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]string{}
		for _, ev := range evs.Items {
			seen[ev.Reason] = ev.Type + ": " + ev.Message
		}
		for reason, typ := range map[string]string{"KeyHeld": "Normal", "KeyPromoted": "Normal", "FleetGateTimedOut": "Warning"} {
			if !strings.HasPrefix(seen[reason], typ+": ") {
				t.Errorf("no %s %s event on the Secret: %v", typ, reason, seen)
			}
		}
		if !strings.Contains(seen["FleetGateTimedOut"], "lagging") {
			t.Errorf("the gate's timeout event names no laggard: %s", seen["FleetGateTimedOut"])
		}
	})

	t.Run("a pod deleted during the gate is dropped, a pod added is waited for, a pod not started is skipped", func(t *testing.T) {
		// pod-c cannot read the store and is deleted during the gate: it is dropped.
		cutC := f.pods["pod-c"].proxy.Cut()
		defer cutC()
		f.addPod("pod-pending", false) // no IP, sidecar not started: listed, not waited for
		done := make(chan error, 1)
		var out, stderr string
		go func() {
			var err error
			out, stderr, err = rotate("--confirm-timeout", "1m", "--force")
			done <- err
		}()
		wait.For(t, "the held key in the store", 20*time.Second, func() bool { _, ok := f.storeKeyring().HeldKey(); return ok })
		// pod-d appears during the gate and cannot read the store yet.
		d := f.addPod("pod-d", true)
		restoreD := d.proxy.Cut()
		time.Sleep(time.Second)
		if err := f.admin.CoreV1().Pods(f.ns).Delete(context.Background(), "pod-c", metav1.DeleteOptions{GracePeriodSeconds: ptr(int64(0))}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Second)
		select {
		case err := <-done:
			t.Fatalf("promoted before pod-d held the key: %v\n%s", err, stderr)
		default:
		}
		restoreD()
		if err := <-done; err != nil {
			t.Fatalf("%v\n%s%s", err, out, stderr)
		}
		if !strings.Contains(stderr, f.ns+"/pod-d (") || !strings.Contains(out, "skipped:      "+f.ns+"/pod-pending") ||
			!strings.Contains(out, "deleted:      "+f.ns+"/pod-c") || !strings.Contains(out, "3/3 members hold") {
			t.Fatalf("members, laggards, skipped:\n%s%s", out, stderr)
		}
	})

	// Issue 29: one gate that timed out wedged every later scheduled run ("a key is held")
	// until a human acted. The shipped CronJob's own arguments, run as its Jobs run them.
	t.Run("the CronJob's retries and next month's run resume a key left held", func(t *testing.T) {
		args := cronJobArgs(t, f.ns, f.port)
		args = append(args, "--kubeconfig", kc)
		restore := f.pods["pod-a"].proxy.Cut()
		defer restore()
		before := f.storeKeyring()
		// A "month" after the last rotation.
		signing, _ := before.SigningKey(time.Now().Add(time.Hour))
		time.Sleep(time.Until(signing.NotBefore.Add(2 * time.Second)))
		month1 := runJob(t, e, f, args)
		if month1.succeeded {
			t.Fatalf("the first month's job succeeded although pod-a cannot read the store:\n%s", month1.log)
		}
		heldKey, held := f.storeKeyring().HeldKey()
		if !held {
			t.Fatalf("no key held after a gate that timed out:\n%s", month1.log)
		}
		// Each retry resumed the same held key (none wrote a key of its own).
		if n := strings.Count(month1.log, `"event":"rotation_resumed"`); n != month1.attempts-1 || len(f.storeKeyring().Keys) != len(before.Keys)+1 {
			t.Fatalf("%d resumes in %d attempts, keys %v -> %v:\n%s", n, month1.attempts, before.IDs(), f.storeKeyring().IDs(), month1.log)
		}
		restore()
		time.Sleep(2 * time.Second) // a month: the held key was not signing, it does not count
		month2 := runJob(t, e, f, args)
		if !month2.succeeded || month2.attempts != 1 {
			t.Fatalf("next month's job: %d attempts, succeeded %v:\n%s", month2.attempts, month2.succeeded, month2.log)
		}
		after := f.storeKeyring()
		if _, still := after.HeldKey(); still {
			t.Fatal("still held")
		}
		if k, _ := after.SigningKey(time.Now().Add(time.Minute)); k.ID != heldKey.ID {
			t.Fatalf("signing %s, want the resumed key %s", k.ID, heldKey.ID)
		}
		if !strings.Contains(month2.log, `"resumed_key_id":"`+heldKey.ID+`"`) || !strings.Contains(month2.log, `"held_by":"cronjob/keysync-rotate"`) {
			t.Fatalf("the job log's audit record does not say what was resumed:\n%s", month2.log)
		}
		// A rerun of the finished job (a retry, a human re-running it) rotates nothing.
		rerun := runJob(t, e, f, args)
		if !rerun.succeeded || !strings.Contains(rerun.log, `"event":"rotation_not_due"`) || f.storeKeyring().Generation != after.Generation {
			t.Fatalf("a rerun after the rotation: generation %d -> %d:\n%s", after.Generation, f.storeKeyring().Generation, rerun.log)
		}
		// The job logs hold one intent record per store write: the held write and the promotion.
		all := month1.log + month2.log + rerun.log
		if i, w := strings.Count(all, `"event":"rotation_intent"`), f.storeKeyring().Generation-before.Generation; int64(i) != w {
			t.Fatalf("%d intent records for %d store writes:\n%s", i, w, all)
		}
		// The next subtests promote with a smaller clock-skew margin than the CronJob's.
		promoted, _ := after.SigningKey(time.Now().Add(time.Hour))
		time.Sleep(time.Until(promoted.NotBefore))
	})

	// Issue 28: a pod whose keysync container crash-loops was "skipped" and the key
	// promoted past it, while its app still verified with its old keys file.
	t.Run("a pod whose sidecar crash-loops is waited for and named; once deleted it is dropped", func(t *testing.T) {
		pods := f.admin.CoreV1().Pods(f.ns)
		crashLoop := func(name string) {
			t.Helper()
			p, err := pods.Get(t.Context(), name, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			p.Status.InitContainerStatuses = []corev1.ContainerStatus{{Name: "keysync", RestartCount: 4, Started: ptr(false),
				State:                corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff", Message: "back-off 1m20s restarting failed container"}},
				LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Reason: "OOMKilled", ExitCode: 137}}}}
			if _, err := pods.UpdateStatus(t.Context(), p, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		// Before anything is written: the check refuses, naming the pod and why.
		crashLoop("pod-b")
		before := f.storeKeyring()
		_, stderr, err := rotate("--confirm-timeout", "1m", "--force")
		if exitCode(err) != 1 || !strings.Contains(stderr, "nothing was written") ||
			!strings.Contains(stderr, f.ns+"/pod-b: sidecar container keysync is not running (CrashLoopBackOff, last exit OOMKilled (137), 4 restarts)") ||
			f.storeKeyring().Generation != before.Generation {
			t.Fatalf("exit %d, generation %d -> %d\n%s", exitCode(err), before.Generation, f.storeKeyring().Generation, stderr)
		}
		if err := pods.Delete(t.Context(), "pod-b", metav1.DeleteOptions{GracePeriodSeconds: ptr(int64(0))}); err != nil {
			t.Fatal(err)
		}
		// During the gate: pod-d cannot read the store, then its sidecar crash-loops.
		restoreD := f.pods["pod-d"].proxy.Cut()
		defer restoreD()
		audit := filepath.Join(e.dir, "kube-audit.jsonl")
		done := make(chan error, 1)
		var out string
		go func() {
			var err error
			out, stderr, err = rotate("--confirm-timeout", "1m", "--force", "--audit-log", audit)
			done <- err
		}()
		wait.For(t, "the held key in the store", 20*time.Second, func() bool { _, ok := f.storeKeyring().HeldKey(); return ok })
		crashLoop("pod-d")
		restoreD() // its real process could read the store now: the API says its sidecar is not running
		time.Sleep(3 * time.Second)
		select {
		case err := <-done:
			t.Fatalf("promoted past a crash-looping pod: %v\n%s%s", err, out, stderr)
		default:
		}
		if err := pods.Delete(t.Context(), "pod-d", metav1.DeleteOptions{GracePeriodSeconds: ptr(int64(0))}); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatalf("%v\n%s%s", err, out, stderr)
		}
		if !strings.Contains(stderr, f.ns+"/pod-d (sidecar container keysync is not running (CrashLoopBackOff") ||
			// A round may see the pod terminating before it is gone from the listing: both
			// are the API saying so, and either drops it.
			!(strings.Contains(out, "deleted:      "+f.ns+"/pod-d") || strings.Contains(out, "skipped:      "+f.ns+"/pod-d: terminating")) ||
			!strings.Contains(out, "1/1 members hold") {
			t.Fatalf("laggard not named or not dropped:\n%s%s", out, stderr)
		}
		var rec struct {
			Fleet struct {
				Seen []struct{ Name, Ended string } `json:"seen"`
			} `json:"fleet"`
		}
		lines := strings.Split(strings.TrimSpace(string(mustRead(t, audit))), "\n")
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), &rec); err != nil {
			t.Fatal(err)
		}
		ended := map[string]string{}
		for _, m := range rec.Fleet.Seen {
			ended[m.Name] = m.Ended
		}
		if d := ended[f.ns+"/pod-d"]; ended[f.ns+"/pod-a"] != "confirmed" || (d != "deleted" && d != "skipped") || ended[f.ns+"/pod-pending"] != "skipped" {
			t.Fatalf("the audit record's members: %v", ended)
		}
	})
}

// cronJobArgs are the shipped CronJob's container arguments for this namespace and
// status port, on a compressed calendar: the gate's timeout cut from 10m to 3s and a
// "month" (--if-older-than) from 600h to 2s.
func cronJobArgs(t *testing.T, ns string, port int) []string {
	t.Helper()
	cj := shippedCronJob(t)
	var args []string
	for _, a := range cj.Spec.JobTemplate.Spec.Template.Spec.Containers[0].Args {
		a = strings.ReplaceAll(a, "$(POD_NAMESPACE)", ns)
		a = strings.Replace(a, "port=9102", "port="+strconv.Itoa(port), 1)
		switch a {
		case "--confirm-timeout=10m":
			a = "--confirm-timeout=3s"
		case "--if-older-than=600h":
			a = "--if-older-than=2s"
		}
		args = append(args, a)
	}
	if !slices.Contains(args, "--confirm-timeout=3s") || !slices.Contains(args, "--if-older-than=2s") {
		t.Fatalf("the CronJob's arguments changed: %v", args)
	}
	return args
}

func shippedCronJob(t *testing.T) *batchv1.CronJob {
	t.Helper()
	var cj batchv1.CronJob
	if err := yaml.UnmarshalStrict(mustRead(t, "../../manifests/rotation/cronjob.yaml"), &cj); err != nil {
		t.Fatal(err)
	}
	return &cj
}

// job is one run of a Job: up to 1+backoffLimit attempts, until one exits 0.
type job struct {
	attempts  int
	succeeded bool
	log       string // every attempt's output, as the job's pod logs
}

// runJob runs args as the shipped CronJob's Job does (restartPolicy Never, its
// backoffLimit; the kubelet's backoff between attempts is left out).
func runJob(t *testing.T, e *env, f *kubeFleet, args []string) job {
	t.Helper()
	var j job
	limit := int(*shippedCronJob(t).Spec.JobTemplate.Spec.BackoffLimit)
	for j.attempts < 1+limit && !j.succeeded {
		j.attempts++
		out, stderr, err := e.keysync(args...)
		f.record()
		j.log += out + stderr
		j.succeeded = err == nil
		if err != nil && exitCode(err) != 1 {
			t.Fatalf("attempt %d: %v\n%s", j.attempts, err, j.log)
		}
	}
	return j
}
