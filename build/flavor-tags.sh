#!/bin/sh
# Prints the Go build tags of a keysync flavor: full (every store), or file, vault, kube,
# aws, gcp (the file store plus that family). One place for the Makefile, the Dockerfile
# and the tests. grpcnotrace drops gRPC's x/net/trace, whose html/template keeps every
# exported method of every linked type (the full binary: 63.6 MB without it, 39.6 MB with).
set -eu
flavor=${1:-full}
families="vault kube aws gcp"
tags=grpcnotrace
case " full file $families " in
*" $flavor "*) ;;
*) echo "flavor-tags.sh: unknown flavor '$flavor' (full, file, vault, kube, aws, gcp)" >&2; exit 2 ;;
esac
if [ "$flavor" != full ]; then
	for f in $families; do
		[ "$f" = "$flavor" ] || tags="$tags,keysync_omit_$f"
	done
fi
echo "$tags"
