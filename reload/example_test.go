package reload_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/sigil-dna/keysync/keyring"
	"github.com/sigil-dna/keysync/reload"
)

// An app opens the keys file the sidecar writes, signs with the active key and verifies
// against every valid key. Signatures name their key.
func Example() {
	dir, _ := os.MkdirTemp("", "keysync-example")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "keys.json")

	// What the sidecar would write: a keyring with one key.
	secret := make(keyring.Secret, 32) // all zero, for a stable example only
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	r, _ := keyring.Stage(nil, now, secret, keyring.Options{RotatedBy: "example"})
	doc, _ := keyring.Encode(r)
	_ = os.WriteFile(path, doc, 0o440)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	keys, err := reload.Open(ctx, path, reload.WithClock(func() time.Time { return now }))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer keys.Close()

	sig, _ := keys.Sign([]byte(`{"type":"spiral"}`))
	fmt.Println(sig)
	fmt.Println("verify:", keys.Verify([]byte(`{"type":"spiral"}`), sig))
	fmt.Println("tampered:", keys.Verify([]byte(`{"type":"forged"}`), sig))
	fmt.Println("generation:", keys.Status().Generation)
	// Output:
	// ks1.6c3fe223a867c55f.a05007a3c05895648557dc794327b10f43b61dd38d605c5a70049011e11d9166
	// verify: <nil>
	// tampered: keyring: signature does not match
	// generation: 1
}
