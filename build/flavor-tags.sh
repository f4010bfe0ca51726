#!/bin/sh
# Prints the Go build tags of a keysync flavor: full (every store), or file or one family
# of build/families (the file store plus that family). build/families is written from the
# registrations in cmd/keysync/stores_*.go (go test ./cmd/keysync -run
# TestTheFamiliesAreGenerated -update); this is the one place the tags are made, for the
# Makefile, the Dockerfile and the tests. grpcnotrace drops gRPC's x/net/trace, whose
# html/template keeps every exported method of every linked type (the full binary: 63.6 MB
# without it, 39.6 MB with).
set -eu
if [ "${1:-}" = --list ]; then
	echo "file $(cat "$(dirname "$0")/families")"
	exit 0
fi
flavor=${1:-full}
families=$(cat "$(dirname "$0")/families")
tags=grpcnotrace
case " full file $families " in
*" $flavor "*) ;;
*) echo "flavor-tags.sh: unknown flavor '$flavor' (full, file, $(echo "$families" | sed 's/ /, /g'))" >&2; exit 2 ;;
esac
if [ "$flavor" != full ]; then
	for f in $families; do
		[ "$f" = "$flavor" ] || tags="$tags,keysync_omit_$f"
	done
fi
echo "$tags"
