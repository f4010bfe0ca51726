package secretscan

import (
	"encoding/base64"
	"encoding/hex"
	"strings"
	"testing"
)

func TestCountFindsEveryEncoding(t *testing.T) {
	s := []byte{0xfb, 0xff, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x80, 0x90, 0xa0}
	for name, text := range map[string]string{
		"hex":            "x " + hex.EncodeToString(s) + " y",
		"upper-case hex": strings.ToUpper(hex.EncodeToString(s)),
		"base64":         base64.StdEncoding.EncodeToString(s),
		"base64url":      base64.RawURLEncoding.EncodeToString(s),
		"raw bytes":      string(s),
	} {
		if Count([]byte(text), s) == 0 {
			t.Errorf("%s not found", name)
		}
	}
	if Count([]byte("nothing here"), s) != 0 {
		t.Error("false positive")
	}
}
