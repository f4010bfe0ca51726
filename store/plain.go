package store

import (
	"errors"
	"fmt"
	"time"

	"github.com/sigil-dna/keysync/keyring"
)

// ErrNotPlain is what PlainHistory's read returns for a version that holds no plain value.
var ErrNotPlain = errors.New("not a plain value")

// PlainHistory is the keyring of a store's plain values by keyring.FromPlainHistory's
// staging rule, from the store's own history: versions, oldest first, end with the
// current value (whose Value is set). read fetches the value of a version whose Value
// is nil; it is called only for the values that still verify at now, newest first, and
// at most keyring.MaxKeys times. A version that holds a keyring document ends the plain
// history before it (a plain value replaced the document: the values after it count).
// read returns ErrNotPlain for a version that is no plain value (a document, or
// something else): the history ends after it. Any other error of read is the error: a
// value pods must keep verifying is never left out silently.
func PlainHistory(versions []keyring.PlainValue, now time.Time, o keyring.Options, rotatedBy string,
	read func(v keyring.PlainValue) (keyring.Secret, error)) (*keyring.Keyring, error) {
	if len(versions) == 0 {
		return nil, fmt.Errorf("%w: no plain value", keyring.ErrInvalid)
	}
	// A document among the values already at hand ends the history before it.
	for i := len(versions) - 2; i >= 0; i-- {
		if versions[i].Value != nil && IsDocument(versions[i].Value) {
			versions = versions[i+1:]
			break
		}
	}
	created := make([]time.Time, len(versions))
	for i, v := range versions {
		created[i] = v.CreatedAt
	}
	live := max(keyring.PlainLive(created, now, o), len(versions)-keyring.MaxKeys)
	for i := len(versions) - 2; i >= live; i-- {
		if versions[i].Value == nil {
			v, err := read(versions[i])
			if errors.Is(err, ErrNotPlain) {
				versions = versions[i+1:]
				break
			}
			if err != nil {
				return nil, err
			}
			versions[i].Value = v
		}
		if IsDocument(versions[i].Value) {
			versions = versions[i+1:]
			break
		}
	}
	return keyring.FromPlainHistory(versions, now, o, rotatedBy)
}
