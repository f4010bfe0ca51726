// Package e2e runs keysync as real processes, as a user runs them: the CLI's flags,
// messages and exit codes, sidecars and apps exchanging real signals (in PID namespaces of
// their own when the tests run as root), the runbook as written, over a file store, a real
// Vault and a real kube-apiserver's Secrets, and the gate on that apiserver.
package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sigil-dna/keysync/harness/podfleet"
	"github.com/sigil-dna/keysync/harness/ports"
	"github.com/sigil-dna/keysync/harness/wait"
	"github.com/sigil-dna/keysync/keyring"
	"github.com/sigil-dna/keysync/keyring/secretscan"
	"github.com/sigil-dna/keysync/reload"
)

// keysyncBin is the production binary; demoBin is keysync-demo (the pod launcher and,
// linked as demo-app, the app).
var keysyncBin, demoBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "keysync-e2e-bin-")
	if err != nil {
		panic(err)
	}
	os.Chmod(dir, 0o755) // the permission test runs the binary as nobody
	keysyncBin, demoBin = filepath.Join(dir, "keysync"), filepath.Join(dir, "keysync-demo")
	for bin, pkg := range map[string]string{keysyncBin: "cmd/keysync", demoBin: "cmd/keysync-demo"} {
		build := exec.Command("go", "build", "-o", bin, "github.com/sigil-dna/keysync/"+pkg)
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "building", pkg+":", err)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// env is one test's world: a file store, a bin dir with the demo-app link, captured
// output of every process, and every secret the store ever held.
type env struct {
	t       *testing.T
	dir     string
	mem     string
	store   string
	app     string
	mu      sync.Mutex
	outputs []string
	secrets []keyring.Secret
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, dir: t.TempDir()}
	e.store = filepath.Join(e.dir, "store", "keys.json")
	e.mem = e.dir
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		d, err := os.MkdirTemp("/dev/shm", "keysync-e2e-")
		if err == nil {
			e.mem = d
			t.Cleanup(func() { os.RemoveAll(d) })
		}
	}
	os.MkdirAll(filepath.Join(e.dir, "bin"), 0o755)
	e.app = filepath.Join(e.dir, "bin", podfleet.AppName)
	if err := os.Symlink(demoBin, e.app); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.scanOutputs)
	return e
}

func (e *env) storeURL() string { return "file://" + e.store }

// out returns a fresh keys directory on tmpfs.
func (e *env) out(name string) string {
	d := filepath.Join(e.mem, name)
	if err := os.MkdirAll(d, 0o755); err != nil {
		e.t.Fatal(err)
	}
	return d
}

// logFile returns a file that captures a process's output and is scanned at the end.
func (e *env) logFile(name string) (*os.File, string) {
	p := filepath.Join(e.dir, name+".log")
	f, err := os.Create(p)
	if err != nil {
		e.t.Fatal(err)
	}
	e.mu.Lock()
	e.outputs = append(e.outputs, p)
	e.mu.Unlock()
	e.t.Cleanup(func() { f.Close() })
	return f, p
}

// keysync runs the CLI to completion and returns its output; the output is also scanned.
func (e *env) keysync(args ...string) (stdout, stderr string, err error) {
	return e.run(keysyncBin, args...)
}

// run runs bin to completion and returns its output; the output is also scanned.
func (e *env) run(bin string, args ...string) (stdout, stderr string, err error) {
	var o, er bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &o, &er
	err = cmd.Run()
	f, _ := e.logFile(fmt.Sprintf("cli-%d", time.Now().UnixNano()))
	f.Write(o.Bytes())
	f.Write(er.Bytes())
	e.recordSecrets()
	return o.String(), er.String(), err
}

// rotate runs `keysync rotate` with a short schedule and fails the test on error. It
// forces: the tests rotate faster than keys activate (the refusal is tested on its own).
func (e *env) rotate(extra ...string) {
	e.t.Helper()
	args := append([]string{"rotate", "--store", e.storeURL(), "--activation-delay", "1s", "--verify-window", "30s",
		"--min-propagation", "0s", "--force", "--init", "--reason", "e2e"}, extra...)
	if _, stderr, err := e.keysync(args...); err != nil {
		e.t.Fatalf("keysync rotate: %v\n%s", err, stderr)
	}
}

// recordSecrets remembers every secret the store holds, for the final output scan.
func (e *env) recordSecrets() {
	data, err := os.ReadFile(e.store)
	if err != nil {
		return
	}
	r, err := keyring.Parse(data)
	if err != nil {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.secrets = append(e.secrets, secretsOf(r)...)
}

func secretsOf(r *keyring.Keyring) []keyring.Secret {
	var out []keyring.Secret
	for _, k := range r.Keys {
		out = append(out, k.Secret)
	}
	return out
}

// scanOutputs fails the test if any secret the store held appears in any output.
func (e *env) scanOutputs() {
	e.recordSecrets()
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.secrets) == 0 {
		return
	}
	total := 0
	for _, p := range e.outputs {
		data, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		n := 0
		for _, s := range e.secrets {
			n += secretscan.Count(data, s)
		}
		if n > 0 {
			e.t.Errorf("%d secret occurrences in %s", n, p)
		}
		total += len(data)
	}
	e.t.Logf("scanned %d bytes of output from %d processes for %d secrets: none found", total, len(e.outputs), len(e.secrets))
}

// start launches a long-running process whose output is captured; it is stopped with
// SIGTERM at the end of the test.
func (e *env) start(name string, argv ...string) (*exec.Cmd, string) {
	e.t.Helper()
	f, path := e.logFile(name)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	return cmd, path
}

func freePort(t *testing.T) int {
	t.Helper()
	p, err := ports.Free()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func appStatus(url string) (reload.Status, error) {
	var st reload.Status
	resp, err := http.Get(url + "/keysync/status")
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

func waitGeneration(t *testing.T, appURL string, gen int64) {
	t.Helper()
	wait.For(t, fmt.Sprintf("the app at %s to load generation %d", appURL, gen), 20*time.Second, func() bool {
		st, err := appStatus(appURL)
		return err == nil && st.Generation == gen
	})
}

// logLines returns the JSON log lines of a file that carry event.
func logLines(t *testing.T, path, event string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil && (event == "" || m["event"] == event) {
			out = append(out, m)
		}
	}
	return out
}

func storeGeneration(t *testing.T, e *env) int64 {
	t.Helper()
	data, err := os.ReadFile(e.store)
	if err != nil {
		t.Fatal(err)
	}
	r, err := keyring.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	return r.Generation
}

func needPIDNamespaces(t *testing.T) {
	t.Helper()
	if !podfleet.PIDNamespacesAvailable() {
		t.Skip("precondition: a PID namespace of its own needs root and unshare(1); run as root (CI does)")
	}
}
