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
