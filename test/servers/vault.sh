#!/usr/bin/env bash
# Obtains a real HashiCorp Vault server binary (v1.21.1) for the tests and prints its path.
# The first run builds it from the Go module proxy in a throwaway module outside the repo
# (15-30 minutes on 2 cores); later runs reuse the cached binary at once.
source "$(dirname "$0")/common.sh"

VAULT_VERSION=1.21.1
BIN="$TESTBIN/vault-$VAULT_VERSION"

build() {
	[ -x "$BIN" ] && return 0
	say "building Vault v$VAULT_VERSION from the Go module proxy into $BIN"
	say "this happens once per machine and takes 15-30 minutes on 2 cores; later runs reuse it"
	local dir="$TESTBIN/vaultbuild"
	mkdir -p "$dir"
	cat >"$dir/go.mod" <<MOD
module keysync.test/vaultbuild

go 1.25.3

replace github.com/99designs/keyring => github.com/Jeffail/keyring v1.2.3

replace github.com/ma314smith/signedxml v1.1.1 => github.com/moov-io/signedxml v1.1.1

replace github.com/hashicorp/vault/sdk => github.com/hashicorp/vault/sdk v0.20.0
MOD
	# Never `go mod tidy` here: it pulls Vault's whole test graph (several GB).
	(cd "$dir" &&
		GOTOOLCHAIN=local GOFLAGS=-buildvcs=false go get "github.com/hashicorp/vault@v$VAULT_VERSION" &&
		GOTOOLCHAIN=local GOFLAGS=-buildvcs=false go build -ldflags='-s -w' -o "$BIN.tmp" github.com/hashicorp/vault)
	mv "$BIN.tmp" "$BIN"
	say "built $BIN"
}

with_lock vault build
echo "$BIN"
