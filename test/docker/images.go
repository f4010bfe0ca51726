package docker

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
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

// entry is one file of a layer.
type entry struct {
	name     string // path in the image, absolute
	mode     int64
	uid      int
	data     []byte
	link     string // a symlink target
	dir      bool
	fromHost string // read the bytes from this host file
}

type imageSpec struct {
	ref     string
	entries []entry
	cfg     v1.Config
}

// hostFiles are the host's files at the same paths, each followed through symlinks, plus
// the shared libraries they load (ldd).
func hostFiles(paths ...string) ([]entry, error) {
	seen := map[string]bool{}
	var out []entry
	add := func(p string) error {
		if seen[p] {
			return nil
		}
		seen[p] = true
		real, err := filepath.EvalSymlinks(p)
		if err != nil {
			return err
		}
		fi, err := os.Stat(real)
		if err != nil {
			return err
		}
		out = append(out, entry{name: p, mode: int64(fi.Mode().Perm()), fromHost: real})
		return nil
	}
	lib := regexp.MustCompile(`(/\S+\.so[.\d]*)`)
	for _, p := range paths {
		if err := add(p); err != nil {
			return nil, err
		}
		ldd, _ := exec.Command("ldd", p).Output() // a static binary has none
		for _, m := range lib.FindAllStringSubmatch(string(ldd), -1) {
			if err := add(m[1]); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// hostTree is every file under the host's dir, at prefix in the image.
func hostTree(dir, prefix string) ([]entry, error) {
	var out []entry
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		name := path.Join(prefix, filepath.ToSlash(rel))
		fi, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			out = append(out, entry{name: name, dir: true, mode: int64(fi.Mode().Perm())})
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			out = append(out, entry{name: name, link: target})
		case d.Type().IsRegular():
			out = append(out, entry{name: name, mode: int64(fi.Mode().Perm()), fromHost: p})
		}
		return nil
	})
	return out, err
}

var caBundle = "/etc/ssl/certs/ca-certificates.crt"

func baseImages(vaultBin string) ([]imageSpec, error) {
	out, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		return nil, fmt.Errorf("go env GOROOT, for the golang image: %w", err)
	}
	goroot := strings.TrimSpace(string(out))
	gotree, err := hostTree(goroot, "/usr/local/go")
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
	shell, err := hostFiles(tools...)
	if err != nil {
		return nil, err
	}
	if !slices.ContainsFunc(shell, func(e entry) bool { return e.name == "/bin/sh" }) {
		shell = append(shell, entry{name: "/bin/sh", link: tools[0]})
	}
	vaultFiles, err := hostFiles(vaultBin)
	if err != nil {
		return nil, err
	}
	for i := range vaultFiles {
		if vaultFiles[i].name == vaultBin {
			vaultFiles[i].name = "/bin/vault"
		}
	}
	ca := entry{name: caBundle, mode: 0o644, fromHost: caBundle}
	tmp := entry{name: "/tmp", dir: true, mode: 0o1777}
	goVersion := strings.TrimPrefix(runtime.Version(), "go")
	return []imageSpec{
		{ref: "golang:1.26-bookworm", entries: append(append(append(gotree, shell...), ca, tmp, entry{name: "/go/bin", dir: true, mode: 0o777}), entry{name: "/go/src", dir: true, mode: 0o777},
			entry{name: "/root", dir: true, mode: 0o700}, entry{name: "/etc/passwd", mode: 0o644, data: []byte("root:x:0:0:root:/root:/bin/sh\n")}),
			cfg: v1.Config{Env: []string{"PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
				"GOLANG_VERSION=" + goVersion, "GOPATH=/go", "GOTOOLCHAIN=local"}, WorkingDir: "/go", Cmd: []string{"bash"}}},
		{ref: "gcr.io/distroless/static:nonroot", entries: []entry{
			{name: "/etc/passwd", mode: 0o644, data: []byte("root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")},
			{name: "/etc/group", mode: 0o644, data: []byte("root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n")},
			{name: "/home/nonroot", dir: true, mode: 0o700, uid: 65532}, tmp, ca},
			cfg: v1.Config{User: "65532", WorkingDir: "/home/nonroot", Env: []string{"PATH=/usr/local/bin:/usr/local/sbin:/usr/bin:/usr/sbin:/bin:/sbin", "SSL_CERT_FILE=" + caBundle}}},
		{ref: "hashicorp/vault:1.21", entries: append(vaultFiles, tmp, ca),
			cfg: v1.Config{Entrypoint: []string{"vault"}, Cmd: []string{"server", "-dev"}, Env: []string{"PATH=/bin:/usr/bin", "HOME=/tmp"}, ExposedPorts: map[string]struct{}{"8200/tcp": {}}}},
	}, nil
}

// epoch is every file's time, so that the same files make the same image.
var epoch = time.Unix(0, 0)

func (im imageSpec) layer() (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	for _, e := range im.entries {
		if e.dir {
			dirs[e.name] = true
		}
	}
	mkdirs := func(p string) error {
		var parents []string
		for d := path.Dir(p); d != "/" && d != "." && !dirs[d]; d = path.Dir(d) {
			parents = append([]string{d}, parents...)
		}
		for _, d := range parents {
			dirs[d] = true
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d[1:] + "/", Mode: 0o755, ModTime: epoch}); err != nil {
				return err
			}
		}
		return nil
	}
	written := map[string]bool{}
	for _, e := range im.entries {
		if written[e.name] {
			continue
		}
		written[e.name] = true
		if err := mkdirs(e.name); err != nil {
			return nil, err
		}
		h := &tar.Header{Name: e.name[1:], Mode: e.mode, Uid: e.uid, Gid: e.uid, ModTime: epoch}
		data := e.data
		switch {
		case e.dir:
			h.Typeflag, h.Name = tar.TypeDir, h.Name+"/"
		case e.link != "":
			h.Typeflag, h.Linkname, h.Mode = tar.TypeSymlink, e.link, 0o777
		default:
			if e.fromHost != "" {
				b, err := os.ReadFile(e.fromHost)
				if err != nil {
					return nil, err
				}
				data = b
			}
			h.Typeflag, h.Size = tar.TypeReg, int64(len(data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	data := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
}

// WriteBaseImages writes the local base images as one docker-archive tarball for
// `docker load`.
func WriteBaseImages(file, vaultBin string) error {
	specs, err := baseImages(vaultBin)
	if err != nil {
		return err
	}
	refs := map[name.Reference]v1.Image{}
	for _, im := range specs {
		ref, err := name.ParseReference(im.ref)
		if err != nil {
			return err
		}
		layer, err := im.layer()
		if err != nil {
			return fmt.Errorf("image %s: %w", im.ref, err)
		}
		img, err := mutate.AppendLayers(empty.Image, layer)
		if err != nil {
			return err
		}
		if img, err = mutate.Config(img, im.cfg); err != nil {
			return err
		}
		cf, _ := img.ConfigFile()
		cf.OS, cf.Architecture = "linux", "amd64"
		if img, err = mutate.ConfigFile(img, cf); err != nil {
			return err
		}
		refs[ref] = img
	}
	return tarball.MultiRefWriteToFile(file, refs)
}
