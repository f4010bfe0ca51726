package keyring

import (
	"crypto/sha256"
	"encoding/binary"
)

// The signature's hex digits, compared and written without branching on secret data.

const (
	ones   = 0x0101010101010101
	bit5s  = 0x20 * ones // the bit that tells a lower-case letter from an upper-case one
	nibble = 0x000f000f000f000f
)

// hexMismatch compares sum with the 64 hex digits of either case in s, eight digits
// at a time and in constant time: 0 when s spells sum, non-zero when it does not or
// when s holds anything but hex digits. Each word of eight digits is set to lower
// case (c | 0x20) and compared with sum's lower-case hex; a digit matched that way
// must also have had bit 5 set where a decimal digit is expected, or the control
// characters 0x10-0x19 would pass for '0'-'9'.
func hexMismatch(sum *[sha256.Size]byte, s string) uint64 {
	s = s[:macHexLen]
	var d uint64
	for i := 0; i < sha256.Size/4; i++ {
		x := leWord(s, 8*i)
		e := hexWord(binary.LittleEndian.Uint32(sum[4*i:]))
		d |= (x | bit5s) ^ e
		d |= ^x & bit5s &^ (e >> 1 & bit5s) // letters have bit 6 set, which e >> 1 moves to bit 5
	}
	return d
}

// leWord reads s[i:i+8] as a little-endian word; the compiler makes it one load.
func leWord(s string, i int) uint64 {
	s = s[i : i+8]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}

// hexWord spells the four bytes of b (b's low byte first) as eight lower-case hex
// digits, the first digit in the word's low byte.
func hexWord(b uint32) uint64 {
	x := uint64(b)
	x = (x | x<<16) & 0x0000ffff0000ffff
	x = (x | x<<8) & 0x00ff00ff00ff00ff    // each byte alone in the low byte of a 16-bit lane
	n := x>>4&nibble | (x&nibble)<<8       // its high nibble first, then its low one
	letters := (n + 0x76*ones) >> 7 & ones // 1 in each byte whose nibble is over 9
	return n + '0'*ones + letters*('a'-'0'-10)
}

// lowerHexMismatch compares sum with the 64 lower-case hex digits in s, eight digits at
// a time and in constant time: 0 when s spells sum, non-zero otherwise (an upper-case
// digit included).
func lowerHexMismatch(sum *[sha256.Size]byte, s string) uint64 {
	s = s[:macHexLen]
	var d uint64
	for i := 0; i < sha256.Size/4; i++ {
		d |= leWord(s, 8*i) ^ hexWord(binary.LittleEndian.Uint32(sum[4*i:]))
	}
	return d
}

// encodeMAC writes sum's 64 lower-case hex digits to dst, eight at a time.
func encodeMAC(dst []byte, sum *[sha256.Size]byte) {
	dst = dst[:macHexLen]
	for i := 0; i < sha256.Size/4; i++ {
		binary.LittleEndian.PutUint64(dst[8*i:], hexWord(binary.LittleEndian.Uint32(sum[4*i:])))
	}
}

// validHex reports whether s is 64 hex digits of either case. It only runs once a
// comparison has failed, to tell a malformed signature from a bad one.
func validHex(s string) bool {
	if len(s) != macHexLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case '0' <= c && c <= '9', 'a' <= c && c <= 'f', 'A' <= c && c <= 'F':
		default:
			return false
		}
	}
	return true
}
