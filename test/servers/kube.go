package servers

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/go-logr/logr"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
)

// KubeAssets returns the folder holding etcd and kube-apiserver: $KUBEBUILDER_ASSETS, or
// what test/servers/kube.sh builds or finds in its cache (the first build takes 10-25
// minutes).
func KubeAssets() (string, error) {
	if d := os.Getenv("KUBEBUILDER_ASSETS"); d != "" {
		return d, nil
	}
	return runScript("kube.sh")
}

// HelmBinary returns the helm CLI: $KEYSYNC_HELM_BIN, or what test/servers/helm.sh builds.
func HelmBinary() (string, error) {
	if b := os.Getenv("KEYSYNC_HELM_BIN"); b != "" {
		return b, nil
	}
	return runScript("helm.sh")
}

func runScript(name string) (string, error) {
	cmd := exec.Command("bash", filepath.Join(RepoRoot(), "test", "servers", name))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("test/servers/%s: %w", name, err)
	}
	return strings.TrimSpace(string(out)), nil
}

// Kube is a real kube-apiserver with etcd (controller-runtime's envtest), RBAC on.
type Kube struct {
	Env        *envtest.Environment
	Config     *rest.Config // cluster admin
	Kubeconfig string       // a file for kubectl, cluster admin
	Assets     string       // holds etcd, kube-apiserver and kubectl
}

// CommandEnv is the environment for kubectl commands and pipelines against this cluster:
// the cached kubectl first on PATH (a fresh machine has no other), KUBECONFIG, and home.
func (k *Kube) CommandEnv(home string) []string {
	return append(os.Environ(), "PATH="+k.Assets+string(os.PathListSeparator)+os.Getenv("PATH"),
		"KUBECONFIG="+k.Kubeconfig, "HOME="+home, "KUBERNETES_SERVICE_HOST=")
}

// StartKube starts etcd and kube-apiserver; Stop them with Kube.Stop.
func StartKube(dir string) (*Kube, error) {
	assets, err := KubeAssets()
	if err != nil {
		return nil, err
	}
	// envtest logs through controller-runtime, which prints a stack trace to say no
	// logger was set; the control plane's own output is not wanted either.
	ctrllog.SetLogger(logr.Discard())
	env := &envtest.Environment{BinaryAssetsDirectory: assets}
	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("starting kube-apiserver and etcd: %w", err)
	}
	k := &Kube{Env: env, Config: cfg, Kubeconfig: filepath.Join(dir, "kubeconfig"), Assets: assets}
	if err := WriteKubeconfig(k.Kubeconfig, cfg); err != nil {
		env.Stop()
		return nil, err
	}
	return k, nil
}

// Stop stops the control plane.
func (k *Kube) Stop() { _ = k.Env.Stop() }

// WriteKubeconfig writes a kubeconfig file for cfg (certificate or bearer token).
func WriteKubeconfig(path string, cfg *rest.Config) error {
	kc := clientcmdapi.NewConfig()
	kc.Clusters["envtest"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos["user"] = &clientcmdapi.AuthInfo{ClientCertificateData: cfg.CertData, ClientKeyData: cfg.KeyData, Token: cfg.BearerToken}
	kc.Contexts["envtest"] = &clientcmdapi.Context{Cluster: "envtest", AuthInfo: "user", Namespace: "default"}
	kc.CurrentContext = "envtest"
	return clientcmd.WriteToFile(*kc, path)
}

// TypeScript returns the tsc of test/servers/typescript.sh (TypeScript and Node's type
// definitions, from npm, cached): $KEYSYNC_TSC, or what the script installs or finds.
func TypeScript() (string, error) {
	if b := os.Getenv("KEYSYNC_TSC"); b != "" {
		return b, nil
	}
	return runScript("typescript.sh")
}

// NodeAssets returns the folder holding the node's binaries (kubelet, kube-scheduler,
// kube-controller-manager, kube-proxy, besides etcd, kube-apiserver and kubectl), after
// test/servers/node.sh has made sure containerd, runc and the CNI plugins are installed:
// $KEYSYNC_NODE_ASSETS when set (the caller ran node.sh), else the script's answer.
func NodeAssets() (string, error) {
	if d := os.Getenv("KEYSYNC_NODE_ASSETS"); d != "" {
		return d, nil
	}
	return runScript("node.sh")
}

// DockerTools returns test/servers/docker.sh's folder (dockerd, docker, docker-proxy,
// docker-init, cli-plugins/docker-compose): $KEYSYNC_DOCKER_DIR when set (the caller ran
// the script), else the script's answer.
func DockerTools() (string, error) {
	if d := os.Getenv("KEYSYNC_DOCKER_DIR"); d != "" {
		return d, nil
	}
	return runScript("docker.sh")
}
