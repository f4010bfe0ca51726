// Package keyringtest holds what tests of keyring users share: deterministic test
// secrets, named so that a failure can say which one leaked. (The keyring package's own
// tests derive theirs the same way; they cannot import this package.)
package keyringtest

import (
	"crypto/sha256"

	"github.com/sigil-dna/keysync/keyring"
)

// Secret returns the 32-byte test secret called name: the same bytes for the same name,
// in every test and every run.
func Secret(name string) keyring.Secret {
	s := sha256.Sum256([]byte("keysync test secret " + name))
	return s[:]
}
