// Command sizes builds the image of every flavor and the demo's from the real Dockerfile
// on a real Docker engine (test/docker: dockerd from Debian's docker.io, base images made
// locally) and writes the sizes the engine reports to a section of docs/benchmarks.md.
//
//	go run ./test/docker/sizes --report docs/benchmarks.md   (make bench-images; root)
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/sigil-dna/keysync/test/docker"
	"github.com/sigil-dna/keysync/test/docsection"
	"github.com/sigil-dna/keysync/test/servers"
)

func main() {
	if err := run(); err != nil {
		log.Fatal(err)
	}
}

// run stops the engine on every way out (log.Fatal would leave it running).
func run() error {
	report := flag.String("report", "", "Markdown file whose image-sizes section is rewritten")
	flag.Parse()
	tools, err := servers.DockerTools()
	if err != nil {
		return err
	}
	vaultBin, err := servers.VaultBinary()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("/tmp", "keysync-dk-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	e, err := docker.Start(ctx, dir, tools)
	if err != nil {
		return err
	}
	defer e.Stop()
	if err := e.LoadBaseImages(ctx, vaultBin); err != nil {
		return err
	}
	root := servers.RepoRoot()
	list, err := exec.Command("sh", filepath.Join(root, "build", "flavor-tags.sh"), "--list").Output()
	if err != nil {
		return err
	}
	type row struct {
		image string
		flags []string
	}
	rows := []row{{"ghcr.io/sigil-dna/keysync:dev", nil}}
	for _, fl := range strings.Fields(string(list)) {
		rows = append(rows, row{"ghcr.io/sigil-dna/keysync:dev-" + fl, []string{"--build-arg", "FLAVOR=" + fl}})
	}
	rows = append(rows, row{"ghcr.io/sigil-dna/keysync-demo:dev", []string{"--target", "demo"}})
	baseSize, err := e.Docker(ctx, "image", "inspect", "--format", "{{.Size}}", "gcr.io/distroless/static:nonroot")
	if err != nil {
		return err
	}
	bs, _ := strconv.ParseInt(strings.TrimSpace(baseSize), 10, 64)
	var md strings.Builder
	fmt.Fprintf(&md, "Measured %s by `go run ./test/docker/sizes --report docs/benchmarks.md` (`make bench-images`): each image built from the real Dockerfile by a real Docker engine (Debian's docker.io %s, classic builder, %s storage), its size as `docker image inspect --format {{.Size}}` reports it. The base `gcr.io/distroless/static:nonroot` is made locally (passwd, group, /home/nonroot, /tmp, a CA bundle: %s), so the figures are the binary plus that.\n\n| image | built with | size |\n|---|---|---|\n",
		time.Now().UTC().Format("2006-01-02"), "20.10.24", e.Driver, fmt.Sprintf("%.2f MB", float64(bs)/1e6))
	for _, r := range rows {
		args := append(append([]string{"build", "--network", "host", "-t", r.image}, r.flags...), ".")
		if _, err := e.Run(ctx, root, nil, args...); err != nil {
			return err
		}
		out, err := e.Docker(ctx, "image", "inspect", "--format", "{{.Size}}", r.image)
		if err != nil {
			return err
		}
		n, _ := strconv.ParseInt(strings.TrimSpace(out), 10, 64)
		fmt.Fprintf(&md, "| `%s` | `%s` | %.1f MB |\n", r.image, strings.Join(append(append([]string{"docker build"}, r.flags...), "."), " "), float64(n)/1e6)
		log.Printf("%s: %.1f MB", r.image, float64(n)/1e6)
	}
	if *report != "" {
		if err := docsection.Replace(*report, "image-sizes", md.String()); err != nil {
			return err
		}
	}
	fmt.Print(md.String())
	return nil
}
