// Package node brings up a one-node Kubernetes cluster for the tests — etcd,
// kube-apiserver, kube-scheduler, kube-controller-manager and a kubelet on containerd,
// each a real process with its state under the test's folder — and builds the images its
// pods run, without Docker or a registry.
package node

import (
	"maps"
	"slices"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/sigil-dna/keysync/test/ociimage"
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

// WriteTarball writes images as one docker-archive tarball that `ctr images import` reads
// (test/ociimage): each binary at its path with mode 0755, its links, and /tmp, which
// exists and is writable in distroless images (some programs need it).
func WriteTarball(file string, images ...Image) error {
	var specs []ociimage.Spec
	for _, im := range images {
		entries := []ociimage.Entry{{Name: "/tmp", Dir: true, Mode: 0o1777}}
		for _, p := range sortedKeys(im.Files) {
			entries = append(entries, ociimage.Entry{Name: p, Mode: 0o755, FromHost: im.Files[p]})
		}
		for _, p := range sortedKeys(im.Links) {
			entries = append(entries, ociimage.Entry{Name: p, Link: im.Links[p]})
		}
		specs = append(specs, ociimage.Spec{Ref: im.Ref, Entries: entries,
			Config: v1.Config{Entrypoint: im.Entrypoint, Cmd: im.Cmd, User: im.User, Env: []string{"PATH=/"}}})
	}
	return ociimage.WriteTarball(file, specs...)
}

func sortedKeys(m map[string]string) []string { return slices.Sorted(maps.Keys(m)) }
