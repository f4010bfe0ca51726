// Package secretscan finds key material in output: the tests, the demo and the AWS error
// redaction use it to prove (or make sure) that no secret reaches a log, an error or a summary.
package secretscan

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
)

// Encodings returns the forms in which a secret could leak: raw, hex (both cases),
// base64 and base64url, padded and not.
func Encodings(secret []byte) []string {
	h := hex.EncodeToString(secret)
	return []string{
		string(secret), h, string(bytes.ToUpper([]byte(h))),
		base64.StdEncoding.EncodeToString(secret), base64.RawStdEncoding.EncodeToString(secret),
		base64.URLEncoding.EncodeToString(secret), base64.RawURLEncoding.EncodeToString(secret),
	}
}

// Count returns how many times any of the secrets occurs in data, in any of its Encodings.
func Count(data []byte, secrets ...[]byte) int {
	n := 0
	for _, s := range secrets {
		if len(s) == 0 {
			continue
		}
		for _, enc := range Encodings(s) {
			n += bytes.Count(data, []byte(enc))
		}
	}
	return n
}
