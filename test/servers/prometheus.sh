#!/usr/bin/env bash
# Obtains Prometheus 2.42 (promtool and the server) from Debian bookworm's `prometheus`
# package for the alert-rule tests and prints the directory holding both. The package is
# downloaded and unpacked into the cache, not installed: no service, no user, nothing
# started. Building promtool from the Go module proxy instead takes about 28 minutes on 2
# cores, which a cold CI run cannot afford; the .deb takes seconds.
source "$(dirname "$0")/common.sh"

PROM_VERSION=2.42.0
DIR="$TESTBIN/prometheus-$PROM_VERSION"

build() {
	[ -x "$DIR/promtool" ] && [ -x "$DIR/prometheus" ] && return 0
	say "unpacking Debian's prometheus $PROM_VERSION package into $DIR (once per machine)"
	local tmp
	tmp=$(mktemp -d)
	chmod 755 "$tmp" # apt downloads as its own user
	# apt-get download needs the package lists; a fresh machine has none until `apt-get update`.
	if ! (cd "$tmp" && apt-get download "prometheus=$PROM_VERSION*" >&2); then
		say "the package is not in the apt lists; running apt-get update"
		apt-get update -qq >&2
		(cd "$tmp" && apt-get download "prometheus=$PROM_VERSION*" >&2)
	fi
	dpkg-deb -x "$tmp"/prometheus_*.deb "$tmp/root"
	rm -rf "$DIR.tmp"
	mkdir -p "$DIR.tmp"
	cp "$tmp/root/usr/bin/prometheus" "$tmp/root/usr/bin/promtool" "$DIR.tmp/"
	"$DIR.tmp/promtool" --version >&2
	rm -rf "$DIR" "$tmp"
	mv "$DIR.tmp" "$DIR"
	say "unpacked $DIR"
}

with_lock prometheus build
echo "$DIR"
