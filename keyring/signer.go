package keyring

import (
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"hash"
	"slices"
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
	// ErrLegacyOff: a bare legacy signature, which this keyring refuses
	// ("legacy_signatures": false).
	ErrLegacyOff = errors.New("keyring: bare legacy signatures are switched off in this keyring")
)

// ErrorCode names a verification or signing outcome as both libraries do (the Node
// library's codes, the test vectors' "error" field, the usage counts' results): "" for
// nil, ResultMalformed, ResultUnknown, ResultExpired, ResultBad, CodeNoSigningKey,
// ResultLegacyOff, or the error's text.
func ErrorCode(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, ErrMalformedSignature):
		return ResultMalformed
	case errors.Is(err, ErrUnknownKey):
		return ResultUnknown
	case errors.Is(err, ErrExpiredKey):
		return ResultExpired
	case errors.Is(err, ErrBadSignature):
		return ResultBad
	case errors.Is(err, ErrNoSigningKey):
		return CodeNoSigningKey
	case errors.Is(err, ErrLegacyOff):
		return ResultLegacyOff
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

// state returns a pooled state whose sum holds HMAC-SHA256(k, payload); the caller
// gives it back with k.pool.Put.
func (k *signerKey) state(payload []byte) *macState {
	st := k.pool.Get().(*macState)
	st.h.Reset()
	st.h.Write(payload)
	st.h.Sum(st.sum[:0])
	return st
}

// mac writes HMAC-SHA256(k, payload) into out.
func (k *signerKey) mac(out *[sha256.Size]byte, payload []byte) {
	st := k.state(payload)
	*out = st.sum
	k.pool.Put(st)
}

// mismatch computes HMAC-SHA256(k, payload) and compares it with sigMAC, 64 lower-case
// hex digits (the only spelling of a keyed signature), in constant time: 0 when they
// spell it.
func (k *signerKey) mismatch(payload []byte, sigMAC string) uint64 {
	st := k.state(payload)
	d := lowerHexMismatch(&st.sum, sigMAC)
	k.pool.Put(st)
	return d
}

// legacyMismatch is mismatch for a bare legacy signature, whose digits may be of either
// case: the existing service's signatures are accepted as it sends them.
func (k *signerKey) legacyMismatch(payload []byte, sigMAC string) uint64 {
	st := k.state(payload)
	d := hexMismatch(&st.sum, sigMAC)
	k.pool.Put(st)
	return d
}

// View is a Signer's decisions at one instant: which key signs, which keys verify and
// in which state. They hold from that instant until Until (the keyring's NextChange), so
// a caller that refreshes its View at each boundary signs and verifies without reading
// the clock: the reload library does, and keeps the View behind an atomic pointer. A
// View is immutable and safe for concurrent use.
type View struct {
	s       *Signer
	signing int8          // index in s.keys of the key that signs; -1: none
	state   [MaxKeys]int8 // each key's usage state index; -1: expired
	sec     int64         // the instant in Unix seconds, recorded as keys' last verification
	at      time.Time     // the instant
	until   time.Time     // the next change; zero: none
}

// ViewAt returns s's decisions at now.
func (s *Signer) ViewAt(now time.Time) View {
	v := s.decide(now)
	v.until = s.ring.NextChange(now)
	return v
}

// decide is ViewAt without Until, which a single call at now does not need.
func (s *Signer) decide(now time.Time) View {
	v := View{s: s, signing: int8(s.ring.signingIndex(now)), sec: now.Unix(), at: now}
	for i := range s.keys {
		v.state[i] = usageIndex(s.keys[i].stateAt(now, i == int(v.signing)))
	}
	return v
}

// At is the instant v was taken at.
func (v *View) At() time.Time { return v.at }

// Until is the first instant after At at which some decision changes, or the zero time
// when none will.
func (v *View) Until() time.Time { return v.until }

// Signer is the Signer v belongs to.
func (v *View) Signer() *Signer { return v.s }

// AppendSign appends the keyed signature of payload at now to dst.
func (s *Signer) AppendSign(dst []byte, now time.Time, payload []byte) ([]byte, error) {
	v := s.decide(now)
	return v.AppendSign(dst, payload)
}

// Sign returns the keyed signature of payload at now.
func (s *Signer) Sign(now time.Time, payload []byte) (string, error) {
	v := s.decide(now)
	return v.Sign(payload)
}

// SignLegacy returns the bare hex HMAC-SHA256 of payload with the signing key at now,
// the form the existing signing module produces and verifies.
func (s *Signer) SignLegacy(now time.Time, payload []byte) (string, error) {
	v := s.decide(now)
	return v.SignLegacy(payload)
}

// Verify checks sig over payload at now. A keyed signature is checked against its key
// alone, which must be valid at now (pending keys are). A legacy signature is checked
// against every key valid at now, all of them, in constant time. It returns nil or one
// of the Err… sentinels.
func (s *Signer) Verify(now time.Time, payload []byte, sig string) error {
	v := s.decide(now)
	return v.Verify(payload, sig)
}

// signed computes the signing key's HMAC of payload into sum and counts it.
func (v *View) signed(sum *[sha256.Size]byte, payload []byte) (*signerKey, bool) {
	if v.signing < 0 {
		return nil, false
	}
	k := v.s.keys[v.signing]
	k.mac(sum, payload)
	if k.use != nil {
		k.use.signed.Add(1)
	}
	return k, true
}

// AppendSign appends the keyed signature of payload to dst, as Signer.AppendSign at v's instant.
func (v *View) AppendSign(dst []byte, payload []byte) ([]byte, error) {
	var sum [sha256.Size]byte
	k, ok := v.signed(&sum, payload)
	if !ok {
		return dst, ErrNoSigningKey
	}
	n := len(dst)
	dst = slices.Grow(dst, keyedSigLen)[:n+keyedSigLen]
	copy(dst[n:], sigPrefix)
	copy(dst[n+len(sigPrefix):], k.ID)
	dst[n+len(sigPrefix)+KeyIDLen] = '.'
	encodeMAC(dst[n+len(sigPrefix)+KeyIDLen+1:], &sum)
	return dst, nil
}

// Sign returns the keyed signature of payload, as Signer.Sign at v's instant.
func (v *View) Sign(payload []byte) (string, error) {
	var buf [keyedSigLen]byte
	out, err := v.AppendSign(buf[:0], payload)
	if err != nil {
		return "", err
	}
	return string(out), nil
}

// SignLegacy returns the bare hex signature of payload, as Signer.SignLegacy at v's instant.
func (v *View) SignLegacy(payload []byte) (string, error) {
	if v.s.ring.NoLegacy {
		return "", ErrLegacyOff
	}
	var sum [sha256.Size]byte
	if _, ok := v.signed(&sum, payload); !ok {
		return "", ErrNoSigningKey
	}
	var buf [macHexLen]byte
	encodeMAC(buf[:], &sum)
	return string(buf[:]), nil
}

// Verify checks sig over payload, as Signer.Verify at v's instant.
func (v *View) Verify(payload []byte, sig string) error {
	s := v.s
	switch len(sig) {
	case legacySigLen:
		if s.ring.NoLegacy {
			if s.usage != nil {
				s.usage.legacyOff.Add(1)
			}
			return ErrLegacyOff
		}
		matched := -1
		for i, k := range s.keys {
			// Every valid key is tried, without an early exit.
			if v.state[i] >= 0 && k.legacyMismatch(payload, sig) == 0 {
				matched = i
			}
		}
		if matched < 0 {
			if !validHex(sig) {
				return s.malformed()
			}
			if s.usage != nil {
				s.usage.legacyBad.Add(1)
			}
			return ErrBadSignature
		}
		if k := s.keys[matched]; k.use != nil {
			k.use.legacy.Add(1)
			k.use.verified(v.sec)
		}
		return nil
	case keyedSigLen:
		const macAt = len(sigPrefix) + KeyIDLen + 1
		if sig[:len(sigPrefix)] != sigPrefix || sig[macAt-1] != '.' {
			return s.malformed()
		}
		id := sig[len(sigPrefix) : macAt-1]
		for i, k := range s.keys {
			if k.ID != id {
				continue
			}
			st := v.state[i]
			if st < 0 {
				if !isLowerHex(sig[macAt:]) {
					return s.malformed()
				}
				if k.use != nil {
					k.use.expired.Add(1)
				}
				return ErrExpiredKey
			}
			if k.mismatch(payload, sig[macAt:]) != 0 {
				if !isLowerHex(sig[macAt:]) {
					return s.malformed()
				}
				if k.use != nil {
					k.use.bad[st].Add(1)
				}
				return ErrBadSignature
			}
			if k.use != nil {
				k.use.ok[st].Add(1)
				k.use.verified(v.sec)
			}
			return nil
		}
		if !isLowerHex(sig[macAt:]) {
			return s.malformed()
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
