//go:build !keysync_omit_vault

package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/sigil-dna/keysync/internal/cli"
	"github.com/sigil-dna/keysync/keyring"
	"github.com/sigil-dna/keysync/store"
	"github.com/sigil-dna/keysync/store/vault"
)

func init() {
	register(family{familyInfo: familyInfo{
		Name:   "vault",
		Stores: []storeKind{{"vault", "vault://MOUNT/PATH", "HashiCorp Vault KV v2 (VAULT_ADDR, VAULT_TOKEN, …)"}},
		Flags: []flagDef{
			{"vault-addr", "string", "", "Vault address (default: $VAULT_ADDR)"},
			{"vault-namespace", "string", "", "Vault namespace (default: $VAULT_NAMESPACE)"},
			{"vault-cacert", "string", "", "CA certificate `file` for Vault's TLS (default: $VAULT_CACERT)"},
			{"vault-auth", "string", vault.MethodToken, "Vault login: token ($VAULT_TOKEN), token-file, approle or kubernetes"},
			{"vault-token-file", "string", "", "token `file` for --vault-auth token-file (e.g. a Vault Agent sink; re-read after a 403)"},
			{"vault-role-id", "string", "", "AppRole role id for --vault-auth approle"},
			{"vault-secret-id-file", "string", "", "`file` holding the AppRole secret id"},
			{"vault-role", "string", "", "Vault role for --vault-auth kubernetes"},
			{"vault-jwt-file", "string", vault.DefaultJWTFile, "service-account token `file` for --vault-auth kubernetes"},
			{"vault-auth-mount", "string", "", "auth mount path (default: approle or kubernetes)"},
		},
	}, open: func(ctx context.Context, f *storeFlags, raw string, getenv func(string) string, log *slog.Logger) (store.Store, error) {
		mount, path, err := vault.ParseURL(raw)
		if err != nil {
			return nil, cli.UsageError{Err: err}
		}
		startup, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		return vault.New(startup, vault.Config{
			Mount: mount, Path: path, Address: f.str("vault-addr"), Namespace: f.str("vault-namespace"), CACert: f.str("vault-cacert"), Plain: f.plain(), Log: log,
			Auth: vault.Auth{Method: f.str("vault-auth"), Token: keyring.Secret(getenv("VAULT_TOKEN")), TokenFile: f.str("vault-token-file"),
				RoleID: f.str("vault-role-id"), SecretIDFile: f.str("vault-secret-id-file"), Role: f.str("vault-role"), JWTFile: f.str("vault-jwt-file"),
				Mount: f.str("vault-auth-mount")},
		})
	}})
}
