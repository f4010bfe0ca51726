package manifests

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/sigil-dna/keysync/test/docsection"
)

// flavorMemory is a flavor's memory request and limit as docs/benchmarks.md states them.
type flavorMemory struct{ request, limit string }

var (
	memoryRow = regexp.MustCompile(`(?m)^\| (\w+) \| (\d+Mi) \| (\d+Mi) \|$`)
	// | build | store | binary | resident (peak) | …
	peakRow = regexp.MustCompile(`(?m)^\| (\w+) \| (\w+) \| [\d.]+ MB \| ([\d.]+) MiB \|`)
)

// footprint reads the footprint section of docs/benchmarks.md (make bench-footprint): the
// memory set per flavor, and the highest resident peak measured per flavor, in MiB.
func footprint(t *testing.T) (map[string]flavorMemory, map[string]float64) {
	t.Helper()
	doc, err := os.ReadFile("../docs/benchmarks.md")
	if err != nil {
		t.Fatal(err)
	}
	sec, ok := docsection.Get(doc, "footprint")
	if !ok {
		t.Fatal("docs/benchmarks.md has no footprint section (make bench-footprint)")
	}
	mem, peaks := map[string]flavorMemory{}, map[string]float64{}
	for _, m := range memoryRow.FindAllStringSubmatch(string(sec), -1) {
		mem[m[1]] = flavorMemory{m[2], m[3]}
	}
	for _, m := range peakRow.FindAllStringSubmatch(string(sec), -1) {
		v, _ := strconv.ParseFloat(m[3], 64)
		peaks[m[1]] = max(peaks[m[1]], v)
	}
	for _, fl := range []string{"full", "file", "vault", "kube", "aws", "gcp"} {
		if mem[fl].request == "" || peaks[fl] == 0 {
			t.Fatalf("docs/benchmarks.md's footprint lacks the %s flavor (memory %v, peak %v)", fl, mem[fl], peaks[fl])
		}
	}
	return mem, peaks
}

// checkSidecar compares a rendered sidecar with its flavor's image and measured memory.
func checkSidecar(t *testing.T, what string, c corev1.Container, image string, want flavorMemory) {
	t.Helper()
	if c.Image != image {
		t.Errorf("%s: image %s, want %s", what, c.Image, image)
	}
	req, lim := c.Resources.Requests[corev1.ResourceMemory], c.Resources.Limits[corev1.ResourceMemory]
	if req.String() != want.request || lim.String() != want.limit {
		t.Errorf("%s: memory %s/%s, want the measured %s/%s", what, req.String(), lim.String(), want.request, want.limit)
	}
	gomem := false
	for _, e := range c.Env {
		if e.Name == "GOMEMLIMIT" && e.ValueFrom != nil && e.ValueFrom.ResourceFieldRef != nil && e.ValueFrom.ResourceFieldRef.Resource == "limits.memory" {
			gomem = true
		}
	}
	if !gomem {
		t.Errorf("%s: no GOMEMLIMIT from the memory limit", what)
	}
}

// TestTheMeasuredFootprintCoversEveryFlavor: each flavor's request is at least the
// highest resident peak measured for it.
func TestTheMeasuredFootprintCoversEveryFlavor(t *testing.T) {
	mem, peaks := footprint(t)
	for fl, m := range mem {
		req := resource.MustParse(m.request)
		if float64(req.Value())/(1<<20) < peaks[fl] {
			t.Errorf("%s: request %s is below the measured peak %.1f MiB", fl, m.request, peaks[fl])
		}
		if lim := resource.MustParse(m.limit); lim.Cmp(req) < 0 {
			t.Errorf("%s: limit %s below request %s", fl, m.limit, m.request)
		}
	}
}

// TestTheChartPicksTheFlavorOfTheStore: the chart's sidecar runs the slim build of its
// store's scheme with that build's measured memory; flavor and memory can be set.
func TestTheChartPicksTheFlavorOfTheStore(t *testing.T) {
	mem, _ := footprint(t)
	for store, fl := range map[string]string{
		"": "kube", // the chart's Secret
		"vault://secret/sigil/spiral-event-secret":       "vault",
		"ssm:///spiral-event-secret":                     "aws",
		"secretsmanager://spiral-event-secret":           "aws",
		"gcpsm://projects/p/secrets/spiral-event-secret": "gcp",
		"file:///etc/keysync/keys.json":                  "file",
	} {
		set := []string{"keysync.enabled=true"}
		if store != "" {
			set = append(set, "keysync.store="+store)
		}
		d := deployment(t, helmTemplate(t, set...))
		checkSidecar(t, "chart on "+fl+" store "+store, d.Spec.Template.Spec.InitContainers[0], "ghcr.io/sigil-dna/keysync:latest-"+fl, mem[fl])
	}
	full := deployment(t, helmTemplate(t, "keysync.enabled=true", "keysync.flavor=full", "keysync.image.tag=1.4.0")).Spec.Template.Spec.InitContainers[0]
	checkSidecar(t, "chart, flavor full", full, "ghcr.io/sigil-dna/keysync:1.4.0", mem["full"])
	own := deployment(t, helmTemplate(t, "keysync.enabled=true", "keysync.image=registry.example/keysync@sha256:abc", "keysync.resources.limits.memory=200Mi")).Spec.Template.Spec.InitContainers[0]
	if lim := own.Resources.Limits[corev1.ResourceMemory]; own.Image != "registry.example/keysync@sha256:abc" || lim.String() != "200Mi" ||
		own.Resources.Requests.Memory().String() != mem["kube"].request {
		t.Errorf("an image given whole and a memory limit set are not kept: %s %v", own.Image, own.Resources)
	}
	if _, err := runErr(helmBin, "template", "r", "helm/keysync-app", "--set", "keysync.enabled=true", "--set", "keysync.flavor=small"); err == nil || !strings.Contains(err.Error(), `keysync.flavor "small"`) {
		t.Errorf("an unknown flavor is not refused: %v", err)
	}
}

// TestKustomizeFlavors: the base (a Secret store) runs the kube build; each Component in
// flavors/ switches the base's sidecar to its build with its measured memory.
func TestKustomizeFlavors(t *testing.T) {
	mem, _ := footprint(t)
	checkSidecar(t, "kustomize base", deployment(t, run(t, nil, "kubectl", "kustomize", "base")).Spec.Template.Spec.InitContainers[0],
		"ghcr.io/sigil-dna/keysync:latest-kube", mem["kube"])
	for _, c := range deployment(t, run(t, nil, "kubectl", "kustomize", "overlays/no-native-sidecar")).Spec.Template.Spec.Containers {
		if c.Name == "keysync" {
			checkSidecar(t, "kustomize no-native-sidecar", c, "ghcr.io/sigil-dna/keysync:latest-kube", mem["kube"])
		}
	}
	for _, fl := range []string{"file", "vault", "aws", "gcp", "full"} {
		image := "ghcr.io/sigil-dna/keysync:latest-" + fl
		if fl == "full" {
			image = "ghcr.io/sigil-dna/keysync:latest"
		}
		checkSidecar(t, "kustomize base with flavors/"+fl, deployment(t, kustomizeWithComponent(t, fl)).Spec.Template.Spec.InitContainers[0], image, mem[fl])
	}
}

// kustomizeWithComponent builds the base with the Component flavors/FLAVOR.
func kustomizeWithComponent(t *testing.T, flavor string) []byte {
	t.Helper()
	dir, err := os.MkdirTemp(".", ".test-kustomize-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	k := "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - ../base\ncomponents:\n  - ../flavors/" + flavor + "\n"
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(k), 0o644); err != nil {
		t.Fatal(err)
	}
	return run(t, nil, "kubectl", "kustomize", dir)
}

// runErr runs a command that may fail, returning its error with its standard error.
func runErr(name string, args ...string) ([]byte, error) {
	cmd := exec.Command(name, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("%v: %s", err, stderr.String())
	}
	return out, nil
}
