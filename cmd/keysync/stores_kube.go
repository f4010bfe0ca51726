//go:build !keysync_omit_kube

package main

import (
	"context"
	"log/slog"

	"github.com/sigil-dna/keysync/internal/cli"
	"github.com/sigil-dna/keysync/rotate/fleet"
	"github.com/sigil-dna/keysync/rotate/fleet/kubefleet"
	"github.com/sigil-dna/keysync/store"
	"github.com/sigil-dna/keysync/store/kube"
)

// The Kubernetes client brings the k8s:// store and the k8s:// fleet.
func init() {
	register("kube", backend{open: func(_ context.Context, f *storeFlags, raw string, _ func(string) string, log *slog.Logger) (store.Store, error) {
		ns, name, err := kube.ParseURL(raw)
		if err != nil {
			return nil, cli.UsageError{Err: err}
		}
		return kube.New(kube.Config{Namespace: ns, Name: name, Key: f.kube.key, PlainKey: f.kube.plainKey,
			Kubeconfig: f.kube.kubeconfig, Plain: f.plain(), Log: log})
	}})
	kubeFleet = func(raw, kubeconfig string) (fleet.Source, error) {
		return kubefleet.Parse(raw, kubefleet.Options{Kubeconfig: kubeconfig})
	}
}
