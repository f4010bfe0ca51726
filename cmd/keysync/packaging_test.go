package main

import (
	"bytes"
	"context"
	"debug/elf"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"

	"github.com/sigil-dna/keysync/demo"
	"github.com/sigil-dna/keysync/harness/app"
	"github.com/sigil-dna/keysync/internal/cli"
)

var update = flag.Bool("update", false, "rewrite docs/configuration.md")

func noEnv(string) string { return "" }

// TestComposeFile loads docker-compose.yml with compose-go and checks the pod it models.
func TestComposeFile(t *testing.T) {
	p, err := loader.LoadWithContext(context.Background(), types.ConfigDetails{
		WorkingDir:  "../..",
		ConfigFiles: []types.ConfigFile{{Filename: "../../docker-compose.yml"}},
		Environment: types.Mapping{},
	}, func(o *loader.Options) { o.SetProjectName("keysync", true) })
	if err != nil {
		t.Fatal(err)
	}
	svc := map[string]types.ServiceConfig{}
	for _, s := range p.Services {
		svc[s.Name] = s
	}
	for _, s := range p.DisabledServices {
		svc[s.Name] = s
	}
	for _, name := range []string{"vault", "seed", "sidecar", "app", "keysync"} {
		if _, ok := svc[name]; !ok {
			t.Fatalf("no service %s", name)
		}
	}
	appSvc := svc["app"]
	if appSvc.Pid != "service:sidecar" || appSvc.NetworkMode != "service:sidecar" {
		t.Fatalf("the app does not share the sidecar's PID and network namespaces: pid %q network %q", appSvc.Pid, appSvc.NetworkMode)
	}
	if len(appSvc.Volumes) != 1 || appSvc.Volumes[0].Source != "keys" || !appSvc.Volumes[0].ReadOnly {
		t.Fatalf("the app does not mount the keys read-only: %+v", appSvc.Volumes)
	}
	if !strings.Contains(appSvc.Image, "keysync-demo") || appSvc.Build == nil || appSvc.Build.Target != "demo" {
		t.Fatalf("the app must run the demo image (Dockerfile target demo), not keysync's: image %q build %+v", appSvc.Image, appSvc.Build)
	}
	if v := p.Volumes["keys"]; v.DriverOpts["type"] != "tmpfs" {
		t.Fatalf("the keys volume is not in memory: %+v", v)
	}
	if c := svc["seed"].DependsOn["vault"].Condition; c != "service_healthy" {
		t.Fatalf("seed does not wait for vault: %q", c)
	}
	if c := svc["sidecar"].DependsOn["seed"].Condition; c != "service_completed_successfully" {
		t.Fatalf("the sidecar does not wait for the seed: %q", c)
	}
	// Every keysync command line in the file parses with the real flag set.
	sets := flagSets()
	parsed := 0
	for name, s := range svc {
		if !strings.Contains(s.Image, "keysync") {
			continue
		}
		var c *cli.Command
		args := []string(s.Command)
		switch {
		case slices.Equal(s.Entrypoint, []string{"/demo-app"}) && name == "app":
			c, _ = app.Command()
		case len(args) == 0:
			continue // the tools service: the command is given to `docker compose run`
		default:
			if c = sets[args[0]]; c == nil {
				t.Fatalf("service %s runs unknown command %q", name, args[0])
			}
			args = args[1:]
		}
		if err := c.Parse(args, noEnv, os.Stdout); err != nil {
			t.Errorf("service %s: %v", name, err)
		}
		parsed++
	}
	if parsed != 3 {
		t.Fatalf("%d keysync command lines parsed, want 3 (seed, sidecar, app)", parsed)
	}
	// The documented hand rotation parses too.
	compose, _ := os.ReadFile("../../docker-compose.yml")
	m := regexp.MustCompile(`docker compose run --rm keysync (rotate .*)`).FindSubmatch(compose)
	if m == nil {
		t.Fatal("docker-compose.yml does not document a hand rotation")
	}
	rot, _ := rotateCommand("rotate")
	if err := rot.Parse(shellWords(string(m[1]))[1:], noEnv, os.Stdout); err != nil {
		t.Fatalf("documented rotation: %v", err)
	}
}

// shellWords splits a command line with double quotes.
func shellWords(s string) []string {
	var out []string
	for _, m := range regexp.MustCompile(`"([^"]*)"|(\S+)`).FindAllStringSubmatch(s, -1) {
		out = append(out, m[1]+m[2])
	}
	return out
}

// configurationDoc renders every command's flags and variables as docs/configuration.md.
func configurationDoc() []byte {
	var b bytes.Buffer
	b.WriteString("# Configuration reference\n\n")
	b.WriteString("Generated from the flag sets by `go test ./cmd/keysync -run TestConfigurationDoc -update`;\n")
	b.WriteString("a test fails when this file and `keysync <command> --help` disagree. Every flag can also be\n")
	b.WriteString("set with the environment variable shown; a flag on the command line wins. Vault's own\n")
	b.WriteString("`VAULT_ADDR`, `VAULT_TOKEN`, `VAULT_CACERT`, `VAULT_NAMESPACE`, … and `KUBECONFIG` are read too.\n")
	b.WriteString("\n## Stores\n\nOne row per store URL scheme, from the registrations in `cmd/keysync/stores_*.go`. The full\n")
	b.WriteString("build (image tag `VERSION`) opens every store; a slim build (`keysync-FAMILY`, image tag\n")
	b.WriteString("`VERSION-FAMILY`) the file store and its family. Every build takes every flag.\n\n")
	b.WriteString("| `--store` | family (slim build) | what it reaches | the family's flags |\n|---|---|---|---|\n")
	for _, f := range families {
		var flags []string
		for _, d := range f.Flags {
			flags = append(flags, "`--"+d.Name+"`")
		}
		for _, k := range f.Stores {
			fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", k.Example, f.Name, strings.ReplaceAll(k.Help, "\n", " "), strings.Join(flags, ", "))
		}
	}
	sets := flagSets()
	for _, name := range commandOrder {
		if c := sets[name]; c != nil {
			writeFlagTable(&b, "keysync "+name, c)
		}
	}
	dc, _ := demo.Command()
	b.WriteString("\nThe local demo is a binary of its own, never in the keysync image (`make demo`):\n")
	writeFlagTable(&b, "keysync-demo", dc)
	return b.Bytes()
}

func writeFlagTable(b *bytes.Buffer, title string, c *cli.Command) {
	fmt.Fprintf(b, "\n## %s\n\n%s\n\n| flag | environment variable | default | meaning |\n|---|---|---|---|\n", title, c.Summary)
	c.VisitAll(func(f *flag.Flag) {
		def := f.DefValue
		if def == "" || def == "[]" {
			def = "—"
		}
		_, usage := flag.UnquoteUsage(f)
		dash := "--"
		if len(f.Name) == 1 {
			dash = "-"
		}
		fmt.Fprintf(b, "| `%s%s` | `%s` | `%s` | %s |\n", dash, f.Name, cli.EnvName(f.Name), def, strings.ReplaceAll(usage, "|", "\\|"))
	})
}

func TestConfigurationDoc(t *testing.T) {
	const path = "../../docs/configuration.md"
	want := configurationDoc()
	if *update {
		if err := os.WriteFile(path, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("docs/configuration.md differs from the flags: run go test ./cmd/keysync -run TestConfigurationDoc -update")
	}
	// And every flag and variable in it appears in the command's --help.
	for name, c := range flagSets() {
		var help bytes.Buffer
		c.PrintHelp(&help)
		c.VisitAll(func(f *flag.Flag) {
			dash := "--"
			if len(f.Name) == 1 {
				dash = "-"
			}
			h := help.String()
			if !(strings.Contains(h, "  "+dash+f.Name+" ") || strings.Contains(h, "  "+dash+f.Name+"\n")) || !strings.Contains(h, cli.EnvName(f.Name)) {
				t.Errorf("%s --help lacks %s%s or %s", name, dash, f.Name, cli.EnvName(f.Name))
			}
		})
	}
}

// dockerStage is one FROM … block of the Dockerfile.
type dockerStage struct {
	name, from string
	lines      []string
}

func dockerStages(t *testing.T) []dockerStage {
	t.Helper()
	df, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	var stages []dockerStage
	for _, line := range strings.Split(string(df), "\n") {
		if strings.HasPrefix(line, "FROM ") {
			f := strings.Fields(line)
			st := dockerStage{from: f[1]}
			if len(f) == 4 && strings.EqualFold(f[2], "AS") {
				st.name = f[3]
			}
			stages = append(stages, st)
			continue
		}
		if len(stages) > 0 && strings.TrimSpace(line) != "" && !strings.HasPrefix(line, "#") {
			stages[len(stages)-1].lines = append(stages[len(stages)-1].lines, line)
		}
	}
	return stages
}

// TestDockerfileBuildsAStaticBinary runs the Dockerfile's own go build step for every
// flavor (its FLAVOR argument) and checks the image's shape: multi-stage, the default
// (last) target distroless static nonroot as user 65532, holding only the keysync binary,
// built from ./cmd/keysync alone; each flavor's binary static, saying what it is, and
// naming the build that has a store it lacks.
func TestDockerfileBuildsAStaticBinary(t *testing.T) {
	stages := dockerStages(t)
	byName := map[string]dockerStage{}
	for _, st := range stages {
		byName[st.name] = st
	}
	final := stages[len(stages)-1]
	if final.from != "gcr.io/distroless/static:nonroot" || !slices.Contains(final.lines, "USER 65532:65532") {
		t.Fatalf("the default target must be distroless static nonroot as 65532: %+v", final)
	}
	var build string
	for _, line := range final.lines {
		if !strings.HasPrefix(line, "COPY") {
			continue
		}
		if line != "COPY --from=build /out/keysync /keysync" {
			t.Fatalf("the keysync image must hold the keysync binary and nothing else: %s", line)
		}
	}
	for _, line := range byName["build"].lines {
		if strings.HasPrefix(line, "RUN ") && strings.Contains(line, "go build") {
			if build != "" {
				t.Fatalf("the build stage the image copies from builds more than keysync: %s", line)
			}
			build = strings.TrimPrefix(line, "RUN ")
		}
	}
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "-o /out/keysync ./cmd/keysync", `-tags "$(sh build/flavor-tags.sh ${FLAVOR})"`} {
		if !strings.Contains(build, want) || strings.Contains(build, "keysync-demo") {
			t.Fatalf("the build step lacks %s or builds the demo: %s", want, build)
		}
	}
	if demo, ok := byName["demo"]; !ok || !slices.Contains(demo.lines, "COPY --from=build-demo /demo/ /") {
		t.Fatalf("no separate demo target for docker compose: %+v", demo)
	}
	for _, fl := range flavorNames {
		t.Run(fl, func(t *testing.T) {
			t.Parallel()
			out := filepath.Join(t.TempDir(), "keysync")
			cmdline := strings.NewReplacer("${VERSION}", "test", "${FLAVOR}", fl, "/out/keysync", out).Replace(build)
			cmd := exec.Command("sh", "-c", cmdline)
			cmd.Dir = "../.."
			if b, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("%s: %v\n%s", cmdline, err, b)
			}
			checkStatic(t, out)
			v, err := exec.Command(out, "version").Output()
			if want := "keysync test " + fl + " build (stores: " + strings.Join(flavorSchemes(fl), ", ") + ")"; err != nil || strings.TrimSpace(string(v)) != want {
				t.Fatalf("version: %q %v, want %q", v, err, want)
			}
			help, _ := exec.Command(out, "--help").Output()
			for _, hidden := range []string{"demo", "pod"} {
				if _, _, err := runBinary(out, hidden); err == nil || strings.Contains(string(help), "  "+hidden+" ") {
					t.Errorf("the production binary still has a %q command", hidden)
				}
			}
			checkFlavorRefusals(t, out, fl)
			fi, _ := os.Stat(out)
			t.Logf("%s build from the Dockerfile's build step: %.1f MB", fl, float64(fi.Size())/1e6)
		})
	}
}

func checkStatic(t *testing.T, bin string) {
	t.Helper()
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Fatal("the binary is dynamically linked")
		}
	}
}

func runBinary(bin string, args ...string) (string, int, error) {
	out, err := exec.Command(bin, args...).CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	}
	return string(out), code, err
}

// forbiddenInProduction are package path fragments the keysync binary must never link:
// the demo, test harnesses and fakes, and the libraries only they use.
var forbiddenInProduction = []string{
	"github.com/sigil-dna/keysync/demo", "github.com/sigil-dna/keysync/harness", "github.com/sigil-dna/keysync/test/", "sidecartest", "storetest",
	"github.com/sivchari/kumo", "sigs.k8s.io/controller-runtime", "envtest", "gonum.org/", "compose-spec",
}

// productionPackages are the keysync packages the binary may link.
var productionPackages = regexp.MustCompile(`^github\.com/sigil-dna/keysync/(cmd/keysync|keyring(/secretscan)?|reload|store(/[a-z0-9]+)?|sidecar|rotate(/fleet(/kubefleet)?)?|internal/(atomicfile|awsapi|cli|dirwatch|statusapi))$`)

// TestTheBinaryLinksOnlyProductionCode lists what cmd/keysync links, as the Dockerfile
// builds it, and fails on demo code, test machinery, fakes, emulators, envtest, plotting
// or the testing package.
func TestTheBinaryLinksOnlyProductionCode(t *testing.T) {
	cmd := exec.Command("go", "list", "-deps", "./cmd/keysync")
	cmd.Dir, cmd.Env = "../..", append(os.Environ(), "CGO_ENABLED=0")
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 50 || !slices.Contains(deps, "github.com/sigil-dna/keysync/sidecar") {
		t.Fatalf("go list -deps returned %d packages: %v", len(deps), deps)
	}
	for _, d := range deps {
		for _, bad := range forbiddenInProduction {
			if strings.Contains(d, bad) {
				t.Errorf("cmd/keysync links %s", d)
			}
		}
		if d == "testing" || d == "net/http/httptest" {
			t.Errorf("cmd/keysync links the standard library's %s", d)
		}
		if strings.HasPrefix(d, "github.com/sigil-dna/keysync") && strings.HasSuffix(d, "test") {
			t.Errorf("cmd/keysync links the test fixture %s", d)
		}
		if strings.HasPrefix(d, "github.com/sigil-dna/keysync") && !productionPackages.MatchString(d) {
			t.Errorf("cmd/keysync links %s, which is not a production package", d)
		}
	}
}

// TestTheHarnessDoesNotImportTheDemo: the pods, app and ports the tests run live in
// harness/, which the demo imports; neither the harness nor the test tree's commands and
// helpers link the demo (tests of the demo itself may import it).
func TestTheHarnessDoesNotImportTheDemo(t *testing.T) {
	cmd := exec.Command("go", "list", "-deps", "./harness/...", "./test/...")
	cmd.Dir = "../.."
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	deps := strings.Fields(string(out))
	if !slices.Contains(deps, "github.com/sigil-dna/keysync/harness/podfleet") {
		t.Fatalf("go list -deps found no harness: %v", deps)
	}
	for _, d := range deps {
		if d == "github.com/sigil-dna/keysync/demo" || strings.HasPrefix(d, "github.com/sigil-dna/keysync/demo/") {
			t.Errorf("the harness or the test tree links %s", d)
		}
	}
}

// TestAnAppImportingReloadInheritsOnlyItsRequirements: the app libraries (keyring, reload,
// reload/reloadprom) are modules of their own, so a service that imports reload gets
// reload, keyring and fsnotify in its module graph, not the rotator's store SDKs or the
// test tree's servers (before the split: 145 modules, a go.sum of 116 lines).
func TestAnAppImportingReloadInheritsOnlyItsRequirements(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	mod := "module example.com/orders\n\ngo 1.26.8\n\nrequire github.com/sigil-dna/keysync/reload v0.0.0\n\n" +
		"replace github.com/sigil-dna/keysync/reload => " + filepath.Join(root, "reload") + "\n" +
		"replace github.com/sigil-dna/keysync/keyring => " + filepath.Join(root, "keyring") + "\n"
	src := "package main\n\nimport (\n\t\"context\"\n\n\t\"github.com/sigil-dna/keysync/reload\"\n)\n\nfunc main() { _, _ = reload.Open(context.Background(), \"/keys/keys.json\") }\n"
	os.WriteFile(filepath.Join(dir, "go.mod"), []byte(mod), 0o644)
	os.WriteFile(filepath.Join(dir, "main.go"), []byte(src), 0o644)
	gocmd := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("go", args...)
		cmd.Dir, cmd.Env = dir, append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	gocmd("mod", "tidy")
	gocmd("build", "./...")
	var mods []string
	for _, line := range strings.Split(strings.TrimSpace(gocmd("list", "-m", "all")), "\n") {
		mods = append(mods, strings.Fields(line)[0])
	}
	want := []string{"example.com/orders", "github.com/fsnotify/fsnotify", "github.com/sigil-dna/keysync/keyring",
		"github.com/sigil-dna/keysync/reload", "golang.org/x/sys"}
	if !slices.Equal(mods, want) {
		t.Errorf("an app importing reload has the module graph %v, want %v", mods, want)
	}
	sum, _ := os.ReadFile(filepath.Join(dir, "go.sum"))
	if n := bytes.Count(sum, []byte("\n")); n > 6 {
		t.Errorf("its go.sum has %d lines:\n%s", n, sum)
	}
}

// TestTheRepositoryHoldsNoBuildOutput fails on a tracked executable or a tracked file over
// 2 MB: binaries and caches are built or fetched, never committed (a clean clone is what CI
// runs).
func TestTheRepositoryHoldsNoBuildOutput(t *testing.T) {
	cmd := exec.Command("git", "ls-files", "-z")
	cmd.Dir = "../.."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("git ls-files (the tests run in a git checkout): %v", err)
	}
	files := strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
	if len(files) < 100 || !slices.Contains(files, "cmd/keysync/main.go") {
		t.Fatalf("git ls-files listed %d files", len(files))
	}
	const maxBytes = 2 << 20
	for _, f := range files {
		path := filepath.Join("../..", f)
		fi, err := os.Lstat(path)
		if err != nil || !fi.Mode().IsRegular() {
			continue // deleted in the working tree, or a symlink
		}
		if fi.Size() > maxBytes {
			t.Errorf("%s is tracked and %d bytes (over %d)", f, fi.Size(), maxBytes)
		}
		if e, err := elf.Open(path); err == nil {
			e.Close()
			t.Errorf("%s is tracked and an ELF file (a build output)", f)
		}
	}
}
