#!/usr/bin/env bash
# Obtains what a real node needs beside the Kubernetes binaries of kube.sh: containerd
# (1.6), runc and the CNI plugins from Debian's packages, plus iptables and conntrack for
# kube-proxy. Installs them as packages (root, as CI runs), since containerd, runc and the
# plugins are found by path, then prints the folder kube.sh prints.
source "$(dirname "$0")/common.sh"

node_packages() {
	local missing=() p
	for p in containerd runc containernetworking-plugins iptables conntrack; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	say "installing ${missing[*]} from Debian's packages"
	{ apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null 2>&1; } ||
		{ apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null; }
	# The package's service does not run here (PID 1 is not systemd); the tests start
	# their own containerd with its own root and socket.
}

with_lock node node_packages
bash "$(dirname "$0")/kube.sh"
