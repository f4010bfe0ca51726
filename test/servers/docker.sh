#!/usr/bin/env bash
# Obtains a Docker engine and Compose for the docker compose test and prints the folder
# holding them: bin/dockerd, bin/docker, bin/docker-proxy, bin/docker-init (tini) from
# Debian's docker.io package, and cli-plugins/docker-compose (Compose v5, built from the Go
# module proxy). Nothing is installed on the machine: the packages' files are extracted
# into the cache (no daemon is started by a postinst, no docker group, no /etc/docker), and
# the test starts dockerd with roots, a socket and networks of its own (test/docker).
# About 1 minute for the packages and 4-8 minutes for Compose on 2 cores, once.
source "$(dirname "$0")/common.sh"

ENGINE_VERSION=20.10.24
COMPOSE_VERSION=5.6.0
DIR="$TESTBIN/docker-$ENGINE_VERSION-compose-$COMPOSE_VERSION"

engine() {
	[ -x "$DIR/bin/dockerd" ] && return 0
	say "extracting Debian's docker.io $ENGINE_VERSION into $DIR (once per machine)"
	local tmp
	tmp=$(mktemp -d)
	deb_unpack "$tmp" docker.io tini
	mkdir -p "$DIR/bin"
	cp "$tmp/root/usr/sbin/dockerd" "$tmp/root/usr/sbin/docker-proxy" "$tmp/root/usr/bin/docker" "$DIR/bin/"
	cp "$tmp/root/usr/bin/tini-static" "$DIR/bin/docker-init"
	rm -rf "$tmp"
	"$DIR/bin/dockerd" --version >&2
}

compose() {
	[ -x "$DIR/cli-plugins/docker-compose" ] && return 0
	say "building Docker Compose v$COMPOSE_VERSION from the Go module proxy into $DIR (once per machine; 4-8 minutes)"
	local dir="$TESTBIN/composebuild"
	mkdir -p "$dir" "$DIR/cli-plugins"
	# Compose's own go.mod excludes these two (kustomize's pins); a module that builds it
	# must too.
	cat >"$dir/go.mod" <<MOD
module keysync.test/composebuild

go 1.26.8

exclude (
	github.com/davecgh/go-spew v1.1.2-0.20180830191138-d8f796af33cc
	github.com/pmezard/go-difflib v1.0.1-0.20181226105442-5d4384ee4fb2
)
MOD
	(cd "$dir" &&
		GOTOOLCHAIN=local GOFLAGS=-buildvcs=false go get "github.com/docker/compose/v5/cmd@v$COMPOSE_VERSION" &&
		GOTOOLCHAIN=local GOFLAGS=-buildvcs=false CGO_ENABLED=0 go build -trimpath \
			-ldflags="-s -w -X github.com/docker/compose/v5/internal.Version=v$COMPOSE_VERSION" \
			-o "$DIR/cli-plugins/docker-compose.tmp" github.com/docker/compose/v5/cmd)
	mv "$DIR/cli-plugins/docker-compose.tmp" "$DIR/cli-plugins/docker-compose"
	rm -rf "$dir"
	say "built $DIR/cli-plugins/docker-compose"
}

with_lock docker engine
with_lock compose compose
echo "$DIR"
