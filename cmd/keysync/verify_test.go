package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestVerifyAndSignAgreeWithTheSharedVectors (issue 33): `keysync verify` gives every
// verification case of keyring/testdata/vectors.json its expected outcome, and `keysync
// sign` every keyed signature, against the vector's document in a file store.
func TestVerifyAndSignAgreeWithTheSharedVectors(t *testing.T) {
	var v struct {
		Keyrings []struct {
			Name, Document string
			Sign           []struct{ At, Payload, Signature, Error string }
			Verify         []struct{ Name, At, Payload, Signature, Error string }
		}
	}
	data, err := os.ReadFile("../../keyring/testdata/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cases := 0
	for i, kr := range v.Keyrings {
		store := filepath.Join(dir, "keys.json")
		os.WriteFile(store, []byte(kr.Document), 0o600)
		payload := filepath.Join(dir, "payload")
		run1 := func(args ...string) (string, error) {
			var out, errOut bytes.Buffer
			err := run(context.Background(), args, func(string) string { return "" }, &out, &errOut)
			return out.String(), err
		}
		for _, c := range kr.Verify {
			os.WriteFile(payload, []byte(c.Payload), 0o600)
			out, err := run1("verify", "--store", "file://"+store, "--signature", c.Signature, "--at", c.At, "--payload-file", payload)
			switch {
			case c.Error == "" && (err != nil || !strings.HasPrefix(out, "verified: ")):
				t.Errorf("%d %s / %s: want verified, got %v: %s", i, kr.Name, c.Name, err, out)
			case c.Error != "" && (err == nil || !strings.HasPrefix(out, "refused: "+c.Error+": ")):
				t.Errorf("%d %s / %s: want refused %s, got %v: %s", i, kr.Name, c.Name, c.Error, err, out)
			}
			cases++
		}
		for _, c := range kr.Sign {
			if c.Error != "" {
				continue
			}
			os.WriteFile(payload, []byte(c.Payload), 0o600)
			out, err := run1("sign", "--store", "file://"+store, "--at", c.At, "--payload-file", payload)
			if err != nil || strings.TrimSpace(out) != c.Signature {
				t.Errorf("%d %s: sign at %s: %v %q, want %q", i, kr.Name, c.At, err, out, c.Signature)
			}
			cases++
		}
	}
	if cases < 50 {
		t.Fatalf("only %d cases", cases)
	}
}
