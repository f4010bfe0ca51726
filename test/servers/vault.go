// Package servers starts the real servers the tests use and finds the tools they run: a
// Vault dev server, kube-apiserver with etcd (the envtest assets), kubeconfigs for them,
// Helm, the node assets, TypeScript and prom-client, and Prometheus, each built or fetched
// once by its script in test/servers (vault.sh, kube.sh, typescript.sh, …) and cached
// under $KEYSYNC_TESTBIN, outside the repository.
package servers

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/sigil-dna/keysync/harness/ports"
)

// RepoRoot finds the repository root from the caller's source file.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// VaultBinary returns the Vault binary: $KEYSYNC_VAULT_BIN, or what test/servers/vault.sh
// builds or finds in its cache (the first build takes 15-30 minutes).
func VaultBinary() (string, error) {
	if b := os.Getenv("KEYSYNC_VAULT_BIN"); b != "" {
		return b, nil
	}
	cmd := exec.Command("bash", filepath.Join(RepoRoot(), "test", "servers", "vault.sh"))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("test/servers/vault.sh: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

// Vault is a running `vault server -dev` on loopback, root token "root", storage in memory.
type Vault struct {
	Bin   string
	Addr  string
	Token string
	port  int
	cmd   *exec.Cmd
	log   *bytes.Buffer
}

// StartVault starts a dev server on a free port.
func StartVault(bin string) (*Vault, error) {
	port, err := ports.FreePair()
	if err != nil {
		return nil, err
	}
	v := &Vault{Bin: bin, Addr: fmt.Sprintf("http://127.0.0.1:%d", port), Token: "root", port: port}
	return v, v.Start()
}

// Start (re)starts the server on its port; a restarted dev server is empty.
func (v *Vault) Start() error {
	v.log = &bytes.Buffer{}
	v.cmd = exec.Command(v.Bin, "server", "-dev", "-dev-root-token-id="+v.Token,
		fmt.Sprintf("-dev-listen-address=127.0.0.1:%d", v.port))
	v.cmd.Stdout, v.cmd.Stderr = v.log, v.log
	v.cmd.Env = append(os.Environ(), "VAULT_DEV_ROOT_TOKEN_ID="+v.Token, "HOME="+os.TempDir())
	v.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := v.cmd.Start(); err != nil {
		return fmt.Errorf("starting vault: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		resp, err := http.Get(v.Addr + "/v1/sys/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	v.Stop()
	return fmt.Errorf("vault did not become healthy at %s:\n%s", v.Addr, v.log.String())
}

// Stop kills the server and waits for it, so the port can be reused.
func (v *Vault) Stop() {
	if v.cmd != nil && v.cmd.Process != nil {
		_ = v.cmd.Process.Kill()
		_ = v.cmd.Wait()
	}
}

// CLI runs the vault binary as the CLI against this server.
func (v *Vault) CLI(args ...string) ([]byte, error) {
	cmd := exec.Command(v.Bin, args...)
	cmd.Env = append(os.Environ(), "VAULT_ADDR="+v.Addr, "VAULT_TOKEN="+v.Token, "HOME="+os.TempDir())
	return cmd.CombinedOutput()
}

// PutRaw writes data to the KV v2 secret at path under the "secret" mount with the root
// token, bypassing keysync (to plant a document keysync would refuse).
func (v *Vault) PutRaw(path string, data map[string]any) error {
	body, err := json.Marshal(map[string]any{"data": data})
	if err != nil {
		return err
	}
	req, _ := http.NewRequest(http.MethodPost, v.Addr+"/v1/secret/data/"+path, bytes.NewReader(body))
	req.Header.Set("X-Vault-Token", v.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("vault put %s: %s", path, resp.Status)
	}
	return nil
}
