// Package vaulttest is the Vault store's fixture for the store contract and the
// cross-layer tests, on a real Vault dev server (test/servers): a fresh KV v2 path under
// the "secret" mount per fixture, reached through a proxy that can cut it.
package vaulttest

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/sigil-dna/keysync/keyring"
	"github.com/sigil-dna/keysync/store"
	"github.com/sigil-dna/keysync/store/storetest"
	"github.com/sigil-dna/keysync/store/vault"
	"github.com/sigil-dna/keysync/test/servers"
)

// Backend describes the Vault store on v to the contract: polled, with plain-value
// history (KV v2 versions), invalid documents and outages injectable.
func Backend(v *servers.Vault) storetest.Backend {
	return storetest.Backend{PlainHistory: true, Open: func(t *testing.T) *storetest.Fixture { return Open(t, v) }}
}

var seq atomic.Int64

// Open returns a fixture on a fresh path of v.
func Open(t *testing.T, v *servers.Vault) *storetest.Fixture {
	t.Helper()
	path := fmt.Sprintf("keysync-test/%s-%d", strings.NewReplacer("/", "-", " ", "-").Replace(t.Name()), seq.Add(1))
	proxy := storetest.NewProxy(t, strings.TrimPrefix(v.Addr, "http://"))
	quota := newQuota(t, "http://"+proxy.Addr())
	return &storetest.Fixture{
		Store:   New(t, v, path, func(c *vault.Config) { c.Address = quota.URL }),
		URL:     "vault://secret/" + path,
		Another: func() store.Store { return New(t, v, path) },
		// The ticket's `vault kv put secret/… value=$(openssl rand -hex 32)`.
		PutPlain: func(value string) {
			if err := v.PutRaw(path, map[string]any{"value": value}); err != nil {
				t.Fatal(err)
			}
		},
		PutRaw: func(doc string) {
			if err := v.PutRaw(path, map[string]any{vault.FieldKeyring: doc}); err != nil {
				t.Fatal(err)
			}
		},
		Outage:   proxy.Cut,
		Throttle: func(n int) { quota.left.Store(int64(n)) },
	}
}

// quota stands in front of the real server and answers the next left requests as
// Vault's rate-limit quotas do (429, Vault's JSON error), without passing them on: Vault's
// own quotas limit a rate, which cannot refuse an exact number of requests on demand.
type quota struct {
	*httptest.Server
	left atomic.Int64
}

func newQuota(t *testing.T, target string) *quota {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	q := &quota{}
	next := httputil.NewSingleHostReverseProxy(u)
	q.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if q.left.Add(-1) >= 0 {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusTooManyRequests)
			fmt.Fprintf(w, `{"errors":["request path %q: rate limit quota exceeded"]}`, strings.TrimPrefix(r.URL.Path, "/v1/"))
			return
		}
		q.left.Store(0)
		next.ServeHTTP(w, r)
	}))
	t.Cleanup(q.Close)
	return q
}

// New opens the Vault store at path of v with the root token and the contract's
// plain-value schedule, closed when the test ends.
func New(t *testing.T, v *servers.Vault, path string, mod ...func(*vault.Config)) *vault.Store {
	t.Helper()
	cfg := vault.Config{Mount: "secret", Path: path, Address: v.Addr, Auth: vault.Auth{Token: keyring.Secret(v.Token)}, Plain: storetest.Schedule}
	for _, m := range mod {
		m(&cfg)
	}
	s, err := vault.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
