package main

import (
	"context"
	"log/slog"
	"net/url"

	"github.com/sigil-dna/keysync/internal/cli"
	"github.com/sigil-dna/keysync/store"
	"github.com/sigil-dna/keysync/store/file"
)

// The file store is in every build.
func init() {
	register(family{familyInfo: familyInfo{
		Name:   "file",
		Stores: []storeKind{{"file", "file:///path/keys.json", "a local file (the embedded default)"}},
	}, open: func(_ context.Context, f *storeFlags, raw string, _ func(string) string, _ *slog.Logger) (store.Store, error) {
		u, err := url.Parse(raw)
		if err != nil {
			return nil, cli.Usagef("--store: not a URL: %v", err)
		}
		if u.Scheme == "" {
			return file.New(raw, f.plain())
		}
		if u.Host != "" && u.Host != "localhost" {
			// file://var/lib/k.json makes "var" a host: never guess a relative path.
			return nil, cli.Usagef("--store %s: %q is read as a host; a file URL has three slashes: file:///%s%s", raw, u.Host, u.Host, u.Path)
		}
		if u.Opaque != "" {
			return nil, cli.Usagef("--store %s: a file URL has three slashes and an absolute path (file:///ABS/PATH); a relative path is given alone: ./%s", raw, u.Opaque)
		}
		if u.Path == "" {
			return nil, cli.Usagef("--store %s: no path: file:///ABS/PATH, or the path alone", raw)
		}
		return file.New(u.Path, f.plain())
	}})
}
