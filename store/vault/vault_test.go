package vault

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/sigil-dna/keysync/keyring"
	"github.com/sigil-dna/keysync/store"
	"github.com/sigil-dna/keysync/store/storetest"
	"github.com/sigil-dna/keysync/test/servers"
)

// server is the real Vault dev server shared by the package's tests.
var server *servers.Vault

func TestMain(m *testing.M) {
	bin, err := servers.VaultBinary()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	server, err = servers.StartVault(bin)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	server.Stop()
	os.Exit(code)
}

var pathSeq atomic.Int64

func uniquePath(t *testing.T) string {
	return fmt.Sprintf("keysync-test/%s-%d", strings.NewReplacer("/", "-", " ", "-").Replace(t.Name()), pathSeq.Add(1))
}

func newStore(t *testing.T, path string, mod ...func(*Config)) *Store {
	t.Helper()
	cfg := Config{Mount: "secret", Path: path, Address: server.Addr, Auth: Auth{Token: keyring.Secret(server.Token)}, Plain: storetest.Schedule}
	for _, m := range mod {
		m(&cfg)
	}
	s, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// DevServer is the package's Vault dev server, for the external contract test.
func DevServer() *servers.Vault { return server }

func rootClient(t *testing.T) *api.Client {
	t.Helper()
	cfg := api.DefaultConfig()
	cfg.Address = server.Addr
	c, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken(server.Token)
	return c
}

func TestParseURL(t *testing.T) {
	m, p, err := ParseURL("vault://secret/sigil/spiral-event-secret")
	if err != nil || m != "secret" || p != "sigil/spiral-event-secret" {
		t.Fatalf("%q %q %v", m, p, err)
	}
	for _, bad := range []string{"vault://secret", "vault:///x", "file:///x"} {
		if _, _, err := ParseURL(bad); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

// countingTransport counts requests by method and path.
type countingTransport struct {
	mu   sync.Mutex
	reqs []string
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.mu.Lock()
	c.reqs = append(c.reqs, r.Method+" "+r.URL.Path)
	c.mu.Unlock()
	return http.DefaultTransport.RoundTrip(r)
}

func (c *countingTransport) take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.reqs
	c.reqs = nil
	return out
}

func TestAnIdlePollIsOneMetadataRead(t *testing.T) {
	ct := &countingTransport{}
	path := uniquePath(t)
	s := newStore(t, path, func(c *Config) { c.HTTPClient = &http.Client{Transport: ct} })
	r, _ := keyring.Stage(nil, time.Now(), storetest.Secret("poll"), keyring.Options{})
	if _, err := s.Write(t.Context(), r, ""); err != nil {
		t.Fatal(err)
	}
	const polls = 10
	storetest.IdlePolls(t, s, polls, func() { ct.take() })
	reqs := ct.take()
	if len(reqs) != polls {
		t.Fatalf("%d requests for %d idle polls: %v", len(reqs), polls, reqs)
	}
	for _, r := range reqs {
		if r != "GET /v1/secret/metadata/"+path {
			t.Fatalf("idle poll made %s", r)
		}
	}
	t.Logf("idle poll: %d request per poll (%s)", len(reqs)/polls, reqs[0])
}

func TestDeletedOrDestroyedLatestVersionIsNotFound(t *testing.T) {
	path := uniquePath(t)
	s := newStore(t, path)
	r, _ := keyring.Stage(nil, time.Now(), storetest.Secret("d"), keyring.Options{})
	if _, err := s.Write(t.Context(), r, ""); err != nil {
		t.Fatal(err)
	}
	kv := rootClient(t).KVv2("secret")
	if err := kv.Delete(t.Context(), path); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Read(t.Context()); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleted: err = %v", err)
	}
	if err := kv.Destroy(t.Context(), path, []int{1}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Read(t.Context()); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("destroyed: err = %v", err)
	}
	// A rotation on the emptied secret writes version 2.
	if v, err := s.Write(t.Context(), r, ""); err != nil || v != "2" {
		t.Fatalf("write after delete: %q %v", v, err)
	}
}

func TestCustomMetadataRecordsTheRotation(t *testing.T) {
	path := uniquePath(t)
	s := newStore(t, path)
	r := storetest.Rotate(t, s, keyring.Options{RotatedBy: "alice@host", Reason: "cadence"})
	md, err := rootClient(t).KVv2("secret").GetMetadata(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	cm := md.CustomMetadata
	if cm["keysync_rotated_by"] != "alice@host" || cm["keysync_reason"] != "cadence" || cm["keysync_key_ids"] != strings.Join(r.IDs(), ",") || cm["keysync_generation"] != "1" {
		t.Fatalf("custom metadata %v", cm)
	}
}

// TestPlainValueWrittenByTheTicketsCommand runs the ticket's exact operator command with
// the real vault CLI, twice, and reads the result as a staged keyring.
func TestPlainValueWrittenByTheTicketsCommand(t *testing.T) {
	bin := t.TempDir()
	if err := os.Symlink(server.Bin, filepath.Join(bin, "vault")); err != nil {
		t.Fatal(err)
	}
	ticket := func() {
		cmd := exec.Command("bash", "-c", "vault kv put secret/sigil/spiral-event-secret value=$(openssl rand -hex 32)")
		cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"), "VAULT_ADDR="+server.Addr, "VAULT_TOKEN="+server.Token, "HOME="+t.TempDir())
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
	}
	ticket()
	ticket()
	s := newStore(t, "sigil/spiral-event-secret")
	snap, err := s.Read(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if !snap.Plain || len(snap.Keyring.Keys) != 2 || snap.Keyring.Generation != 2 {
		t.Fatalf("%+v", snap.Keyring)
	}
	md, _ := rootClient(t).KVv2("secret").GetMetadata(t.Context(), "sigil/spiral-event-secret")
	created := md.Versions["2"].CreatedTime.UTC().Truncate(time.Millisecond)
	if cur := snap.Keyring.Keys[1]; !cur.NotBefore.Equal(created.Add(storetest.Schedule.ActivationDelay)) {
		t.Fatalf("current value signs from %s, want created_time %s + the delay", cur.NotBefore, created)
	}
	// The value is the key byte for byte: what the existing service signs today verifies.
	out, err := server.CLI("kv", "get", "-field=value", "secret/sigil/spiral-event-secret")
	if err != nil {
		t.Fatal(err)
	}
	value := strings.TrimSpace(string(out))
	m := hmac.New(sha256.New, []byte(value))
	m.Write([]byte(`{"type":"spiral"}`))
	if err := keyring.NewSigner(snap.Keyring).Verify(time.Now(), []byte(`{"type":"spiral"}`), hex.EncodeToString(m.Sum(nil))); err != nil {
		t.Fatalf("the existing service's signature does not verify: %v", err)
	}
	// Rotating over the plain value writes a keyring document that keeps both values.
	next := storetest.Rotate(t, s, keyring.Options{})
	snap, err = s.Read(t.Context())
	if err != nil || snap.Plain || snap.Keyring.Generation != 3 || len(snap.Keyring.Keys) != 3 || next.Generation != 3 {
		t.Fatalf("%v %+v", err, snap)
	}
}

// TestABurstOfTheTicketsCommandKeepsTheSigningKey: issue 29. The ticket's command run
// three times within the activation delay (a retried script) built the keyring from the
// two newest versions: the first value, still the signing key, was dropped, and the
// second value's activation moved to its creation. With the real CLI on the real Vault.
func TestABurstOfTheTicketsCommandKeepsTheSigningKey(t *testing.T) {
	bin := t.TempDir()
	if err := os.Symlink(server.Bin, filepath.Join(bin, "vault")); err != nil {
		t.Fatal(err)
	}
	path := uniquePath(t)
	ticket := func() {
		cmd := exec.Command("bash", "-c", "vault kv put secret/"+path+" value=$(openssl rand -hex 32)")
		cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"), "VAULT_ADDR="+server.Addr, "VAULT_TOKEN="+server.Token, "HOME="+t.TempDir())
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
	}
	s := newStore(t, path)
	read := func() *keyring.Keyring {
		t.Helper()
		snap, err := s.Read(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		return snap.Keyring
	}
	var rings []*keyring.Keyring
	for range 3 {
		ticket()
		rings = append(rings, read())
		time.Sleep(time.Second) // well within the 30 s activation delay
	}
	first, second, third := rings[0].Keys[0], rings[1].Keys[1], rings[2]
	md, _ := rootClient(t).KVv2("secret").GetMetadata(t.Context(), path)
	created := func(v string) time.Time { return md.Versions[v].CreatedTime.UTC().Truncate(time.Millisecond) }
	if len(third.Keys) != 3 || third.Generation != 3 {
		t.Fatalf("after the third value: %d keys, generation %d: %v", len(third.Keys), third.Generation, third.IDs())
	}
	if k, ok := third.SigningKey(time.Now()); !ok || k.ID != first.ID {
		t.Fatalf("the signing key after the third value is %s, want the first value %s (the second signs from %s)", k.ID, first.ID, second.NotBefore)
	}
	if got, _ := third.Key(second.ID); !got.NotBefore.Equal(created("2").Add(storetest.Schedule.ActivationDelay)) || !got.NotBefore.Equal(second.NotBefore) {
		t.Fatalf("the second value signs from %s after the third, from %s before; created %s", got.NotBefore, second.NotBefore, created("2"))
	}
	if got, _ := third.Key(first.ID); !got.NotAfter.Equal(second.NotBefore.Add(storetest.Schedule.VerifyWindow)) {
		t.Fatalf("the first value verifies until %s, want the window after the second signs (%s)", got.NotAfter, second.NotBefore)
	}
	if k := third.Keys[2]; !k.NotBefore.Equal(created("3").Add(storetest.Schedule.ActivationDelay)) {
		t.Fatalf("the third value signs from %s, created %s", k.NotBefore, created("3"))
	}
}

// enableAppRole sets up a role that may read and write one path.
func enableAppRole(t *testing.T, path string, ttl string) (roleID, secretIDFile string) {
	t.Helper()
	c := rootClient(t)
	if err := c.Sys().EnableAuthWithOptions("approle", &api.EnableAuthOptions{Type: "approle"}); err != nil && !strings.Contains(err.Error(), "path is already in use") {
		t.Fatal(err)
	}
	policy := fmt.Sprintf(`path "secret/data/%[1]s" { capabilities = ["read", "create", "update"] }
path "secret/metadata/%[1]s" { capabilities = ["read", "patch"] }`, path)
	name := strings.ReplaceAll(path, "/", "-")
	if err := c.Sys().PutPolicy(name, policy); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Logical().Write("auth/approle/role/"+name, map[string]any{"token_policies": name, "token_ttl": ttl, "token_max_ttl": "1h"}); err != nil {
		t.Fatal(err)
	}
	r, err := c.Logical().Read("auth/approle/role/" + name + "/role-id")
	if err != nil {
		t.Fatal(err)
	}
	sid, err := c.Logical().Write("auth/approle/role/"+name+"/secret-id", nil)
	if err != nil {
		t.Fatal(err)
	}
	secretIDFile = filepath.Join(t.TempDir(), "secret-id")
	os.WriteFile(secretIDFile, []byte(sid.Data["secret_id"].(string)+"\n"), 0o600)
	return r.Data["role_id"].(string), secretIDFile
}

func TestAppRoleLoginAndTokenRenewal(t *testing.T) {
	path := uniquePath(t)
	roleID, secretIDFile := enableAppRole(t, path, "3s")
	s := newStore(t, path, func(c *Config) { c.Auth = Auth{Method: MethodAppRole, RoleID: roleID, SecretIDFile: secretIDFile} })
	r, _ := keyring.Stage(nil, time.Now(), storetest.Secret("approle"), keyring.Options{})
	if _, err := s.Write(t.Context(), r, ""); err != nil {
		t.Fatal(err)
	}
	first := s.client.Token()
	// Outlive three token TTLs: renewal at 2 s keeps the same token valid.
	deadline := time.Now().Add(7 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := s.Read(t.Context()); err != nil {
			t.Fatalf("read with an expiring token: %v", err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if s.client.Token() != first {
		t.Fatal("the token was replaced rather than renewed")
	}
	sec, err := s.client.Auth().Token().LookupSelf()
	if err != nil {
		t.Fatal(err)
	}
	if ttl, _ := sec.TokenTTL(); ttl <= 0 {
		t.Fatalf("token ttl %s after renewals", ttl)
	}
	// The role's policy covers only its path: another path is forbidden.
	other := newStore(t, uniquePath(t), func(c *Config) { c.Auth = Auth{Method: MethodAppRole, RoleID: roleID, SecretIDFile: secretIDFile} })
	_, err = other.Read(t.Context())
	if err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("read outside the policy: %v", err)
	}
	// Issue 29: the Vault client's error spans six lines, and so did every progress line
	// and status table that showed it. One line: method, path, status, Vault's message.
	if msg := err.Error(); strings.ContainsAny(msg, "\n\r") || !strings.Contains(msg, "GET /v1/secret/metadata/"+other.cfg.Path+": 403 Forbidden: permission denied") {
		t.Fatalf("the error is not one condensed line: %q", msg)
	}
}

func TestTokenFileIsReadAgainAfterA403(t *testing.T) {
	path := uniquePath(t)
	c := rootClient(t)
	mk := func() string {
		sec, err := c.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{"root"}, TTL: "1h"})
		if err != nil {
			t.Fatal(err)
		}
		return sec.Auth.ClientToken
	}
	tokenFile := filepath.Join(t.TempDir(), "token")
	old := mk()
	os.WriteFile(tokenFile, []byte(old), 0o600)
	s := newStore(t, path, func(c *Config) { c.Auth = Auth{Method: MethodTokenFile, TokenFile: tokenFile} })
	r, _ := keyring.Stage(nil, time.Now(), storetest.Secret("tf"), keyring.Options{})
	if _, err := s.Write(t.Context(), r, ""); err != nil {
		t.Fatal(err)
	}
	// Vault Agent writes a new token and the old one is revoked.
	os.WriteFile(tokenFile, []byte(mk()), 0o600)
	if err := c.Auth().Token().RevokeTree(old); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Read(t.Context()); err != nil {
		t.Fatalf("read after the token was revoked: %v", err)
	}
}

func TestNoTokenIsAClearError(t *testing.T) {
	_, err := New(t.Context(), Config{Mount: "secret", Path: "x", Address: server.Addr})
	if err == nil || !strings.Contains(err.Error(), "VAULT_TOKEN") {
		t.Fatalf("err = %v", err)
	}
}
