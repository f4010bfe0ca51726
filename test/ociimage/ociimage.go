// Package ociimage makes container images from files, without Docker or a registry: a
// single layer of the host's files (with their shared libraries), whole host folders,
// files given as bytes, directories with an owner, and symlinks, under an image
// configuration, written as one docker-archive tarball that `docker load` and
// `ctr images import` read. The node tests and the Docker engine tests build their images
// with it.
package ociimage

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
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Entry is one file of a layer: a regular file (Data, or the bytes of the host's
// FromHost), a directory (Dir) or a symlink (Link), at Name (absolute), owned by UID (and
// the group of the same number). Missing parent directories are made 0755, root's.
type Entry struct {
	Name     string
	Mode     int64
	UID      int
	Data     []byte
	Link     string
	Dir      bool
	FromHost string
}

// Spec is one image: its reference, its one layer and its configuration.
type Spec struct {
	Ref     string
	Entries []Entry
	Config  v1.Config
}

// HostFiles are the host's files at the same paths, each followed through symlinks, plus
// the shared libraries they load (ldd).
func HostFiles(paths ...string) ([]Entry, error) {
	seen := map[string]bool{}
	var out []Entry
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
		out = append(out, Entry{Name: p, Mode: int64(fi.Mode().Perm()), FromHost: real})
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

// HostTree is every file under the host's dir, at prefix in the image.
func HostTree(dir, prefix string) ([]Entry, error) {
	var out []Entry
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
			out = append(out, Entry{Name: name, Dir: true, Mode: int64(fi.Mode().Perm())})
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			out = append(out, Entry{Name: name, Link: target})
		case d.Type().IsRegular():
			out = append(out, Entry{Name: name, Mode: int64(fi.Mode().Perm()), FromHost: p})
		}
		return nil
	})
	return out, err
}

// epoch is every file's time, so that the same files make the same image.
var epoch = time.Unix(0, 0)

func (im Spec) layer() (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	for _, e := range im.Entries {
		if e.Dir {
			dirs[e.Name] = true
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
	for _, e := range im.Entries {
		if written[e.Name] {
			continue
		}
		written[e.Name] = true
		if err := mkdirs(e.Name); err != nil {
			return nil, err
		}
		h := &tar.Header{Name: e.Name[1:], Mode: e.Mode, Uid: e.UID, Gid: e.UID, ModTime: epoch}
		data := e.Data
		switch {
		case e.Dir:
			h.Typeflag, h.Name = tar.TypeDir, h.Name+"/"
		case e.Link != "":
			h.Typeflag, h.Linkname, h.Mode = tar.TypeSymlink, e.Link, 0o777
		default:
			if e.FromHost != "" {
				b, err := os.ReadFile(e.FromHost)
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

// WriteTarball writes the images as one docker-archive tarball.
func WriteTarball(file string, specs ...Spec) error {
	refs := map[name.Reference]v1.Image{}
	for _, im := range specs {
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
			return err
		}
		if img, err = mutate.Config(img, im.Config); err != nil {
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
