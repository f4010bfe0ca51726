// Package gcpsmtest is the Google Cloud Secret Manager store's fixture for the store
// contract and the cross-layer tests, on the gRPC fake (test/gcpfake), reached through a
// proxy that can cut it.
package gcpsmtest

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	secretmanager "cloud.google.com/go/secretmanager/apiv1"
	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"google.golang.org/api/option"

	"github.com/sigil-dna/keysync/store"
	"github.com/sigil-dna/keysync/store/gcpsm"
	"github.com/sigil-dna/keysync/store/storetest"
	"github.com/sigil-dna/keysync/test/gcpfake"
)

// Backend describes Secret Manager on the fake f to the contract: polled, plain values
// with their history (the previous enabled version), invalid documents and outages
// injectable.
func Backend(f *gcpfake.Server) storetest.Backend {
	return storetest.Backend{PlainHistory: true, Open: func(t *testing.T) *storetest.Fixture { return Open(t, f) }}
}

var seq atomic.Int64

// Open returns a fixture on a fresh secret of f.
func Open(t *testing.T, f *gcpfake.Server) *storetest.Fixture {
	t.Helper()
	project, name := "sigil", fmt.Sprintf("keysync-test-%d", seq.Add(1))
	proxy := storetest.NewProxy(t, f.Addr)
	client, err := secretmanager.NewClient(context.Background(), gcpfake.ClientOptions(f.Addr)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	full := "projects/" + project + "/secrets/" + name
	// `gcloud secrets create` the first time, then `gcloud secrets versions add --data-file=-`.
	put := func(value string) {
		if _, err := client.GetSecret(t.Context(), &secretmanagerpb.GetSecretRequest{Name: full}); err != nil {
			if _, err := client.CreateSecret(t.Context(), &secretmanagerpb.CreateSecretRequest{Parent: "projects/" + project, SecretId: name,
				Secret: &secretmanagerpb.Secret{}}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := client.AddSecretVersion(t.Context(), &secretmanagerpb.AddSecretVersionRequest{Parent: full,
			Payload: &secretmanagerpb.SecretPayload{Data: []byte(value)}}); err != nil {
			t.Fatal(err)
		}
	}
	return &storetest.Fixture{
		Store:    New(t, project, name, gcpfake.ClientOptions(proxy.Addr())),
		URL:      "gcpsm://" + full,
		Another:  func() store.Store { return New(t, project, name, gcpfake.ClientOptions(f.Addr)) },
		PutPlain: put, PutRaw: put, Outage: proxy.Cut, Throttle: f.Throttle,
	}
}

// New opens the store on secret project/name with the contract's plain-value schedule,
// closed when the test ends.
func New(t *testing.T, project, name string, opts []option.ClientOption) *gcpsm.Store {
	t.Helper()
	s, err := gcpsm.New(context.Background(), gcpsm.Config{Project: project, Secret: name, ClientOptions: opts, Plain: storetest.Schedule})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
