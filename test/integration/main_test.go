// Package integration tells the cross-layer story once: every store backend, on its real
// test server, under a real sidecar and the app's reload library; and keysync against
// several real servers at once (Vault's Kubernetes auth).
package integration

import (
	"fmt"
	"os"
	"testing"

	"github.com/sigil-dna/keysync/test/servers"
)

// The servers every test of the package shares.
var (
	vaultServer *servers.Vault
	kubeServer  *servers.Kube
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "keysync-integration-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if kubeServer, err = servers.StartKube(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer kubeServer.Stop()
	bin, err := servers.VaultBinary()
	if err == nil {
		vaultServer, err = servers.StartVault(bin)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer vaultServer.Stop()
	return m.Run()
}
