package e2e

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/sigil-dna/keysync/demo"
	"github.com/sigil-dna/keysync/harness/podfleet"
	"github.com/sigil-dna/keysync/harness/wait"
	"github.com/sigil-dna/keysync/keyring"
)

// TestDemo is the README's first command with the numbers: 4 pods for 30 s.
// keysync-demo finds the keysync binary beside it, as make demo builds them into bin/.
func TestDemo(t *testing.T) {
	e := newEnv(t)
	stdout, stderr, err := e.run(demoBin, "--pods", "4", "--duration", "30s", "--json")
	if err != nil {
		t.Fatalf("keysync-demo: %v\n%s", err, stderr)
	}
	var s demo.Summary
	if err := json.Unmarshal([]byte(stdout), &s); err != nil {
		t.Fatalf("summary is not JSON: %v\n%s", err, stdout)
	}
	if s.Rotations < 5 || s.FailedVerifications != 0 || s.EventsVerified == 0 || s.SecretsInOutput != 0 || s.Reloads < 4*s.Rotations-4 {
		t.Fatalf("summary %+v", s)
	}
	if podfleet.PIDNamespacesAvailable() && !s.PIDNamespaces {
		t.Fatal("root with unshare, but the pods shared one PID namespace")
	}
	if !strings.Contains(stderr, "rotations") || !strings.Contains(stderr, "rotation 1: key ") {
		t.Fatalf("no progress lines, or no line per rotation:\n%s", stderr)
	}
	// Before any reload is measured there is no figure to show (regression: "reload p50 0ms").
	if first, _, _ := strings.Cut(stderr, "\n"); !strings.Contains(first, "reload p50 – p99 –") {
		t.Errorf("first progress line: %s", first)
	}
	// Each rotation is one short line, not a log record (regression: ~400 characters of
	// JSON between the progress lines).
	if strings.Contains(stderr, `"event":"rotation"`) {
		t.Errorf("log records between the progress lines:\n%s", stderr)
	}
	// Every pod stopped when asked (regression: unshare's parent ignores SIGTERM, so each
	// pod was killed after 5 s, one after the other).
	if s.PodsKilledAtStop != 0 {
		t.Errorf("%d pods had to be killed at the end", s.PodsKilledAtStop)
	}
	t.Logf("demo: %d rotations, %d events verified, %d failed, reload p50 %.1fms p99 %.1fms", s.Rotations, s.EventsVerified,
		s.FailedVerifications, s.PropagationP50Ms, s.PropagationP99Ms)
}

func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

func TestCommandLine(t *testing.T) {
	e := newEnv(t)
	cases := map[string]struct {
		args []string
		env  []string
		code int
		want string
	}{
		"no command is a usage error":               {nil, nil, 2, "no command given"},
		"an unknown command is a usage error":       {[]string{"spin"}, nil, 2, `unknown command "spin"`},
		"an unknown flag names the command":         {[]string{"rotate", "--nope"}, nil, 2, "rotate: flag provided but not defined: -nope"},
		"a missing store says which flag":           {[]string{"rotate", "--reason", "e2e"}, nil, 2, "--store is required"},
		"an unknown store scheme lists the known":   {[]string{"status", "--store", "ftp://x/y"}, nil, 2, "supported: file"},
		"an ssm URL without its slashes":            {[]string{"status", "--store", "ssm://spiral"}, nil, 2, "not an ssm:///NAME URL"},
		"AWS without a region says where to set it": {[]string{"status", "--store", "secretsmanager://spiral"}, []string{"AWS_CONFIG_FILE=/nonexistent", "AWS_EC2_METADATA_DISABLED=true"}, 1, "no AWS region: set --aws-region, AWS_REGION"},
		"AWS unreachable names the store and call": {[]string{"status", "--store", "ssm:///spiral", "--aws-region", "eu-west-1", "--aws-endpoint-url", "http://127.0.0.1:9"},
			[]string{"AWS_ACCESS_KEY_ID=AKIAX", "AWS_SECRET_ACCESS_KEY=x", "AWS_CONFIG_FILE=/nonexistent", "AWS_MAX_ATTEMPTS=1"}, 1, "ssm spiral: GetParameter"},
		"a short key is refused":                  {[]string{"rotate", "--store", e.storeURL(), "--bytes", "16", "--reason", "e2e"}, nil, 2, "--bytes 16: at least 32"},
		"a bad env value names variable and flag": {[]string{"sidecar"}, []string{"KEYSYNC_INTERVAL=soon"}, 2, "invalid value in KEYSYNC_INTERVAL for --interval"},
		"a delay under the minimum propagation":   {[]string{"rotate", "--store", e.storeURL(), "--init", "--activation-delay", "1s", "--reason", "e2e"}, nil, 1, "below the minimum propagation time"},
		"help lists flags with their variables":   {[]string{"sidecar", "--help"}, nil, 0, "env KEYSYNC_SIGNAL_PROCESS"},
		"top-level help lists commands":           {[]string{"--help"}, nil, 0, "rollback"},
		"status of an empty store is not found":   {[]string{"status", "--store", e.storeURL()}, nil, 1, "no keyring in the store"},
		"the flag wins over the environment":      {[]string{"rotate", "--store", e.storeURL(), "--init", "--dry-run", "--min-propagation", "0s", "--activation-delay", "2s"}, []string{"KEYSYNC_ACTIVATION_DELAY=1ms", "KEYSYNC_MIN_PROPAGATION=1h"}, 0, "dry run, nothing written"},
		"the environment fills what flags do not": {[]string{"rotate", "--dry-run", "--init"}, []string{"KEYSYNC_STORE=" + e.storeURL(), "KEYSYNC_MIN_PROPAGATION=0s"}, 0, "dry run, nothing written"},
		// An operator's first week (issue 18): a typo must not rotate a store nobody reads.
		"a file URL with two slashes names the right spelling": {[]string{"rotate", "--store", "file://var/lib/keysync/keys.json", "--init", "--reason", "e2e"}, nil, 2,
			"file:///var/lib/keysync/keys.json"},
		"an unknown query parameter is refused":     {[]string{"status", "--store", "vault://secret/sigil/x?version=2"}, nil, 2, `unknown parameter "version"`},
		"an unknown k8s query parameter is refused": {[]string{"status", "--store", "k8s://sigil/x?key=value"}, nil, 2, `unknown parameter "key"`},
		"an unknown file query parameter":           {[]string{"status", "--store", "file:///tmp/k.json?mode=0600"}, nil, 2, `unknown parameter "mode"`},
		"an error is prefixed once": {[]string{"sidecar", "--once", "--store", e.storeURL(), "--out", "/nonexistent/keys"}, nil, 1,
			"keysync: sidecar --once: output directory: stat /nonexistent/keys"},
		"rotate on a missing store asks for --init": {[]string{"rotate", "--store", e.storeURL() + ".missing", "--min-propagation", "0s", "--reason", "e2e"}, nil, 1,
			"(use --init to create the first keyring)"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			cmd := exec.Command(keysyncBin, tc.args...)
			cmd.Env = append([]string{"PATH=/usr/bin:/bin"}, tc.env...)
			out, err := cmd.CombinedOutput()
			if got := exitCode(err); got != tc.code {
				t.Fatalf("exit %d, want %d\n%s", got, tc.code, out)
			}
			if !strings.Contains(string(out), tc.want) {
				t.Fatalf("output lacks %q:\n%s", tc.want, out)
			}
		})
	}
}

func TestStatusAndRollbackThroughTheCLI(t *testing.T) {
	e := newEnv(t)
	e.rotate()
	e.rotate()
	out, _, err := e.keysync("status", "--store", e.storeURL())
	if err != nil || !strings.Contains(out, "pending") || !strings.Contains(out, "current") {
		t.Fatalf("%v\n%s", err, out)
	}
	out, _, err = e.keysync("status", "--store", e.storeURL(), "-o", "json")
	var st struct {
		Generation int64 `json:"generation"`
		Keys       []struct {
			ID, State string
		} `json:"keys"`
	}
	if err != nil || json.Unmarshal([]byte(out), &st) != nil || st.Generation != 2 || len(st.Keys) != 2 {
		t.Fatalf("%v\n%s", err, out)
	}
	out, stderr, err := e.keysync("rollback", "--store", e.storeURL(), "--min-propagation", "0s", "--reason", "bad key")
	if err != nil || !strings.Contains(out, "generation 2 -> 3") {
		t.Fatalf("%v\n%s%s", err, out, stderr)
	}
	if !strings.Contains(stderr, `"event":"rotation"`) || !strings.Contains(stderr, `"reason":"bad key"`) {
		t.Fatalf("no audit event:\n%s", stderr)
	}
}

// TestASecondRollbackDoesNotUndoTheFirst: issue 34. A rollback retried within the
// activation delay printed `removed: [A]` and exited 0: the key the first rollback
// restored was withdrawn and the one rolled back from signed on with no end.
func TestASecondRollbackDoesNotUndoTheFirst(t *testing.T) {
	e := newEnv(t)
	e.rotate()
	e.rotate()
	time.Sleep(1100 * time.Millisecond) // the second key signs (activation delay 1 s)
	a := storeKeyring(t, e).Keys[0].ID
	rollback := func(extra ...string) (string, string, error) {
		return e.keysync(append([]string{"rollback", "--store", e.storeURL(), "--activation-delay", "1m", "--min-propagation", "0s", "--reason", "bad key"}, extra...)...)
	}
	out, stderr, err := rollback()
	if err != nil || !strings.Contains(out, "signing key:  "+a) || !strings.Contains(out, "verifies until") {
		t.Fatalf("the first rollback: %v\n%s%s", err, out, stderr)
	}
	first := mustRead(t, e.store)
	out, stderr, err = rollback()
	if exitCode(err) != 1 || !strings.Contains(stderr, "key "+a+", restored by the last rollback") || !strings.Contains(stderr, "--force") ||
		string(mustRead(t, e.store)) != string(first) {
		t.Fatalf("a second rollback: exit %d\n%s%s", exitCode(err), out, stderr)
	}
	out, stderr, err = rollback("--force")
	if err != nil || !strings.Contains(out, "removed:      ["+a+"]") {
		t.Fatalf("a forced second rollback: %v\n%s%s", err, out, stderr)
	}
}

// TestATypoInAFileURLCreatesNothing: `file://var/lib/keysync/keys.json` (two slashes) made
// `var` a host, rotated a new ./var/lib/keysync/keys.json, printed "generation 0 -> 1" and
// exited 0: a store nobody reads (regression). It is refused with the right spelling, and
// nothing is created.
func TestATypoInAFileURLCreatesNothing(t *testing.T) {
	e := newEnv(t)
	cwd := t.TempDir()
	cmd := exec.Command(keysyncBin, "rotate", "--store", "file://var/lib/keysync/keys.json", "--min-propagation", "0s", "--reason", "e2e")
	cmd.Dir = cwd
	out, err := cmd.CombinedOutput()
	e.logFile("typo")
	if exitCode(err) != 2 || !strings.Contains(string(out), "file:///var/lib/keysync/keys.json") {
		t.Fatalf("exit %d:\n%s", exitCode(err), out)
	}
	if entries, _ := os.ReadDir(cwd); len(entries) != 0 {
		t.Fatalf("the typo created %v", entries)
	}
}

// TestLegacySignaturesSwitchedOffThroughTheCLI: `rotate --legacy off` writes a keyring whose
// pods refuse bare legacy signatures (legacy_off) while keyed ones verify; a later rotation
// keeps the setting, `--legacy on` restores them, and a bad value is a usage error.
func TestLegacySignaturesSwitchedOffThroughTheCLI(t *testing.T) {
	e := newEnv(t)
	legacy := func() (string, error) {
		t.Helper()
		data, err := os.ReadFile(e.store)
		if err != nil {
			t.Fatal(err)
		}
		r, err := keyring.Parse(data)
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		s := keyring.NewSigner(r)
		keyed, err := s.Sign(now, []byte("event"))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Verify(now, []byte("event"), keyed); err != nil {
			t.Fatalf("keyed signature refused: %v", err)
		}
		// A bare signature as the old eventSign makes it, with the current key.
		mac := hmac.New(sha256.New, r.Keys[0].Secret)
		mac.Write([]byte("event"))
		bare := hex.EncodeToString(mac.Sum(nil))
		return bare, s.Verify(now, []byte("event"), bare)
	}
	e.rotate()
	if _, err := legacy(); err != nil {
		t.Fatalf("a new keyring refuses legacy signatures: %v", err)
	}
	e.rotate("--legacy", "off")
	if _, err := legacy(); !errors.Is(err, keyring.ErrLegacyOff) {
		t.Fatalf("after --legacy off: %v, want legacy_off", err)
	}
	e.rotate()
	if _, err := legacy(); !errors.Is(err, keyring.ErrLegacyOff) {
		t.Fatalf("a rotation without --legacy switched legacy back on: %v", err)
	}
	e.rotate("--legacy", "on")
	if _, err := legacy(); err != nil {
		t.Fatalf("after --legacy on: %v", err)
	}
	_, stderr, err := e.keysync("rotate", "--store", e.storeURL(), "--legacy", "no")
	if exitCode(err) != 2 || !strings.Contains(stderr, `"no" is not keep, on or off`) {
		t.Fatalf("exit %d:\n%s", exitCode(err), stderr)
	}
}

// TestAnEmptyAuditLogIsRefused: issue 33. `--audit-log "$KEYSYNC_AUDIT_LOG"` with the
// variable unset ran the emergency rotation, exit 0, with no record.
func TestAnEmptyAuditLogIsRefused(t *testing.T) {
	e := newEnv(t)
	e.rotate()
	before := mustRead(t, e.store)
	_, stderr, err := e.keysync("rotate", "--emergency", "--store", e.storeURL(), "--reason", "INC-1", "--audit-log", "")
	if exitCode(err) != 2 || !strings.Contains(stderr, "--audit-log is empty") || string(mustRead(t, e.store)) != string(before) {
		t.Fatalf("exit %d\n%s", exitCode(err), stderr)
	}
}

// TestErrorsSayWhatToDo (issue 33): each of these said what was wrong and not what to do.
func TestErrorsSayWhatToDo(t *testing.T) {
	e := newEnv(t)
	for name, c := range map[string]struct {
		args []string
		want string
	}{
		"a duration without a unit": {[]string{"rotate", "--store", e.storeURL(), "--activation-delay", "30"}, "a duration needs a unit, e.g. --activation-delay 30s"},
		"a relative path as a URL":  {[]string{"status", "--store", "store/x"}, "a relative file path starts with ./ (./store/x)"},
		"file: with one colon":      {[]string{"status", "--store", "file:store/x"}, "a relative path is given alone: ./store/x"},
		"status of a missing file":  {[]string{"status", "--store", e.storeURL()}, "keysync rotate --init --store " + e.storeURL() + " --reason \"first keyring\"` makes the first keyring"},
	} {
		if _, stderr, err := e.keysync(c.args...); err == nil || !strings.Contains(stderr, c.want) {
			t.Errorf("%s: %v, want %q in:\n%s", name, err, c.want, stderr)
		}
	}
	// A rollback after the previous key's window: when it ended, and to rotate instead.
	for range 2 {
		if _, stderr, err := e.keysync("rotate", "--store", e.storeURL(), "--init", "--activation-delay", "1s", "--min-propagation", "0s", "--verify-window", "1s", "--force", "--reason", "e2e"); err != nil {
			t.Fatal(stderr)
		}
	}
	time.Sleep(2500 * time.Millisecond)
	if _, stderr, err := e.keysync("rollback", "--store", e.storeURL(), "--min-propagation", "0s", "--reason", "too late"); err == nil ||
		!strings.Contains(stderr, "stopped verifying at") || !strings.Contains(stderr, "rotate to a new key instead") {
		t.Errorf("a rollback after the window: %v\n%s", err, stderr)
	}
}

// TestAnInterruptedGateSaysTheKeyStaysHeld (issue 33): Ctrl-C during rotate
// --confirm-fleet said "context canceled", and not that the key stays held, nor what next.
func TestAnInterruptedGateSaysTheKeyStaysHeld(t *testing.T) {
	e := newEnv(t)
	e.rotate()
	out := e.out("pod")
	port := freePort(t)
	appURL := fmt.Sprintf("http://127.0.0.1:%d", port)
	args := e.podArgs(out, appURL, port) // no --pid-file: the app is never signalled and never confirms
	e.start("pod", args...)
	waitGeneration(t, appURL, 1)
	var stderr bytes.Buffer
	cmd := exec.Command(keysyncBin, "rotate", "--store", e.storeURL(), "--confirm-fleet", sidecarURLOf(t, args), "--confirm-timeout", "1m", "--reason", "e2e")
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	wait.For(t, "the held key", 10*time.Second, func() bool { _, held := storeKeyring(t, e).HeldKey(); return held })
	cmd.Process.Signal(os.Interrupt)
	err := cmd.Wait()
	if exitCode(err) != 1 || !strings.Contains(stderr.String(), "not promoted: interrupted; it stays held") || !strings.Contains(stderr.String(), "keysync promote") {
		t.Fatalf("exit %d\n%s", exitCode(err), stderr.String())
	}
}

// TestARotationNeedsAReason (issue 33): a rotation without --reason recorded no reason.
func TestARotationNeedsAReason(t *testing.T) {
	e := newEnv(t)
	e.rotate()
	before := mustRead(t, e.store)
	for _, cmd := range [][]string{{"rotate"}, {"rotate", "--emergency"}, {"rollback"}} {
		_, stderr, err := e.keysync(append(cmd, "--store", e.storeURL(), "--min-propagation", "0s")...)
		if exitCode(err) != 2 || !strings.Contains(stderr, "--reason is required") || string(mustRead(t, e.store)) != string(before) {
			t.Errorf("%v without --reason: exit %d\n%s", cmd, exitCode(err), stderr)
		}
	}
	if _, stderr, err := e.keysync("rotate", "--store", e.storeURL(), "--dry-run", "--min-propagation", "0s"); err != nil {
		t.Errorf("a dry run needs no reason: %v\n%s", err, stderr)
	}
}
