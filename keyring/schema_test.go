package keyring

import (
	"encoding/json"
	"os"
	"slices"
	"testing"
)

type schemaObject struct {
	Required             []string                   `json:"required"`
	Properties           map[string]json.RawMessage `json:"properties"`
	AdditionalProperties *bool                      `json:"additionalProperties"`
	Items                *schemaObject              `json:"items"`
	OneOf                []schemaObject             `json:"oneOf"`
}

// TestSchemaMatchesVectorsAndCode checks docs/keyring.schema.json against what the code
// accepts: every valid vector carries the schema's required fields and no others, the
// schema's field names are the encoder's, and the schema's bounds are the package's.
func TestSchemaMatchesVectorsAndCode(t *testing.T) {
	raw, err := os.ReadFile("../docs/keyring.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc schemaObject
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	var keys schemaObject
	if err := json.Unmarshal(doc.Properties["keys"], &keys); err != nil || keys.Items == nil {
		t.Fatal("schema has no keys.items")
	}
	var bounds struct {
		MaxItems int `json:"maxItems"`
	}
	json.Unmarshal(doc.Properties["keys"], &bounds)
	if bounds.MaxItems != MaxKeys {
		t.Errorf("schema keys.maxItems %d, code %d", bounds.MaxItems, MaxKeys)
	}
	check := func(where string, obj map[string]json.RawMessage, s *schemaObject) {
		for _, req := range s.Required {
			if _, ok := obj[req]; !ok {
				t.Errorf("%s: required field %s missing", where, req)
			}
		}
		for name := range obj {
			if _, ok := s.Properties[name]; !ok {
				t.Errorf("%s: field %s is not in the schema", where, name)
			}
		}
	}
	var v Vectors
	vraw, _ := os.ReadFile("testdata/vectors.json")
	json.Unmarshal(vraw, &v)
	for _, kv := range v.Keyrings {
		var obj map[string]json.RawMessage
		json.Unmarshal([]byte(kv.Document), &obj)
		check(kv.Name, obj, &doc)
		var ks []map[string]json.RawMessage
		json.Unmarshal(obj["keys"], &ks)
		for _, k := range ks {
			check(kv.Name+" key", k, keys.Items)
			// A held key is the schema's second shape; every other key its first.
			shape := keys.Items.OneOf[0]
			if string(k["held"]) == "true" {
				shape = keys.Items.OneOf[1]
				if _, ok := k["not_before"]; ok {
					t.Errorf("%s: a held key with not_before", kv.Name)
				}
			}
			for _, req := range shape.Required {
				if _, ok := k[req]; !ok {
					t.Errorf("%s key: required field %s of its shape missing", kv.Name, req)
				}
			}
		}
	}
	// Every field the encoder can write is described, and the required ones are what
	// Parse reports as missing.
	for _, f := range []string{"version", "generation", "rotated_at", "rotated_by", "reason", "keys"} {
		if _, ok := doc.Properties[f]; !ok {
			t.Errorf("schema lacks %s", f)
		}
	}
	if !slices.Equal(doc.Required, []string{"version", "generation", "rotated_at", "keys"}) ||
		!slices.Equal(keys.Items.Required, []string{"id", "secret"}) || len(keys.Items.OneOf) != 2 ||
		!slices.Equal(keys.Items.OneOf[0].Required, []string{"not_before"}) || !slices.Equal(keys.Items.OneOf[1].Required, []string{"held"}) {
		t.Errorf("required fields differ from Parse: %v %v", doc.Required, keys.Items.Required)
	}
	if doc.AdditionalProperties == nil || *doc.AdditionalProperties || keys.Items.AdditionalProperties == nil || *keys.Items.AdditionalProperties {
		t.Error("the schema must refuse unknown fields, as Parse does")
	}
}
