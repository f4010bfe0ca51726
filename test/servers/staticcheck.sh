#!/usr/bin/env bash
# Obtains staticcheck (v0.8.2) for `make lint` and prints its path. The first run builds it
# from the Go module proxy (about a minute once its modules are downloaded); later runs
# reuse it.
source "$(dirname "$0")/common.sh"

STATICCHECK_VERSION=0.8.2
BIN="$TESTBIN/staticcheck-$STATICCHECK_VERSION"

build() {
	[ -x "$BIN" ] && return 0
	say "building staticcheck v$STATICCHECK_VERSION from the Go module proxy into $BIN (once per machine)"
	local gobin
	gobin=$(mktemp -d)
	GOBIN="$gobin" GOTOOLCHAIN=local GOFLAGS=-buildvcs=false go install "honnef.co/go/tools/cmd/staticcheck@v$STATICCHECK_VERSION"
	mv "$gobin/staticcheck" "$BIN"
	rm -rf "$gobin"
	say "built $BIN"
}

with_lock staticcheck build
echo "$BIN"
