//go:build !keysync_omit_vault && !keysync_omit_kube && !keysync_omit_gcp

package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sigil-dna/keysync/test/gcpfake"
)

// TestAGCPEmulatorThroughTheEnvironment: SECRET_MANAGER_EMULATOR_HOST points every
// command at an emulator (here the gRPC fake): rotate, then status, read the same secret.
func TestAGCPEmulatorThroughTheEnvironment(t *testing.T) {
	f, _ := gcpfake.Start(t)
	env := func(k string) string {
		if k == EmulatorHostEnv {
			return f.Addr
		}
		return ""
	}
	url := "gcpsm://projects/p/secrets/" + strings.ReplaceAll(filepath.Base(t.Name()), "/", "-")
	var out, logs bytes.Buffer
	if err := run(t.Context(), []string{"rotate", "--init", "--reason", "store test", "--store", url}, env, &out, &logs); err != nil {
		t.Fatalf("%v\n%s", err, logs.String())
	}
	if !strings.Contains(logs.String(), "using a Secret Manager emulator") {
		t.Errorf("no warning that an emulator is used: %s", logs.String())
	}
	out.Reset()
	if err := run(t.Context(), []string{"status", "--store", url}, env, &out, &logs); err != nil || !strings.Contains(out.String(), "generation 1") {
		t.Fatalf("status: %v\n%s", err, out.String())
	}
	if f.Calls()["AddSecretVersion"] == 0 {
		t.Fatalf("the fake saw no write: %v", f.Calls())
	}
}
