// Package awssmtest is the Secrets Manager store's fixture for the store contract and the
// cross-layer tests, on the SigV4-checking fake (test/awsfake): the kumo emulator cannot
// move staging labels, which every keysync write does. The fake is reached through a
// proxy that can cut it.
package awssmtest

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/sigil-dna/keysync/internal/awsapi"
	"github.com/sigil-dna/keysync/store"
	"github.com/sigil-dna/keysync/store/awssm"
	"github.com/sigil-dna/keysync/store/storetest"
	"github.com/sigil-dna/keysync/test/awsfake"
)

// Backend describes Secrets Manager on the fake f to the contract: polled, plain values
// with their history (AWSPREVIOUS), invalid documents, outages and throttling injectable.
func Backend(f *awsfake.Server) storetest.Backend {
	return storetest.Backend{PlainHistory: true, Open: func(t *testing.T) *storetest.Fixture { return Open(t, f) }}
}

// Open returns a fixture on a fresh secret of f.
func Open(t *testing.T, f *awsfake.Server) *storetest.Fixture {
	t.Helper()
	name := awsfake.Unique("keysync-test/secret")
	ac := f.AWS()
	proxy := storetest.NewProxy(t, awsfake.HostPort(ac.Endpoint))
	cut := ac
	cut.Endpoint = "http://" + proxy.Addr()
	st, other := New(t, name, cut), New(t, name, ac)
	client := secretsmanager.NewFromConfig(awsfake.SDKConfig(t, ac))
	// `aws secretsmanager create-secret` the first time, `put-secret-value` after.
	put := func(value string) {
		if _, err := client.DescribeSecret(t.Context(), &secretsmanager.DescribeSecretInput{SecretId: &name}); err != nil {
			if _, err := client.CreateSecret(t.Context(), &secretsmanager.CreateSecretInput{Name: &name, SecretString: &value}); err != nil {
				t.Fatal(err)
			}
			return
		}
		if _, err := client.PutSecretValue(t.Context(), &secretsmanager.PutSecretValueInput{SecretId: &name, SecretString: &value}); err != nil {
			t.Fatal(err)
		}
	}
	return &storetest.Fixture{Store: st, URL: "secretsmanager://" + name, Another: func() store.Store { return other },
		PutPlain: put, PutRaw: put, Outage: proxy.Cut, Throttle: func(n int) { f.Throttle("*", n) }}
}

// New opens the store on secret name with the contract's plain-value schedule, closed
// when the test ends.
func New(t *testing.T, name string, ac awsapi.Config) *awssm.Store {
	t.Helper()
	s, err := awssm.New(context.Background(), awssm.Config{Name: name, AWS: ac, Plain: storetest.Schedule})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
