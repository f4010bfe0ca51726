package keyring

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math"
	"strconv"
	"strings"
)

// The wire form of a document. Decoding does not use encoding/json's struct mapping, which
// matches names regardless of case, lets the first of two duplicate names win a type check
// the second then overrides, and quotes numbers and names of the document in its errors.
// Instead a document is read into maps (the last of duplicate names wins, as in
// JavaScript's JSON.parse), its names are checked exactly, and its fields are typed in a
// fixed order, so the Go and the Node libraries refuse the same documents for the same
// reason (keyring/testdata/documents.json holds both to it).
type wireDoc struct {
	Version    *int64     `json:"version"`
	Generation *int64     `json:"generation"`
	RotatedAt  *string    `json:"rotated_at"`
	RotatedBy  string     `json:"rotated_by,omitempty"`
	Reason     string     `json:"reason,omitempty"`
	Legacy     *bool      `json:"legacy_signatures,omitempty"`
	Keys       []*wireKey `json:"keys"`
}

type wireKey struct {
	ID        *string `json:"id"`
	Secret    *string `json:"secret"`
	NotBefore *string `json:"not_before,omitempty"`
	NotAfter  *string `json:"not_after,omitempty"`
	Held      bool    `json:"held,omitempty"`
	Restored  bool    `json:"restored,omitempty"`
}

// The document's names, in the order their types are checked.
var (
	docFields = []string{"version", "generation", "rotated_at", "rotated_by", "reason", "legacy_signatures", "keys"}
	keyFields = []string{"id", "secret", "not_before", "not_after", "held", "restored"}
)

// decodeWire reads data into the wire form. Every error is a ValidationError that names a
// field or a byte offset, never a name or a value of the document.
func decodeWire(data []byte) (*wireDoc, error) {
	if len(bytes.Trim(data, " \t\r\n")) == 0 {
		return nil, invalid("", "empty document")
	}
	if len(data) > MaxDocumentBytes {
		// Readers stop at the limit plus one byte: the size is unknown, not len(data).
		return nil, invalid("", "document is larger than the limit of %d bytes", MaxDocumentBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return nil, syntaxError(err)
	}
	end := dec.InputOffset()
	if _, err := dec.Token(); err != io.EOF {
		return nil, invalid("", "unexpected data after the JSON object at byte offset %d", end)
	}
	top, err := object("", raw, "the document is a JSON %s, want an object")
	if err != nil {
		return nil, err
	}
	if err := knownNames(top); err != nil {
		return nil, err
	}
	w := &wireDoc{}
	if w.Version, err = intField(top, "version"); err != nil {
		return nil, err
	}
	if w.Generation, err = intField(top, "generation"); err != nil {
		return nil, err
	}
	if w.RotatedAt, err = stringField(top, "rotated_at", "rotated_at"); err != nil {
		return nil, err
	}
	for _, f := range []struct {
		name string
		dst  *string
	}{{"rotated_by", &w.RotatedBy}, {"reason", &w.Reason}} {
		s, err := stringField(top, f.name, f.name)
		if err != nil {
			return nil, err
		}
		if s != nil {
			*f.dst = *s
		}
	}
	if w.Legacy, err = boolField(top, "legacy_signatures", "legacy_signatures"); err != nil {
		return nil, err
	}
	if w.Keys, err = keysField(top["keys"]); err != nil {
		return nil, err
	}
	return w, nil
}

// syntaxError says where data stops being JSON, quoting nothing of it.
func syntaxError(err error) error {
	var syn *json.SyntaxError
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF):
		return invalid("", "truncated JSON")
	case errors.As(err, &syn):
		// Offset counts the byte that is wrong: the error is at the one before.
		return invalid("", "not valid JSON at byte offset %d", max(syn.Offset-1, 0))
	}
	return invalid("", "not valid JSON")
}

// kind names a JSON value's type as the errors say it.
func kind(raw json.RawMessage) string {
	switch c := raw[0]; {
	case c == '{':
		return "object"
	case c == '[':
		return "array"
	case c == '"':
		return "string"
	case c == 't', c == 'f':
		return "bool"
	case c == 'n':
		return "null"
	}
	return "number"
}

func isNull(raw json.RawMessage) bool { return raw == nil || kind(raw) == "null" }

// object reads an object (null reads as an empty one); problem says what else it is.
func object(field string, raw json.RawMessage, problem string) (map[string]json.RawMessage, error) {
	m := map[string]json.RawMessage{}
	if isNull(raw) {
		return m, nil
	}
	if kind(raw) != "object" {
		return nil, invalid(field, problem, kind(raw))
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, invalid(field, "cannot decode JSON")
	}
	return m, nil
}

// knownNames refuses a name the format does not have, in the document or in any key.
func knownNames(top map[string]json.RawMessage) error {
	for name := range top {
		if !containsName(docFields, name) {
			return invalid("", "unknown field (a document has %s)", strings.Join(docFields, ", "))
		}
	}
	keys := top["keys"]
	if isNull(keys) || kind(keys) != "array" {
		return nil
	}
	var elems []json.RawMessage
	if err := json.Unmarshal(keys, &elems); err != nil {
		return invalid("keys", "cannot decode JSON")
	}
	for i, e := range elems {
		if kind(e) != "object" {
			continue
		}
		m, err := object("", e, "")
		if err != nil {
			return err
		}
		for name := range m {
			if !containsName(keyFields, name) {
				return invalid(keyField(i, ""), "unknown field (a key has %s)", strings.Join(keyFields, ", "))
			}
		}
	}
	return nil
}

func containsName(names []string, name string) bool {
	for _, n := range names {
		if n == name {
			return true
		}
	}
	return false
}

func keyField(i int, name string) string {
	f := "keys[" + strconv.Itoa(i) + "]"
	if name != "" {
		f += "." + name
	}
	return f
}

func typeError(field string, raw json.RawMessage, want string) error {
	return invalid(field, "JSON %s where %s is expected", kind(raw), want)
}

// intField reads an integer: a JSON number with no fraction whose magnitude is below
// 2^63, read as a double exactly as JavaScript reads it (1.0 and 1e0 are 1).
func intField(m map[string]json.RawMessage, name string) (*int64, error) {
	raw := m[name]
	if isNull(raw) {
		return nil, nil
	}
	if kind(raw) != "number" {
		return nil, typeError(name, raw, "an integer")
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil || f != math.Trunc(f) || math.Abs(f) >= 1<<63 {
		return nil, typeError(name, raw, "an integer")
	}
	n := int64(f)
	return &n, nil
}

func stringField(m map[string]json.RawMessage, name, field string) (*string, error) {
	raw := m[name]
	if isNull(raw) {
		return nil, nil
	}
	if kind(raw) != "string" {
		return nil, typeError(field, raw, "a string")
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, invalid(field, "cannot decode JSON")
	}
	return &s, nil
}

func boolField(m map[string]json.RawMessage, name, field string) (*bool, error) {
	raw := m[name]
	if isNull(raw) {
		return nil, nil
	}
	if kind(raw) != "bool" {
		return nil, typeError(field, raw, "a boolean")
	}
	b := raw[0] == 't'
	return &b, nil
}

func keysField(raw json.RawMessage) ([]*wireKey, error) {
	if isNull(raw) {
		return nil, nil
	}
	if kind(raw) != "array" {
		return nil, typeError("keys", raw, "an array")
	}
	var elems []json.RawMessage
	if err := json.Unmarshal(raw, &elems); err != nil {
		return nil, invalid("keys", "cannot decode JSON")
	}
	keys := make([]*wireKey, len(elems))
	for i, e := range elems {
		if isNull(e) {
			continue // refused with its index once the document's fields are checked
		}
		m, err := object(keyField(i, ""), e, "JSON %s where an object is expected")
		if err != nil {
			return nil, err
		}
		k := &wireKey{}
		if k.ID, err = stringField(m, "id", keyField(i, "id")); err != nil {
			return nil, err
		}
		if k.Secret, err = stringField(m, "secret", keyField(i, "secret")); err != nil {
			return nil, err
		}
		if k.NotBefore, err = stringField(m, "not_before", keyField(i, "not_before")); err != nil {
			return nil, err
		}
		if k.NotAfter, err = stringField(m, "not_after", keyField(i, "not_after")); err != nil {
			return nil, err
		}
		held, err := boolField(m, "held", keyField(i, "held"))
		if err != nil {
			return nil, err
		}
		k.Held = held != nil && *held
		restored, err := boolField(m, "restored", keyField(i, "restored"))
		if err != nil {
			return nil, err
		}
		k.Restored = restored != nil && *restored
		keys[i] = k
	}
	return keys, nil
}
