package fleet

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sigil-dna/keysync/internal/statusapi"
)

// TestWhyNamesWhatFailed: a lagging member is reported for what failed (its store read,
// its keys file write, its app's confirmation, the signal), each in words of its own, as
// the gate's progress and error print them.
func TestWhyNamesWhatFailed(t *testing.T) {
	now := time.Now()
	base := func(mod func(*statusapi.Status)) Observation {
		st := statusapi.Status{At: now, FailingSince: now.Add(-95 * time.Second), Generation: 3, KeyIDs: []string{"aaaa"},
			Settings: statusapi.Settings{Confirms: true}}
		mod(&st)
		return Observation{Status: &st}
	}
	cases := map[string]Observation{
		"store read failing for 95 s: vault: connection refused": base(func(s *statusapi.Status) { s.StoreError = "vault: connection refused" }),
		"keys file cannot be written for 95 s: no space left":    base(func(s *statusapi.Status) { s.WriteError = "no space left" }),
		"keys file at generation 3, without the key yet":         base(func(*statusapi.Status) {}),
		"app not confirming: connection refused":                 base(func(s *statusapi.Status) { s.KeyIDs = []string{"bbbb"}; s.App.Error = "connection refused" }),
		"app not signalled: operation not permitted":             base(func(s *statusapi.Status) { s.KeyIDs = []string{"bbbb"}; s.App.SignalError = "operation not permitted" }),
		"its sidecar has no --confirm-url":                       base(func(s *statusapi.Status) { s.KeyIDs = []string{"bbbb"}; s.Settings.Confirms = false }),
		"did not answer":                                         {Err: errors.New("did not answer")},
	}
	for want, o := range cases {
		if got := Why(o, "bbbb"); !strings.Contains(got, want) {
			t.Errorf("Why = %q, want it to say %q", got, want)
		}
	}
}
