package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"testing"
)

// flavorNames are the builds `make flavors` makes: full and one per family.
var flavorNames = func() []string {
	out := []string{"full"}
	for _, f := range families {
		out = append(out, f.Name)
	}
	return out
}()

// familySDKs are import path prefixes only a family's store may bring into a build.
var familySDKs = map[string][]string{
	"vault": {"github.com/hashicorp/vault/api", "github.com/sigil-dna/keysync/store/vault"},
	"kube":  {"k8s.io/client-go", "k8s.io/api/", "github.com/sigil-dna/keysync/store/kube", "github.com/sigil-dna/keysync/rotate/fleet/kubefleet"},
	"aws":   {"github.com/aws/aws-sdk-go-v2", "github.com/sigil-dna/keysync/store/awsssm", "github.com/sigil-dna/keysync/store/awssm", "github.com/sigil-dna/keysync/internal/awsapi"},
	"gcp":   {"cloud.google.com/go/secretmanager", "google.golang.org/grpc", "github.com/sigil-dna/keysync/store/gcpsm"},
}

// flavorTags runs build/flavor-tags.sh, the one place the tags are written.
func flavorTags(t *testing.T, fl string) string {
	t.Helper()
	out, err := exec.Command("sh", "../../build/flavor-tags.sh", fl).Output()
	if err != nil {
		t.Fatalf("flavor-tags.sh %s: %v", fl, err)
	}
	return strings.TrimSpace(string(out))
}

// flavorSchemes are the store schemes a flavor opens.
func flavorSchemes(fl string) []string {
	var out []string
	for _, f := range families {
		if fl == "full" || f.Name == "file" || f.Name == fl {
			out = append(out, f.Schemes()...)
		}
	}
	return out
}

// TestEveryFlavorLinksOnlyItsStores lists what each flavor links (go list -deps with its
// tags) and fails if it links another family's SDK or lacks its own.
func TestEveryFlavorLinksOnlyItsStores(t *testing.T) {
	for _, f := range families[1:] {
		if _, ok := familySDKs[f.Name]; !ok {
			t.Errorf("family %s: say in familySDKs which packages only it may link", f.Name)
		}
	}
	if len(familySDKs) != len(families)-1 {
		t.Errorf("familySDKs names %d families, there are %d besides the file store", len(familySDKs), len(families)-1)
	}
	for _, fl := range flavorNames {
		t.Run(fl, func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command("go", "list", "-deps", "-tags", flavorTags(t, fl), "./cmd/keysync")
			cmd.Dir, cmd.Env = "../..", append(os.Environ(), "CGO_ENABLED=0")
			out, err := cmd.Output()
			if err != nil {
				t.Fatal(err)
			}
			deps := strings.Fields(string(out))
			for fam, prefixes := range familySDKs {
				wanted := fl == "full" || fl == fam
				for _, p := range prefixes {
					linked := slices.ContainsFunc(deps, func(d string) bool { return strings.HasPrefix(d, p) })
					if linked != wanted {
						t.Errorf("the %s build links %s: %v, want %v", fl, p, linked, wanted)
					}
				}
			}
			// gRPC's x/net/trace brings html/template, whose reflection keeps every
			// exported method of every linked type: 24 MB of the full binary.
			if slices.Contains(deps, "golang.org/x/net/trace") {
				t.Errorf("the %s build links golang.org/x/net/trace (the grpcnotrace tag is missing)", fl)
			}
			// client-go's clientset registers every API group at start; the store and the
			// fleet need core/v1 alone (kube.Core).
			if slices.ContainsFunc(deps, func(d string) bool { return strings.HasPrefix(d, "k8s.io/client-go/kubernetes") }) {
				t.Errorf("the %s build links client-go's clientset", fl)
			}
		})
	}
}

// checkFlavorRefusals: a slim build given another family's store, or a k8s:// fleet
// without the Kubernetes client, exits with a usage error naming the build that has it
// and writes nothing.
func checkFlavorRefusals(t *testing.T, bin, fl string) {
	t.Helper()
	urls := map[string]string{} // one store URL of every family but the file store's
	for _, f := range families[1:] {
		urls[f.Name] = f.Stores[0].Example
	}
	dir := t.TempDir()
	for fam, url := range urls {
		out, code, _ := runBinary(bin, "rotate", "--init", "--reason", "flavor test", "--store", url, "--mirror", "file://"+filepath.Join(dir, "mirror.json"))
		if fl == "full" || fl == fam {
			if strings.Contains(out, "this keysync is the") {
				t.Errorf("the %s build refuses its own store %s: %s", fl, url, out)
			}
			continue
		}
		want := "this keysync is the " + fl + " build, which has no "
		if code != 2 || !strings.Contains(out, want) || !strings.Contains(out, "keysync-"+fam) || !strings.Contains(out, "VERSION-"+fam) {
			t.Errorf("the %s build given %s: exit %d, %q; want exit 2 naming keysync-%s", fl, url, code, out, fam)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "mirror.json")); err == nil && fl != "full" {
		t.Errorf("the %s build wrote a mirror while refusing a store", fl)
	}
	store := "file://" + filepath.Join(dir, "keys.json")
	out, code, _ := runBinary(bin, "rotate", "--init", "--reason", "flavor test", "--store", store, "--confirm-fleet", "k8s://sigil?selector=app=x")
	if fl == "full" || fl == "kube" {
		if strings.Contains(out, "this keysync is the") {
			t.Errorf("the %s build refuses a k8s:// fleet: %s", fl, out)
		}
		return
	}
	if code != 2 || !strings.Contains(out, "has no k8s:// store") || !strings.Contains(out, "keysync-kube") {
		t.Errorf("the %s build given a k8s:// fleet: exit %d, %q", fl, code, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "keys.json")); err == nil {
		t.Errorf("the %s build wrote a key before refusing its fleet", fl)
	}
}

// TestTheSidecarCollectsGarbageSooner: the sidecar sets GOGC=25 unless GOGC is set.
func TestTheSidecarCollectsGarbageSooner(t *testing.T) {
	old := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(old) })
	dir := t.TempDir()
	store := "file://" + filepath.Join(dir, "keys.json")
	if err := run(t.Context(), []string{"rotate", "--init", "--reason", "flavor test", "--store", store}, noEnv, ioDiscard{}, ioDiscard{}); err != nil {
		t.Fatal(err)
	}
	for gogc, want := range map[string]int{"": SidecarGCPercent, "200": 100} {
		debug.SetGCPercent(100)
		env := func(k string) string {
			if k == "GOGC" {
				return gogc
			}
			return ""
		}
		if err := run(t.Context(), []string{"sidecar", "--once", "--store", store, "--out", t.TempDir()}, env, ioDiscard{}, ioDiscard{}); err != nil {
			t.Fatal(err)
		}
		if got := debug.SetGCPercent(100); got != want {
			t.Errorf("GOGC=%q: the sidecar runs with GOGC %d, want %d", gogc, got, want)
		}
	}
}

type ioDiscard struct{}

func (ioDiscard) Write(p []byte) (int, error) { return len(p), nil }
