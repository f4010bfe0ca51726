package main

import (
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sigil-dna/keysync/keyring"
	"github.com/sigil-dna/keysync/rotate/fleet"
	"github.com/sigil-dna/keysync/sidecar"
	"github.com/sigil-dna/keysync/store"
	"github.com/sigil-dna/keysync/store/file"
	"github.com/sigil-dna/keysync/store/storetest"
)

// TestStatusOfAHeldKeyHasNoCountdown: a held key (a Secrets Manager AWSPENDING value, or
// a key waiting for the fleet) signs when it is promoted, not at a time; status shows it
// held with no time left, while a staged key counts down to its activation.
func TestStatusOfAHeldKeyHasNoCountdown(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Millisecond)
	r, err := keyring.Stage(nil, now.Add(-time.Hour), storetest.Secret("current"), keyring.Options{})
	if err != nil {
		t.Fatal(err)
	}
	r, err = keyring.Stage(r, now, storetest.Secret("staged"), keyring.Options{})
	if err != nil {
		t.Fatal(err)
	}
	pend := keyring.Secret(storetest.Plain3)
	r.Keys = append(r.Keys, keyring.Key{ID: keyring.KeyID(pend), Secret: pend})
	if err := keyring.Validate(r); err != nil {
		t.Fatal(err)
	}
	st, err := file.New(filepath.Join(t.TempDir(), "keys.json"), store.PlainOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s := describeStore(st, &store.Snapshot{Keyring: r, Plain: true}, now)
	staged, promoted := s.Keys[1], s.Keys[2]
	if staged.State != keyring.StatePending || staged.LeftSeconds == nil || *staged.LeftSeconds != keyring.DefaultActivationDelay.Seconds() {
		t.Fatalf("staged key %+v", staged)
	}
	if promoted.State != keyring.StateHeld || promoted.LeftSeconds != nil || promoted.NotBefore != nil {
		t.Fatalf("held key %+v", promoted)
	}
}

// TestTheDefaultsCannotMissASwitch: with every setting at its default, a timer
// rotation's activation delay exceeds a default sidecar's worst propagation plus the
// default clock skew, which is what --min-propagation defaults to (regression: 60 s
// against 5 s skew + 12 s poll + a 60 s backoff cap).
func TestTheDefaultsCannotMissASwitch(t *testing.T) {
	worst := sidecar.WorstPropagation(sidecar.DefaultInterval, sidecar.DefaultJitter, sidecar.DefaultBackoffCap)
	if min := defaultMinPropagation(); min != worst+fleet.DefaultMaxClockSkew || keyring.DefaultActivationDelay <= min {
		t.Fatalf("default delay %s, worst propagation %s + skew %s = %s", keyring.DefaultActivationDelay, worst, fleet.DefaultMaxClockSkew, min)
	}
	c, f := rotateCommand("rotate")
	if err := c.Parse(nil, noEnv, io.Discard); err != nil {
		t.Fatal(err)
	}
	if f.delay < f.minPropagation {
		t.Fatalf("the rotate command's own defaults refuse themselves: delay %s, minimum %s", f.delay, f.minPropagation)
	}
}

// TestHelpShowsFlagsAsTheyAreTyped: --help printed the output flag as "--o" and the log
// format as "--log-format json" (the usage's quoted word taken for the value's name),
// which read as the default; the default is auto (regression).
func TestHelpShowsFlagsAsTheyAreTyped(t *testing.T) {
	for name, c := range flagSets() {
		var help strings.Builder
		c.PrintHelp(&help)
		h := help.String()
		if strings.Contains(h, "--o ") || strings.Contains(h, "--log-format json") {
			t.Errorf("%s --help:\n%s", name, h)
		}
		if c.Lookup("o") != nil && !strings.Contains(h, "\n  -o ") {
			t.Errorf("%s --help does not show -o", name)
		}
		if c.Lookup("log-format") != nil && !strings.Contains(h, "env KEYSYNC_LOG_FORMAT, default auto") {
			t.Errorf("%s --help does not show the log format's default", name)
		}
	}
}
