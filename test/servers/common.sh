#!/usr/bin/env bash
# Shared helpers for the scripts that obtain the real servers the tests use.
# Build outputs live outside the repository, in a cache that the developer's machine
# and CI (which share a machine) reuse: ${KEYSYNC_TESTBIN:-$HOME/.cache/keysync/testbin}.
set -euo pipefail

TESTBIN="${KEYSYNC_TESTBIN:-$HOME/.cache/keysync/testbin}"
mkdir -p "$TESTBIN"

say() { printf 'keysync-test: %s\n' "$*" >&2; }

# with_lock NAME CMD...: one build of NAME at a time, even across concurrent callers.
with_lock() {
	local name=$1
	shift
	exec {lockfd}>"$TESTBIN/.$name.lock"
	flock "$lockfd"
	"$@"
	exec {lockfd}>&-
}

# deb_unpack DIR PKG...: downloads Debian's packages PKG (apt-get update first when the
# package lists lack them) and unpacks their files under DIR, installing nothing: no
# maintainer script runs, no service starts, nothing of the machine changes.
deb_unpack() {
	local dir=$1
	shift
	mkdir -p "$dir"
	(cd "$dir" && { apt-get download "$@" >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get download "$@" >/dev/null; }; })
	local deb
	for deb in "$dir"/*.deb; do dpkg-deb -x "$deb" "$dir/root"; done
}

# go_install_tool NAME MODULE/CMD VERSION: builds a Go tool once into $TESTBIN/NAME-VERSION
# (go install from the module proxy) and prints its path.
go_install_tool() {
	local name=$1 pkg=$2 version=$3
	local bin="$TESTBIN/$name-$version"
	build() {
		[ -x "$bin" ] && return 0
		say "building $name v$version from the Go module proxy into $bin (once per machine)"
		local gobin
		gobin=$(mktemp -d)
		GOBIN="$gobin" GOTOOLCHAIN=local GOFLAGS=-buildvcs=false go install "$pkg@v$version"
		mv "$gobin/$name" "$bin"
		rm -rf "$gobin"
		say "built $bin"
	}
	with_lock "$name" build
	echo "$bin"
}
