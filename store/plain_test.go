package store

import (
	"errors"
	"strings"
	"testing"

	"github.com/sigil-dna/keysync/keyring"
)

// TestAPlainValueThatIsNotTheKeyAloneIsRefused (issue 33): a trailing space, a second
// newline or an env file's NAME= line was taken as a different key without a word.
func TestAPlainValueThatIsNotTheKeyAloneIsRefused(t *testing.T) {
	const v = "4e1f0a8c2b7d93e65f10c4a7b8d2e93f06a1c5b7d9e2f4a6c8b0d2e4f6a8c0b2"
	for value, want := range map[string]string{
		v + " ":                    "trailing whitespace",
		v + "\n":                   "trailing whitespace",
		" " + v:                    "leading or trailing whitespace",
		v + "\n" + v:               "several lines",
		"SPIRAL_EVENT_SECRET=" + v: "starts with SPIRAL_EVENT_SECRET=",
	} {
		err := CheckPlain([]byte(value))
		if !errors.Is(err, keyring.ErrInvalid) || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "printf") || strings.Contains(err.Error(), v) {
			t.Errorf("%q: %v", value, err)
		}
	}
	for _, ok := range []string{v, "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA==", "a=b but lower case"} {
		if err := CheckPlain([]byte(ok)); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
}
