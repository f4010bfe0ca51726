package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sigil-dna/keysync/internal/statusapi"
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

// TestFleetStatusNamesWhatFails: a member whose keys file cannot be written (a full
// tmpfs) is counted as failing to write, not as failing to read the store, and one whose
// signal is refused as failing to signal; each in the table's note and the JSON summary.
// The members are HTTP servers answering what a sidecar's /status says in each case.
func TestFleetStatusNamesWhatFails(t *testing.T) {
	member := func(st statusapi.Status) string {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			st.Store, st.Path, st.At = "vault://vault:8200/secret/keysync", "/keys/keys.json", time.Now()
			st.Settings = statusapi.Settings{Interval: 10, BackoffCap: 60, ReadTimeout: 10, Confirms: true}
			st.App.URL = "http://127.0.0.1:8080/keysync/status"
			json.NewEncoder(w).Encode(st)
		}))
		t.Cleanup(srv.Close)
		return srv.URL
	}
	store := member(statusapi.Status{Ready: true, Generation: 4, StoreError: "vault: connection refused"})
	write := member(statusapi.Status{Ready: true, Generation: 4, WriteError: "write /keys/keys.json: no space left on device"})
	signal := member(statusapi.Status{Ready: true, Generation: 4, App: statusapi.App{SignalError: "operation not permitted"}})
	srcs := []fleet.Source{&fleet.Static{URLs: []string{store, write, signal}}}
	var table, js bytes.Buffer
	if _, err := showFleet(context.Background(), srcs, 4, nil, "table", &table); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"1 failing to read the store", "1 failing to write the keys file", "1 failing to signal their app",
		"no space left on device", "vault: connection refused", "operation not permitted"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("status --fleet lacks %q:\n%s", want, table.String())
		}
	}
	fs, err := showFleet(context.Background(), srcs, 4, nil, "json", &js)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Summary map[string]int `json:"summary"`
	}
	json.Unmarshal(js.Bytes(), &doc)
	if s := fs.Summary; s.StoreFailing != 1 || s.WriteFailing != 1 || s.SignalFailing != 1 ||
		doc.Summary["store_failing"] != 1 || doc.Summary["write_failing"] != 1 || doc.Summary["members"] != 3 {
		t.Errorf("summary %+v, JSON %s", s, js.String())
	}
}
