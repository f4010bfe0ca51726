package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/sigil-dna/keysync/internal/cli"
	"github.com/sigil-dna/keysync/keyring"
	"github.com/sigil-dna/keysync/store"
)

// storeFlags are the flags of every command that opens a --store: the plain-value
// schedule and each family's flags (families_gen.go: every build has every family's
// flags, one configuration for every flavor), read by the linked family's opener.
type storeFlags struct {
	plainDelay, plainWindow time.Duration
	strs                    map[string]*string
	bools                   map[string]*bool
}

func (f *storeFlags) register(c *cli.Command) {
	c.DurationVar(&f.plainDelay, "plain-activation-delay", keyring.DefaultActivationDelay, "for a store holding a plain value: how long after the store's own timestamp a new value starts signing (same on every pod)")
	c.DurationVar(&f.plainWindow, "plain-verify-window", keyring.DefaultVerifyWindow, "for a store holding a plain value: how long the previous value keeps verifying after that (same on every pod)")
	f.strs, f.bools = map[string]*string{}, map[string]*bool{}
	for _, fam := range families {
		for _, d := range fam.Flags {
			if d.Kind == "bool" {
				f.bools[d.Name] = c.Bool(d.Name, d.Default == "true", d.Usage)
			} else {
				f.strs[d.Name] = c.String(d.Name, d.Default, d.Usage)
			}
		}
	}
}

// str, boolean and duration are the values of a family's flags; a name no family
// declares is a programming error.
func (f *storeFlags) str(name string) string {
	if p, ok := f.strs[name]; ok {
		return *p
	}
	panic("keysync: no string store flag --" + name)
}

func (f *storeFlags) boolean(name string) bool {
	if p, ok := f.bools[name]; ok {
		return *p
	}
	panic("keysync: no bool store flag --" + name)
}

func (f *storeFlags) plain() store.PlainOptions {
	return store.PlainOptions{ActivationDelay: f.plainDelay, VerifyWindow: f.plainWindow}
}

// open turns a --store URL into a store of a family linked into this build. Logging in is
// bounded by a start-up timeout.
func (f *storeFlags) open(ctx context.Context, raw string, getenv func(string) string, log *slog.Logger) (store.Store, error) {
	if raw == "" {
		return nil, cli.Usagef("--store is required (for example file:///var/lib/keysync/keys.json or vault://secret/sigil/spiral-event-secret)")
	}
	// No store URL takes parameters: one that does is a typo or a wish, never ignored.
	if q, err := url.Parse(raw); err == nil && q.RawQuery != "" {
		vals, _ := url.ParseQuery(q.RawQuery)
		for k := range vals {
			return nil, cli.Usagef("--store %s: unknown parameter %q (store URLs take none; see keysync --help)", redact(raw), k)
		}
		return nil, cli.Usagef("--store %s: unexpected query %q", redact(raw), q.RawQuery)
	}
	scheme, err := storeScheme(raw)
	if err != nil {
		return nil, err
	}
	fam := familyOf(scheme)
	if fam == nil {
		return nil, cli.Usagef("--store %s: unknown scheme %q; supported: %s", redact(raw), scheme, strings.Join(allSchemes(), ", "))
	}
	b, ok := linked[fam.Name]
	if !ok {
		return nil, cli.UsageError{Err: notInThisBuild("--store "+redact(raw), fam)}
	}
	return b.open(ctx, f, raw, getenv, log)
}

// storeScheme is the scheme of a --store URL; a bare absolute or relative path is a file.
// An AWS name may be an ARN, which is not a URL host, so the scheme is read before parsing.
func storeScheme(raw string) (string, error) {
	for _, s := range allSchemes() {
		if strings.HasPrefix(raw, s+"://") {
			return s, nil
		}
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", cli.Usagef("--store: not a URL: %v", err)
	}
	if u.Scheme == "" && (strings.HasPrefix(raw, "/") || strings.HasPrefix(raw, ".")) {
		return "file", nil
	}
	if u.Scheme == "" {
		return "", cli.Usagef("--store %s: no scheme: a relative file path starts with ./ (./%s), an absolute one with /; or give a URL: %s", redact(raw), raw, strings.Join(allExamples(), ", "))
	}
	return u.Scheme, nil
}

// redact drops what a URL's user info may hold.
func redact(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		return u.Redacted()
	}
	return "the store URL"
}

func (f *storeFlags) openAll(ctx context.Context, primary string, mirrors []string, getenv func(string) string, log *slog.Logger) (store.Store, []store.Store, error) {
	p, err := f.open(ctx, primary, getenv, log)
	if err != nil {
		return nil, nil, err
	}
	var ms []store.Store
	for _, m := range mirrors {
		s, err := f.open(ctx, m, getenv, log)
		if err != nil {
			closeAll(p, ms)
			var ue cli.UsageError
			if errors.As(err, &ue) {
				return nil, nil, cli.Usagef("--mirror: %v", ue.Err)
			}
			return nil, nil, fmt.Errorf("--mirror: %w", err)
		}
		ms = append(ms, s)
	}
	return p, ms, nil
}
