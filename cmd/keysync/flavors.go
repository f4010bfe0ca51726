package main

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/sigil-dna/keysync/rotate/fleet"
	"github.com/sigil-dna/keysync/store"
)

// A build of keysync links every store family unless a build tag leaves it out
// (keysync_omit_vault, keysync_omit_kube, keysync_omit_aws, keysync_omit_gcp, as
// Tailscale's ts_omit_*): a sidecar then carries only its own store's client. The file
// store is in every build. `make flavors` builds one binary per family; the image of a
// flavor is tagged VERSION-FLAVOR.

// family is a store family: the flavor that carries it alone and its URL schemes.
type family struct {
	name    string
	schemes []string
}

// families are every store family, linked or not, so a build without one can say which
// build has it.
var families = []family{
	{"file", []string{"file"}},
	{"vault", []string{"vault"}},
	{"kube", []string{"k8s"}},
	{"aws", []string{"ssm", "secretsmanager"}},
	{"gcp", []string{"gcpsm"}},
}

// backend opens the stores of a linked family.
type backend struct {
	open func(ctx context.Context, f *storeFlags, raw string, getenv func(string) string, log *slog.Logger) (store.Store, error)
}

// linked are the families this build links, by name; filled by the stores_*.go files
// the build tags keep.
var linked = map[string]backend{}

// kubeFleet parses a k8s:// fleet; nil in a build without the Kubernetes client.
var kubeFleet func(raw, kubeconfig string) (fleet.Source, error)

func register(name string, b backend) {
	if familyByName(name) == nil {
		panic("keysync: unknown store family " + name)
	}
	linked[name] = b
}

func familyByName(name string) *family {
	for i := range families {
		if families[i].name == name {
			return &families[i]
		}
	}
	return nil
}

func familyOf(scheme string) *family {
	for i := range families {
		if slices.Contains(families[i].schemes, scheme) {
			return &families[i]
		}
	}
	return nil
}

func allSchemes() []string {
	var out []string
	for _, f := range families {
		out = append(out, f.schemes...)
	}
	return out
}

// flavor names this build: "full" when it links every family, the family's name when it
// links one besides the file store, else the families joined with "+".
func flavor() string {
	var names []string
	for _, f := range families {
		if _, ok := linked[f.name]; ok {
			names = append(names, f.name)
		}
	}
	switch {
	case len(names) == len(families):
		return "full"
	case len(names) == 2 && names[0] == "file":
		return names[1]
	}
	return strings.Join(names, "+")
}

// linkedSchemes are the store URL schemes this build opens.
func linkedSchemes() []string {
	var out []string
	for _, f := range families {
		if _, ok := linked[f.name]; ok {
			out = append(out, f.schemes...)
		}
	}
	return out
}

// notInThisBuild says which build has a family this one lacks.
func notInThisBuild(what string, fam *family) error {
	return fmt.Errorf("%s: this keysync is the %s build, which has no %s store; use the keysync-%s binary (image tag VERSION-%s) or the full keysync (image tag VERSION)",
		what, flavor(), strings.Join(fam.schemes, "/")+"://", fam.name, fam.name)
}

// buildLine says in --help what this build carries.
func buildLine() string {
	if flavor() == "full" {
		return "This is the full build, with every store. The slim builds keysync-file, keysync-vault,\nkeysync-kube, keysync-aws and keysync-gcp (images tagged VERSION-FLAVOR) carry the file\nstore and one family each, and need a fraction of the memory."
	}
	line := fmt.Sprintf("This is the %s build: stores %s only; the full keysync (image tag VERSION) has all.", flavor(), strings.Join(linkedSchemes(), ", "))
	if kubeFleet == nil {
		line += "\nk8s:// fleets need the kube or the full build."
	}
	return line
}
