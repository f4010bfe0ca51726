#!/usr/bin/env bash
# Obtains etcd, a real kube-apiserver (v1.37.2) and kubectl (same version) for the tests
# and prints the folder that holds them (usable as KUBEBUILDER_ASSETS for
# controller-runtime's envtest, and put first on PATH for kubectl).
# etcd comes from Debian's etcd-server package, unpacked without installing it.
# kube-apiserver is built from the Go module proxy in a throwaway module outside the repo
# (10-25 minutes on 2 cores the first time); later runs reuse the cached binaries.
source "$(dirname "$0")/common.sh"

KUBE_VERSION=1.37.2
ASSETS="$TESTBIN/kube-$KUBE_VERSION"

etcd() {
	[ -x "$ASSETS/etcd" ] && return 0
	say "fetching etcd from Debian's etcd-server package (unpacked, not installed)"
	local tmp
	tmp=$(mktemp -d)
	(cd "$tmp" && { apt-get download etcd-server >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get download etcd-server >/dev/null; }; } &&
		dpkg -x etcd-server_*.deb root)
	mkdir -p "$ASSETS"
	cp "$tmp/root/usr/bin/etcd" "$ASSETS/etcd.tmp"
	mv "$ASSETS/etcd.tmp" "$ASSETS/etcd"
	rm -rf "$tmp"
}

# kube_build NAME: builds k8s.io/kubernetes/cmd/NAME from the throwaway module.
kube_build() {
	local name=$1
	[ -x "$ASSETS/$name" ] && return 0
	say "building $name v$KUBE_VERSION from the Go module proxy into $ASSETS"
	say "this happens once per machine and takes 10-25 minutes on 2 cores; later runs reuse it"
	local dir="$TESTBIN/kubebuild" minor=${KUBE_VERSION#1.}
	minor=${minor%%.*}
	mkdir -p "$dir" "$ASSETS"
	{
		echo "module keysync.test/kubebuild"
		echo
		echo "go 1.25.0"
		echo
		echo "require k8s.io/kubernetes v$KUBE_VERSION"
		echo
		for m in api apiextensions-apiserver apimachinery apiserver cli-runtime client-go cloud-provider \
			cluster-bootstrap code-generator component-base component-helpers controller-manager cri-api \
			cri-client cri-streaming csi-translation-lib dynamic-resource-allocation endpointslice externaljwt \
			kms kube-aggregator kube-controller-manager kube-proxy kube-scheduler kubectl kubelet metrics \
			mount-utils pod-security-admission sample-apiserver sample-cli-plugin sample-controller streaming; do
			echo "replace k8s.io/$m => k8s.io/$m v0.$minor.${KUBE_VERSION##*.}"
		done
	} >"$dir/go.mod"
	cat >"$dir/tools.go" <<'GO'
//go:build tools

package kubebuild

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO
	local v="k8s.io/component-base/version"
	(cd "$dir" &&
		GOTOOLCHAIN=local GOFLAGS=-buildvcs=false go mod tidy &&
		GOTOOLCHAIN=local GOFLAGS=-buildvcs=false go build -ldflags "-s -w -X $v.gitVersion=v$KUBE_VERSION -X $v.gitMajor=1 -X $v.gitMinor=$minor -X $v.gitTreeState=clean" \
			-o "$ASSETS/$name.tmp" "k8s.io/kubernetes/cmd/$name")
	mv "$ASSETS/$name.tmp" "$ASSETS/$name"
	say "built $ASSETS/$name"
}

with_lock kube etcd
with_lock kube kube_build kube-apiserver
with_lock kube kube_build kubectl
echo "$ASSETS"
