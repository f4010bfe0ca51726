package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sigil-dna/keysync/harness/podfleet"
	"github.com/sigil-dna/keysync/harness/wait"
	"github.com/sigil-dna/keysync/keyring"
	"github.com/sigil-dna/keysync/sidecar"
	"github.com/sigil-dna/keysync/store"
	"github.com/sigil-dna/keysync/store/file"
)

// podArgs is a `keysync pod` command line: an app that reloads only on a signal (no
// directory watch, no polling), so a reload proves the sidecar's signal arrived.
func (e *env) podArgs(out, appURL string, port int, sidecar ...string) []string {
	app := []string{e.app, "--keys", filepath.Join(out, "keys.json"), "--listen", "127.0.0.1:" + strconv.Itoa(port),
		"--watch=false", "--poll", "0", "--pid-file", filepath.Join(out, "..", filepath.Base(out)+".pid")}
	sc := append([]string{keysyncBin, "sidecar", "--store", e.storeURL(), "--out", out, "--interval", "500ms",
		"--listen", "127.0.0.1:" + strconv.Itoa(freePort(e.t)), "--confirm-url", appURL + "/keysync/status", "--log-format", "json"}, sidecar...)
	return append(append(append([]string{demoBin, "pod"}, app...), "---"), sc...)
}

func TestSidecarSignalsTheAppThroughASharedPIDNamespace(t *testing.T) {
	needPIDNamespaces(t)
	e := newEnv(t)
	e.rotate()
	out := e.out("pod")
	port := freePort(t)
	appURL := fmt.Sprintf("http://127.0.0.1:%d", port)
	argv := append([]string{"unshare", "--pid", "--fork", "--mount-proc", "--kill-child=SIGTERM", "--"},
		e.podArgs(out, appURL, port, "--signal-process", "demo-app")...)
	_, logPath := e.start("pod", argv...)
	waitGeneration(t, appURL, 1)

	e.rotate()
	waitGeneration(t, appURL, 2)
	wait.For(t, "a reload confirmation", 10*time.Second, func() bool { return len(logLines(t, logPath, "reload_confirmed")) >= 1 })
	// The pid signalled is the app's pid inside the pod's namespace, not its host pid.
	sig := logLines(t, logPath, "app_signalled")
	host := podfleet.ProcessesWithArg("demo-app", filepath.Join(out, "keys.json"))
	pids, _ := sig[len(sig)-1]["pids"].([]any)
	if len(sig) == 0 || len(host) != 1 || len(pids) != 1 || int(pids[0].(float64)) == host[0] {
		t.Fatalf("the app was not signalled by its pid inside the namespace: signalled %v, host pid %v", sig, host)
	}
	// And the app was never killed by an early signal: it is the process that started.
	if n := strings.Count(string(mustRead(t, logPath)), `"msg":"demo app listening"`); n != 1 {
		t.Fatalf("the app started %d times", n)
	}

	t.Run("an app restarted gets a new pid that the sidecar finds", func(t *testing.T) {
		pids := podfleet.ProcessesWithArg("demo-app", filepath.Join(out, "keys.json"))
		if len(pids) != 1 {
			t.Fatalf("found app pids %v", pids)
		}
		if err := syscall.Kill(pids[0], syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		wait.For(t, "the app to restart", 10*time.Second, func() bool {
			p := podfleet.ProcessesWithArg("demo-app", filepath.Join(out, "keys.json"))
			return len(p) == 1 && p[0] != pids[0]
		})
		waitGeneration(t, appURL, 2) // the restarted app loads the file at start
		before := len(logLines(t, logPath, "app_signalled"))
		e.rotate()
		waitGeneration(t, appURL, 3) // only a signal to the new process can do this
		after := logLines(t, logPath, "app_signalled")
		if len(after) <= before {
			t.Fatal("no signal logged after the restart")
		}
	})
}

func TestPidFileMode(t *testing.T) {
	e := newEnv(t)
	e.rotate()
	out := e.out("pod")
	port := freePort(t)
	appURL := fmt.Sprintf("http://127.0.0.1:%d", port)
	pidFile := filepath.Join(e.mem, "pod.pid")
	_, logPath := e.start("pod", e.podArgs(out, appURL, port, "--pid-file", pidFile)...)
	confirmed := func(gen int64) bool {
		for _, c := range logLines(t, logPath, "reload_confirmed") {
			if c["generation"] == float64(gen) {
				return true
			}
		}
		return false
	}
	waitGeneration(t, appURL, 1)
	wait.For(t, "confirmation of generation 1", 10*time.Second, func() bool { return confirmed(1) })
	for gen := int64(2); gen <= 4; gen++ {
		e.rotate()
		waitGeneration(t, appURL, gen)
		wait.For(t, fmt.Sprintf("confirmation of generation %d", gen), 10*time.Second, func() bool { return confirmed(gen) })
	}
	// Generation 1 the app loaded at its start; every later one only a signal can have
	// reloaded (the app neither watches nor polls), so each carries its latency.
	for _, c := range logLines(t, logPath, "reload_confirmed") {
		if _, ok := c["signal_to_confirm_ms"]; !ok && c["generation"] != float64(1) {
			t.Fatalf("confirmation without latency: %v", c)
		}
	}
}

func TestPermissionErrorSaysWhatToDo(t *testing.T) {
	e := newEnv(t)
	e.rotate()
	out := e.out("keys")
	// Everything the sidecar reads lives under the tmpfs dir, which nobody can traverse.
	storeCopy := filepath.Join(e.mem, "store.json")
	data, _ := os.ReadFile(e.store)
	os.WriteFile(storeCopy, data, 0o644)
	pidFile := filepath.Join(e.mem, "init.pid")
	os.WriteFile(pidFile, []byte("1\n"), 0o644) // PID 1 belongs to root
	cmd := exec.Command(keysyncBin, "sidecar", "--store", "file://"+storeCopy, "--out", out, "--pid-file", pidFile,
		"--listen", "127.0.0.1:0", "--log-format", "json")
	if os.Geteuid() == 0 {
		// As root every signal is permitted: run the sidecar as nobody, as in a pod
		// where the sidecar's UID differs from the app's.
		os.Chmod(e.mem, 0o777)
		os.Chmod(out, 0o777)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	}
	f, logPath := e.logFile("sidecar")
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	defer func() {
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("sidecar output:\n%s", b)
		}
	}()
	wait.For(t, "a permission error in the log", 10*time.Second, func() bool {
		data, _ := os.ReadFile(logPath)
		return bytes.Contains(data, []byte("not permitted"))
	})
	data, _ = os.ReadFile(logPath)
	for _, want := range []string{"CAP_KILL", "UID", "pid 1:"} {
		if !bytes.Contains(data, []byte(want)) {
			t.Errorf("the permission error does not mention %s:\n%s", want, data)
		}
	}
}

func TestOnceMode(t *testing.T) {
	e := newEnv(t)
	out := e.out("keys")
	_, stderr, err := e.keysync("sidecar", "--once", "--store", e.storeURL(), "--out", out)
	if err == nil || !strings.Contains(stderr, "no keyring in the store") {
		t.Fatalf("--once on an empty store: %v %s", err, stderr)
	}
	e.rotate()
	if _, stderr, err := e.keysync("sidecar", "--once", "--store", e.storeURL(), "--out", out); err != nil {
		t.Fatalf("--once: %v %s", err, stderr)
	}
	data, err := os.ReadFile(filepath.Join(out, "keys.json"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := keyring.Parse(data); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(filepath.Join(out, "keys.json")); fi.Mode().Perm() != 0o440 {
		t.Fatalf("mode %v", fi.Mode())
	}
}

// TestSidecarKilledAtRandomNeverLeavesABrokenFile kills the sidecar with SIGKILL at
// random points while the store changes as fast as it can, until the sidecar has
// written the keys file at least 200 times.
func TestSidecarKilledAtRandomNeverLeavesABrokenFile(t *testing.T) {
	e := newEnv(t)
	e.rotate()
	st, err := file.New(e.store, store.PlainOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := e.out("keys")
	keys := filepath.Join(out, "keys.json")
	// The first sidecar writes the file before any kill: from then on an atomic write
	// must never leave it missing or broken, however early the next sidecar dies (a kill
	// can land before a sidecar has even finished starting).
	if _, stderr, err := e.keysync("sidecar", "--once", "--store", e.storeURL(), "--out", out); err != nil {
		t.Fatal(err, stderr)
	}
	writes, kills := 0, 0
	for writes < 200 {
		f, logPath := e.logFile(fmt.Sprintf("sidecar-%d", kills))
		cmd := exec.Command(keysyncBin, "sidecar", "--store", e.storeURL(), "--out", out, "--interval", "50ms",
			"--listen", "127.0.0.1:0", "--log-format", "json")
		cmd.Stdout, cmd.Stderr = f, f
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Most kills land 5-45 ms into a running sidecar's work, counted from its start-up
		// log line (a loaded machine can take longer than that to start a process at all,
		// and then no sidecar would ever write); every tenth may land during start-up.
		if kills%10 != 0 {
			waitForLine(t, logPath, `"sidecar started"`)
		}
		deadline := time.Now().Add(time.Duration(5+rand.IntN(40)) * time.Millisecond)
		for time.Now().Before(deadline) {
			snap, err := st.Read(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			s, _ := keyring.NewSecret(32)
			next, _ := keyring.Emergency(snap.Keyring, time.Now(), s, keyring.Options{})
			if _, err := st.Write(t.Context(), next, snap.Version); err != nil {
				t.Fatal(err)
			}
			e.mu.Lock()
			e.secrets = append(e.secrets, s)
			e.mu.Unlock()
			time.Sleep(time.Duration(rand.IntN(3)) * time.Millisecond)
		}
		cmd.Process.Kill()
		cmd.Wait()
		f.Close()
		kills++
		writes += len(logLines(t, logPath, "keys_written"))
		data, err := os.ReadFile(keys)
		if err != nil {
			t.Fatalf("after kill %d: %v", kills, err)
		}
		if _, err := keyring.Parse(data); err != nil {
			t.Fatalf("after kill %d the keys file does not parse: %v", kills, err)
		}
	}
	// A restarted sidecar removes what killed ones left behind.
	if _, stderr, err := e.keysync("sidecar", "--once", "--store", e.storeURL(), "--out", out); err != nil {
		t.Fatal(err, stderr)
	}
	entries, _ := os.ReadDir(out)
	if len(entries) != 1 {
		var names []string
		for _, en := range entries {
			names = append(names, en.Name())
		}
		t.Fatalf("files left in the keys directory: %v", names)
	}
	t.Logf("%d keys file writes across %d SIGKILLs: the file always parsed", writes, kills)
}

func TestConcurrentRotateLosesNoKey(t *testing.T) {
	e := newEnv(t)
	e.rotate()
	start := storeGeneration(t, e)
	const n = 4
	type outcome struct {
		res    map[string]any
		stderr string
		err    error
	}
	results := make(chan outcome, n)
	for range n {
		go func() {
			var o, er bytes.Buffer
			cmd := exec.Command(keysyncBin, "rotate", "--store", e.storeURL(), "--activation-delay", "1s", "--force",
				"--min-propagation", "0s", "-o", "json", "--log-format", "json", "--reason", "e2e")
			cmd.Stdout, cmd.Stderr = &o, &er
			err := cmd.Run()
			var res map[string]any
			json.Unmarshal(o.Bytes(), &res)
			results <- outcome{res, er.String(), err}
		}()
	}
	var won []string
	for range n {
		r := <-results
		if r.err != nil {
			if !strings.Contains(r.stderr, "compare-and-swap conflict") {
				t.Fatalf("a rotation failed without a clear conflict: %v\n%s", r.err, r.stderr)
			}
			continue
		}
		won = append(won, r.res["new_key_id"].(string))
	}
	e.recordSecrets()
	data, _ := os.ReadFile(e.store)
	r, err := keyring.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	if r.Generation != start+int64(len(won)) {
		t.Fatalf("generation %d after %d successful rotations from %d", r.Generation, len(won), start)
	}
	for _, id := range won {
		if _, ok := r.Key(id); !ok {
			t.Fatalf("key %s of a successful rotation is lost", id)
		}
	}
	t.Logf("%d concurrent rotations: %d succeeded (with retries), all their keys present", n, len(won))
}

// TestInvalidStoreDocumentKeepsTheFileAndTheApp writes every rejected kind of document
// into the store behind the sidecar's back. For each one it waits until the sidecar has
// read that very document (its rejected counter went up after the write, and /status
// names that document's own error), then checks the keys file and the app. (Regression:
// the test counted log lines, repeats included, so its checks could pass before the
// sidecar had read the document.)
func TestInvalidStoreDocumentKeepsTheFileAndTheApp(t *testing.T) {
	e := newEnv(t)
	e.rotate()
	out := e.out("pod")
	port := freePort(t)
	appURL := fmt.Sprintf("http://127.0.0.1:%d", port)
	args := e.podArgs(out, appURL, port, "--pid-file", filepath.Join(e.mem, "pod.pid"), "--backoff-cap", "200ms")
	e.start("pod", args...)
	sidecarURL := sidecarURLOf(t, args)
	waitGeneration(t, appURL, 1)
	good, _ := os.ReadFile(filepath.Join(out, "keys.json"))
	storeGood, _ := os.ReadFile(e.store)

	raw, err := os.ReadFile("../../keyring/testdata/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Rejected []struct{ Name, Document string } `json:"rejected"`
	}
	json.Unmarshal(raw, &v)
	reader, err := file.New(e.store, keyring.Options{})
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, rc := range v.Rejected {
		if rc.Document == "value=abc" || rc.Document == "" {
			continue // not a document: the file store reads those as plain values (short, so rejected too)
		}
		before := rejected(t, sidecarURL)
		os.WriteFile(e.store, []byte(rc.Document), 0o600)
		_, perr := reader.Read(t.Context()) // the error the sidecar meets, as the store words it
		if !errors.Is(perr, keyring.ErrInvalid) {
			t.Fatalf("%s: read as %v", rc.Name, perr)
		}
		wait.For(t, "the sidecar to reject "+rc.Name, 10*time.Second, func() bool {
			st := sidecarStatus(t, sidecarURL)
			return rejected(t, sidecarURL) > before && strings.Contains(st.StoreError, perr.Error())
		})
		if now, _ := os.ReadFile(filepath.Join(out, "keys.json")); !bytes.Equal(now, good) {
			t.Fatalf("%s: the keys file changed", rc.Name)
		}
		resp, err := http.Post(appURL+"/send?to="+appURL, "application/json", strings.NewReader(`{"e":1}`))
		if err != nil {
			t.Fatal(err)
		}
		var res map[string]any
		json.NewDecoder(resp.Body).Decode(&res)
		resp.Body.Close()
		if res["verified"] != true {
			t.Fatalf("%s: the app no longer signs and verifies: %v", rc.Name, res)
		}
		checked++
	}
	if checked < 30 {
		t.Fatalf("only %d documents checked", checked)
	}
	// One more read of the last document, then the file once more.
	last := rejected(t, sidecarURL)
	wait.For(t, "another read of the last document", 10*time.Second, func() bool { return rejected(t, sidecarURL) > last })
	if now, _ := os.ReadFile(filepath.Join(out, "keys.json")); !bytes.Equal(now, good) {
		t.Fatal("the keys file changed after the last document")
	}
	os.WriteFile(e.store, storeGood, 0o600)
}

// sidecarURLOf finds the sidecar's --listen address in a pod's command line.
func sidecarURLOf(t *testing.T, args []string) string {
	t.Helper()
	i := slices.Index(args, "---")
	for j := i; j >= 0 && j < len(args)-1; j++ {
		if args[j] == "--listen" {
			return "http://" + args[j+1]
		}
	}
	t.Fatal("no --listen in the sidecar's command line")
	return ""
}

func sidecarStatus(t *testing.T, url string) sidecar.Status {
	t.Helper()
	var st sidecar.Status
	resp, err := http.Get(url + "/status")
	if err != nil {
		return st
	}
	defer resp.Body.Close()
	json.NewDecoder(resp.Body).Decode(&st)
	return st
}

// rejected reads keysync_syncs_total{result="rejected"} from the sidecar's /metrics.
func rejected(t *testing.T, url string) float64 {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, `keysync_syncs_total{result="rejected"} `); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return -1
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// waitForLine waits until the file at path holds text (up to 10 s).
func waitForLine(t *testing.T, path, text string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if b, _ := os.ReadFile(path); strings.Contains(string(b), text) {
			return
		}
	}
	t.Fatalf("%s: no %s within 10 s", path, text)
}
