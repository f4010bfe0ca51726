package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sigil-dna/keysync/harness/wait"
)

func needRoot(t *testing.T, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("precondition: " + why + " needs root (CI runs as root)")
	}
}

func readyz(url string) (int, string) {
	resp, err := http.Get(url + "/readyz")
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestAFullKeysVolumeFailsReadiness: the keys volume (an in-memory emptyDir) is full, so
// the sidecar cannot write the newest keyring. Readiness followed the last store read and
// stayed green over a stale keys file (regression); it now follows the last write: not
// ready, saying why, until the write succeeds.
func TestAFullKeysVolumeFailsReadiness(t *testing.T) {
	e := newEnv(t)
	e.rotate()
	out := mountTmpfs(t, filepath.Join(e.dir, "full"), "size=64k")
	port := freePort(t)
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	_, logPath := e.start("sidecar", keysyncBin, "sidecar", "--store", e.storeURL(), "--out", out, "--interval", "200ms",
		"--backoff-cap", "300ms", "--listen", fmt.Sprintf("127.0.0.1:%d", port), "--log-format", "json")
	wait.For(t, "the first write", 10*time.Second, func() bool { c, _ := readyz(url); return c == 200 })
	// Fill the volume.
	filler := filepath.Join(out, "filler")
	f, _ := os.Create(filler)
	for {
		if _, err := f.Write(bytes.Repeat([]byte{0}, 4096)); err != nil {
			break
		}
	}
	f.Close()
	e.rotate()
	wait.For(t, "readiness to fail", 10*time.Second, func() bool {
		c, body := readyz(url)
		return c == 503 && strings.Contains(body, "could not be written")
	})
	if len(logLines(t, logPath, "write_failed")) == 0 {
		t.Fatal("no write_failed event")
	}
	// Issue 33: a write failure showed in /status as a store error.
	if st := sidecarStatus(t, url); st.StoreError != "" || !strings.Contains(st.WriteError, "no space left") {
		t.Fatalf("a full keys volume in /status: store_error %q, write_error %q", st.StoreError, st.WriteError)
	}
	os.Remove(filler)
	wait.For(t, "readiness to return once the write succeeds", 10*time.Second, func() bool { c, _ := readyz(url); return c == 200 })
	if sidecarStatus(t, url).Generation != storeGeneration(t, e) {
		t.Fatal("ready again without the newest keyring")
	}
}

// TestAnUnwritableOutIsSaidToBeOne (issue 33): a sidecar whose --out cannot take the keys
// file from the start said "keys file not written yet" in /readyz and a store error in
// /status.
func TestAnUnwritableOutIsSaidToBeOne(t *testing.T) {
	e := newEnv(t)
	e.rotate()
	out := mountTmpfs(t, filepath.Join(e.dir, "read-only"), "ro,size=64k")
	port := freePort(t)
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	e.start("sidecar", keysyncBin, "sidecar", "--store", e.storeURL(), "--out", out, "--interval", "200ms",
		"--backoff-cap", "300ms", "--listen", fmt.Sprintf("127.0.0.1:%d", port), "--log-format", "json")
	wait.For(t, "readiness to say why", 10*time.Second, func() bool {
		c, body := readyz(url)
		return c == 503 && strings.Contains(body, "the keys file cannot be written (no keys file yet): ")
	})
	if st := sidecarStatus(t, url); st.StoreError != "" || !strings.Contains(st.WriteError, "read-only file system") {
		t.Fatalf("/status: store_error %q, write_error %q", st.StoreError, st.WriteError)
	}
}

// TestASidecarThatCannotSignalStillConfirmsAndSaysSoEachTime: the sidecar runs as another
// UID without CAP_KILL, the app reloads through its own file watch. The sidecar logged one
// error at start, then only "keys written", never a confirmation (regression). Each
// generation is now reported as not signalled, with the fix, and confirmed.
func TestASidecarThatCannotSignalStillConfirmsAndSaysSoEachTime(t *testing.T) {
	needRoot(t, "a second UID")
	e := newEnv(t)
	// Everything nobody must reach lives on the tmpfs directory, which it may traverse.
	os.Chmod(e.mem, 0o755)
	e.store = filepath.Join(e.mem, "store", "keys.json")
	e.rotate()
	os.Chmod(filepath.Dir(e.store), 0o755)
	os.Chmod(e.store, 0o644) // kept by every later rotation
	out := e.out("keys")
	os.Chmod(out, 0o777)
	port := freePort(t)
	appURL := fmt.Sprintf("http://127.0.0.1:%d", port)
	pidFile := filepath.Join(e.mem, "app.pid")
	// The app as root, reloading through its directory watch.
	e.start("app", e.app, "--keys", filepath.Join(out, "keys.json"), "--listen", fmt.Sprintf("127.0.0.1:%d", port), "--pid-file", pidFile)
	// The sidecar as nobody: the kernel refuses its signals to root's process.
	sport := freePort(t)
	f, logPath := e.logFile("sidecar")
	cmd := exec.Command(keysyncBin, "sidecar", "--store", e.storeURL(), "--out", out, "--interval", "200ms", "--pid-file", pidFile,
		"--signal-min-age", "0s", "--confirm-url", appURL+"/keysync/status", "--listen", fmt.Sprintf("127.0.0.1:%d", sport), "--log-format", "json")
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	waitGeneration(t, appURL, 1)
	for gen := int64(2); gen <= 3; gen++ {
		e.rotate()
		waitGeneration(t, appURL, gen)
		wait.For(t, fmt.Sprintf("generation %d reported as not signalled and confirmed", gen), 10*time.Second, func() bool {
			failed, confirmed := false, false
			for _, l := range logLines(t, logPath, "signal_failed") {
				failed = failed || (l["generation"] == float64(gen) && strings.Contains(fmt.Sprint(l["error"]), "CAP_KILL"))
			}
			for _, l := range logLines(t, logPath, "reload_confirmed") {
				confirmed = confirmed || l["generation"] == float64(gen)
			}
			return failed && confirmed
		})
	}
	st := sidecarStatus(t, fmt.Sprintf("http://127.0.0.1:%d", sport))
	if !st.App.Confirmed || !strings.Contains(st.App.SignalError, "not permitted") {
		t.Fatalf("status: %+v", st.App)
	}
	if !strings.Contains(metricsOf(t, fmt.Sprintf("http://127.0.0.1:%d", sport)), `keysync_signals_total{result="error"}`) {
		t.Fatal("no signal error counted")
	}
}

func metricsOf(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestAnInvalidStoreDocumentCanBeReplacedInAnIncident: with an unparseable document in the
// store (a 31-byte key written by hand), `rotate --emergency` and `--dry-run` failed on
// reading it and no keysync command could replace it (regression). --replace-invalid
// replaces it, after saying what is wrong with it (never its bytes), and the audit log
// records it.
func TestAnInvalidStoreDocumentCanBeReplacedInAnIncident(t *testing.T) {
	e := newEnv(t)
	e.rotate()
	bad := `{"version":1,"generation":7,"rotated_at":"2026-11-27T12:00:00Z","keys":[{"id":"0011223344556677","secret":"` +
		"BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBw==" + `","not_before":"2026-11-27T12:00:00Z"}]}`
	os.WriteFile(e.store, []byte(bad), 0o600)
	audit := filepath.Join(e.dir, "audit.jsonl")
	_, stderr, err := e.keysync("rotate", "--store", e.storeURL(), "--emergency", "--reason", "INC-1")
	if exitCode(err) != 1 || !strings.Contains(stderr, "keys[0].secret: 31 bytes") || !strings.Contains(stderr, "--replace-invalid") {
		t.Fatalf("an emergency over an invalid document: exit %d\n%s", exitCode(err), stderr)
	}
	_, stderr, err = e.keysync("rotate", "--store", e.storeURL(), "--replace-invalid", "--reason", "INC-1")
	if exitCode(err) != 2 || !strings.Contains(stderr, "--replace-invalid needs --emergency") {
		t.Fatalf("--replace-invalid alone: exit %d\n%s", exitCode(err), stderr)
	}
	out, stderr, err := e.keysync("rotate", "--store", e.storeURL(), "--emergency", "--replace-invalid", "--dry-run", "--reason", "INC-1")
	if err != nil || !strings.Contains(out, "dry run") || string(mustRead(t, e.store)) != bad {
		t.Fatalf("dry run: %v\n%s%s", err, out, stderr)
	}
	out, stderr, err = e.keysync("rotate", "--store", e.storeURL(), "--emergency", "--replace-invalid", "--reason", "INC-1", "--audit-log", audit)
	if err != nil || !strings.Contains(out, "replaced an invalid document: file store "+e.store+": keyring: keys[0].secret: 31 bytes") {
		t.Fatalf("%v\n%s%s", err, out, stderr)
	}
	// Issue 29: the replacement restarted at generation 1 (7 -> 1, and the file store's
	// version "1" reused); generations never go backwards.
	if r := storeKeyring(t, e); r.Generation <= 7 || len(r.Keys) != 1 {
		t.Fatalf("after the replacement: generation %d, %d keys", r.Generation, len(r.Keys))
	}
	if a := string(mustRead(t, audit)); !strings.Contains(a, `"replaced_invalid":"file store `+e.store+`: keyring: keys[0].secret: 31 bytes`) || strings.Contains(a, "BwcHBwcH") {
		t.Fatalf("audit record: %s", a)
	}
}

// TestAPlainValueInAFileKeepsThePreviousValueForTheWindow: a file store holding a bare
// secret (`openssl rand -hex 32 > FILE`) has no history. An overwrite switched keys at once
// with no verify window, and the generation never moved (regression): a running sidecar
// now keeps the value it held as the previous key for the window, the generation moves
// with the file, and `keysync status` says what a new pod cannot know.
func TestAPlainValueInAFileKeepsThePreviousValueForTheWindow(t *testing.T) {
	e := newEnv(t)
	os.MkdirAll(filepath.Dir(e.store), 0o700)
	const v1 = "4e1f0a8c2b7d93e65f10c4a7b8d2e93f06a1c5b7d9e2f4a6c8b0d2e4f6a8c0b2"
	const v2 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
	os.WriteFile(e.store, []byte(v1+"\n"), 0o600)
	out := e.out("pod")
	port := freePort(t)
	appURL := fmt.Sprintf("http://127.0.0.1:%d", port)
	e.start("pod", e.podArgs(out, appURL, port, "--pid-file", filepath.Join(e.mem, "pod.pid"), "--plain-activation-delay", "10s", "--plain-verify-window", "1m")...)
	wait.For(t, "the app to hold the plain value", 10*time.Second, func() bool { st, err := appStatus(appURL); return err == nil && len(st.KeyIDs) == 1 })
	first, _ := appStatus(appURL)
	time.Sleep(20 * time.Millisecond) // a later modification time
	os.WriteFile(e.store+".tmp", []byte(v2+"\n"), 0o600)
	os.Rename(e.store+".tmp", e.store)
	wait.For(t, "the app to hold both values", 10*time.Second, func() bool { st, _ := appStatus(appURL); return len(st.KeyIDs) == 2 })
	second, _ := appStatus(appURL)
	if second.Generation <= first.Generation || second.KeyIDs[0] != first.KeyIDs[0] || second.SigningKeyID != first.KeyIDs[0] {
		t.Fatalf("before %+v, after %+v: the old value must stay, signing until the new one activates", first, second)
	}
	st, _, err := e.keysync("status", "--store", e.storeURL())
	if err != nil || !strings.Contains(st, "plain value in a file: no history") {
		t.Fatalf("status:\n%s", st)
	}
}

// TestTwoSidecarsCannotShareAKeysDirectory (issue 33): two sidecars on one --out
// overwrote each other's keys file without a word, each /status describing a file that
// held the other's keyring.
func TestTwoSidecarsCannotShareAKeysDirectory(t *testing.T) {
	e := newEnv(t)
	e.rotate()
	out := e.out("shared")
	port := freePort(t)
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	cmd, _ := e.start("first", keysyncBin, "sidecar", "--store", e.storeURL(), "--out", out, "--interval", "200ms",
		"--listen", fmt.Sprintf("127.0.0.1:%d", port), "--log-format", "json")
	wait.For(t, "the first sidecar's write", 10*time.Second, func() bool { c, _ := readyz(url); return c == 200 })
	_, stderr, err := e.keysync("sidecar", "--store", e.storeURL(), "--out", out, "--listen", fmt.Sprintf("127.0.0.1:%d", freePort(t)))
	want := fmt.Sprintf("--out %s is already used by another sidecar (process %d holds its lock)", out, cmd.Process.Pid)
	if exitCode(err) != 1 || !strings.Contains(stderr, want) {
		t.Fatalf("a second sidecar on the same --out: exit %d, want %q\n%s", exitCode(err), want, stderr)
	}
}

// mountTmpfs mounts a tmpfs with the options at dir (made), unmounted when the test ends.
func mountTmpfs(t *testing.T, dir, options string) string {
	t.Helper()
	needRoot(t, "mounting a tmpfs")
	os.MkdirAll(dir, 0o755)
	if b, err := exec.Command("mount", "-t", "tmpfs", "-o", options, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("precondition: mounting a tmpfs: %v %s", err, b)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	return dir
}
