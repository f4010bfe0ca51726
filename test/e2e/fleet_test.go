package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sigil-dna/keysync/harness/wait"
	"github.com/sigil-dna/keysync/keyring"
)

// fleetPod is one pod of an end-to-end fleet: a sidecar process and an app process,
// whose sidecar reads the store through a symlink of its own that cut breaks.
type fleetPod struct {
	name, link, sidecarURL, appURL string
}

func (e *env) startFleetPod(t *testing.T, name string) *fleetPod {
	t.Helper()
	p := &fleetPod{name: name, link: filepath.Join(e.dir, name+"-store.json")}
	if err := os.Symlink(e.store, p.link); err != nil {
		t.Fatal(err)
	}
	out := e.out(name)
	port := freePort(t)
	p.appURL = fmt.Sprintf("http://127.0.0.1:%d", port)
	args := e.podArgsFor("file://"+p.link, out, p.appURL, port, "--pid-file", filepath.Join(e.mem, name+".pid"), "--interval", "200ms", "--backoff-cap", "400ms")
	e.start(name, args...)
	p.sidecarURL = sidecarURLOf(t, args)
	return p
}

func (p *fleetPod) cut(t *testing.T, e *env) {
	os.Remove(p.link)
	if err := os.Symlink(e.store+".unreachable", p.link); err != nil {
		t.Fatal(err)
	}
}

func (p *fleetPod) restore(t *testing.T, e *env) {
	os.Remove(p.link)
	if err := os.Symlink(e.store, p.link); err != nil {
		t.Fatal(err)
	}
}

func storeKeyring(t *testing.T, e *env) *keyring.Keyring {
	t.Helper()
	r, err := keyring.Parse(mustRead(t, e.store))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestFleetConfirmedRotationThroughTheCLI: real sidecar and app processes behind a static
// fleet; `keysync rotate --confirm-fleet` holds the new key while one pod cannot read the
// store, names that pod, and promotes once it can; a gate that times out leaves the key
// held, exits 1 and names the pod; a rotation over a held key is refused; `keysync
// promote` finishes it; `keysync status --fleet` shows every member; bad fleets write
// nothing.
func TestFleetConfirmedRotationThroughTheCLI(t *testing.T) {
	e := newEnv(t)
	e.rotate()
	pods := []*fleetPod{e.startFleetPod(t, "pod-a"), e.startFleetPod(t, "pod-b"), e.startFleetPod(t, "pod-c")}
	var urls []string
	for _, p := range pods {
		waitGeneration(t, p.appURL, 1)
		urls = append(urls, p.sidecarURL)
	}
	fleetURL := strings.Join(urls, ",")
	audit := filepath.Join(e.dir, "audit.jsonl")
	gated := func(timeout string, extra ...string) (string, string, error) {
		args := append([]string{"rotate", "--store", e.storeURL(), "--confirm-fleet", fleetURL, "--confirm-timeout", timeout,
			"--max-clock-skew", "1s", "--verify-window", "1m", "--audit-log", audit, "--reason", "gated", "--log-format", "json"}, extra...)
		return e.keysync(args...)
	}
	lagger := pods[2]
	laggerName := strings.TrimPrefix(lagger.sidecarURL, "http://")

	t.Run("the gate waits for a pod that cannot read the store, then promotes", func(t *testing.T) {
		lagger.cut(t, e)
		wait.For(t, "pod-c's sidecar to report failing reads", 10*time.Second, func() bool { return sidecarStatus(t, lagger.sidecarURL).StoreError != "" })
		cmd := exec.Command(keysyncBin, "rotate", "--store", e.storeURL(), "--confirm-fleet", fleetURL, "--confirm-timeout", "1m",
			"--max-clock-skew", "1s", "--verify-window", "1m", "--audit-log", audit, "--reason", "gated", "--log-format", "json")
		f, logPath := e.logFile("gated-rotate")
		cmd.Stdout, cmd.Stderr = f, f
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		wait.For(t, "a progress line naming pod-c and why", 20*time.Second, func() bool {
			out := string(mustRead(t, logPath))
			return strings.Contains(out, "gate: 2/3 hold") && strings.Contains(out, laggerName+" (store read failing for")
		})
		held := storeKeyring(t, e)
		hk, ok := held.HeldKey()
		if !ok {
			t.Fatal("no held key in the store while the gate waits")
		}
		for _, p := range pods[:2] {
			if st, _ := appStatus(p.appURL); !contains(st.KeyIDs, hk.ID) || st.SigningKeyID == hk.ID {
				t.Fatalf("%s: the held key is not loaded, or it signs: %+v", p.name, st)
			}
		}
		select {
		case err := <-done:
			t.Fatalf("the rotation ended while pod-c lagged: %v\n%s", err, mustRead(t, logPath))
		case <-time.After(500 * time.Millisecond):
		}
		lagger.restore(t, e)
		if err := <-done; err != nil {
			t.Fatalf("%v\n%s", err, mustRead(t, logPath))
		}
		out := string(mustRead(t, logPath))
		if !strings.Contains(out, "fleet:        3/3 members hold "+hk.ID) {
			t.Fatalf("no fleet evidence in the output:\n%s", out)
		}
		promoted := storeKeyring(t, e)
		if _, still := promoted.HeldKey(); still || promoted.Generation != held.Generation+1 {
			t.Fatalf("not promoted: %+v", promoted.Keys)
		}
		for _, p := range pods {
			wait.For(t, p.name+" to sign with the promoted key", 15*time.Second, func() bool {
				st, _ := appStatus(p.appURL)
				return st.SigningKeyID == hk.ID
			})
		}
		var records []map[string]any
		for _, line := range strings.Split(strings.TrimSpace(string(mustRead(t, audit))), "\n") {
			var m map[string]any
			json.Unmarshal([]byte(line), &m)
			if m["event"] == "rotation" { // the outcomes; each follows its intent
				records = append(records, m)
			}
		}
		last := records[len(records)-1]
		fl, _ := last["fleet"].(map[string]any)
		if len(records) < 2 || records[len(records)-2]["outcome"] != "held" || last["outcome"] != "promoted" || fl == nil ||
			fl["members"] != 3.0 || fl["confirmed"] != 3.0 || fl["confirmation_max_seconds"] == nil {
			t.Fatalf("audit records: %v", records)
		}
	})

	t.Run("a gate that times out leaves the key held, exits 1 and names the pod", func(t *testing.T) {
		lagger.cut(t, e)
		wait.For(t, "pod-c's sidecar to report failing reads", 10*time.Second, func() bool { return sidecarStatus(t, lagger.sidecarURL).StoreError != "" })
		before := storeKeyring(t, e)
		out, stderr, err := gated("2s", "--force")
		if exitCode(err) != 1 || !strings.Contains(stderr, "not promoted") || !strings.Contains(stderr, laggerName) || !strings.Contains(out, "held, not promoted") {
			t.Fatalf("exit %d\n%s%s", exitCode(err), out, stderr)
		}
		held := storeKeyring(t, e)
		hk, ok := held.HeldKey()
		if !ok || held.Generation != before.Generation+1 {
			t.Fatalf("the held key did not stay: %+v", held.Keys)
		}
		_, stderr, err = e.keysync("rotate", "--store", e.storeURL(), "--min-propagation", "0s", "--activation-delay", "2s", "--reason", "e2e")
		if exitCode(err) != 1 || !strings.Contains(stderr, "held") || !strings.Contains(stderr, "keysync promote") {
			t.Fatalf("a rotation over a held key: exit %d %s", exitCode(err), stderr)
		}
		st, _, err := e.keysync("status", "--fleet", fleetURL, "-o", "json")
		var fs struct {
			Members []struct {
				Member     string   `json:"member"`
				Held       []string `json:"held"`
				StoreError string   `json:"store_error"`
			} `json:"members"`
		}
		if err != nil || json.Unmarshal([]byte(st), &fs) != nil || len(fs.Members) != 3 {
			t.Fatalf("status --fleet: %v\n%s", err, st)
		}
		for _, m := range fs.Members {
			if holds := contains(m.Held, hk.ID); holds == (m.Member == laggerName) || (m.Member == laggerName) != (m.StoreError != "") {
				t.Fatalf("status --fleet row %+v (held key %s)", m, hk.ID)
			}
		}
		table, stderr, err := e.keysync("status", "--fleet", fleetURL, "--store", e.storeURL())
		if !strings.Contains(table, "held") || !strings.Contains(table, "3 members: 3 answered") {
			t.Fatalf("status --fleet table:\n%s", table)
		}
		// Issue 34: status --fleet exited 0 whatever the members said; a script could not
		// check a rotation with it. The lagger's app is behind the store.
		if exitCode(err) != 1 || !strings.Contains(stderr, "1 of 3 members not in step: "+laggerName+"'s app is at generation") {
			t.Fatalf("status --fleet --store with a member behind: exit %d\n%s", exitCode(err), stderr)
		}
		if _, stderr, err := e.keysync("status", "--fleet", fleetURL, "--store", e.storeURL(), "--allow-partial"); err != nil {
			t.Fatalf("--allow-partial: %v\n%s", err, stderr)
		}
		if _, stderr, err := e.keysync("status", "--fleet", "http://127.0.0.1:1"); exitCode(err) != 1 || !strings.Contains(stderr, "did not answer") {
			t.Fatalf("a member that does not answer: exit %d\n%s", exitCode(err), stderr)
		}
		lagger.restore(t, e)
		out, stderr, err = e.keysync("promote", "--store", e.storeURL(), "--confirm-fleet", fleetURL, "--confirm-timeout", "1m", "--max-clock-skew", "1s")
		if err != nil || !strings.Contains(out, "promote") || !strings.Contains(out, "3/3 members hold "+hk.ID) {
			t.Fatalf("promote: %v\n%s%s", err, out, stderr)
		}
	})

	t.Run("a timer rotation checked against the fleet refuses a delay below its propagation", func(t *testing.T) {
		before := mustRead(t, e.store)
		// Each sidecar: interval 200ms, backoff cap 400ms, read timeout 10s: worst 10.4s, plus 5s of skew.
		_, stderr, err := e.keysync("rotate", "--store", e.storeURL(), "--check-fleet", fleetURL, "--activation-delay", "10s", "--min-propagation", "0s", "--force", "--reason", "e2e")
		if exitCode(err) != 2 || !strings.Contains(stderr, "below the fleet's worst propagation 10.4s") || string(mustRead(t, e.store)) != string(before) {
			t.Fatalf("exit %d\n%s", exitCode(err), stderr)
		}
		out, stderr, err := e.keysync("rotate", "--store", e.storeURL(), "--check-fleet", fleetURL, "--activation-delay", "16s", "--min-propagation", "0s", "--force", "--reason", "e2e")
		if err != nil || !strings.Contains(out, "signing key") {
			t.Fatalf("a delay above the fleet's propagation: %v\n%s%s", err, out, stderr)
		}
	})

	t.Run("a fleet that cannot confirm writes nothing", func(t *testing.T) {
		garbage := e.startGarbage(t)
		before := mustRead(t, e.store)
		for name, tc := range map[string]struct {
			fleet string
			code  int
			want  string
		}{
			"an unknown scheme":       {"pods://sigil", 2, `unknown scheme "pods"`},
			"a selector left empty":   {"k8s://sigil?selector=", 2, "a label selector is required"},
			"a member answering junk": {fleetURL + "," + garbage, 1, "not a keysync sidecar status"},
			"a member nobody listens": {fleetURL + ",http://127.0.0.1:1", 1, "sidecar unreachable"},
		} {
			_, stderr, err := e.keysync("rotate", "--store", e.storeURL(), "--confirm-fleet", tc.fleet, "--force", "--reason", "e2e")
			if exitCode(err) != tc.code || !strings.Contains(stderr, tc.want) {
				t.Errorf("%s: exit %d, want %d with %q:\n%s", name, exitCode(err), tc.code, tc.want, stderr)
			}
		}
		if now := mustRead(t, e.store); string(now) != string(before) {
			t.Fatal("a refused rotation wrote the store")
		}
	})
}

// startGarbage serves, for the test's life, a page that is not a sidecar status.
func (e *env) startGarbage(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "<html>hello</html>") }))
	t.Cleanup(srv.Close)
	return srv.URL
}

func contains(ids []string, id string) bool {
	for _, v := range ids {
		if v == id {
			return true
		}
	}
	return false
}
