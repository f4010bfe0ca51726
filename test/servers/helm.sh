#!/usr/bin/env bash
# Obtains the helm CLI (v3.22.0) for the chart tests and prints its path. The first run
# builds it from the Go module proxy (5-12 minutes on 2 cores); later runs reuse it.
source "$(dirname "$0")/common.sh"

HELM_VERSION=3.22.0
BIN="$TESTBIN/helm-$HELM_VERSION"

build() {
	[ -x "$BIN" ] && return 0
	say "building helm v$HELM_VERSION from the Go module proxy into $BIN (once per machine, 5-12 minutes)"
	local gobin
	gobin=$(mktemp -d)
	GOBIN="$gobin" GOTOOLCHAIN=local GOFLAGS=-buildvcs=false go install "helm.sh/helm/v3/cmd/helm@v$HELM_VERSION"
	mv "$gobin/helm" "$BIN"
	rm -rf "$gobin"
	say "built $BIN"
}

with_lock helm build
echo "$BIN"
