package keyring

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"testing"
	"time"
)

// testSecret returns a deterministic 32-byte secret for tests and vectors: the bytes of
// keyringtest.Secret(name), which this package's tests cannot import.
func testSecret(name string) Secret {
	s := sha256.Sum256([]byte("keysync test secret " + name))
	return Secret(s[:])
}

var t0 = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

// docJSON builds a document by hand, so tests can write what Encode would refuse.
func docJSON(gen int, keys ...string) string {
	out := fmt.Sprintf(`{"version":1,"generation":%d,"rotated_at":"2026-11-27T12:00:00Z","keys":[`, gen)
	for i, k := range keys {
		if i > 0 {
			out += ","
		}
		out += k
	}
	return out + "]}"
}

func keyJSON(s Secret, nb, na string) string {
	out := fmt.Sprintf(`{"id":%q,"secret":%q,"not_before":%q`, KeyID(s), base64.StdEncoding.EncodeToString(s), nb)
	if na != "" {
		out += fmt.Sprintf(`,"not_after":%q`, na)
	}
	return out + "}"
}

func mustParse(t testing.TB, doc string) *Keyring {
	t.Helper()
	r, err := Parse([]byte(doc))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return r
}

// heldKeyJSON is a key that waits for its promotion.
func heldKeyJSON(s Secret) string {
	return fmt.Sprintf(`{"id":%q,"secret":%q,"held":true}`, KeyID(s), base64.StdEncoding.EncodeToString(s))
}
