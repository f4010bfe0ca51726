// Package node brings up a one-node Kubernetes cluster for the tests — etcd,
// kube-apiserver, kube-scheduler, kube-controller-manager and a kubelet on containerd,
// each a real process with its state under the test's folder — and builds the images its
// pods run, without Docker or a registry.
package node

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"maps"
	"os"
	"path"
	"slices"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Image is one image to build: files from the host, copied in at their paths, and the
// configuration the Dockerfile would give it.
type Image struct {
	// Ref is the name pods use, with a tag that is not "latest" (IfNotPresent pulls never).
	Ref string
	// Files maps a path in the image to a file on the host, copied with mode 0755.
	Files map[string]string
	// Links maps a path in the image to a symlink target.
	Links      map[string]string
	Entrypoint []string
	Cmd        []string
	// User is "uid:gid"; empty is root.
	User string
}

// epoch is every file's time, so that the same binaries make the same image.
var epoch = time.Unix(0, 0)

// WriteTarball writes images as one docker-archive tarball that `ctr images import` reads.
func WriteTarball(file string, images ...Image) error {
	refs := map[name.Reference]v1.Image{}
	for _, im := range images {
		ref, err := name.ParseReference(im.Ref)
		if err != nil {
			return fmt.Errorf("image %s: %w", im.Ref, err)
		}
		layer, err := im.layer()
		if err != nil {
			return fmt.Errorf("image %s: %w", im.Ref, err)
		}
		img, err := mutate.AppendLayers(empty.Image, layer)
		if err != nil {
			return fmt.Errorf("image %s: %w", im.Ref, err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			return err
		}
		cfg := cf.Config
		cfg.Entrypoint, cfg.Cmd, cfg.User = im.Entrypoint, im.Cmd, im.User
		cfg.Env = []string{"PATH=/"}
		if img, err = mutate.Config(img, cfg); err != nil {
			return err
		}
		cf, _ = img.ConfigFile()
		cf.OS, cf.Architecture = "linux", "amd64"
		if img, err = mutate.ConfigFile(img, cf); err != nil {
			return err
		}
		refs[ref] = img
	}
	return tarball.MultiRefWriteToFile(file, refs)
}

func (im Image) layer() (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
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
	// /tmp exists and is writable in distroless images; some programs need it.
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "tmp/", Mode: 0o1777, ModTime: epoch}); err != nil {
		return nil, err
	}
	for _, p := range sortedKeys(im.Files) {
		data, err := os.ReadFile(im.Files[p])
		if err != nil {
			return nil, err
		}
		if err := mkdirs(p); err != nil {
			return nil, err
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: p[1:], Mode: 0o755, Size: int64(len(data)), ModTime: epoch}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(data); err != nil {
			return nil, err
		}
	}
	for _, p := range sortedKeys(im.Links) {
		if err := mkdirs(p); err != nil {
			return nil, err
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: p[1:], Linkname: im.Links[p], Mode: 0o777, ModTime: epoch}); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	data := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
}

func sortedKeys(m map[string]string) []string { return slices.Sorted(maps.Keys(m)) }
