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
	ring  *Keyring
	keys  []*signerKey // in ring.Keys order
	usage *Usage       // nil: nothing counted
}

type signerKey struct {
	Key
	pool sync.Pool // of *macState
	use  *keyUsage // nil: nothing counted
}

type macState struct {
	h   hash.Hash
	sum [sha256.Size]byte
}

// NewSigner prepares r for signing and verification. r must be valid.
func NewSigner(r *Keyring) *Signer { return NewSignerWithUsage(r, nil) }

// NewSignerWithUsage is NewSigner counting every signature and verification in u (nil:
// none), which may outlive the keyring (see Usage).
func NewSignerWithUsage(r *Keyring, u *Usage) *Signer {
	s := &Signer{ring: r, keys: make([]*signerKey, len(r.Keys)), usage: u}
	for i, k := range r.Keys {
		sk := &signerKey{Key: k}
		if u != nil {
			sk.use = u.key(k.ID)
		}
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
	if k.use != nil {
		k.use.signed.Add(1)
	}
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
	if k.use != nil {
		k.use.signed.Add(1)
	}
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
			return s.malformed()
		}
		matched := -1
		for i, k := range s.keys {
			if k.ValidAt(now) {
				k.mac(&got, payload)
				if hmac.Equal(got[:], want[:]) {
					matched = i
				}
			}
		}
		if matched < 0 {
			if s.usage != nil {
				s.usage.legacyBad.Add(1)
			}
			return ErrBadSignature
		}
		if k := s.keys[matched]; k.use != nil {
			k.use.legacy.Add(1)
			k.use.verified(now)
		}
		return nil
	case keyedSigLen:
		if sig[:len(sigPrefix)] != sigPrefix || sig[len(sigPrefix)+KeyIDLen] != '.' ||
			!decodeHex(want[:], sig[len(sigPrefix)+KeyIDLen+1:]) {
			return s.malformed()
		}
		id := sig[len(sigPrefix) : len(sigPrefix)+KeyIDLen]
		for _, k := range s.keys {
			if k.ID != id {
				continue
			}
			if !k.ValidAt(now) {
				if k.use != nil {
					k.use.expired.Add(1)
				}
				return ErrExpiredKey
			}
			k.mac(&got, payload)
			ok := hmac.Equal(got[:], want[:])
			if k.use != nil {
				st := s.stateIndex(k, now)
				if ok {
					k.use.ok[st].Add(1)
					k.use.verified(now)
				} else {
					k.use.bad[st].Add(1)
				}
			}
			if !ok {
				return ErrBadSignature
			}
			return nil
		}
		if s.usage != nil {
			s.usage.unknown.Add(1)
		}
		return ErrUnknownKey
	default:
		return s.malformed()
	}
}

func (s *Signer) malformed() error {
	if s.usage != nil {
		s.usage.malformed.Add(1)
	}
	return ErrMalformedSignature
}

// stateIndex is k's state at now as an index of usageStates (the rule of StateAt).
func (s *Signer) stateIndex(k *signerKey, now time.Time) int {
	switch {
	case k.Held():
		return 0
	case s.signingKey(now) == k:
		return 2
	case k.NotBefore.After(now):
		return 1
	}
	return 3
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
	bad := byte(0)
	for i := range dst {
		hi, lo := hexValue[s[2*i]], hexValue[s[2*i+1]]
		bad |= hi | lo
		dst[i] = hi<<4 | lo&0x0f
	}
	return bad&0xf0 == 0 // one table lookup per digit, one branch per signature
}

// hexValue maps a hex digit of either case to its value and anything else to 0xff.
var hexValue = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for c := byte('0'); c <= '9'; c++ {
		t[c] = c - '0'
	}
	for c := byte('a'); c <= 'f'; c++ {
		t[c] = c - 'a' + 10
		t[c-'a'+'A'] = c - 'a' + 10
	}
	return t
}()
