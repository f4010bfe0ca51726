package keyring

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/sigil-dna/keysync/keyring/secretscan"
)

type rejectCase struct {
	doc   string
	field string // the field the error must name ("" for the whole document)
	want  string // a fragment of the message
}

// rejectCases are every kind of document Parse refuses. They are also written into the
// shared vectors, so the Node library is held to each of them.
func rejectCases() map[string]rejectCase {
	a, b := testSecret("a"), testSecret("b")
	short := Secret(bytes.Repeat([]byte{7}, 31))
	ka := keyJSON(a, "2026-11-27T12:00:00Z", "")
	manyKeys := make([]string, MaxKeys+1)
	for i := range manyKeys {
		manyKeys[i] = keyJSON(testSecret(fmt.Sprint(i)), fmt.Sprintf("2026-11-27T12:%02d:00Z", i), "")
	}
	return map[string]rejectCase{
		"an empty input is rejected":      {doc: "", want: "empty document"},
		"blank input is rejected":         {doc: " \n", want: "empty document"},
		"text that is not JSON":           {doc: "value=abc", want: "not valid JSON"},
		"truncated JSON":                  {doc: `{"version":1,`, want: "truncated JSON"},
		"a JSON array":                    {doc: `[1]`, want: "want an object"},
		"trailing data after the object":  {doc: docJSON(1, ka) + "{}", want: "unexpected data"},
		"an unknown format version":       {doc: strings.Replace(docJSON(1, ka), `"version":1`, `"version":2`, 1), field: "version", want: "unknown format version 2"},
		"a missing version":               {doc: strings.Replace(docJSON(1, ka), `"version":1,`, ``, 1), field: "version", want: "missing"},
		"version of the wrong JSON type":  {doc: strings.Replace(docJSON(1, ka), `"version":1`, `"version":"1"`, 1), field: "version", want: "JSON string"},
		"generation zero":                 {doc: docJSON(0, ka), field: "generation", want: "must be positive"},
		"negative generation":             {doc: docJSON(-3, ka), field: "generation", want: "must be positive"},
		"generation beyond 2^53-1":        {doc: strings.Replace(docJSON(1, ka), `"generation":1`, `"generation":9007199254740992`, 1), field: "generation", want: "2^53-1"},
		"fractional generation":           {doc: strings.Replace(docJSON(1, ka), `"generation":1`, `"generation":1.5`, 1), field: "generation", want: "JSON number"},
		"missing generation":              {doc: strings.Replace(docJSON(1, ka), `"generation":1,`, ``, 1), field: "generation", want: "missing"},
		"missing rotated_at":              {doc: strings.Replace(docJSON(1, ka), `"rotated_at":"2026-11-27T12:00:00Z",`, ``, 1), field: "rotated_at", want: "missing"},
		"rotated_at that is not a time":   {doc: strings.Replace(docJSON(1, ka), `2026-11-27T12:00:00Z"`, `yesterday"`, 1), field: "rotated_at", want: "RFC 3339"},
		"no keys":                         {doc: docJSON(1), field: "keys", want: "no keys"},
		"keys null":                       {doc: strings.Replace(docJSON(1), `[]`, `null`, 1), field: "keys", want: "no keys"},
		"keys of the wrong JSON type":     {doc: strings.Replace(docJSON(1), `[]`, `{}`, 1), field: "keys", want: "JSON object"},
		"a null key":                      {doc: docJSON(1, "null"), field: "keys[0]", want: "null"},
		"an unknown field":                {doc: strings.Replace(docJSON(1, ka), `"version":1`, `"version":1,"not_afer":"x"`, 1), want: "unknown field (a document has version, generation, rotated_at, rotated_by, reason, legacy_signatures, keys)"},
		"an unknown field in a key":       {doc: docJSON(1, strings.Replace(ka, `"secret"`, `"not_afer":"x","secret"`, 1)), field: "keys[0]", want: "unknown field (a key has id, secret, not_before, not_after, held, restored)"},
		"a field name in another case":    {doc: strings.Replace(docJSON(1, ka), `"version":1`, `"Version":1`, 1), want: "unknown field"},
		"a secret shorter than 32 bytes":  {doc: docJSON(1, keyJSON(short, "2026-11-27T12:00:00Z", "")), field: "keys[0].secret", want: "31 bytes, at least 32"},
		"a secret that is not base64":     {doc: docJSON(1, strings.Replace(ka, `"secret":"`, `"secret":"!!`, 1)), field: "keys[0].secret", want: "base64"},
		"a secret in unpadded base64":     {doc: docJSON(1, strings.Replace(ka, `=",`, `",`, 1)), field: "keys[0].secret", want: "base64"},
		"a secret of the wrong JSON type": {doc: docJSON(1, fmt.Sprintf(`{"id":%q,"secret":12,"not_before":"2026-11-27T12:00:00Z"}`, KeyID(a))), field: "keys[0].secret", want: "JSON number where a string"},
		"a missing secret":                {doc: docJSON(1, fmt.Sprintf(`{"id":%q,"not_before":"2026-11-27T12:00:00Z"}`, KeyID(a))), field: "keys[0].secret", want: "missing"},
		"a missing id":                    {doc: docJSON(1, strings.Replace(ka, fmt.Sprintf(`"id":%q,`, KeyID(a)), ``, 1)), field: "keys[0].id", want: "missing"},
		"an id of the wrong form":         {doc: docJSON(1, strings.Replace(ka, KeyID(a), "ABC", 1)), field: "keys[0].id", want: "hex digits"},
		"an id that is not the fingerprint of its secret": {
			doc: docJSON(1, strings.Replace(ka, KeyID(a), KeyID(b), 1)), field: "keys[0].id", want: "does not match"},
		"duplicate ids": {
			doc:   docJSON(1, ka, keyJSON(a, "2026-11-27T13:00:00Z", "")),
			field: "keys[1].id", want: "duplicate"},
		"a missing not_before": {doc: docJSON(1, strings.Replace(ka, `,"not_before":"2026-11-27T12:00:00Z"`, ``, 1)), field: "keys[0].not_before", want: "missing"},
		"not_after before not_before": {
			doc: docJSON(1, keyJSON(a, "2026-11-27T12:00:00Z", "2026-11-27T11:00:00Z")), field: "keys[0].not_after", want: "not after not_before"},
		"not_after equal to not_before": {
			doc: docJSON(1, keyJSON(a, "2026-11-27T12:00:00Z", "2026-11-27T12:00:00Z")), field: "keys[0].not_after", want: "not after not_before"},
		"not_after that is not a time": {
			doc: docJSON(1, keyJSON(a, "2026-11-27T12:00:00Z", "soon")), field: "keys[0].not_after", want: "RFC 3339"},
		"two keys with the same not_before": {
			doc: docJSON(1, ka, keyJSON(b, "2026-11-27T12:00:00Z", "")), field: "keys[1].not_before", want: "same not_before"},
		"more keys than the bound": {doc: docJSON(1, manyKeys...), field: "keys", want: "17 keys, the limit is 16"},
		"a document over 64 KiB": {
			doc: strings.Replace(docJSON(1, ka), `"version":1`, `"version":1,"reason":"`+strings.Repeat("x", MaxDocumentBytes)+`"`, 1), want: "larger than the limit of 65536 bytes"},
		"a held key with a not_before": {
			doc: docJSON(1, ka, strings.Replace(heldKeyJSON(b), `"held":true`, `"held":true,"not_before":"2026-11-27T13:00:00Z"`, 1)), field: "keys[1].not_before", want: "a held key has none"},
		"a held key with a not_after": {
			doc: docJSON(1, ka, strings.Replace(heldKeyJSON(b), `"held":true`, `"held":true,"not_after":"2026-11-27T13:00:00Z"`, 1)), field: "keys[1].not_after", want: "a held key has none"},
		"two held keys":                   {doc: docJSON(1, ka, heldKeyJSON(b), heldKeyJSON(testSecret("c"))), field: "keys", want: "more than one held key"},
		"only a held key":                 {doc: docJSON(1, heldKeyJSON(b)), field: "keys", want: "a keyring needs a key that signs"},
		"a held key restored":             {doc: docJSON(1, ka, strings.Replace(heldKeyJSON(b), `"held":true`, `"held":true,"restored":true`, 1)), field: "keys[1].restored", want: "a held key is never restored"},
		"restored of the wrong JSON type": {doc: docJSON(1, ka, strings.Replace(keyJSON(b, "2026-11-27T13:00:00Z", ""), `"id"`, `"restored":1,"id"`, 1)), field: "keys[1].restored", want: "JSON number where a boolean"},
		"held of the wrong JSON type":     {doc: docJSON(1, ka, strings.Replace(heldKeyJSON(b), `"held":true`, `"held":"yes"`, 1)), field: "keys[1].held", want: "JSON string where a boolean"},
		"a key neither timed nor held":    {doc: docJSON(1, ka, strings.Replace(heldKeyJSON(b), `"held":true`, `"held":false`, 1)), field: "keys[1].not_before", want: `"held": true instead`},
		"a reason over the text bound": {
			doc: strings.Replace(docJSON(1, ka), `"version":1`, `"version":1,"reason":"`+strings.Repeat("x", MaxTextLen+1)+`"`, 1), field: "reason", want: "longer than"},
	}
}

func TestParseRejects(t *testing.T) {
	a, b := testSecret("a"), testSecret("b")
	short := Secret(bytes.Repeat([]byte{7}, 31))
	for name, tc := range rejectCases() {
		t.Run(name, func(t *testing.T) {
			_, err := Parse([]byte(tc.doc))
			if err == nil {
				t.Fatal("accepted")
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %v does not wrap ErrInvalid", err)
			}
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("error %T is not a ValidationError", err)
			}
			if ve.Field != tc.field {
				t.Errorf("field = %q, want %q (%v)", ve.Field, tc.field, err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
			assertNoSecret(t, err.Error(), a, b, short)
		})
	}
}

// assertNoSecret fails if text holds any of the secrets in any encoding.
func assertNoSecret(t *testing.T, text string, secrets ...Secret) {
	t.Helper()
	for _, s := range secrets {
		if secretscan.Count([]byte(text), s) > 0 {
			t.Fatalf("secret appears in %q", text)
		}
	}
}

func TestSyntaxErrorInsideSecretQuotesNoBytes(t *testing.T) {
	a := testSecret("a")
	// A control character inside the secret string: encoding/json would quote it.
	doc := strings.Replace(docJSON(1, keyJSON(a, "2026-11-27T12:00:00Z", "")), `"secret":"`, "\"secret\":\"\x01", 1)
	_, err := Parse([]byte(doc))
	if err == nil || strings.ContainsRune(err.Error(), '\x01') || !strings.Contains(err.Error(), "byte offset") {
		t.Fatalf("got %v", err)
	}
}

func TestEncodeParseRoundTrip(t *testing.T) {
	r, err := Stage(nil, t0, testSecret("a"), Options{RotatedBy: "alice@laptop", Reason: "first"})
	if err != nil {
		t.Fatal(err)
	}
	r, err = Stage(r, t0.Add(90*1e9+123456789), testSecret("b"), Options{RotatedBy: "bob", Reason: "cadence"})
	if err != nil {
		t.Fatal(err)
	}
	doc, err := Encode(r)
	if err != nil {
		t.Fatal(err)
	}
	back, err := Parse(doc)
	if err != nil {
		t.Fatal(err)
	}
	if !back.Equal(r) {
		t.Fatalf("round trip changed the keyring:\n%+v\n%+v", r, back)
	}
	for i := range r.Keys {
		if !bytes.Equal(back.Keys[i].Secret, r.Keys[i].Secret) {
			t.Fatalf("key %d secret changed", i)
		}
	}
	again, _ := Encode(back)
	if !bytes.Equal(doc, again) {
		t.Fatalf("encoding is not stable:\n%s\n%s", doc, again)
	}
}

func TestParseOrdersKeysAndTruncatesToMilliseconds(t *testing.T) {
	a, b := testSecret("a"), testSecret("b")
	r := mustParse(t, docJSON(3, keyJSON(b, "2026-11-27T13:00:00.123456789+01:00", ""), keyJSON(a, "2026-11-27T11:00:00Z", "")))
	if r.Keys[0].ID != KeyID(a) || r.Keys[1].ID != KeyID(b) {
		t.Fatalf("keys not ordered by not_before: %v", r.IDs())
	}
	if got := r.Keys[1].NotBefore.Format("15:04:05.000000000"); got != "12:00:00.123000000" {
		t.Fatalf("not_before = %s", got)
	}
}

func TestSecretNeverPrints(t *testing.T) {
	s := testSecret("print")
	k := Key{ID: KeyID(s), Secret: s}
	outputs := []string{
		fmt.Sprint(s), fmt.Sprintf("%v %+v %#v %s %x %X %q %d", s, s, s, s, s, s, s, s),
		fmt.Sprintf("%v %+v %#v", k, k, &k), s.String(), s.GoString(), s.LogValue().String(),
	}
	j, _ := s.MarshalJSON()
	txt, _ := s.MarshalText()
	outputs = append(outputs, string(j), string(txt))
	for _, o := range outputs {
		assertNoSecret(t, o, s)
		if !strings.Contains(o, "[REDACTED]") {
			t.Errorf("output %q lacks the placeholder", o)
		}
	}
}

func TestKeyIDIsStableAndOneWay(t *testing.T) {
	s := testSecret("id")
	id := KeyID(s)
	if len(id) != KeyIDLen || !isLowerHex(id) || id != KeyID(append(Secret(nil), s...)) {
		t.Fatalf("bad id %q", id)
	}
	if KeyID(testSecret("other")) == id {
		t.Fatal("two secrets share an id")
	}
	assertNoSecret(t, id, s)
}

func TestNewSecret(t *testing.T) {
	if _, err := NewSecret(31); err == nil {
		t.Fatal("31 bytes accepted")
	}
	a, err := NewSecret(32)
	if err != nil || len(a) != 32 {
		t.Fatal(err)
	}
	b, _ := NewSecret(32)
	if bytes.Equal(a, b) {
		t.Fatal("two secrets are equal")
	}
}
