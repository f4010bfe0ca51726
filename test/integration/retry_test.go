package integration

import (
	"strings"
	"testing"

	"github.com/sigil-dna/keysync/keyring"
	"github.com/sigil-dna/keysync/sidecar"
	"github.com/sigil-dna/keysync/store/awssm/awssmtest"
	"github.com/sigil-dna/keysync/store/awsssm/awsssmtest"
	"github.com/sigil-dna/keysync/store/storetest"
	"github.com/sigil-dna/keysync/test/awsfake"
)

// TestASidecarPollIsRetriedOnlyByTheSidecar: a store the sidecar polls makes one request
// per failing poll and leaves the retry to the sidecar's jittered backoff. Before, the AWS
// SDK retried each failing poll itself (6 attempts) under the sidecar's backoff, so a
// fleet's requests multiplied during an outage or throttling instead of spreading
// (docs/scaling.md). A rotation's own reads still retry (the store contract's throttling
// case).
func TestASidecarPollIsRetriedOnlyByTheSidecar(t *testing.T) {
	for name, open := range map[string]func(t *testing.T, f *awsfake.Server) *storetest.Fixture{
		"parameter store": func(t *testing.T, f *awsfake.Server) *storetest.Fixture { return awsssmtest.Open(t, f.AWS(), f) },
		"secrets manager": awssmtest.Open,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			fake := awsfake.StartT(t)
			fx := open(t, fake)
			storetest.Rotate(t, fx.Store, keyring.Options{})
			sc, err := sidecar.New(sidecar.Config{Store: fx.Store, OutDir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			if err := sc.Once(t.Context()); err != nil {
				t.Fatal(err)
			}
			fake.Calls()
			fake.Throttle("*", 1000)
			const polls = 3
			for range polls {
				if err := sc.Once(t.Context()); err == nil || !strings.Contains(err.Error(), "Throttl") {
					t.Fatalf("a throttled poll: err = %v", err)
				}
			}
			if n := fake.Requests(); n != polls {
				t.Fatalf("%d failing polls made %d requests; want one each (the sidecar's backoff is the only retry)", polls, n)
			}
			fake.Throttle("*", 0)
			if err := sc.Once(t.Context()); err != nil {
				t.Fatalf("after the throttling: %v", err)
			}
		})
	}
}
