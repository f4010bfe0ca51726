#!/usr/bin/env bash
# Obtains the Node test dependencies and prints the path of tsc: the TypeScript compiler
# (5.9.3) with Node's type definitions (@types/node 20), for the compile checks of the Node
# library's typings and README, and prom-client (15.1.3), for the test of the library's
# prom-client hook. Installed once from the npm registry into the cache; not a runtime
# dependency of anything (the library takes prom-client as an argument).
source "$(dirname "$0")/common.sh"

TS_VERSION=5.9.3
TYPES_NODE_VERSION=20.19.43
PROM_CLIENT_VERSION=15.1.3
DIR="$TESTBIN/typescript-$TS_VERSION"

build() {
	[ -x "$DIR/node_modules/.bin/tsc" ] && [ -d "$DIR/node_modules/@types/node" ] && [ -d "$DIR/node_modules/prom-client" ] && return 0
	say "installing typescript@$TS_VERSION, @types/node@$TYPES_NODE_VERSION and prom-client@$PROM_CLIENT_VERSION from npm into $DIR (once per machine)"
	rm -rf "$DIR.tmp"
	mkdir -p "$DIR.tmp"
	(cd "$DIR.tmp" && echo '{"private":true}' >package.json &&
		npm install --no-audit --no-fund --silent "typescript@$TS_VERSION" "@types/node@$TYPES_NODE_VERSION" "prom-client@$PROM_CLIENT_VERSION" >&2)
	rm -rf "$DIR"
	mv "$DIR.tmp" "$DIR"
	say "installed $DIR"
}

with_lock typescript build
echo "$DIR/node_modules/.bin/tsc"
