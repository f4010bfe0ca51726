package scale

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"k8s.io/client-go/rest"

	"github.com/sigil-dna/keysync/harness/procfs"
	"github.com/sigil-dna/keysync/internal/awsapi"
	"github.com/sigil-dna/keysync/keyring"
	"github.com/sigil-dna/keysync/store"
	"github.com/sigil-dna/keysync/store/awssm"
	"github.com/sigil-dna/keysync/store/awsssm"
	"github.com/sigil-dna/keysync/store/gcpsm"
	"github.com/sigil-dna/keysync/store/kube"
	"github.com/sigil-dna/keysync/store/storetest"
	"github.com/sigil-dna/keysync/store/vault"
	"github.com/sigil-dna/keysync/test/awsfake"
	"github.com/sigil-dna/keysync/test/counting"
	"github.com/sigil-dna/keysync/test/gcpfake"
	"github.com/sigil-dna/keysync/test/servers"
)

// Stores are the store kinds the scale benchmark knows, in report order.
var Stores = []string{"vault", "k8s", "ssm", "secretsmanager", "gcpsm"}

// Servers are the real test servers, started once and shared by the runs.
type Servers struct {
	Vault *servers.Vault
	Kube  *servers.Kube
	dir   string
	stops []func()
}

// Close stops what was started.
func (s *Servers) Close() {
	for i := len(s.stops) - 1; i >= 0; i-- {
		s.stops[i]()
	}
}

// location is one fresh store location on a real test server, reached by the sidecars
// through something that counts their requests and can cut them off.
type location struct {
	// open makes one sidecar's own store client (its own connections, as in a pod).
	open func(ctx context.Context) (store.Store, error)
	// writer reaches the server directly, uncounted (the rotator).
	writer store.Store
	// counts holds the sidecars' requests per second.
	counts *counting.Book
	// cut makes the store unreachable for the sidecars until restore.
	cut func() (restore func())
	// apiserver reports the kube-apiserver's resident memory and secret watches.
	apiserver func(ctx context.Context) (rssBytes int64, watches int, err error)
	close     func()
}

var seq int

// open starts (once) the store's server and makes a fresh location on it.
func (s *Servers) open(ctx context.Context, kind string) (*location, error) {
	seq++
	name := fmt.Sprintf("scale-%d-%d", os.Getpid(), seq)
	switch kind {
	case "vault":
		if s.Vault == nil {
			bin, err := servers.VaultBinary()
			if err != nil {
				return nil, err
			}
			if s.Vault, err = servers.StartVault(bin); err != nil {
				return nil, err
			}
			s.stops = append(s.stops, s.Vault.Stop)
		}
		p, err := counting.Start(s.Vault.Addr)
		if err != nil {
			return nil, err
		}
		cfg := func(addr string) vault.Config {
			return vault.Config{Mount: "secret", Path: "keysync-scale/" + name, Address: addr, Auth: vault.Auth{Token: keyring.Secret(s.Vault.Token)}}
		}
		w, err := vault.New(ctx, cfg(s.Vault.Addr))
		if err != nil {
			p.Close()
			return nil, err
		}
		return &location{writer: w, counts: p.Book, cut: p.Cut, close: func() { w.Close(); p.Close() },
			open: func(ctx context.Context) (store.Store, error) { return vault.New(ctx, cfg(p.URL())) }}, nil
	case "ssm", "secretsmanager":
		var ac awsapi.Config
		if kind == "ssm" {
			ac = awsfake.Kumo()
		} else {
			f := awsfake.Start()
			s.stops = append(s.stops, f.Close)
			ac = f.AWS()
		}
		// The SDK's own retry timing, not the tests' quick one.
		base := ac.Base.Copy()
		direct := awsapi.Config{Base: &base, Endpoint: ac.Endpoint}
		p, err := counting.Start(ac.Endpoint)
		if err != nil {
			return nil, err
		}
		counted := awsapi.Config{Base: &base, Endpoint: p.URL()}
		mk := func(ctx context.Context, c awsapi.Config) (store.Store, error) {
			if kind == "ssm" {
				return awsssm.New(ctx, awsssm.Config{Name: "/" + name, AWS: c})
			}
			return awssm.New(ctx, awssm.Config{Name: name, AWS: c})
		}
		w, err := mk(ctx, direct)
		if err != nil {
			p.Close()
			return nil, err
		}
		return &location{writer: w, counts: p.Book, cut: p.Cut, close: func() { w.Close(); p.Close() },
			open: func(ctx context.Context) (store.Store, error) { return mk(ctx, counted) }}, nil
	case "gcpsm":
		f, stop, err := gcpfake.Listen()
		if err != nil {
			return nil, err
		}
		tcp, err := storetest.StartProxy(f.Addr)
		if err != nil {
			stop()
			return nil, err
		}
		counts := counting.NewBook()
		total := 0 // Calls hands over the calls since it was last asked; the sampler is its only caller
		sample := sampleEverySecond(func() int { total += sum(f.Calls()); return total }, counts)
		mk := func(ctx context.Context, addr string) (store.Store, error) {
			return gcpsm.New(ctx, gcpsm.Config{Project: "scale", Secret: name, ClientOptions: []option.ClientOption{
				option.WithEndpoint(addr), option.WithoutAuthentication(), option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials()))}})
		}
		w, err := mk(ctx, f.Addr)
		if err != nil {
			sample()
			tcp.Close()
			stop()
			return nil, err
		}
		return &location{writer: w, counts: counts, cut: tcp.Cut,
			close: func() { sample(); w.Close(); tcp.Close(); stop() },
			open:  func(ctx context.Context) (store.Store, error) { return mk(ctx, tcp.Addr()) }}, nil
	case "k8s":
		if s.Kube == nil {
			var err error
			if s.dir, err = os.MkdirTemp("", "keysync-scale-kube-"); err != nil {
				return nil, err
			}
			if s.Kube, err = servers.StartKube(s.dir); err != nil {
				return nil, err
			}
			dir := s.dir
			s.stops = append(s.stops, s.Kube.Stop, func() { os.RemoveAll(dir) })
		}
		host := strings.Trim(strings.TrimPrefix(s.Kube.Config.Host, "https://"), "/")
		tcp, err := storetest.StartProxy(host)
		if err != nil {
			return nil, err
		}
		counts := counting.NewBook()
		admin, err := kube.NewCore(s.Kube.Config)
		if err != nil {
			tcp.Close()
			return nil, err
		}
		metrics := func(ctx context.Context) (map[string]float64, error) { return apiserverMetrics(ctx, admin) }
		sample := sampleEverySecond(func() int {
			m, err := metrics(context.Background())
			if err != nil {
				return 0
			}
			return int(m["secrets_requests"])
		}, counts)
		cfg := func(host string) kube.Config {
			rc := rest.CopyConfig(s.Kube.Config)
			rc.Host = "https://" + host
			rc.QPS, rc.Burst = 50, 100 // each sidecar has its own client, as each pod does
			return kube.Config{Namespace: "default", Name: name, REST: rc}
		}
		w, err := kube.New(cfg(host))
		if err != nil {
			sample()
			tcp.Close()
			return nil, err
		}
		pid := apiserverPID(host)
		return &location{writer: w, counts: counts, cut: tcp.Cut,
			close: func() { sample(); w.Close(); tcp.Close() },
			open:  func(context.Context) (store.Store, error) { return kube.New(cfg(tcp.Addr())) },
			apiserver: func(ctx context.Context) (int64, int, error) {
				m, err := metrics(ctx)
				if err != nil {
					return 0, 0, err
				}
				return rssOf(pid), int(m["secrets_watches"]), nil
			}}, nil
	}
	return nil, fmt.Errorf("unknown store %q (want one of %s)", kind, strings.Join(Stores, ", "))
}

// sampleEverySecond books the growth of a running total into counts once a second, for
// servers that count their own calls; the returned func stops it.
func sampleEverySecond(total func() int, counts *counting.Book) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		last := total()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				now := total()
				counts.Count(now - last)
				last = now
			}
		}
	}()
	return func() { close(done); <-finished }
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// apiserverMetrics reads, from the kube-apiserver's /metrics, every request on secrets
// (apiserver_request_total) and the open watches on secrets
// (apiserver_longrunning_requests).
func apiserverMetrics(ctx context.Context, c *kube.Core) (map[string]float64, error) {
	raw, err := c.RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for _, line := range strings.Split(string(raw), "\n") {
		if !strings.Contains(line, `resource="secrets"`) {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			continue
		}
		switch {
		case strings.HasPrefix(line, "apiserver_request_total{"):
			out["secrets_requests"] += v
		case strings.HasPrefix(line, "apiserver_longrunning_requests{") && strings.Contains(line, `verb="WATCH"`):
			out["secrets_watches"] += v
		}
	}
	return out, nil
}

// apiserverPID finds the kube-apiserver serving on host (HOST:PORT) among the processes.
func apiserverPID(host string) int {
	_, port, _ := strings.Cut(host, ":")
	pids := procfs.Find(func(_ int, args []string) bool {
		cmd := strings.Join(args, " ")
		return strings.Contains(cmd, "kube-apiserver") && strings.Contains(cmd, "--secure-port="+port)
	})
	if len(pids) == 0 {
		return 0
	}
	return pids[0]
}

// rssOf is a process's resident memory, in bytes (0 if unknown).
func rssOf(pid int) int64 {
	n, _ := procfs.RSS(pid)
	return n
}
