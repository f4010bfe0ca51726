package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sigil-dna/keysync/sidecar"
)

// TestTheSidecarSurvivesTheFiveAttacks runs the benchmark's attacks at a quarter of their
// connection counts on the file build: a rotation reaches the app during each, resident
// memory stays under the build's shipped limit (Run fails otherwise), open files stay
// bounded by the connection limits, and a legitimate client is answered throughout.
func TestTheSidecarSurvivesTheFiveAttacks(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "keysync-file")
	tags, err := exec.Command("sh", "../../build/flavor-tags.sh", "file").Output()
	if err != nil {
		t.Fatal(err)
	}
	build := exec.Command("go", "build", "-tags", strings.TrimSpace(string(tags)), "-o", bin, "../../cmd/keysync")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	rs, err := Run(t.Context(), Config{Bin: bin, Flavor: "file", Hold: 4 * time.Second, Scale: 4})
	t.Log("\n" + Markdown(Config{Bin: bin, Flavor: "file", Hold: 4 * time.Second}, rs))
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != len(attacks()) {
		t.Fatalf("%d results", len(rs))
	}
	for _, r := range rs {
		// The sidecar's own files (binary, store watch, listener, pipes) plus its connections.
		if r.FDsPeak > r.FDsBefore+sidecar.MaxConns {
			t.Errorf("%s: %d open files", r.Attack, r.FDsPeak)
		}
		if r.LegitOK == 0 || r.LegitOK < r.LegitTried*9/10 {
			t.Errorf("%s: the legitimate client was answered %d times of %d", r.Attack, r.LegitOK, r.LegitTried)
		}
		if r.Sent == 0 {
			t.Errorf("%s: the attack sent nothing", r.Attack)
		}
	}
}
