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

	"github.com/sigil-dna/keysync/internal/cli"
	"github.com/sigil-dna/keysync/internal/demoapp"
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
	app := svc["app"]
	if app.Pid != "service:sidecar" || app.NetworkMode != "service:sidecar" {
		t.Fatalf("the app does not share the sidecar's PID and network namespaces: pid %q network %q", app.Pid, app.NetworkMode)
	}
	if len(app.Volumes) != 1 || app.Volumes[0].Source != "keys" || !app.Volumes[0].ReadOnly {
		t.Fatalf("the app does not mount the keys read-only: %+v", app.Volumes)
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
		case slices.Equal(s.Entrypoint, []string{"/demo-app"}):
			c, _ = demoapp.Command()
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
	sets := flagSets()
	for _, name := range []string{"sidecar", "rotate", "rollback", "status", "demo"} {
		c := sets[name]
		fmt.Fprintf(&b, "\n## keysync %s\n\n%s\n\n| flag | environment variable | default | meaning |\n|---|---|---|---|\n", name, c.Summary)
		c.VisitAll(func(f *flag.Flag) {
			def := f.DefValue
			if def == "" || def == "[]" {
				def = "—"
			}
			_, usage := flag.UnquoteUsage(f)
			fmt.Fprintf(&b, "| `--%s` | `%s` | `%s` | %s |\n", f.Name, cli.EnvName(f.Name), def, strings.ReplaceAll(usage, "|", "\\|"))
		})
	}
	return b.Bytes()
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
			if !strings.Contains(help.String(), "--"+f.Name) || !strings.Contains(help.String(), cli.EnvName(f.Name)) {
				t.Errorf("%s --help lacks --%s or %s", name, f.Name, cli.EnvName(f.Name))
			}
		})
	}
}

// TestDockerfileBuildsAStaticBinary runs the Dockerfile's own go build step and checks the
// image's shape: multi-stage, distroless static nonroot, user 65532.
func TestDockerfileBuildsAStaticBinary(t *testing.T) {
	df, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	text := string(df)
	var froms []string
	var build string
	for _, line := range strings.Split(text, "\n") {
		switch {
		case strings.HasPrefix(line, "FROM "):
			froms = append(froms, strings.Fields(line)[1])
		case strings.HasPrefix(line, "RUN ") && strings.Contains(line, "go build"):
			build = strings.TrimPrefix(line, "RUN ")
		}
	}
	if len(froms) != 2 || froms[1] != "gcr.io/distroless/static:nonroot" || !strings.Contains(text, "\nUSER 65532:65532\n") {
		t.Fatalf("want a two-stage build ending in distroless static nonroot as 65532: %v", froms)
	}
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "./cmd/keysync"} {
		if !strings.Contains(build, want) {
			t.Fatalf("the build step lacks %s: %s", want, build)
		}
	}
	out := filepath.Join(t.TempDir(), "keysync")
	cmdline := strings.ReplaceAll(strings.ReplaceAll(build, "${VERSION}", "test"), "/out/keysync", out)
	cmd := exec.Command("sh", "-c", cmdline)
	cmd.Dir = "../.."
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", cmdline, err, b)
	}
	f, err := elf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Fatal("the binary is dynamically linked")
		}
	}
	v, err := exec.Command(out, "version").Output()
	if err != nil || strings.TrimSpace(string(v)) != "keysync test" {
		t.Fatalf("version: %q %v", v, err)
	}
	fi, _ := os.Stat(out)
	t.Logf("static binary from the Dockerfile's build step: %.1f MB", float64(fi.Size())/1e6)
}
