package keyring

import (
	"encoding/json"
	"errors"
	"os"
	"testing"
)

// FuzzParse checks that Parse never panics, that every error is a ValidationError, and
// that every accepted document survives Encode/Parse unchanged. Seeds: the shared
// vectors and the committed corpus in testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	raw, err := os.ReadFile("testdata/vectors.json")
	if err != nil {
		f.Fatal(err)
	}
	var v Vectors
	if err := json.Unmarshal(raw, &v); err != nil {
		f.Fatal(err)
	}
	for _, k := range v.Keyrings {
		f.Add([]byte(k.Document))
	}
	for _, r := range v.Rejected {
		f.Add([]byte(r.Document))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := Parse(data)
		if err != nil {
			var ve *ValidationError
			if !errors.As(err, &ve) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		doc, err := Encode(r)
		if err != nil {
			t.Fatalf("accepted document does not encode: %v", err)
		}
		back, err := Parse(doc)
		if err != nil || !back.Equal(r) {
			t.Fatalf("re-encoded document changed: %v", err)
		}
		NewSigner(r) // must not panic on any accepted document
	})
}
