package reload

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/sigil-dna/keysync/keyring"
)

// schema is the part of JSON Schema that docs/app-status.schema.json uses; checkSchema
// applies it. The Node library's test/status.test.js applies the same file the same way.
type schema struct {
	Type                 string            `json:"type"`
	Required             []string          `json:"required"`
	Properties           map[string]schema `json:"properties"`
	AdditionalProperties *bool             `json:"additionalProperties"`
	Items                *schema           `json:"items"`
	Enum                 []any             `json:"enum"`
	Minimum              *float64          `json:"minimum"`
}

func checkSchema(where string, v any, s schema) []string {
	var errs []string
	bad := func(format string, a ...any) { errs = append(errs, where+": "+fmt.Sprintf(format, a...)) }
	if s.Enum != nil && !slices.Contains(s.Enum, v) {
		bad("%v is not one of %v", v, s.Enum)
	}
	switch s.Type {
	case "object":
		m, ok := v.(map[string]any)
		if !ok {
			bad("not an object")
			return errs
		}
		for _, r := range s.Required {
			if _, ok := m[r]; !ok {
				bad("required %q missing", r)
			}
		}
		for name, fv := range m {
			ps, ok := s.Properties[name]
			if !ok {
				if s.AdditionalProperties != nil && !*s.AdditionalProperties {
					bad("%q is not in the schema", name)
				}
				continue
			}
			errs = append(errs, checkSchema(where+"."+name, fv, ps)...)
		}
	case "array":
		a, ok := v.([]any)
		if !ok {
			bad("not an array")
			return errs
		}
		for i, e := range a {
			errs = append(errs, checkSchema(fmt.Sprintf("%s[%d]", where, i), e, *s.Items)...)
		}
	case "string":
		if _, ok := v.(string); !ok {
			bad("not a string")
		}
	case "integer":
		f, ok := v.(float64)
		if !ok || f != math.Trunc(f) {
			bad("not an integer")
		} else if s.Minimum != nil && f < *s.Minimum {
			bad("%v is below %v", f, *s.Minimum)
		}
	}
	return errs
}

func loadAppStatusSchema(t *testing.T) schema {
	t.Helper()
	raw, err := os.ReadFile("../docs/app-status.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	var s schema
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestTheStatusIsTheSchemasDocument: what StatusHandler serves (before a load fails, after
// loads, with every optional field set and every kind of usage count) is the document of
// docs/app-status.schema.json, field for field; and the schema's state and result words
// are the keyring package's vocabulary, so neither can change alone.
func TestTheStatusIsTheSchemasDocument(t *testing.T) {
	s := loadAppStatusSchema(t)
	voc := keyring.Vocabulary()
	usage := s.Properties["usage"].Properties["verifications"].Items.Properties
	wantStates := append(append(slices.Clone(voc["states"]), voc["legacy_state"]...), "")
	if got := usage["state"].Enum; fmt.Sprint(got) != fmt.Sprint(wantStates) {
		t.Errorf("the schema's states %v, the library's %v", got, wantStates)
	}
	if got := usage["result"].Enum; fmt.Sprint(got) != fmt.Sprint(voc["results"]) {
		t.Errorf("the schema's results %v, the library's %v", got, voc["results"])
	}

	path := filepath.Join(memDir(t), "keys.json")
	now := time.Now()
	r, _ := keyring.Stage(nil, now.Add(-time.Hour), secret(1), keyring.Options{RotatedBy: "schema test", Reason: "every field"})
	r, _ = keyring.Stage(r, now.Add(-time.Minute), secret(2), keyring.Options{RotatedBy: "schema test", Reason: "every field", ActivationDelay: time.Second})
	writeKeys(t, path, r)
	k := openT(t, path, WithSignals(), WithFileWatch(false), WithPollInterval(0))
	sig, _ := k.Sign([]byte("event"))
	_ = k.Verify([]byte("event"), sig)
	_ = k.Verify([]byte("other"), sig)
	_ = k.Verify([]byte("event"), "v1.ffffffffffffffff.00")
	os.WriteFile(path, []byte("{"), 0o600)
	if err := k.Reload(); err == nil {
		t.Fatal("a broken file reloaded")
	}
	raw, _ := json.Marshal(k.Status())
	var doc map[string]any
	json.Unmarshal(raw, &doc)
	for _, e := range checkSchema("status", doc, s) {
		t.Error(e)
	}
	for name := range s.Properties {
		if _, ok := doc[name]; !ok {
			t.Errorf("the schema's %q is not in the library's status (this test sets every field)", name)
		}
	}
	if v := doc["usage"].(map[string]any)["verifications"].([]any); len(v) < 3 {
		t.Errorf("usage counted %d kinds of verification: %v", len(v), v)
	}
}
