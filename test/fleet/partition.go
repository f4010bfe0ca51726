package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sigil-dna/keysync/rotate/fleet"
	"github.com/sigil-dna/keysync/store/storetest"
)

// setupPartition gives pod 0 a way to the store of its own that partition can cut: a
// proxy in front of the store's endpoint (Vault, AWS), or a symlink to the store file.
func (b *bench) setupPartition() (func(int) (string, []string), error) {
	if b.cfg.Partition <= 0 {
		return nil, nil
	}
	if b.cfg.Store == "file" {
		target := strings.TrimPrefix(b.sidecarStore, "file://")
		link := filepath.Join(b.cfg.Work, "pod0-store", "keys.json")
		if err := os.MkdirAll(filepath.Dir(link), 0o700); err != nil {
			return nil, err
		}
		if err := os.Symlink(target, link); err != nil {
			return nil, err
		}
		b.cut = func() func() {
			os.Remove(link)
			_ = os.Symlink(target+".unreachable", link)
			return func() { os.Remove(link); _ = os.Symlink(target, link) }
		}
		return func(i int) (string, []string) {
			if i == 0 {
				return "file://" + link, nil
			}
			return "", nil
		}, nil
	}
	p, err := storetest.StartProxy(strings.TrimPrefix(b.proxy.URL(), "http://"))
	if err != nil {
		return nil, err
	}
	b.closers = append(b.closers, p.Close)
	b.cut = p.Cut
	v := "VAULT_ADDR"
	if b.cfg.Store == "ssm" || b.cfg.Store == "secretsmanager" {
		v = "AWS_ENDPOINT_URL"
	}
	return func(i int) (string, []string) {
		if i == 0 {
			return "", []string{v + "=http://" + p.Addr()}
		}
		return "", nil
	}, nil
}

// partition cuts pod 0 off the store for the configured time.
func (b *bench) partition(ctx context.Context, phase string) {
	b.note(fmt.Sprintf("%s: pod 0 cut off the store for %s (3 activation delays), from the second rotation", firstWord(phase), b.cfg.Partition))
	restore := b.cut()
	b.sleep(ctx, b.cfg.Partition)
	restore()
}

// gate is the fleet-confirmed rotation's gate over every pod's sidecar.
func (b *bench) gate() *fleet.Gate {
	var urls []string
	for _, p := range b.fleet.Pods {
		urls = append(urls, p.SidecarURL)
	}
	src, err := fleet.ParseSource(strings.Join(urls, ","), fleet.SourceOptions{})
	if err != nil {
		panic(err) // the fleet's own URLs
	}
	return &fleet.Gate{Sources: []fleet.Source{src}, Poll: 100 * time.Millisecond,
		Timeout: b.cfg.Partition + 2*b.worstPropagation() + time.Minute}
}
