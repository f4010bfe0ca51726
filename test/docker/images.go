package docker

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/sigil-dna/keysync/test/ociimage"
)

// The base images the Dockerfile and docker-compose.yml name cannot be pulled here (no
// registry is reachable), so they are made under those names from what this machine has,
// reproducing only what the build and the compose file rely on:
//   - golang:1.26-bookworm: this machine's Go toolchain at /usr/local/go (GOROOT, GOPATH
//     /go, PATH as the real image sets them, GOTOOLCHAIN=local), /bin/sh (dash) and the
//     few utilities the Dockerfile's RUN lines use (sh build/flavor-tags.sh: cat, dirname,
//     sed; ln), with their shared libraries, all from this machine's Debian packages, and
//     the CA bundle for the module proxy.
//   - gcr.io/distroless/static:nonroot: /etc/passwd and /etc/group naming root and nonroot
//     (65532), /home/nonroot owned by 65532, /tmp (1777), the CA bundle; user 65532, as
//     the real image. No shell, like the real one.
//   - hashicorp/vault:1.21: the Vault binary the suite builds (test/servers/vault.sh) at
//     /bin/vault with its shared libraries, entrypoint `vault`, so that the compose file's
//     `server -dev …` command and its `vault status` health check run as with the real
//     image's docker-entrypoint.sh; root, where the real image drops to a vault user.

var caBundle = "/etc/ssl/certs/ca-certificates.crt"

func baseImages(vaultBin string) ([]ociimage.Spec, error) {
	out, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		return nil, fmt.Errorf("go env GOROOT, for the golang image: %w", err)
	}
	goroot := strings.TrimSpace(string(out))
	gotree, err := ociimage.HostTree(goroot, "/usr/local/go")
	if err != nil {
		return nil, err
	}
	var tools []string
	for _, t := range []string{"sh", "cat", "dirname", "sed", "ln", "mkdir", "rm", "ls"} {
		p, err := exec.LookPath(t)
		if err != nil {
			return nil, fmt.Errorf("%s for the golang image: %w", t, err)
		}
		tools = append(tools, p)
	}
	shell, err := ociimage.HostFiles(tools...)
	if err != nil {
		return nil, err
	}
	if !slices.ContainsFunc(shell, func(e ociimage.Entry) bool { return e.Name == "/bin/sh" }) {
		shell = append(shell, ociimage.Entry{Name: "/bin/sh", Link: tools[0]})
	}
	vaultFiles, err := ociimage.HostFiles(vaultBin)
	if err != nil {
		return nil, err
	}
	for i := range vaultFiles {
		if vaultFiles[i].Name == vaultBin {
			vaultFiles[i].Name = "/bin/vault"
		}
	}
	ca := ociimage.Entry{Name: caBundle, Mode: 0o644, FromHost: caBundle}
	tmp := ociimage.Entry{Name: "/tmp", Dir: true, Mode: 0o1777}
	goVersion := strings.TrimPrefix(runtime.Version(), "go")
	return []ociimage.Spec{
		{Ref: "golang:1.26-bookworm", Entries: append(append(append(gotree, shell...), ca, tmp, ociimage.Entry{Name: "/go/bin", Dir: true, Mode: 0o777}), ociimage.Entry{Name: "/go/src", Dir: true, Mode: 0o777},
			ociimage.Entry{Name: "/root", Dir: true, Mode: 0o700}, ociimage.Entry{Name: "/etc/passwd", Mode: 0o644, Data: []byte("root:x:0:0:root:/root:/bin/sh\n")}),
			Config: v1.Config{Env: []string{"PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
				"GOLANG_VERSION=" + goVersion, "GOPATH=/go", "GOTOOLCHAIN=local"}, WorkingDir: "/go", Cmd: []string{"bash"}}},
		{Ref: "gcr.io/distroless/static:nonroot", Entries: []ociimage.Entry{
			{Name: "/etc/passwd", Mode: 0o644, Data: []byte("root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")},
			{Name: "/etc/group", Mode: 0o644, Data: []byte("root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n")},
			{Name: "/home/nonroot", Dir: true, Mode: 0o700, UID: 65532}, tmp, ca},
			Config: v1.Config{User: "65532", WorkingDir: "/home/nonroot", Env: []string{"PATH=/usr/local/bin:/usr/local/sbin:/usr/bin:/usr/sbin:/bin:/sbin", "SSL_CERT_FILE=" + caBundle}}},
		{Ref: "hashicorp/vault:1.21", Entries: append(vaultFiles, tmp, ca),
			Config: v1.Config{Entrypoint: []string{"vault"}, Cmd: []string{"server", "-dev"}, Env: []string{"PATH=/bin:/usr/bin", "HOME=/tmp"}, ExposedPorts: map[string]struct{}{"8200/tcp": {}}}},
	}, nil
}

// LoadBaseImages makes the local base images and loads them into e (`docker load`).
func (e *Engine) LoadBaseImages(ctx context.Context, vaultBin string) error {
	specs, err := baseImages(vaultBin)
	if err != nil {
		return err
	}
	file := filepath.Join(e.Dir, "base.tar")
	defer os.Remove(file)
	if err := ociimage.WriteTarball(file, specs...); err != nil {
		return err
	}
	_, err = e.Docker(ctx, "load", "-i", file)
	return err
}
