package keyring

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
)

// KeyIDLen is the length of a key id: 16 lower-case hex digits (64 bits).
const KeyIDLen = 16

// keyIDLabel domain-separates key ids from every other use of the secret.
var keyIDLabel = []byte("keysync key id v1")

// KeyID returns the fingerprint that names a key in logs, files and signatures:
// the first 8 bytes of HMAC-SHA256(secret, "keysync key id v1"), in hex. It is a
// one-way function of the secret and cannot be used to sign or verify anything.
func KeyID(s Secret) string {
	m := hmac.New(sha256.New, s)
	m.Write(keyIDLabel)
	var sum [sha256.Size]byte
	return hex.EncodeToString(m.Sum(sum[:0])[:KeyIDLen/2])
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
