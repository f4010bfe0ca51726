package main

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/sigil-dna/keysync/internal/cli"
	"github.com/sigil-dna/keysync/store"
	"github.com/sigil-dna/keysync/store/file"
)

// openStore turns a --store URL into a store.
func openStore(raw string, plain store.PlainOptions) (store.Store, error) {
	if raw == "" {
		return nil, cli.Usagef("--store is required (for example file:///var/lib/keysync/keys.json)")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, cli.Usagef("--store: not a URL: %v", err)
	}
	switch u.Scheme {
	case "file":
		path := u.Path
		if u.Host != "" && u.Host != "localhost" { // file://relative/path
			path = u.Host + u.Path
		}
		if path == "" {
			return nil, cli.Usagef("--store %s: no path", raw)
		}
		return file.New(path, plain)
	case "":
		if strings.HasPrefix(raw, "/") || strings.HasPrefix(raw, ".") {
			return file.New(raw, plain)
		}
	}
	return nil, cli.Usagef("--store %s: unknown scheme %q; supported: file", u.Redacted(), u.Scheme)
}

func openStores(primary string, mirrors []string, plain store.PlainOptions) (store.Store, []store.Store, error) {
	p, err := openStore(primary, plain)
	if err != nil {
		return nil, nil, err
	}
	var ms []store.Store
	for _, m := range mirrors {
		s, err := openStore(m, plain)
		if err != nil {
			p.Close()
			for _, o := range ms {
				o.Close()
			}
			return nil, nil, fmt.Errorf("--mirror: %w", err)
		}
		ms = append(ms, s)
	}
	return p, ms, nil
}
