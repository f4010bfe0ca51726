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
	register(family{familyInfo: familyInfo{
		Name:   "kube",
		Stores: []storeKind{{"k8s", "k8s://NAMESPACE/NAME", "a Kubernetes Secret (in-cluster config, or --kubeconfig)"}},
		Flags: []flagDef{
			{"kubeconfig", "string", "", "kubeconfig `file` for k8s:// stores (default: in-cluster config in a pod, else $KUBECONFIG or ~/.kube/config)"},
			{"kube-key", "string", kube.DefaultKey, "data key of the keyring document in the Secret"},
			{"kube-plain-key", "string", kube.DefaultPlainKey, "data key of a plain value in the Secret"},
		},
	}, open: func(_ context.Context, f *storeFlags, raw string, _ func(string) string, log *slog.Logger) (store.Store, error) {
		ns, name, err := kube.ParseURL(raw)
		if err != nil {
			return nil, cli.UsageError{Err: err}
		}
		return kube.New(kube.Config{Namespace: ns, Name: name, Key: f.str("kube-key"), PlainKey: f.str("kube-plain-key"),
			Kubeconfig: f.str("kubeconfig"), Plain: f.plain(), Log: log})
	}})
	kubeFleet = func(raw, kubeconfig string) (fleet.Source, error) {
		return kubefleet.Parse(raw, kubefleet.Options{Kubeconfig: kubeconfig})
	}
}
