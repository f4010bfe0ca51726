package fleet

import (
	"reflect"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxCleanBytes bounds one string a member said, once cleaned.
const MaxCleanBytes = 512

// Clean makes a string a fleet member sent safe to print: invalid UTF-8, control
// characters (terminal escapes, newlines that would forge a progress line) and
// bidirectional overrides become U+FFFD or a space, and it is cut to MaxCleanBytes with an
// ellipsis.
func Clean(s string) string {
	if len(s) <= MaxCleanBytes && utf8.ValidString(s) && strings.IndexFunc(s, unsafeRune) < 0 {
		return s
	}
	var b strings.Builder
	for _, r := range strings.ToValidUTF8(s, "\uFFFD") {
		switch {
		case r == '\n' || r == '\r' || r == '\t':
			r = ' '
		case unsafeRune(r):
			r = '\uFFFD'
		}
		if b.Len()+utf8.RuneLen(r) > MaxCleanBytes-len("…") {
			b.WriteString("…")
			break
		}
		b.WriteRune(r)
	}
	return b.String()
}

// unsafeRune: a control character, or one that reorders what a terminal shows.
func unsafeRune(r rune) bool {
	return unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) || (r >= 0x2028 && r <= 0x2029)
}

// cleanStrings cleans every string reachable in v (a struct's fields, slices, nested
// structs) in place.
func cleanStrings(v reflect.Value) {
	switch v.Kind() {
	case reflect.String:
		if v.CanSet() {
			v.SetString(Clean(v.String()))
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				cleanStrings(v.Field(i))
			}
		}
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			cleanStrings(v.Index(i))
		}
	case reflect.Pointer:
		if !v.IsNil() {
			cleanStrings(v.Elem())
		}
	}
}
