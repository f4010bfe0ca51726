package keyring

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/sigil-dna/keysync/keyring/secretscan"
)

// CorpusDocument is one document of testdata/documents.json: what Parse makes of it.
// Both libraries must accept exactly the accepted ones and refuse the others naming the
// same field with the same problem (byte offsets aside), and no error may hold anything
// of Planted: the secrets and secret-like strings the document carries, wherever they
// sit (a value, a name, a number).
type CorpusDocument struct {
	Name     string   `json:"name"`
	Document string   `json:"document"`
	Accepted bool     `json:"accepted"`
	Field    string   `json:"field,omitempty"`
	Problem  string   `json:"problem,omitempty"`
	Planted  []string `json:"planted,omitempty"` // beyond the corpus's own
}

// Corpus is the shape of testdata/documents.json.
type Corpus struct {
	Comment string `json:"comment"`
	// Planted are in every document (the keys' secrets, a secret-like string).
	Planted   []string         `json:"planted"`
	Documents []CorpusDocument `json:"documents"`
}

const corpusPath = "testdata/documents.json"

// offsets masks byte offsets, which the two libraries' JSON parsers report differently.
var offsets = regexp.MustCompile(` at byte offset \d+`)

// MaskOffsets is how the corpus compares problems: without byte offsets.
func maskOffsets(s string) string { return offsets.ReplaceAllString(s, "") }

// corpusBuilder collects documents made by mutating valid ones.
type corpusBuilder struct {
	docs  []CorpusDocument
	names map[string]bool
}

func (b *corpusBuilder) add(name, doc string, planted ...string) {
	if b.names[name] {
		panic("duplicate corpus name " + name)
	}
	b.names[name] = true
	b.docs = append(b.docs, CorpusDocument{Name: name, Document: doc, Planted: planted})
}

// corpusValues are what every field is set to in turn.
func corpusValues(plantedHex string) []struct{ name, json string } {
	digits := new(strings.Builder)
	digits.WriteString("1")
	for _, c := range plantedHex {
		fmt.Fprint(digits, int(c)%10)
	}
	return []struct{ name, json string }{
		{"null", "null"}, {"true", "true"}, {"zero", "0"}, {"one", "1"}, {"minus one", "-1"}, {"1.5", "1.5"},
		{"1.0", "1.0"}, {"1e400", "1e400"}, {"2^63", "9223372036854775808"}, {"an empty string", `""`},
		{"a time", `"2026-11-27T12:00:00Z"`}, {"an empty array", "[]"}, {"an object", `{"a":1}`},
		{"a planted secret string", fmt.Sprintf("%q", plantedHex)},
		{"a planted secret as a number", digits.String()},
	}
}

// generateCorpus builds the documents: every field of three valid documents removed and
// set to each of corpusValues, secrets in name positions, names in other cases,
// duplicates, truncations, syntax errors, times, limits and whitespace.
func generateCorpus() Corpus {
	b := &corpusBuilder{names: map[string]bool{}}
	a, c, h := testSecret("corpus a"), testSecret("corpus b"), testSecret("corpus held")
	planted := hex.EncodeToString(testSecret("corpus planted"))
	b64 := func(s Secret) string { return base64.StdEncoding.EncodeToString(s) }
	common := []string{b64(a), b64(c), b64(h), planted}
	var secrets []string
	ka := keyJSON(a, "2026-11-27T12:00:00Z", "2026-11-27T13:01:00Z")
	kc := keyJSON(c, "2026-11-27T12:01:00Z", "")
	bases := []struct{ name, doc string }{
		{"one key", docJSON(3, keyJSON(a, "2026-11-27T12:00:00Z", ""))},
		{"two keys", docJSON(4, ka, kc)},
		{"a held key", docJSON(5, keyJSON(a, "2026-11-27T12:00:00Z", ""), heldKeyJSON(h))},
	}
	for _, base := range bases {
		b.add(base.name+", as written", base.doc, secrets...)
	}
	// Every field of the first document, and of the held document's keys, removed and set
	// to every kind of value.
	for _, base := range []struct {
		name, doc string
		fields    []string
	}{
		{bases[0].name, bases[0].doc, []string{"version", "generation", "rotated_at", "rotated_by", "reason", "legacy_signatures", "keys", "keys.0.id", "keys.0.secret", "keys.0.not_before", "keys.0.not_after", "keys.0.held"}},
		{bases[2].name, bases[2].doc, []string{"keys.1.id", "keys.1.secret", "keys.1.not_before", "keys.1.held"}},
	} {
		for _, f := range base.fields {
			b.add(fmt.Sprintf("%s, %s removed", base.name, f), setField(base.doc, f, ""), secrets...)
			for _, v := range corpusValues(planted) {
				b.add(fmt.Sprintf("%s, %s set to %s", base.name, f, v.name), setField(base.doc, f, v.json), secrets...)
			}
		}
	}
	// Keys of the array replaced by values that are not objects.
	for _, v := range corpusValues(planted) {
		b.add("two keys, the second key replaced by "+v.name, setField(bases[1].doc, "keys.1", v.json), secrets...)
	}
	// Secrets where names go, in each of their spellings.
	for _, enc := range []struct{ name, s string }{
		{"hex", planted}, {"base64", b64(testSecret("corpus planted"))},
		{"base64url", base64.RawURLEncoding.EncodeToString(testSecret("corpus planted"))}, {"a key's secret", b64(a)},
	} {
		b.add("a secret in "+enc.name+" as a name of the document", insertName(bases[0].doc, "", enc.s), secrets...)
		b.add("a secret in "+enc.name+" as a name of a key", insertName(bases[1].doc, "keys.1", enc.s), secrets...)
		b.add("a secret in "+enc.name+" as a name of a nested object", setField(bases[0].doc, "reason", fmt.Sprintf(`{%q:1}`, enc.s)), secrets...)
		b.add("a secret in "+enc.name+" as a name, the value a string", strings.Replace(bases[0].doc, `{"version"`, fmt.Sprintf(`{%q:"v","version"`, enc.s), 1), secrets...)
	}
	// Names in another case, which encoding/json would match.
	for _, n := range []string{"Version", "GENERATION", "Rotated_At", "Keys", "Legacy_Signatures"} {
		b.add("the name "+n, strings.Replace(bases[0].doc, `"`+strings.ToLower(n)+`"`, `"`+n+`"`, 1), secrets...)
	}
	for _, n := range []string{"ID", "Secret", "Not_Before", "Held"} {
		b.add("the key name "+n, strings.Replace(bases[2].doc, `"`+strings.ToLower(n)+`"`, `"`+n+`"`, 1), secrets...)
	}
	// Duplicate names: the last one wins, as in JavaScript.
	for _, d := range []struct{ name, first, second string }{
		{"version", `"x"`, "1"}, {"version", "1", `"x"`}, {"generation", "0", "2"}, {"keys", "{}", "null"},
		{"rotated_at", `"soon"`, `"2026-11-27T12:00:00Z"`},
	} {
		b.add(fmt.Sprintf("%s given twice, %s then %s", d.name, d.first, d.second),
			strings.Replace(bases[0].doc, `{"version":1,`, fmt.Sprintf(`{%q:%s,%q:%s,`, d.name, d.first, d.name, d.second), 1)+"", secrets...)
	}
	// Truncations of the two-key document at every 8th byte.
	doc := bases[1].doc
	for i := 0; i < len(doc); i += 16 {
		b.add(fmt.Sprintf("two keys, truncated to %d bytes", i), doc[:i], secrets...)
	}
	// A byte of the document replaced by characters JSON does not allow there.
	for i := 3; i < len(doc); i += 29 {
		for _, r := range []string{"x", "}", "\x01"} {
			b.add(fmt.Sprintf("two keys, byte %d replaced by %q", i, r), doc[:i]+r+doc[i+1:], secrets...)
		}
	}
	for _, s := range []struct{ name, doc string }{
		{"an empty input", ""}, {"blanks", " \t\r\n"}, {"a non-breaking space", "\u00a0"}, {"a byte order mark", "\ufeff"},
		{"a byte order mark before the document", "\ufeff" + bases[0].doc}, {"null", "null"}, {"a number", "1"},
		{"a string", `"` + planted + `"`}, {"an array", "[1]"}, {"an array of the document", "[" + bases[0].doc + "]"},
		{"true", "true"}, {"text", "value=" + planted}, {"trailing data", bases[0].doc + "x"}, {"a second object", bases[0].doc + "{}"},
		{"a second object after a blank", bases[0].doc + " {}"}, {"trailing blanks", bases[0].doc + " \n\t\r"},
		{"leading blanks", "\n\t " + bases[0].doc}, {"a form feed", "\f" + bases[0].doc}, {"a NUL after the document", bases[0].doc + "\x00"},
		{"a comment", "// keys\n" + bases[0].doc}, {"single quotes", strings.ReplaceAll(bases[0].doc, `"`, `'`)},
		{"a trailing comma", strings.Replace(bases[0].doc, `]}`, `],}`, 1)}, {"a trailing comma in the keys", strings.Replace(bases[0].doc, `}]}`, `},]}`, 1)},
		{"an unquoted name", strings.Replace(bases[0].doc, `"version"`, `version`, 1)}, {"a raw control character in a secret", strings.Replace(bases[0].doc, `"secret":"`, "\"secret\":\"\x01", 1)},
		{"an escaped secret", strings.Replace(bases[0].doc, `"secret":"`+b64(a)+`"`, `"secret":"`+escapeAll(b64(a))+`"`, 1)},
		{"a lone surrogate in the reason", setField(bases[0].doc, "reason", `"\ud800"`)}, {"invalid UTF-8 in the reason", setField(bases[0].doc, "reason", "\"\xff\xfe\"")},
		{"unicode in the reason", setField(bases[0].doc, "reason", `"ünïcödé ✓"`)},
		{"a reason of 1024 bytes", setField(bases[0].doc, "reason", `"`+strings.Repeat("r", MaxTextLen)+`"`)},
		{"a reason of 1025 bytes", setField(bases[0].doc, "reason", `"`+strings.Repeat("r", MaxTextLen+1)+`"`)},
		{"a reason of 512 two-byte characters", setField(bases[0].doc, "reason", `"`+strings.Repeat("é", MaxTextLen/2)+`"`)},
		{"a reason of 513 two-byte characters", setField(bases[0].doc, "reason", `"`+strings.Repeat("é", MaxTextLen/2+1)+`"`)},
		{"a document of 64 KiB", padTo(bases[0].doc, MaxDocumentBytes)}, {"a document of 64 KiB and one byte", padTo(bases[0].doc, MaxDocumentBytes+1)},
		{"legacy signatures off", setField(bases[1].doc, "legacy_signatures", "false")}, {"legacy signatures on", setField(bases[1].doc, "legacy_signatures", "true")},
		{"a version of 1.0", setField(bases[0].doc, "version", "1.0")}, {"a generation of 2^53-1", setField(bases[0].doc, "generation", "9007199254740991")},
		{"a generation of 2^53", setField(bases[0].doc, "generation", "9007199254740992")}, {"a generation of -0", setField(bases[0].doc, "generation", "-0")},
		{"a generation of 5e0", setField(bases[0].doc, "generation", "5e0")}, {"a generation of 0.5e1", setField(bases[0].doc, "generation", "0.5e1")},
	} {
		b.add(s.name, s.doc, secrets...)
	}
	// Keys: counts, sizes, order, duplicates.
	var many []string
	for i := 0; i <= MaxKeys; i++ {
		many = append(many, keyJSON(testSecret(fmt.Sprint("corpus many ", i)), fmt.Sprintf("2026-11-27T12:%02d:00Z", i), ""))
	}
	b.add("16 keys", docJSON(1, many[:MaxKeys]...), secrets...)
	b.add("17 keys", docJSON(1, many...), secrets...)
	b.add("17 keys, the last one null", docJSON(1, append(many[:MaxKeys:MaxKeys], "null")...), secrets...)
	for _, n := range []int{0, 1, 31, 32, 33, 64, 1024, 1025} {
		s := Secret(bytes.Repeat([]byte{byte(n)}, n))
		b.add(fmt.Sprintf("a secret of %d bytes", n), docJSON(1, keyJSON(s, "2026-11-27T12:00:00Z", "")), append(secrets, b64(s))...)
	}
	b.add("keys out of order", docJSON(4, kc, ka), secrets...)
	b.add("the same key twice", docJSON(4, ka, strings.Replace(ka, "12:00:00Z", "12:02:00Z", 1)), secrets...)
	b.add("two held keys", docJSON(4, ka, heldKeyJSON(h), heldKeyJSON(c)), secrets...)
	b.add("a held key first", docJSON(4, heldKeyJSON(h), ka), secrets...)
	b.add("only a held key", docJSON(4, heldKeyJSON(h)), secrets...)
	b.add("an id of another key", docJSON(4, strings.Replace(ka, KeyID(a), KeyID(c), 1)), secrets...)
	b.add("an id in upper case", docJSON(4, strings.Replace(ka, KeyID(a), strings.ToUpper(KeyID(a)), 1)), secrets...)
	b.add("a secret in unpadded base64", docJSON(4, strings.Replace(ka, b64(a), strings.TrimRight(b64(a), "="), 1)), secrets...)
	b.add("a secret in base64url", docJSON(4, strings.Replace(ka, b64(a), base64.URLEncoding.EncodeToString(a), 1)), secrets...)
	b.add("a secret with a blank", docJSON(4, strings.Replace(ka, b64(a), b64(a)[:8]+" "+b64(a)[8:], 1)), secrets...)
	b.add("a secret in hex", docJSON(4, strings.Replace(ka, b64(a), hex.EncodeToString(a), 1)), append(secrets, hex.EncodeToString(a))...)
	// Times.
	for _, tm := range []string{
		"2026-11-27T12:00:00Z", "2026-11-27T12:00:00.5Z", "2026-11-27T12:00:00.123456789Z", "2026-11-27T12:00:00+01:00",
		"2026-11-27T12:00:00-00:30", "2026-11-27t12:00:00z", "2026-11-27 12:00:00Z", "2026-11-27T12:00Z", "2026-11-27",
		"2026-11-27T24:00:00Z", "2026-11-27T23:59:60Z", "2026-13-01T00:00:00Z", "2026-02-30T00:00:00Z", "2024-02-29T00:00:00Z",
		"2026-11-27T12:00:00+24:00", "2026-11-27T12:00:00+0100", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999Z",
		"1970-01-01T00:00:00Z", "2026-11-27T12:00:00.Z", "+2026-11-27T12:00:00Z", "2026-11-27T12:00:00Z ",
	} {
		b.add("not_before "+tm, setField(bases[0].doc, "keys.0.not_before", fmt.Sprintf("%q", tm)), secrets...)
	}
	for _, na := range []string{"2026-11-27T12:00:00Z", "2026-11-27T11:59:59.999Z", "2026-11-27T12:00:00.001Z", "2026-11-27T12:00:00.0009Z"} {
		b.add("not_after "+na+" after not_before 12:00:00", setField(bases[0].doc, "keys.0.not_after", fmt.Sprintf("%q", na)), secrets...)
	}
	for i := range b.docs {
		d := &b.docs[i]
		r, err := Parse([]byte(d.Document))
		if err == nil {
			_ = r
			d.Accepted = true
			continue
		}
		var ve *ValidationError
		if errors.As(err, &ve) {
			d.Field, d.Problem = ve.Field, maskOffsets(ve.Problem)
		}
	}
	return Corpus{Comment: "keysync keyring documents: generated by `cd keyring && go test -run TestDocumentCorpus -update`; " +
		"the Go and the Node library accept exactly the accepted ones and refuse the others naming the same field with the same " +
		"problem (byte offsets aside), and no error holds a 16-character piece of a planted string or of its bytes' encodings.",
		Planted: common, Documents: b.docs}
}

// setField replaces (or, with value "", removes) a field of a compact document. path is
// "name", "keys.N.name" or "keys.N" (an element of the keys array).
func setField(doc, path, value string) string {
	var top map[string]any
	dec := json.NewDecoder(strings.NewReader(doc))
	dec.UseNumber()
	if err := dec.Decode(&top); err != nil {
		panic(err)
	}
	order := []string{"version", "generation", "rotated_at", "rotated_by", "reason", "legacy_signatures", "keys"}
	parts := strings.Split(path, ".")
	rawValue := json.RawMessage(value)
	if len(parts) == 1 {
		if value == "" {
			delete(top, path)
		} else {
			top[path] = rawValue
		}
		return encodeOrdered(top, order)
	}
	keys := top["keys"].([]any)
	var i int
	fmt.Sscan(parts[1], &i)
	if len(parts) == 2 {
		keys[i] = rawValue
		return encodeOrdered(top, order)
	}
	k := keys[i].(map[string]any)
	if value == "" {
		delete(k, parts[2])
	} else {
		k[parts[2]] = rawValue
	}
	return encodeOrdered(top, order)
}

// encodeOrdered writes top with its names in order (unknown ones last), keys compact.
func encodeOrdered(top map[string]any, order []string) string {
	var out strings.Builder
	out.WriteString("{")
	n := 0
	write := func(name string, v any) {
		if n > 0 {
			out.WriteString(",")
		}
		n++
		fmt.Fprintf(&out, "%q:", name)
		if name == "keys" {
			if ks, ok := v.([]any); ok {
				out.WriteString("[")
				for i, k := range ks {
					if i > 0 {
						out.WriteString(",")
					}
					if m, ok := k.(map[string]any); ok {
						out.WriteString(encodeOrdered(m, []string{"id", "secret", "not_before", "not_after", "held"}))
						continue
					}
					j, _ := json.Marshal(k)
					out.Write(j)
				}
				out.WriteString("]")
				return
			}
		}
		j, _ := json.Marshal(v)
		out.Write(j)
	}
	for _, name := range order {
		if v, ok := top[name]; ok {
			write(name, v)
		}
	}
	for name, v := range top {
		if !containsName(order, name) {
			write(name, v)
		}
	}
	out.WriteString("}")
	return out.String()
}

// insertName adds a name of the document ("" for the top) or of a key ("keys.N") with a
// value of 1.
func insertName(doc, where, name string) string {
	if where == "" {
		return strings.Replace(doc, `{"version"`, fmt.Sprintf(`{%q:1,"version"`, name), 1)
	}
	var i int
	fmt.Sscan(strings.TrimPrefix(where, "keys."), &i)
	at := 0
	for range i + 1 {
		at += strings.Index(doc[at:], `{"id"`) + 1
	}
	return doc[:at] + fmt.Sprintf(`%q:1,`, name) + doc[at:]
}

func escapeAll(s string) string {
	var out strings.Builder
	for _, r := range s {
		fmt.Fprintf(&out, `\u%04x`, r)
	}
	return out.String()
}

// padTo makes doc exactly n bytes long with a reason.
func padTo(doc string, n int) string {
	with := setField(doc, "reason", `""`)
	return setField(doc, "reason", `"`+strings.Repeat("p", n-len(with))+`"`)
}

// TestDocumentCorpus holds Parse to testdata/documents.json, which the Node library's
// tests read too, and scans every error for the documents' secrets.
func TestDocumentCorpus(t *testing.T) {
	if *updateVectors {
		out, _ := json.MarshalIndent(generateCorpus(), "", " ")
		if err := os.WriteFile(corpusPath, append(out, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := os.ReadFile(corpusPath)
	if err != nil {
		t.Fatal(err)
	}
	var corpus Corpus
	if err := json.Unmarshal(raw, &corpus); err != nil {
		t.Fatal(err)
	}
	docs := corpus.Documents
	accepted := 0
	for _, d := range docs {
		_, err := Parse([]byte(d.Document))
		if d.Accepted {
			accepted++
			if err != nil {
				t.Errorf("%s: refused: %v", d.Name, err)
			}
			continue
		}
		var ve *ValidationError
		if !errors.As(err, &ve) || !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: accepted or not a ValidationError: %v", d.Name, err)
			continue
		}
		if ve.Field != d.Field || maskOffsets(ve.Problem) != d.Problem {
			t.Errorf("%s: %q %q, want %q %q", d.Name, ve.Field, ve.Problem, d.Field, d.Problem)
		}
		if leak := plantedIn(err.Error(), append(d.Planted, corpus.Planted...)); leak != "" {
			t.Errorf("%s: the error %q holds %q", d.Name, err, leak)
		}
	}
	if len(docs) < 380 || accepted < 20 || len(docs)-accepted < 330 {
		t.Fatalf("the corpus has %d documents, %d accepted", len(docs), accepted)
	}
	want, _ := json.MarshalIndent(generateCorpus(), "", " ")
	if !bytes.Equal(bytes.TrimSpace(raw), want) {
		t.Error("testdata/documents.json is out of date: run cd keyring && go test -run TestDocumentCorpus -update and review the diff")
	}
}

// plantedIn returns the first 16-byte piece of a planted string, or of any encoding of
// the bytes it spells in base64 or hex, that text holds.
func plantedIn(text string, planted []string) string {
	for _, p := range planted {
		forms := []string{p}
		if raw, err := base64.StdEncoding.DecodeString(p); err == nil {
			forms = append(forms, secretscan.Encodings(raw)...)
		}
		if raw, err := hex.DecodeString(p); err == nil {
			forms = append(forms, secretscan.Encodings(raw)...)
		}
		for _, f := range forms {
			for i := 0; i+16 <= len(f); i++ {
				if strings.Contains(text, f[i:i+16]) {
					return f[i : i+16]
				}
			}
		}
	}
	return ""
}
