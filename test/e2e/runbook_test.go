package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sigil-dna/keysync/harness/wait"
)

// TestRunbookAsWritten runs every `sh runbook` block of docs/runbook.md, in order, against
// a local file store while a sidecar and an app run: routine rotation, rollback, emergency.
func TestRunbookAsWritten(t *testing.T) {
	doc, err := os.ReadFile("../../docs/runbook.md")
	if err != nil {
		t.Fatal(err)
	}
	var blocks []string
	for _, m := range regexp.MustCompile("(?s)```sh runbook\n(.*?)```").FindAllStringSubmatch(string(doc), -1) {
		var lines []string
		for _, l := range strings.Split(m[1], "\n") {
			lines = append(lines, strings.TrimPrefix(l, "   "))
		}
		blocks = append(blocks, strings.Join(lines, "\n"))
	}
	if len(blocks) < 6 {
		t.Fatalf("%d runbook blocks", len(blocks))
	}
	e := newEnv(t)
	e.rotate()
	out := e.out("pod")
	port := freePort(t)
	appURL := fmt.Sprintf("http://127.0.0.1:%d", port)
	args := e.podArgs(out, appURL, port, "--pid-file", filepath.Join(e.mem, "pod.pid"))
	e.start("pod", args...)
	waitGeneration(t, appURL, 1)
	wait.For(t, "the app's confirmation", 10*time.Second, func() bool { return sidecarStatus(t, sidecarURLOf(t, args)).App.Confirmed })

	audit := filepath.Join(e.dir, "audit", "audit.jsonl")
	// The setup block's variables, each with this test's value (issue 33: the runbook used
	// two variables only this test set, and pasted as written it audited nothing).
	setup := regexp.MustCompile("(?s)```sh runbook-setup\n(.*?)```").FindStringSubmatch(string(doc))
	if setup == nil {
		t.Fatal("the runbook has no setup block")
	}
	values := map[string]string{"KEYSYNC_STORE": e.storeURL(), "KEYSYNC_CONFIRM_FLEET": sidecarURLOf(t, args),
		"KEYSYNC_AUDIT_LOG": audit, "KEYSYNC_WAIT_FOR_SWITCH": "2.5"}
	exports := map[string]bool{}
	var local []string
	for _, m := range regexp.MustCompile(`(?m)^export (KEYSYNC_[A-Z_]+)=`).FindAllStringSubmatch(setup[1], -1) {
		exports[m[1]] = true
		v, ok := values[m[1]]
		if !ok {
			t.Fatalf("the setup block sets %s, which this test has no local value for", m[1])
		}
		local = append(local, "export "+m[1]+"="+shellQuote(v))
	}
	for _, m := range regexp.MustCompile(`\$\{?(KEYSYNC_[A-Z_]+)`).FindAllStringSubmatch(strings.Join(blocks, "\n"), -1) {
		if !exports[m[1]] {
			t.Errorf("a runbook block uses $%s, which the setup block does not set", m[1])
		}
	}
	// The setup block's other lines run as written.
	var rest []string
	for _, l := range strings.Split(setup[1], "\n") {
		if !strings.HasPrefix(l, "export ") {
			rest = append(rest, l)
		}
	}
	script := "set -euo pipefail\n" + strings.Join(local, "\n") + "\n" + strings.Join(rest, "\n") + "\n" + strings.Join(blocks, "\n")
	cmd := exec.Command("bash", "-c", script)
	cmd.Env = append(os.Environ(),
		"PATH="+filepath.Dir(keysyncBin)+":"+os.Getenv("PATH"),
		"KEYSYNC_ACTIVATION_DELAY=2s", "KEYSYNC_VERIFY_WINDOW=30s", "KEYSYNC_MIN_PROPAGATION=1s", "KEYSYNC_MAX_CLOCK_SKEW=2s",
		"KEYSYNC_LOG_FORMAT=json")
	output, err := cmd.CombinedOutput()
	f, _ := e.logFile("runbook")
	f.Write(output)
	e.recordSecrets()
	if err != nil {
		t.Fatalf("the runbook's commands failed: %v\n%s", err, output)
	}
	text := string(output)
	for _, want := range []string{
		"1 members: 1 answered, 1 ready, 1 apps confirmed", "dry run, nothing written: hold", "gate: 1/1 hold",
		"promote file://", "generation 2 -> 3", "fleet:        1/1 members hold", `"state": "pending"`,
		"rollback file://", "generation 3 -> 4", "emergency file://", "generation 4 -> 5", `"reason":"incident INC-0000: key exposed"`,
		`"outcome":"promoted"`, `"app_confirmed": true`, "verified: keyed signature by key", "refused: unknown_key: key",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("the runbook's output lacks %q", want)
		}
	}
	if !regexp.MustCompile(`(?m)^[0-9a-f]{16}\s+previous\s`).MatchString(text) {
		t.Error("after the switch, keysync status shows no previous key")
	}
	lines, _ := os.ReadFile(audit)
	if n, i := strings.Count(string(lines), `"event":"rotation"`), strings.Count(string(lines), `"event":"intent"`); n != 4 || i != 4 {
		t.Errorf("%d audit outcomes and %d intents, want 4 of each (hold, promotion, rollback, emergency)", n, i)
	}
	waitGeneration(t, appURL, 5) // the app followed every step
	if t.Failed() {
		t.Logf("runbook output:\n%s", text)
	}
}

// shellQuote is s in single quotes for bash.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
