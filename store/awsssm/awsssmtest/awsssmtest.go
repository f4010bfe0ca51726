// Package awsssmtest is the Parameter Store store's fixture for the store contract and
// the cross-layer tests: on the kumo emulator, or on the SigV4-checking fake (test/awsfake)
// for what kumo lacks (parameter history, throttling), reached through a proxy that can
// cut it.
package awsssmtest

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/sigil-dna/keysync/internal/awsapi"
	"github.com/sigil-dna/keysync/store"
	"github.com/sigil-dna/keysync/store/awsssm"
	"github.com/sigil-dna/keysync/store/storetest"
	"github.com/sigil-dna/keysync/test/awsfake"
)

// Backend describes Parameter Store to the contract. With a fake (f not nil), plain
// values with their history and throttling are offered; on kumo (f nil, ac from
// awsfake.Kumo), which keeps no history, they are not.
func Backend(ac awsapi.Config, f *awsfake.Server) storetest.Backend {
	return storetest.Backend{PlainHistory: f != nil, Open: func(t *testing.T) *storetest.Fixture { return Open(t, ac, f) }}
}

// Open returns a fixture on a fresh parameter.
func Open(t *testing.T, ac awsapi.Config, f *awsfake.Server) *storetest.Fixture {
	t.Helper()
	name := "/" + awsfake.Unique("keysync-test")
	proxy := storetest.NewProxy(t, awsfake.HostPort(ac.Endpoint))
	cut := ac
	cut.Endpoint = "http://" + proxy.Addr()
	st := New(t, name, cut)
	other := New(t, name, ac)
	// The ticket's `aws ssm put-parameter --name … --type SecureString --overwrite`.
	put := func(value string) {
		client := ssm.NewFromConfig(awsfake.SDKConfig(t, ac))
		if _, err := client.PutParameter(t.Context(), &ssm.PutParameterInput{Name: &name, Value: &value,
			Type: types.ParameterTypeSecureString, Overwrite: aws.Bool(true)}); err != nil {
			t.Fatal(err)
		}
	}
	fx := &storetest.Fixture{Store: st, URL: "ssm://" + name, Another: func() store.Store { return other }, PutRaw: put, Outage: proxy.Cut}
	if f != nil {
		fx.PutPlain = put
		fx.Throttle = func(n int) { f.Throttle("*", n) }
	}
	return fx
}

// New opens the store on parameter name with the contract's plain-value schedule,
// closed when the test ends.
func New(t *testing.T, name string, ac awsapi.Config) *awsssm.Store {
	t.Helper()
	s, err := awsssm.New(context.Background(), awsssm.Config{Name: name, AWS: ac, Plain: storetest.Schedule})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
