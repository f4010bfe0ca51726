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

// A store family is one store package (store/NAME, or several for one SDK) plus one
// registration file here, stores_NAME.go, which a build links unless the tag
// keysync_omit_NAME leaves it out (as Tailscale's ts_omit_*): a sidecar then carries only
// its own store's client. The file store is in every build. The registration says
// everything else: the URL schemes, an example URL, the flags. What a slim build must know
// of the families it leaves out (their flags, so every build takes one configuration;
// their schemes, to name the build that has them) is families_gen.go, and the list of
// families for build/flavor-tags.sh, the Makefile and the Dockerfile is build/families:
// both are written from the registrations by `go test ./cmd/keysync -run
// TestTheFamiliesAreGenerated -update`, which fails while either is out of date, as does
// docs/configuration.md's table of stores. `make flavors` builds one binary per family;
// the image of a flavor is tagged VERSION-FLAVOR.

// familyInfo is what every build knows of a family, linked or not.
type familyInfo struct {
	Name   string
	Stores []storeKind
	Flags  []flagDef
}

// storeKind is one URL scheme of a family: an example URL and what it reaches, as --help,
// errors and docs/configuration.md show them.
type storeKind struct {
	Scheme, Example, Help string
}

// Schemes are the family's URL schemes.
func (f *familyInfo) Schemes() []string {
	var out []string
	for _, k := range f.Stores {
		out = append(out, k.Scheme)
	}
	return out
}

// flagDef is one flag of a family: every build has it, a build without the family
// accepts and ignores it.
type flagDef struct {
	Name    string
	Kind    string // "string" or "bool"
	Default string
	Usage   string
}

// family is a linked family: its description and how it opens a --store URL.
type family struct {
	familyInfo
	open func(ctx context.Context, f *storeFlags, raw string, getenv func(string) string, log *slog.Logger) (store.Store, error)
}

// linked are the families this build links, by name; filled by the stores_*.go files
// the build tags keep.
var linked = map[string]family{}

// kubeFleet parses a k8s:// fleet; nil in a build without the Kubernetes client.
var kubeFleet func(raw, kubeconfig string) (fleet.Source, error)

// register links a family into this build. One missing from families_gen.go (a new
// registration) is not found by its scheme until that file is written again:
// TestTheFamiliesAreGenerated fails until then.
func register(f family) { linked[f.Name] = f }

func familyByName(name string) *familyInfo {
	for i := range families {
		if families[i].Name == name {
			return &families[i]
		}
	}
	return nil
}

func familyOf(scheme string) *familyInfo {
	for i := range families {
		if slices.Contains(families[i].Schemes(), scheme) {
			return &families[i]
		}
	}
	return nil
}

func allSchemes() []string {
	var out []string
	for _, f := range families {
		out = append(out, f.Schemes()...)
	}
	return out
}

func allExamples() []string {
	var out []string
	for _, f := range families {
		for _, k := range f.Stores {
			out = append(out, k.Example)
		}
	}
	return out
}

// flavor names this build: "full" when it links every family, the family's name when it
// links one besides the file store, else the families joined with "+".
func flavor() string {
	var names []string
	for _, f := range families {
		if _, ok := linked[f.Name]; ok {
			names = append(names, f.Name)
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
		if _, ok := linked[f.Name]; ok {
			out = append(out, f.Schemes()...)
		}
	}
	return out
}

// notInThisBuild says which build has a family this one lacks.
func notInThisBuild(what string, fam *familyInfo) error {
	return fmt.Errorf("%s: this keysync is the %s build, which has no %s store; use the keysync-%s binary (image tag VERSION-%s) or the full keysync (image tag VERSION)",
		what, flavor(), strings.Join(fam.Schemes(), "/")+"://", fam.Name, fam.Name)
}

// buildLine says in --help what this build carries.
func buildLine() string {
	if flavor() == "full" {
		var slim []string
		for _, f := range families {
			slim = append(slim, "keysync-"+f.Name)
		}
		return wrap(fmt.Sprintf("This is the full build, with every store. The slim builds %s and %s (images tagged VERSION-FLAVOR) carry the file store and one family each, and need a fraction of the memory.",
			strings.Join(slim[:len(slim)-1], ", "), slim[len(slim)-1]), 90)
	}
	line := fmt.Sprintf("This is the %s build: stores %s only; the full keysync (image tag VERSION) has all.", flavor(), strings.Join(linkedSchemes(), ", "))
	if kubeFleet == nil {
		line += "\nk8s:// fleets need the kube or the full build."
	}
	return line
}

// wrap breaks text into lines of at most width columns at spaces.
func wrap(text string, width int) string {
	var out, line strings.Builder
	for _, w := range strings.Fields(text) {
		if line.Len() > 0 && line.Len()+1+len(w) > width {
			out.WriteString(line.String() + "\n")
			line.Reset()
		}
		if line.Len() > 0 {
			line.WriteByte(' ')
		}
		line.WriteString(w)
	}
	return out.String() + line.String()
}
