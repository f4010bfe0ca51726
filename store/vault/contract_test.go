package vault_test

import (
	"testing"

	"github.com/sigil-dna/keysync/store/storetest"
	"github.com/sigil-dna/keysync/store/vault"
	"github.com/sigil-dna/keysync/store/vault/vaulttest"
)

func TestContract(t *testing.T) {
	storetest.Run(t, vaulttest.Backend(vault.DevServer()))
}
