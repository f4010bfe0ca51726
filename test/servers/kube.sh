#!/usr/bin/env bash
# Obtains etcd, a real kube-apiserver (v1.37.2), kubectl and the node's components
# (kubelet, kube-scheduler, kube-controller-manager, kube-proxy; same version) for the tests
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
	deb_unpack "$tmp" etcd-server
	mkdir -p "$ASSETS"
	cp "$tmp/root/usr/bin/etcd" "$ASSETS/etcd.tmp"
	mv "$ASSETS/etcd.tmp" "$ASSETS/etcd"
	rm -rf "$tmp"
}

# Everything built from the Kubernetes module, in one go build so that the packages they
# share compile once.
KUBE_CMDS="kube-apiserver kubectl kubelet kube-scheduler kube-controller-manager kube-proxy"

# kube_build: builds every missing k8s.io/kubernetes/cmd/NAME of KUBE_CMDS from the
# throwaway module.
kube_build() {
	local missing=() name
	for name in $KUBE_CMDS; do
		[ -x "$ASSETS/$name" ] || missing+=("$name")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	say "building ${missing[*]} v$KUBE_VERSION from the Go module proxy into $ASSETS"
	say "this happens once per machine and takes 15-30 minutes on 2 cores; later runs reuse it"
	local dir="$TESTBIN/kubebuild" minor=${KUBE_VERSION#1.} out
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
	{
		echo "//go:build tools"
		echo
		echo "package kubebuild"
		echo
		echo "import ("
		for name in $KUBE_CMDS; do echo "	_ \"k8s.io/kubernetes/cmd/$name\""; done
		echo ")"
	} >"$dir/tools.go"
	out=$(mktemp -d "$ASSETS/.build.XXXXXX")
	local v="k8s.io/component-base/version" pkgs=()
	for name in "${missing[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$name"); done
	(cd "$dir" &&
		GOTOOLCHAIN=local GOFLAGS=-buildvcs=false go mod tidy &&
		GOTOOLCHAIN=local GOFLAGS=-buildvcs=false go build -ldflags "-s -w -X $v.gitVersion=v$KUBE_VERSION -X $v.gitMajor=1 -X $v.gitMinor=$minor -X $v.gitTreeState=clean" \
			-o "$out/" "${pkgs[@]}")
	for name in "${missing[@]}"; do mv "$out/$name" "$ASSETS/$name"; done
	rmdir "$out"
	say "built ${missing[*]} into $ASSETS"
}

with_lock kube etcd
with_lock kube kube_build
echo "$ASSETS"
