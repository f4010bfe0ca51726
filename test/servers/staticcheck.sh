#!/usr/bin/env bash
# Obtains staticcheck (v0.8.2) for `make lint` and prints its path. The first run builds it
# from the Go module proxy (about a minute once its modules are downloaded); later runs
# reuse it.
source "$(dirname "$0")/common.sh"
go_install_tool staticcheck honnef.co/go/tools/cmd/staticcheck 0.8.2
