package keyring

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"
)

// TestEveryCharacterOfAMACIsCheckedOnItsOwn replaces each of the 64 digits of a
// signature's MAC, keyed and legacy, by each of the 256 byte values and checks Verify
// against the rule spelled out with encoding/hex: a keyed signature has one spelling
// (lower-case digits: any other byte, an upper-case letter included, is malformed, and
// another lower-case digit is a bad signature); a legacy signature verifies with the
// same digit in either case, as the existing service may send it. The word-at-a-time
// comparison must not let a byte pass for a digit (0x10-0x19 differ from '0'-'9' by bit
// 5 only) nor let one position's byte leak into another's.
func TestEveryCharacterOfAMACIsCheckedOnItsOwn(t *testing.T) {
	r, err := Stage(nil, t0, testSecret("mac"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	s := NewSigner(r)
	payload := []byte("payload")
	keyed, err := s.Sign(t0, payload)
	if err != nil {
		t.Fatal(err)
	}
	legacy, err := s.SignLegacy(t0, payload)
	if err != nil {
		t.Fatal(err)
	}
	for name, sig := range map[string]string{"keyed": keyed, "legacy": legacy} {
		at := len(sig) - macHexLen
		if err := s.Verify(t0, payload, sig); err != nil {
			t.Fatalf("%s %s: %v", name, sig, err)
		}
		upper := sig[:at] + strings.ToUpper(sig[at:])
		if err, want := s.Verify(t0, payload, upper), map[string]error{"keyed": ErrMalformedSignature, "legacy": nil}[name]; !errors.Is(err, want) {
			t.Fatalf("%s in upper case: %v, want %v", name, err, want)
		}
		checked := 0
		for i := at; i < len(sig); i++ {
			for c := range 256 {
				b := []byte(sig)
				b[i] = byte(c)
				want := ErrBadSignature
				switch {
				case b[i] == sig[i], name == "legacy" && bytes.EqualFold(b[i:i+1], []byte(sig[i:i+1])):
					want = nil
				case !isHexDigits(string(b[at:])), name == "keyed" && string(b[at:]) != strings.ToLower(string(b[at:])):
					want = ErrMalformedSignature
				}
				if got := s.Verify(t0, payload, string(b)); !errors.Is(got, want) {
					t.Fatalf("%s: digit %d set to %#02x: %v, want %v", name, i-at, c, got, want)
				}
				checked++
			}
		}
		if checked != macHexLen*256 {
			t.Fatalf("%s: %d cases checked", name, checked)
		}
	}
}

// isHexDigits is the reference: encoding/hex accepts both cases and nothing else.
func isHexDigits(s string) bool {
	_, err := hex.DecodeString(s)
	return err == nil && len(s) == macHexLen
}

// TestHexWordSpellsWhatEncodingHexSpells compares the word-at-a-time spelling of a MAC
// with encoding/hex for every byte value in every position of a word.
func TestHexWordSpellsWhatEncodingHexSpells(t *testing.T) {
	for pos := range 4 {
		for v := range 256 {
			var b [4]byte
			b[pos] = byte(v)
			b[(pos+1)%4] = byte(255 - v)
			w := hexWord(uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24)
			var got [8]byte
			for i := range got {
				got[i] = byte(w >> (8 * i))
			}
			if want := hex.EncodeToString(b[:]); string(got[:]) != want {
				t.Fatalf("% x: %q, want %q", b, got, want)
			}
		}
	}
}

// TestUnknownAndExpiredKeysAreMalformedFirst: a signature naming a key that is not in the
// keyring, or one that has expired, is malformed when its digits are not hex, whatever
// its key; the Node library answers the same (test/signer.test.js).
func TestUnknownAndExpiredKeysAreMalformedFirst(t *testing.T) {
	r1, _ := Stage(nil, t0.Add(-time.Hour), testSecret("old"), Options{})
	r2, err := Stage(r1, t0, testSecret("new"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	s := NewSigner(r2)
	old, err := NewSigner(r1).Sign(t0, []byte("p"))
	if err != nil {
		t.Fatal(err)
	}
	after := r2.Keys[0].NotAfter
	unknown := sigPrefix + strings.Repeat("0", KeyIDLen) + "." + strings.Repeat("a", macHexLen)
	near := []byte(sigPrefix + r2.Keys[1].ID + "." + strings.Repeat("a", macHexLen))
	near[len(sigPrefix)+1] ^= 1 // the first digit shared, the second not
	for _, c := range []struct {
		name string
		sig  string
		want error
	}{
		{"expired", old, ErrExpiredKey},
		{"expired, non-hex", old[:len(old)-1] + "g", ErrMalformedSignature},
		{"unknown", unknown, ErrUnknownKey},
		{"unknown, non-hex", unknown[:len(unknown)-1] + "z", ErrMalformedSignature},
		{"unknown, sharing a first digit", string(near), ErrUnknownKey},
	} {
		if got := s.Verify(after, []byte("p"), c.sig); !errors.Is(got, c.want) {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}
