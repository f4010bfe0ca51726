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
	register("vault", backend{open: func(ctx context.Context, f *storeFlags, raw string, getenv func(string) string, log *slog.Logger) (store.Store, error) {
		mount, path, err := vault.ParseURL(raw)
		if err != nil {
			return nil, cli.UsageError{Err: err}
		}
		v := f.vault
		startup, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		return vault.New(startup, vault.Config{
			Mount: mount, Path: path, Address: v.addr, Namespace: v.namespace, CACert: v.cacert, Plain: f.plain(), Log: log,
			Auth: vault.Auth{Method: v.auth, Token: keyring.Secret(getenv("VAULT_TOKEN")), TokenFile: v.tokenFile,
				RoleID: v.roleID, SecretIDFile: v.secretIDFile, Role: v.role, JWTFile: v.jwtFile, Mount: v.mount},
		})
	}})
}
