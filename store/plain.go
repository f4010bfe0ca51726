package store

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/sigil-dna/keysync/keyring"
)

// ErrNotPlain is what PlainHistory's read returns for a version that holds no plain value.
var ErrNotPlain = errors.New("not a plain value")

// PlainHistory is the keyring of a store's plain values by keyring.FromPlainHistory's
// staging rule, from the store's own history: versions, oldest first, end with the
// current value (whose Value is set). read fetches the value of a version whose Value
// is nil; it is called only for the values that still verify at now, newest first, and
// at most keyring.MaxKeys times. read returns the bytes of a keyring document as they
// are, and ErrNotPlain for a version that is neither (the history ends after it); any
// other error of read is the error: a value pods must keep verifying is never left out
// silently.
//
// A plain value written over a keyring document (the ticket's command run on a store
// keysync rotates) is staged after the document's keys, which keep their schedule, as a
// reader that held the document does (keyring.CompletePlain): the key that signed until
// then keeps signing until the plain value's activation and verifying for the window.
func PlainHistory(versions []keyring.PlainValue, now time.Time, o keyring.Options, rotatedBy string,
	read func(v keyring.PlainValue) (keyring.Secret, error)) (*keyring.Keyring, error) {
	if len(versions) == 0 {
		return nil, fmt.Errorf("%w: no plain value", keyring.ErrInvalid)
	}
	created := make([]time.Time, len(versions))
	for i, v := range versions {
		created[i] = v.CreatedAt
	}
	live := max(keyring.PlainLive(created, now, o), len(versions)-keyring.MaxKeys)
	// Newest first: the values still verifying, down to a document or the end.
	for i := len(versions) - 2; i >= 0; i-- {
		if versions[i].Value == nil {
			if i < live {
				break // no longer verifying: not needed
			}
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
			base, err := keyring.Parse(versions[i].Value)
			if err != nil {
				versions = versions[i+1:] // an invalid document: the plain values after it alone
				break
			}
			return afterDocument(base, versions[i+1:], now, o, rotatedBy)
		}
	}
	return keyring.FromPlainHistory(versions, now, o, rotatedBy)
}

// afterDocument stages plain values, oldest first, after the keys of the document they
// replaced, and leaves out what no longer verifies at now.
func afterDocument(base *keyring.Keyring, values []keyring.PlainValue, now time.Time, o keyring.Options, rotatedBy string) (*keyring.Keyring, error) {
	r := base
	for _, v := range values {
		if pruned := r.Prune(v.CreatedAt); len(pruned.Keys) > 0 {
			r = pruned // what stopped verifying before this value came is gone for good
		}
		var err error
		if r, err = keyring.CompletePlain(v, r, o, rotatedBy); err != nil {
			return nil, err
		}
	}
	if pruned := r.Prune(now); len(pruned.Keys) > 0 {
		r = pruned
	}
	return r, keyring.Validate(r)
}

// envPrefix is an environment file's NAME= before a value.
var envPrefix = regexp.MustCompile(`^[A-Z_][A-Z0-9_]*=.`)

// CheckPlain refuses a plain value that is most likely not the key alone: surrounding
// whitespace, several lines, or an environment file's NAME= prefix. Every byte of a plain
// value is the HMAC key, so such a value would be taken as a different key and every
// signature made with the real one would fail. The error says what to write instead and
// quotes nothing of the value but a NAME= prefix's name.
func CheckPlain(value []byte) error {
	const fix = "write the value alone (printf '%s' \"$VALUE\" > FILE, or kubectl create secret … --from-literal=value=\"$VALUE\")"
	switch {
	case len(bytes.TrimSpace(value)) != len(value):
		return fmt.Errorf("%w: the plain value has leading or trailing whitespace (a space, a tab, a second newline): every byte is part of the key, so signatures made with the key without it would fail; %s", keyring.ErrInvalid, fix)
	case bytes.ContainsAny(value, "\r\n"):
		return fmt.Errorf("%w: the plain value has several lines: %s", keyring.ErrInvalid, fix)
	case envPrefix.Match(value):
		name, _, _ := bytes.Cut(value, []byte("="))
		return fmt.Errorf("%w: the plain value starts with %s= (an environment file?): %s", keyring.ErrInvalid, name, fix)
	}
	return nil
}
