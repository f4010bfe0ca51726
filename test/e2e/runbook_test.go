package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
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
	e.start("pod", e.podArgs(out, appURL, port, "--pid-file", filepath.Join(e.mem, "pod.pid"))...)
	waitGeneration(t, appURL, 1)

	audit := filepath.Join(e.dir, "audit.jsonl")
	script := "set -euo pipefail\n" + strings.Join(blocks, "\n")
	cmd := exec.Command("bash", "-c", script)
	cmd.Env = append(os.Environ(),
		"PATH="+filepath.Dir(keysyncBin)+":"+os.Getenv("PATH"),
		"KEYSYNC_STORE="+e.storeURL(), "KEYSYNC_AUDIT_LOG="+audit,
		"KEYSYNC_ACTIVATION_DELAY=2s", "KEYSYNC_VERIFY_WINDOW=30s", "KEYSYNC_MIN_PROPAGATION=1s",
		"KEYSYNC_WAIT_FOR_SWITCH=2.5", "KEYSYNC_LOG_FORMAT=json")
	output, err := cmd.CombinedOutput()
	f, _ := e.logFile("runbook")
	f.Write(output)
	e.recordSecrets()
	if err != nil {
		t.Fatalf("the runbook's commands failed: %v\n%s", err, output)
	}
	text := string(output)
	for _, want := range []string{
		"dry run, nothing written", `"state": "pending"`, "generation 1 -> 2",
		"rollback file://", "generation 2 -> 3", "emergency file://", "generation 3 -> 4", `"reason":"incident INC-0000: key exposed"`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("the runbook's output lacks %q", want)
		}
	}
	if !regexp.MustCompile(`(?m)^[0-9a-f]{16}\s+previous\s`).MatchString(text) {
		t.Error("after the switch, keysync status shows no previous key")
	}
	lines, _ := os.ReadFile(audit)
	if n := strings.Count(string(lines), "\n"); n != 3 {
		t.Errorf("%d audit lines, want 3 (rotation, rollback, emergency)", n)
	}
	waitGeneration(t, appURL, 4) // the app followed every step
	if t.Failed() {
		t.Logf("runbook output:\n%s", text)
	}
}
