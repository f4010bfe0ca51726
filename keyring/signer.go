package keyring

import (
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"hash"
	"sync"
	"time"
)

// Signature format. A keyed signature names its key so that verification is one HMAC:
//
//	ks1.<16 hex key id>.<64 hex HMAC-SHA256>
//
// A legacy signature is the bare 64-hex HMAC-SHA256 the existing service produces; it is
// checked against every valid key.
const (
	sigPrefix    = "ks1."
	macHexLen    = 2 * sha256.Size
	legacySigLen = macHexLen
	keyedSigLen  = len(sigPrefix) + KeyIDLen + 1 + macHexLen
)

// Verification and signing errors. They are sentinels so the hot path does not allocate.
var (
	ErrMalformedSignature = errors.New("keyring: malformed signature")
	ErrUnknownKey         = errors.New("keyring: signature names a key that is not in the keyring")
	ErrExpiredKey         = errors.New("keyring: signature was made with an expired key")
	ErrBadSignature       = errors.New("keyring: signature does not match")
	ErrNoSigningKey       = errors.New("keyring: no key is valid for signing")
)

// ErrorCode names a verification or signing outcome as both libraries do (the Node
// library's codes, the test vectors' "error" field): "" for nil, "malformed_signature",
// "unknown_key", "expired_key", "bad_signature", "no_signing_key", or the error's text.
func ErrorCode(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, ErrMalformedSignature):
		return "malformed_signature"
	case errors.Is(err, ErrUnknownKey):
		return "unknown_key"
	case errors.Is(err, ErrExpiredKey):
		return "expired_key"
	case errors.Is(err, ErrBadSignature):
		return "bad_signature"
	case errors.Is(err, ErrNoSigningKey):
		return "no_signing_key"
	}
	return err.Error()
}

// Signer signs and verifies with a keyring. It precomputes each key's HMAC state and is
// safe for concurrent use; it never locks on the hot path.
type Signer struct {
	ring *Keyring
	keys []*signerKey // in ring.Keys order
}

type signerKey struct {
	Key
	pool sync.Pool // of *macState
}

type macState struct {
	h   hash.Hash
	sum [sha256.Size]byte
}

// NewSigner prepares r for signing and verification. r must be valid.
func NewSigner(r *Keyring) *Signer {
	s := &Signer{ring: r, keys: make([]*signerKey, len(r.Keys))}
	for i, k := range r.Keys {
		sk := &signerKey{Key: k}
		secret := []byte(k.Secret)
		sk.pool.New = func() any { return &macState{h: hmac.New(sha256.New, secret)} }
		s.keys[i] = sk
	}
	return s
}

// Keyring returns the keyring s was made from.
func (s *Signer) Keyring() *Keyring { return s.ring }

// mac writes HMAC-SHA256(k, payload) into out.
func (k *signerKey) mac(out *[sha256.Size]byte, payload []byte) {
	st := k.pool.Get().(*macState)
	st.h.Reset()
	st.h.Write(payload)
	st.h.Sum(st.sum[:0])
	*out = st.sum
	k.pool.Put(st)
}

// signingKey applies Keyring.SigningKey's rule; s.keys is in s.ring.Keys order.
func (s *Signer) signingKey(now time.Time) *signerKey {
	if i := s.ring.signingIndex(now); i >= 0 {
		return s.keys[i]
	}
	return nil
}

// AppendSign appends the keyed signature of payload at now to dst.
func (s *Signer) AppendSign(dst []byte, now time.Time, payload []byte) ([]byte, error) {
	k := s.signingKey(now)
	if k == nil {
		return dst, ErrNoSigningKey
	}
	var sum [sha256.Size]byte
	k.mac(&sum, payload)
	dst = append(dst, sigPrefix...)
	dst = append(dst, k.ID...)
	dst = append(dst, '.')
	return appendHex(dst, sum[:]), nil
}

// Sign returns the keyed signature of payload at now.
func (s *Signer) Sign(now time.Time, payload []byte) (string, error) {
	var buf [keyedSigLen]byte
	out, err := s.AppendSign(buf[:0], now, payload)
	if err != nil {
		return "", err
	}
	return string(out), nil
}

// SignLegacy returns the bare hex HMAC-SHA256 of payload with the signing key at now,
// the form the existing signing module produces and verifies.
func (s *Signer) SignLegacy(now time.Time, payload []byte) (string, error) {
	k := s.signingKey(now)
	if k == nil {
		return "", ErrNoSigningKey
	}
	var sum [sha256.Size]byte
	k.mac(&sum, payload)
	var buf [macHexLen]byte
	return string(appendHex(buf[:0], sum[:])), nil
}

// Verify checks sig over payload at now. A keyed signature is checked against its key
// alone, which must be valid at now (pending keys are). A legacy signature is checked
// against every key valid at now, all of them, in constant time. It returns nil or one
// of the Err… sentinels.
func (s *Signer) Verify(now time.Time, payload []byte, sig string) error {
	var want, got [sha256.Size]byte
	switch len(sig) {
	case legacySigLen:
		if !decodeHex(want[:], sig) {
			return ErrMalformedSignature
		}
		match := 0
		for _, k := range s.keys {
			if k.ValidAt(now) {
				k.mac(&got, payload)
				if hmac.Equal(got[:], want[:]) {
					match = 1
				}
			}
		}
		if match == 0 {
			return ErrBadSignature
		}
		return nil
	case keyedSigLen:
		if sig[:len(sigPrefix)] != sigPrefix || sig[len(sigPrefix)+KeyIDLen] != '.' ||
			!decodeHex(want[:], sig[len(sigPrefix)+KeyIDLen+1:]) {
			return ErrMalformedSignature
		}
		id := sig[len(sigPrefix) : len(sigPrefix)+KeyIDLen]
		for _, k := range s.keys {
			if k.ID != id {
				continue
			}
			if !k.ValidAt(now) {
				return ErrExpiredKey
			}
			k.mac(&got, payload)
			if !hmac.Equal(got[:], want[:]) {
				return ErrBadSignature
			}
			return nil
		}
		return ErrUnknownKey
	default:
		return ErrMalformedSignature
	}
}

const hexDigits = "0123456789abcdef"

func appendHex(dst, src []byte) []byte {
	for _, b := range src {
		dst = append(dst, hexDigits[b>>4], hexDigits[b&0xf])
	}
	return dst
}

// decodeHex decodes len(dst)*2 hex digits of either case from s without allocating.
func decodeHex(dst []byte, s string) bool {
	if len(s) != 2*len(dst) {
		return false
	}
	for i := range dst {
		hi, ok1 := fromHex(s[2*i])
		lo, ok2 := fromHex(s[2*i+1])
		if !ok1 || !ok2 {
			return false
		}
		dst[i] = hi<<4 | lo
	}
	return true
}

func fromHex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
