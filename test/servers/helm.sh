#!/usr/bin/env bash
# Obtains the helm CLI (v3.22.0) for the chart tests and prints its path. The first run
# builds it from the Go module proxy (5-12 minutes on 2 cores); later runs reuse it.
source "$(dirname "$0")/common.sh"
go_install_tool helm helm.sh/helm/v3/cmd/helm 3.22.0
