package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/sigil-dna/keysync/harness/ports"
	"github.com/sigil-dna/keysync/harness/wait"
	"github.com/sigil-dna/keysync/test/servers"
)

// The node's network: pods on a bridge of their own, the control plane on the bridge's
// gateway address so that pods reach it through the kubernetes Service. Nothing listens
// beyond this machine.
const (
	NodeName    = "keysync-node"
	Bridge      = "kstest0"
	PodCIDR     = "10.88.7.0/24"
	GatewayIP   = "10.88.7.1"
	ServiceCIDR = "10.96.7.0/24"
	// KubernetesServiceIP is the first address of ServiceCIDR, the kubernetes Service.
	KubernetesServiceIP = "10.96.7.1"
	apiserverPort       = 16443
	kubeletPort         = 10250
)

// Options says where the binaries are and where the cluster lives.
type Options struct {
	// Bin holds etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kube-proxy,
	// kubelet and kubectl (test/servers/kube.sh).
	Bin string
	// Dir holds every file, socket, mount and log of the cluster; Stop leaves it without
	// mounts.
	Dir string
	// Images are imported into containerd before the kubelet starts.
	Images []Image
	// PauseImage is the sandbox image containerd is configured with; one of Images.
	PauseImage string
}

// Cluster is a running one-node cluster.
type Cluster struct {
	opts       Options
	Config     *rest.Config // cluster admin
	Client     kubernetes.Interface
	Kubeconfig string
	// Socket is containerd's CRI endpoint.
	Socket string
	// StartedIn is how long Start took, from nothing to the node Ready.
	StartedIn time.Duration

	procs  []*proc // in start order
	host   *hostState
	bridge bool
}

type proc struct {
	name string
	cmd  *exec.Cmd
	done chan error
}

// Start brings the cluster up and waits until the node is Ready. On error it tears down
// whatever it started.
func Start(ctx context.Context, o Options) (c *Cluster, err error) {
	begin := time.Now()
	c = &Cluster{opts: o, Kubeconfig: filepath.Join(o.Dir, "admin.kubeconfig"), Socket: filepath.Join(o.Dir, "containerd.sock")}
	defer func() {
		if err != nil {
			if serr := c.Stop(); serr != nil {
				err = errors.Join(err, serr)
			}
			c = nil
		}
	}()
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return c, err
	}
	if err := c.network(); err != nil {
		return c, fmt.Errorf("node network: %w", err)
	}
	p, err := c.pki()
	if err != nil {
		return c, fmt.Errorf("certificates: %w", err)
	}
	if err := c.startContainerd(ctx); err != nil {
		return c, err
	}
	if err := c.importImages(ctx); err != nil {
		return c, err
	}
	etcdPort, err := ports.Free()
	if err != nil {
		return c, err
	}
	peerPort, err := ports.Free()
	if err != nil {
		return c, err
	}
	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", etcdPort)
	if err := c.start("etcd", filepath.Join(o.Bin, "etcd"), "--data-dir", filepath.Join(o.Dir, "etcd"),
		"--listen-client-urls", etcdURL, "--advertise-client-urls", etcdURL,
		"--listen-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", peerPort),
		"--initial-advertise-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", peerPort),
		"--initial-cluster", fmt.Sprintf("default=http://127.0.0.1:%d", peerPort),
		"--unsafe-no-fsync"); err != nil {
		return c, err
	}
	if err := c.start("kube-apiserver", filepath.Join(o.Bin, "kube-apiserver"),
		"--etcd-servers", etcdURL,
		"--bind-address", GatewayIP, "--advertise-address", GatewayIP, "--secure-port", strconv.Itoa(apiserverPort),
		"--tls-cert-file", p.path("apiserver.crt"), "--tls-private-key-file", p.path("apiserver.key"),
		"--client-ca-file", p.path("ca.crt"),
		"--kubelet-client-certificate", p.path("apiserver-kubelet.crt"), "--kubelet-client-key", p.path("apiserver-kubelet.key"),
		// The node's name resolves nowhere: exec, logs and port-forward reach the kubelet at its IP.
		"--kubelet-preferred-address-types", "InternalIP",
		"--service-account-key-file", p.path("sa.pub"), "--service-account-signing-key-file", p.path("sa.key"),
		"--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
		"--service-cluster-ip-range", ServiceCIDR,
		"--authorization-mode", "Node,RBAC",
		"--enable-admission-plugins", "NodeRestriction",
		"--cert-dir", filepath.Join(o.Dir, "apiserver-certs")); err != nil {
		return c, err
	}
	if err := c.writeKubeconfigs(p); err != nil {
		return c, err
	}
	c.Config, err = clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
	if err != nil {
		return c, err
	}
	if c.Client, err = kubernetes.NewForConfig(c.Config); err != nil {
		return c, err
	}
	if err := c.waitAPI(ctx); err != nil {
		return c, err
	}
	admin := c.Kubeconfig
	if err := c.start("kube-controller-manager", filepath.Join(o.Bin, "kube-controller-manager"),
		"--kubeconfig", admin, "--authentication-kubeconfig", admin, "--authorization-kubeconfig", admin,
		"--service-account-private-key-file", p.path("sa.key"), "--root-ca-file", p.path("ca.crt"),
		"--use-service-account-credentials=true", "--leader-elect=false",
		"--bind-address", "127.0.0.1", "--secure-port", "0"); err != nil {
		return c, err
	}
	if err := c.start("kube-scheduler", filepath.Join(o.Bin, "kube-scheduler"),
		"--kubeconfig", admin, "--authentication-kubeconfig", admin, "--authorization-kubeconfig", admin,
		"--leader-elect=false", "--bind-address", "127.0.0.1", "--secure-port", "0"); err != nil {
		return c, err
	}
	proxyPorts := make([]int, 2)
	for i := range proxyPorts {
		if proxyPorts[i], err = ports.Free(); err != nil {
			return c, err
		}
	}
	if err := c.start("kube-proxy", filepath.Join(o.Bin, "kube-proxy"),
		"--kubeconfig", admin, "--hostname-override", NodeName, "--proxy-mode", "iptables",
		"--cluster-cidr", PodCIDR, "--conntrack-max-per-core", "0", "--iptables-localhost-nodeports=false",
		"--metrics-bind-address", fmt.Sprintf("127.0.0.1:%d", proxyPorts[0]),
		"--healthz-bind-address", fmt.Sprintf("127.0.0.1:%d", proxyPorts[1])); err != nil {
		return c, err
	}
	if err := c.startKubelet(p); err != nil {
		return c, err
	}
	if err := c.waitNodeReady(ctx); err != nil {
		return c, err
	}
	c.StartedIn = time.Since(begin)
	return c, nil
}

// network creates the pods' bridge with the gateway address, on which the control plane
// listens, and turns on forwarding (restored by Stop).
func (c *Cluster) network() (err error) {
	if c.host, err = saveHost(); err != nil {
		return err
	}
	if err := os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0o644); err != nil {
		return err
	}
	if err := run("mount", "--make-rshared", "/"); err != nil {
		return err
	}
	if _, err := net.InterfaceByName(Bridge); err == nil {
		return fmt.Errorf("a bridge %s exists already: another node runs, or an earlier one was not stopped", Bridge)
	}
	// Stop removes every KUBE- and CNI- chain: there must be none of anyone else's.
	if left := hostLeftovers(); len(left) > 0 {
		return fmt.Errorf("this machine's iptables hold chains of a kubelet, kube-proxy or CNI already (another node runs, or an earlier one was not stopped): %v", left)
	}
	c.bridge = true
	if err := run("ip", "link", "add", Bridge, "type", "bridge"); err != nil {
		return err
	}
	if err := run("ip", "addr", "add", GatewayIP+"/24", "dev", Bridge); err != nil {
		return err
	}
	return run("ip", "link", "set", Bridge, "up")
}

func (c *Cluster) pki() (*pki, error) {
	p, err := newPKI(filepath.Join(c.opts.Dir, "pki"))
	if err != nil {
		return nil, err
	}
	steps := []error{
		p.issue("apiserver", "kube-apiserver", nil, []string{GatewayIP, KubernetesServiceIP, "127.0.0.1", "kubernetes",
			"kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local", "localhost"}, 2),
		p.issue("admin", "admin", []string{"system:masters"}, nil, 3),
		p.issue("apiserver-kubelet", "kube-apiserver-kubelet-client", []string{"system:masters"}, nil, 4),
		p.issue("kubelet", "system:node:"+NodeName, []string{"system:nodes"}, nil, 5),
		p.issue("kubelet-serving", NodeName, nil, []string{GatewayIP, NodeName}, 6),
		p.serviceAccountKey(),
	}
	return p, errors.Join(steps...)
}

func (c *Cluster) writeKubeconfigs(p *pki) error {
	write := func(file, user string) error {
		var cfg rest.Config
		cfg.Host = fmt.Sprintf("https://%s:%d", GatewayIP, apiserverPort)
		var errs [3]error
		cfg.CAData, errs[0] = os.ReadFile(p.path("ca.crt"))
		cfg.CertData, errs[1] = os.ReadFile(p.path(user + ".crt"))
		cfg.KeyData, errs[2] = os.ReadFile(p.path(user + ".key"))
		if err := errors.Join(errs[:]...); err != nil {
			return err
		}
		return servers.WriteKubeconfig(file, &cfg)
	}
	return errors.Join(write(c.Kubeconfig, "admin"), write(filepath.Join(c.opts.Dir, "kubelet.kubeconfig"), "kubelet"))
}

// start runs a component with its output in DIR/NAME.log.
func (c *Cluster) start(name, bin string, args ...string) error {
	logf, err := os.Create(filepath.Join(c.opts.Dir, name+".log"))
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("starting %s: %w", name, err)
	}
	pr := &proc{name: name, cmd: cmd, done: make(chan error, 1)}
	go func() { pr.done <- cmd.Wait(); logf.Close() }()
	c.procs = append(c.procs, pr)
	return nil
}

// Log returns the last lines of a component's log, for a failing test's message.
func (c *Cluster) Log(name string, lines int) string {
	b, _ := os.ReadFile(filepath.Join(c.opts.Dir, name+".log"))
	all := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(all[max(0, len(all)-lines):], "\n")
}

func (c *Cluster) waitAPI(ctx context.Context) error {
	return waitFor(ctx, 90*time.Second, "kube-apiserver /readyz", func() error {
		if err := c.exited(); err != nil {
			return wait.Stop(err)
		}
		return c.Client.CoreV1().RESTClient().Get().AbsPath("/readyz").Do(ctx).Error()
	})
}

func (c *Cluster) waitNodeReady(ctx context.Context) error {
	return waitFor(ctx, 120*time.Second, "node "+NodeName+" Ready", func() error {
		if err := c.exited(); err != nil {
			return wait.Stop(err)
		}
		n, err := c.Client.CoreV1().Nodes().Get(ctx, NodeName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, cond := range n.Status.Conditions {
			if cond.Type == corev1.NodeReady {
				if cond.Status == corev1.ConditionTrue {
					return nil
				}
				return fmt.Errorf("%s: %s", cond.Reason, cond.Message)
			}
		}
		return errors.New("no Ready condition yet")
	})
}

// exited reports a component that has ended, with its log's tail.
func (c *Cluster) exited() error {
	for _, p := range c.procs {
		select {
		case err := <-p.done:
			p.done <- err
			return fmt.Errorf("%s exited (%v):\n%s", p.name, err, c.Log(p.name, 15))
		default:
		}
	}
	return nil
}

func run(name string, args ...string) error {
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, out)
	}
	return nil
}

// waitFor polls f every 200 ms until it holds (wait.Until; wait.Stop ends it at once).
func waitFor(ctx context.Context, limit time.Duration, what string, f func() error) error {
	return wait.Until(ctx, what, limit, 200*time.Millisecond, f)
}
