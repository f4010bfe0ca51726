package node

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// containerd and the kubelet: their configuration, the images, the node agent itself.

const containerdConfig = `version = 2
root = "%[1]s/containerd/root"
state = "%[1]s/containerd/state"
[grpc]
  address = "%[2]s"
[ttrpc]
  address = "%[2]s.ttrpc"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "%[3]s"
  # This VM withholds CAP_SYS_RESOURCE: runc cannot lower a container's oom_score_adj.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "%[1]s/cni/net.d"
`

const cniConfig = `{"cniVersion": "0.4.0", "name": "keysync-test", "plugins": [
  {"type": "bridge", "bridge": "%[2]s", "isGateway": true, "ipMasq": true, "hairpinMode": true,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "%[3]s", "gateway": "%[4]s"}]],
            "routes": [{"dst": "0.0.0.0/0"}], "dataDir": "%[1]s/cni/ipam"}},
  {"type": "portmap", "capabilities": {"portMappings": true}},
  {"type": "loopback"}]}
`

func (c *Cluster) startContainerd(ctx context.Context) error {
	d := c.opts.Dir
	if err := os.MkdirAll(filepath.Join(d, "cni", "net.d"), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(d, "cni", "net.d", "10-keysync.conflist"),
		fmt.Appendf(nil, cniConfig, d, Bridge, PodCIDR, GatewayIP), 0o644); err != nil {
		return err
	}
	cfg := filepath.Join(d, "containerd.toml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, containerdConfig, d, c.Socket, c.opts.PauseImage), 0o644); err != nil {
		return err
	}
	if err := c.start("containerd", "containerd", "--config", cfg); err != nil {
		return err
	}
	return waitFor(ctx, 30*time.Second, "containerd's socket", func() error {
		return exec.CommandContext(ctx, "ctr", "--address", c.Socket, "version").Run()
	})
}

func (c *Cluster) importImages(ctx context.Context) error {
	if len(c.opts.Images) == 0 {
		return nil
	}
	tar := filepath.Join(c.opts.Dir, "images.tar")
	if err := WriteTarball(tar, c.opts.Images...); err != nil {
		return err
	}
	defer os.Remove(tar)
	out, err := exec.CommandContext(ctx, "ctr", "--address", c.Socket, "-n", "k8s.io", "images", "import", tar).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ctr images import: %w: %s", err, out)
	}
	return nil
}

const kubeletConfig = `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# cgroup v1 (hybrid) on this VM: kubelet 1.35+ refuses it unless told otherwise.
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: /
containerRuntimeEndpoint: unix://%[2]s
address: %[3]s
port: %[4]d
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 0
tlsCertFile: %[1]s/pki/kubelet-serving.crt
tlsPrivateKeyFile: %[1]s/pki/kubelet-serving.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: %[1]s/pki/ca.crt}
authorization: {mode: Webhook}
failSwapOn: false
# The VM withholds CAP_SYS_RESOURCE: no negative oom_score_adj.
oomScoreAdj: 0
resolvConf: /etc/resolv.conf
evictionHard: {memory.available: "50Mi", nodefs.available: "1%%", imagefs.available: "1%%", nodefs.inodesFree: "1%%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
syncFrequency: 10s
fileCheckFrequency: 0s
nodeStatusUpdateFrequency: 2s
`

func (c *Cluster) startKubelet(p *pki) error {
	d := c.opts.Dir
	cfg := filepath.Join(d, "kubelet.yaml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, kubeletConfig, d, c.Socket, GatewayIP, kubeletPort), 0o644); err != nil {
		return err
	}
	return c.start("kubelet", filepath.Join(c.opts.Bin, "kubelet"),
		"--config", cfg, "--kubeconfig", filepath.Join(d, "kubelet.kubeconfig"),
		"--hostname-override", NodeName, "--node-ip", GatewayIP, "--root-dir", filepath.Join(d, "kubelet"))
}
