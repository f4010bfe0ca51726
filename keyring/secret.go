package keyring

import (
	"crypto/rand"
	"fmt"
	"log/slog"
)

const redacted = "[REDACTED]"

// Secret is key material. Every formatting, logging and JSON path shows a placeholder;
// only the keyring encoder and the HMAC code read the bytes.
type Secret []byte

// String implements fmt.Stringer and never shows the bytes.
func (Secret) String() string { return redacted }

// GoString implements fmt.GoStringer and never shows the bytes.
func (Secret) GoString() string { return redacted }

// Format implements fmt.Formatter so that every verb, %x and %v included, is redacted.
func (Secret) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(redacted)) }

// LogValue implements slog.LogValuer.
func (Secret) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalJSON keeps a Secret that strays into a JSON log redacted. The keyring encoder
// does not use it.
func (Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }

// MarshalText keeps a Secret redacted in text encoders (slog's text handler, YAML).
func (Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// NewSecret returns n bytes from crypto/rand. n must be at least MinSecretBytes.
func NewSecret(n int) (Secret, error) {
	if n < MinSecretBytes {
		return nil, fmt.Errorf("keyring: a new secret needs at least %d bytes, got %d", MinSecretBytes, n)
	}
	s := make(Secret, n)
	if _, err := rand.Read(s); err != nil {
		return nil, fmt.Errorf("keyring: reading crypto/rand: %w", err)
	}
	return s, nil
}
