package keyring

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"
)

// ErrInvalid is wrapped by every error that rejects a document.
var ErrInvalid = errors.New("invalid keyring document")

// ValidationError names the field of a rejected document and what is wrong with it.
// It never contains secret bytes.
type ValidationError struct {
	Field   string // e.g. "keys[1].not_after"; empty for the document as a whole
	Problem string
}

func (e *ValidationError) Error() string {
	if e.Field == "" {
		return "keyring: " + e.Problem
	}
	return "keyring: " + e.Field + ": " + e.Problem
}

// Unwrap makes errors.Is(err, ErrInvalid) true.
func (e *ValidationError) Unwrap() error { return ErrInvalid }

func invalid(field, format string, args ...any) error {
	return &ValidationError{Field: field, Problem: fmt.Sprintf(format, args...)}
}

// timeLayout is how documents carry instants: RFC 3339, UTC, milliseconds.
const timeLayout = "2006-01-02T15:04:05.000Z07:00"

var secretEncoding = base64.StdEncoding.Strict()

// Parse decodes and validates a keyring document. Errors wrap ErrInvalid, name the
// offending field (or a byte offset) and never contain a name, a value or secret bytes of
// the document.
func Parse(data []byte) (*Keyring, error) {
	w, err := decodeWire(data)
	if err != nil {
		return nil, err
	}
	return fromWire(w)
}

func fromWire(w *wireDoc) (*Keyring, error) {
	switch {
	case w.Version == nil:
		return nil, invalid("version", "missing")
	case *w.Version != FormatVersion:
		return nil, invalid("version", "unknown format version %d, this build reads version %d", *w.Version, FormatVersion)
	case w.Generation == nil:
		return nil, invalid("generation", "missing")
	case w.RotatedAt == nil:
		return nil, invalid("rotated_at", "missing")
	case len(w.Keys) > MaxKeys:
		return nil, invalid("keys", "%d keys, the limit is %d", len(w.Keys), MaxKeys)
	}
	rotatedAt, err := parseTime("rotated_at", *w.RotatedAt)
	if err != nil {
		return nil, err
	}
	r := &Keyring{Generation: *w.Generation, RotatedAt: rotatedAt, RotatedBy: w.RotatedBy, Reason: w.Reason,
		NoLegacy: w.Legacy != nil && !*w.Legacy}
	for i, wk := range w.Keys {
		k, err := keyFromWire(i, wk)
		if err != nil {
			return nil, err
		}
		r.Keys = append(r.Keys, k)
	}
	sortKeys(r.Keys)
	if err := Validate(r); err != nil {
		return nil, err
	}
	return r, nil
}

func keyFromWire(i int, wk *wireKey) (Key, error) {
	field := func(name string) string { return fmt.Sprintf("keys[%d].%s", i, name) }
	switch {
	case wk == nil:
		return Key{}, invalid(fmt.Sprintf("keys[%d]", i), "null where an object is expected")
	case wk.ID == nil:
		return Key{}, invalid(field("id"), "missing")
	case wk.Secret == nil:
		return Key{}, invalid(field("secret"), "missing")
	case wk.Held && wk.NotBefore != nil:
		return Key{}, invalid(field("not_before"), `a held key has none: it signs from its promotion`)
	case wk.Held && wk.NotAfter != nil:
		return Key{}, invalid(field("not_after"), `a held key has none`)
	case !wk.Held && wk.NotBefore == nil:
		return Key{}, invalid(field("not_before"), `missing (a key waiting for its promotion says "held": true instead)`)
	case wk.Held && wk.Restored:
		return Key{}, invalid(field("restored"), "a held key is never restored: a rollback withdraws it")
	}
	secret, err := secretEncoding.DecodeString(*wk.Secret)
	if err != nil {
		// The decoder's error quotes only an offset, but say it in our words anyway.
		return Key{}, invalid(field("secret"), "not standard padded base64")
	}
	k := Key{ID: *wk.ID, Secret: secret, Restored: wk.Restored}
	if !wk.Held {
		if k.NotBefore, err = parseTime(field("not_before"), *wk.NotBefore); err != nil {
			return Key{}, err
		}
		if k.NotBefore.IsZero() {
			return Key{}, invalid(field("not_before"), "the zero time")
		}
	}
	if wk.NotAfter != nil {
		if k.NotAfter, err = parseTime(field("not_after"), *wk.NotAfter); err != nil {
			return Key{}, err
		}
	}
	if err := validateKey(field, k); err != nil {
		return Key{}, err
	}
	return k, nil
}

// parseTime reads an RFC 3339 instant. Precision is one millisecond everywhere (the
// JavaScript library has no finer clock), so finer digits are dropped.
func parseTime(field, s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if _, off := t.Zone(); err != nil || off <= -24*3600 || off >= 24*3600 {
		// time.Parse takes a +24:00 offset, which RFC 3339's time-hour (00-23) does not.
		return time.Time{}, invalid(field, "not an RFC 3339 time")
	}
	return t.UTC().Truncate(time.Millisecond), nil
}

func validateKey(field func(string) string, k Key) error {
	switch {
	case len(k.Secret) < MinSecretBytes:
		return invalid(field("secret"), "%d bytes, at least %d are required", len(k.Secret), MinSecretBytes)
	case len(k.Secret) > MaxSecretBytes:
		return invalid(field("secret"), "%d bytes, the limit is %d", len(k.Secret), MaxSecretBytes)
	case len(k.ID) != KeyIDLen || !isLowerHex(k.ID):
		return invalid(field("id"), "not %d lower-case hex digits", KeyIDLen)
	case k.ID != KeyID(k.Secret):
		return invalid(field("id"), "does not match the fingerprint of its secret")
	case k.Held() && !k.NotAfter.IsZero():
		return invalid(field("not_after"), "a held key has none")
	case !k.NotAfter.IsZero() && !k.NotAfter.After(k.NotBefore):
		return invalid(field("not_after"), "not after not_before")
	}
	return nil
}

// Validate checks a keyring built in memory by the same rules Parse applies. Keys must
// already be ordered by NotBefore.
func Validate(r *Keyring) error {
	switch {
	case r == nil:
		return invalid("", "no keyring")
	case r.Generation <= 0:
		return invalid("generation", "must be positive, got %d", r.Generation)
	case r.Generation > MaxGeneration:
		return invalid("generation", "larger than 2^53-1")
	case r.RotatedAt.IsZero():
		return invalid("rotated_at", "missing")
	case len(r.RotatedBy) > MaxTextLen:
		return invalid("rotated_by", "longer than %d bytes", MaxTextLen)
	case len(r.Reason) > MaxTextLen:
		return invalid("reason", "longer than %d bytes", MaxTextLen)
	case len(r.Keys) == 0:
		return invalid("keys", "no keys")
	case len(r.Keys) > MaxKeys:
		return invalid("keys", "%d keys, the limit is %d", len(r.Keys), MaxKeys)
	}
	seen := make(map[string]int, len(r.Keys))
	for i, k := range r.Keys {
		field := func(name string) string { return fmt.Sprintf("keys[%d].%s", i, name) }
		if err := validateKey(field, k); err != nil {
			return err
		}
		if j, dup := seen[k.ID]; dup {
			return invalid(field("id"), "duplicate of keys[%d].id %s", j, k.ID)
		}
		seen[k.ID] = i
		if k.Held() {
			switch {
			case slices.ContainsFunc(r.Keys[i+1:], Key.Held):
				return invalid("keys", "more than one held key")
			case i != len(r.Keys)-1:
				return invalid("keys", "not ordered: the held key comes last")
			case i == 0:
				return invalid("keys", "only a held key: a keyring needs a key that signs")
			}
			continue
		}
		if i > 0 {
			switch c := k.NotBefore.Compare(r.Keys[i-1].NotBefore); {
			case c == 0:
				return invalid(field("not_before"), "same not_before as key %s", r.Keys[i-1].ID)
			case c < 0:
				return invalid("keys", "not ordered by not_before")
			}
		}
	}
	return nil
}

// Encode validates r and returns its document: indented JSON, keys ordered by not_before,
// instants in UTC with milliseconds, secrets in standard padded base64.
func Encode(r *Keyring) ([]byte, error) {
	if err := Validate(r); err != nil {
		return nil, err
	}
	v := int64(FormatVersion)
	gen := r.Generation
	rotatedAt := r.RotatedAt.UTC().Format(timeLayout)
	w := wireDoc{Version: &v, Generation: &gen, RotatedAt: &rotatedAt, RotatedBy: r.RotatedBy, Reason: r.Reason}
	if r.NoLegacy {
		off := false
		w.Legacy = &off
	}
	for _, k := range r.Keys {
		id, secret := k.ID, secretEncoding.EncodeToString(k.Secret)
		wk := &wireKey{ID: &id, Secret: &secret, Held: k.Held(), Restored: k.Restored}
		if !k.Held() {
			nb := k.NotBefore.UTC().Format(timeLayout)
			wk.NotBefore = &nb
		}
		if !k.NotAfter.IsZero() {
			na := k.NotAfter.UTC().Format(timeLayout)
			wk.NotAfter = &na
		}
		w.Keys = append(w.Keys, wk)
	}
	out, err := json.MarshalIndent(&w, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("keyring: encoding: %w", err)
	}
	out = append(out, '\n')
	if len(out) > MaxDocumentBytes {
		return nil, invalid("", "document is %d bytes, the limit is %d", len(out), MaxDocumentBytes)
	}
	return out, nil
}
