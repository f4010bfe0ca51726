package docker

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sigil-dna/keysync/harness/wait"
	"github.com/sigil-dna/keysync/keyring"
	"github.com/sigil-dna/keysync/keyring/secretscan"
	"github.com/sigil-dna/keysync/test/servers"
)

const storeURL = "vault://secret/sigil/spiral-event-secret"

// TestDockerComposeAsTheREADMEWritesIt runs the local-development path on a real Docker
// engine from this checkout: the README's `docker build` of the default target, of
// `--target demo` and of a slim flavor (the real Dockerfile, on the classic builder),
// `docker compose up -d`, the README's `docker compose run --rm keysync rotate …` and
// `… status …`, and `docker compose down -v`; the engine then stops leaving nothing.
//
// Two things differ from a developer's laptop, both because this engine makes no
// iptables rules (it must not touch the machine's): the builds run on the host's network
// (`--network host`; a container on a bridge has no route out without NAT), and an
// override file drops the compose file's published ports (the suite's processes own the
// host's ports); the test reaches the containers at their bridge addresses instead.
func TestDockerComposeAsTheREADMEWritesIt(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("the Docker engine runs as root: run the suite as root, as CI does")
	}
	tools, err := servers.DockerTools()
	if err != nil {
		t.Fatal(err)
	}
	vaultBin, err := servers.VaultBinary()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 25*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("/tmp", "keysync-dk-") // short: containerd's socket paths live under it
	if err != nil {
		t.Fatal(err)
	}
	e, err := Start(ctx, dir, tools)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		e.Stop()
		if left := e.Leftovers(); len(left) > 0 {
			t.Errorf("the stopped engine left: %v", left)
		}
		os.RemoveAll(dir)
	})
	t.Logf("dockerd %s, storage driver %s", filepath.Join(tools, "bin", "dockerd"), e.Driver)

	if err := e.LoadBaseImages(ctx, vaultBin); err != nil {
		t.Fatal(err)
	}

	root := servers.RepoRoot()
	run := func(args ...string) string {
		t.Helper()
		out, err := e.Run(ctx, root, nil, args...)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	var outputs bytes.Buffer
	images := map[string][]string{
		"ghcr.io/sigil-dna/keysync:dev":       {"build", "--network", "host", "-t", "ghcr.io/sigil-dna/keysync:dev", "."},
		"ghcr.io/sigil-dna/keysync-demo:dev":  {"build", "--network", "host", "--target", "demo", "-t", "ghcr.io/sigil-dna/keysync-demo:dev", "."},
		"ghcr.io/sigil-dna/keysync:dev-vault": {"build", "--network", "host", "--build-arg", "FLAVOR=vault", "-t", "ghcr.io/sigil-dna/keysync:dev-vault", "."},
	}
	for _, ref := range []string{"ghcr.io/sigil-dna/keysync:dev", "ghcr.io/sigil-dna/keysync-demo:dev", "ghcr.io/sigil-dna/keysync:dev-vault"} {
		outputs.WriteString(run(images[ref]...))
		size := strings.TrimSpace(run("image", "inspect", "--format", "{{.Size}} {{.Config.User}} {{json .Config.Entrypoint}}", ref))
		t.Logf("%s: size user entrypoint = %s", ref, size)
		if f := strings.Fields(size); len(f) < 3 || f[1] != "65532:65532" {
			t.Errorf("%s runs as %q, want 65532:65532", ref, size)
		}
	}
	if v := run("run", "--rm", "ghcr.io/sigil-dna/keysync:dev-vault", "version"); !strings.Contains(v, "vault build (stores: file, vault)") {
		t.Errorf("the vault flavor's image says %q", v)
	}

	override := filepath.Join(dir, "compose.test.yml")
	os.WriteFile(override, []byte("services:\n  vault:\n    ports: !reset []\n  sidecar:\n    ports: !reset []\n"), 0o644)
	compose := func(args ...string) (string, error) {
		return e.Run(ctx, root, nil, append([]string{"compose", "-f", "docker-compose.yml", "-f", override}, args...)...)
	}
	mustCompose := func(args ...string) string {
		t.Helper()
		out, err := compose(args...)
		if err != nil {
			logs, _ := compose("logs", "--no-color")
			t.Fatalf("%v\nlogs:\n%s", err, lastLines([]byte(logs), 60))
		}
		outputs.WriteString(out)
		return out
	}
	t.Cleanup(func() { compose("down", "-v", "--timeout", "5") })
	mustCompose("up", "-d")

	if code := strings.TrimSpace(run("inspect", "--format", "{{.State.ExitCode}}", "keysync-seed-1")); code != "0" {
		t.Fatalf("the seed exited %s", code)
	}
	ip := strings.TrimSpace(run("inspect", "--format", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", "keysync-sidecar-1"))
	app, sidecar := "http://"+ip+":8080", "http://"+ip+":9102"
	appStatus := func() (st struct {
		Generation int64    `json:"generation"`
		KeyIDs     []string `json:"key_ids"`
		Reloads    uint64   `json:"reloads"`
	}) {
		getJSON(app+"/keysync/status", &st)
		return st
	}
	wait.For(t, "the app to load generation 1", 2*time.Minute, func() bool { return appStatus().Generation == 1 })
	var sc struct {
		Ready bool `json:"ready"`
		App   struct {
			Confirmed bool `json:"confirmed"`
		} `json:"app"`
	}
	wait.For(t, "the sidecar to see the app confirm", time.Minute, func() bool { getJSON(sidecar+"/status", &sc); return sc.Ready && sc.App.Confirmed })

	// The keys file on the in-memory volume: the sidecar's (65532), readable by the app.
	ring, hdr := keysFile(t, e, ctx)
	if hdr.Uid != 65532 || hdr.Mode&0o777 != 0o440 {
		t.Errorf("keys file: uid %d gid %d mode %o, want 65532 and 0440", hdr.Uid, hdr.Gid, hdr.Mode&0o777)
	}
	if vol := run("volume", "inspect", "--format", "{{.Options.type}} {{.Options.o}}", "keysync_keys"); !strings.HasPrefix(vol, "tmpfs ") || !strings.Contains(vol, "uid=65532") {
		t.Errorf("the keys volume is %q, want a tmpfs owned by 65532", vol)
	}
	var sent struct {
		Signed, Verified bool
		Error            string
	}
	postJSON(t, app+"/send?to=http://127.0.0.1:8080", `{"type":"spiral","seq":1}`, &sent)
	if !sent.Signed || !sent.Verified {
		t.Fatalf("a signed event: %+v", sent)
	}

	// The README's rotation, then its status.
	before := appStatus()
	rot := mustCompose("run", "--rm", "keysync", "rotate", "--store", storeURL, "--reason", "by hand")
	if !strings.Contains(rot, "generation 1 -> 2") {
		t.Errorf("rotate said:\n%s", rot)
	}
	wait.For(t, "the app to load generation 2", time.Minute, func() bool { return appStatus().Generation == 2 })
	if after := appStatus(); after.Reloads <= before.Reloads || len(after.KeyIDs) != 2 {
		t.Errorf("after the rotation the app reports %+v (before %+v)", after, before)
	}
	metrics := get(sidecar + "/metrics")
	if !strings.Contains(metrics, `keysync_signals_total{result="sent"}`) || strings.Contains(metrics, `keysync_signals_total{result="sent"} 0`) {
		t.Errorf("no SIGHUP crossed pid: service:sidecar:\n%s", grepLines(metrics, "keysync_signals_total"))
	}
	st := mustCompose("run", "--rm", "keysync", "status", "--store", storeURL)
	if !strings.Contains(st, "generation 2") {
		t.Errorf("status said:\n%s", st)
	}
	ring2, _ := keysFile(t, e, ctx)
	logs, _ := compose("logs", "--no-color")
	outputs.WriteString(logs)
	for _, r := range []*keyring.Keyring{ring, ring2} {
		for _, k := range r.Keys {
			if n := secretscan.Count(outputs.Bytes(), k.Secret); n > 0 {
				t.Errorf("key %s appears %d times in the builds', compose's and the containers' output", k.ID, n)
			}
		}
	}

	mustCompose("down", "-v")
	if ps := strings.TrimSpace(run("ps", "-a", "-q")); ps != "" {
		t.Errorf("containers left after down -v: %s", ps)
	}
	if vols := strings.TrimSpace(run("volume", "ls", "-q")); vols != "" {
		t.Errorf("volumes left after down -v: %s", vols)
	}
	if nets := run("network", "ls", "--format", "{{.Name}}"); strings.Contains(nets, "keysync") {
		t.Errorf("networks left after down -v: %s", nets)
	}
}

// keysFile copies /keys/keys.json out of the sidecar's container (a tar stream: its
// header has the file's owner and mode) and parses it.
func keysFile(t *testing.T, e *Engine, ctx context.Context) (*keyring.Keyring, *tar.Header) {
	t.Helper()
	out, err := e.Docker(ctx, "cp", "keysync-sidecar-1:/keys/keys.json", "-")
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(strings.NewReader(out))
	hdr, err := tr.Next()
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(tr)
	r, err := keyring.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	return r, hdr
}

var httpClient = &http.Client{Timeout: 5 * time.Second}

func get(url string) string {
	resp, err := httpClient.Get(url)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return string(b)
}

func getJSON(url string, v any) { _ = json.Unmarshal([]byte(get(url)), v) }

func postJSON(t *testing.T, url, body string, v any) {
	t.Helper()
	resp, err := httpClient.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}

func grepLines(text, sub string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
