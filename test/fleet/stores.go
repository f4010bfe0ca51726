package main

// Where the benchmark keeps its keyring: a file, a Vault dev server behind a counting
// proxy, or one of the AWS stores (aws.go).

import (
	"context"
	"path/filepath"

	"github.com/sigil-dna/keysync/keyring"
	"github.com/sigil-dna/keysync/store"
	"github.com/sigil-dna/keysync/store/file"
	"github.com/sigil-dna/keysync/store/vault"
	"github.com/sigil-dna/keysync/test/counting"
	"github.com/sigil-dna/keysync/test/servers"
)

func (b *bench) startStore(ctx context.Context) error {
	plain := store.PlainOptions{}
	if b.cfg.Store == "file" {
		path := filepath.Join(b.cfg.Work, "store", "keys.json")
		st, err := file.New(path, plain)
		if err != nil {
			return err
		}
		b.st, b.sidecarStore = st, "file://"+path
		return nil
	}
	if b.cfg.Store == "ssm" || b.cfg.Store == "secretsmanager" {
		return b.startAWS(ctx)
	}
	v, err := servers.StartVault(b.cfg.VaultBin)
	if err != nil {
		return err
	}
	b.vault = v
	if b.proxy, err = counting.Start(v.Addr); err != nil {
		return err
	}
	b.env = []string{"VAULT_ADDR=" + b.proxy.URL(), "VAULT_TOKEN=" + v.Token}
	b.sidecarStore = "vault://secret/" + storePath
	b.st, err = b.openVault(ctx)
	return err
}

// openVault is the harness's own client, straight to Vault: its requests are not counted.
func (b *bench) openVault(ctx context.Context) (store.Store, error) {
	return vault.New(ctx, vault.Config{Mount: "secret", Path: storePath, Address: b.vault.Addr, Auth: vault.Auth{Token: keyring.Secret(b.vault.Token)}})
}
