package reload

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/sigil-dna/keysync/keyring"
)

// The benchmarks compare Sign and Verify with a raw crypto/hmac HMAC-SHA256 of the same
// payload, in the same run: go test -run '^$' -bench . -benchmem ./reload/
func benchKeyring(b *testing.B) *Handle {
	path := filepath.Join(b.TempDir(), "keys.json")
	r, _ := keyring.Stage(nil, time.Now().Add(-time.Hour), secret(1), keyring.Options{})
	r, _ = keyring.Stage(r, time.Now().Add(-30*time.Minute), secret(2), keyring.Options{})
	r, _ = keyring.Stage(r, time.Now(), secret(3), keyring.Options{}) // one pending, one current, one previous
	writeKeys(b, path, r)
	return openT(b, path, WithSignals(), WithFileWatch(false), WithPollInterval(0))
}

var sizes = []int{64, 1024}

// eachSize runs op as one sub-benchmark per payload size, counting bytes and allocations.
// What op does before its b.Loop is not timed.
func eachSize(b *testing.B, op func(b *testing.B, payload []byte)) {
	for _, n := range sizes {
		b.Run(fmt.Sprintf("%dB", n), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(n))
			op(b, make([]byte, n))
		})
	}
}

func BenchmarkRawHMAC(b *testing.B) {
	key := secret(2)
	eachSize(b, func(b *testing.B, payload []byte) {
		for b.Loop() {
			m := hmac.New(sha256.New, key)
			m.Write(payload)
			_ = m.Sum(nil)
		}
	})
}

// BenchmarkPrecomputedHMAC is the limit the hot path is measured against: one
// HMAC-SHA256 with its pad state computed once (hmac.New once, then Reset, Write and Sum
// into a buffer) and hex-encoded, as an app that kept one key would compute it.
func BenchmarkPrecomputedHMAC(b *testing.B) {
	m := hmac.New(sha256.New, secret(2))
	var sum [sha256.Size]byte
	var out [2 * sha256.Size]byte
	eachSize(b, func(b *testing.B, payload []byte) {
		for b.Loop() {
			m.Reset()
			m.Write(payload)
			hex.Encode(out[:], m.Sum(sum[:0]))
		}
	})
}

func BenchmarkSign(b *testing.B) {
	k := benchKeyring(b)
	eachSize(b, func(b *testing.B, payload []byte) {
		for b.Loop() {
			if _, err := k.Sign(payload); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkAppendSign(b *testing.B) {
	k := benchKeyring(b)
	buf := make([]byte, 0, 128)
	eachSize(b, func(b *testing.B, payload []byte) {
		for b.Loop() {
			if _, err := k.AppendSign(buf[:0], payload); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkVerify(b *testing.B) {
	k := benchKeyring(b)
	eachSize(b, func(b *testing.B, payload []byte) {
		sig, _ := k.Sign(payload)
		for b.Loop() {
			if err := k.Verify(payload, sig); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkVerifyLegacy is the bare-signature path: one HMAC per valid key (three here).
func BenchmarkVerifyLegacy(b *testing.B) {
	k := benchKeyring(b)
	eachSize(b, func(b *testing.B, payload []byte) {
		m := hmac.New(sha256.New, secret(2))
		m.Write(payload)
		sig := fmt.Sprintf("%x", m.Sum(nil))
		for b.Loop() {
			if err := k.Verify(payload, sig); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkClock is what reading the clock costs here: a handle with WithClock reads it on
// every Sign and Verify; a default handle does not, it decides from a View its timer
// refreshes (docs/benchmarks.md).
func BenchmarkClock(b *testing.B) {
	var sink int64
	for b.Loop() {
		sink += time.Now().UnixNano()
	}
	_ = sink
}
