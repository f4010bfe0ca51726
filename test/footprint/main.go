// Command footprint measures what one keysync sidecar costs its pod, for each build
// flavor: the binary's size, its resident memory (anonymous and file-backed, from
// /proc/PID/smaps_rollup) while it polls its store's real test server, and the CPU time
// per poll (from /proc/PID/schedstat). The chart's memory requests follow its table.
//
//	go run ./test/footprint --bin bin --report docs/benchmarks.md   (make bench-footprint)
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sigil-dna/keysync/harness/procfs"
	"github.com/sigil-dna/keysync/test/awsfake"
	"github.com/sigil-dna/keysync/test/docsection"
	"github.com/sigil-dna/keysync/test/gcpfake"
	"github.com/sigil-dna/keysync/test/servers"
)

// Section is the section of docs/benchmarks.md this program writes.
const Section = "footprint"

// A case is one flavor polling one store.
type run struct {
	Flavor, Store string
	BinaryBytes   int64
	// Peak over the samples, in bytes: resident, and its anonymous and file-backed parts
	// at that sample.
	RSS, Anon, File int64
	Polls           int
	CPUPerPoll      time.Duration
	GoVersion       string
	// What the binary's package initialisers cost (GODEBUG=inittrace=1 of `keysync
	// version`): clock time and heap allocated.
	InitTime  time.Duration
	InitBytes int64
}

func main() {
	var (
		bin, report, only string
		duration, poll    time.Duration
	)
	flag.StringVar(&bin, "bin", "bin", "directory holding keysync and keysync-FLAVOR (make flavors)")
	flag.StringVar(&report, "report", "", "benchmarks file whose footprint section is replaced")
	flag.DurationVar(&duration, "duration", 60*time.Second, "how long each sidecar polls while measured")
	flag.DurationVar(&poll, "interval", 2*time.Second, "the sidecars' poll interval")
	flag.StringVar(&only, "only", "", "comma-separated flavors to measure (default: all, and the full build on every store)")
	flag.Parse()
	if err := measureAll(bin, report, only, duration, poll); err != nil {
		fmt.Fprintln(os.Stderr, "footprint:", err)
		os.Exit(1)
	}
}

// stores are the flavors' stores, in table order: flavor name and the store it polls.
var stores = []struct{ flavor, store string }{
	{"file", "file"}, {"vault", "vault"}, {"kube", "k8s"}, {"aws", "ssm"}, {"aws", "secretsmanager"}, {"gcp", "gcpsm"},
}

func measureAll(bin, report, only string, duration, poll time.Duration) error {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "keysync-footprint-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	env := &environments{dir: dir}
	defer env.stop()
	var runs []run
	for _, s := range stores {
		for _, flavor := range []string{s.flavor, "full"} {
			if only != "" && !strings.Contains(","+only+",", ","+flavor+",") {
				continue
			}
			binary := filepath.Join(bin, "keysync")
			if flavor != "full" {
				binary += "-" + flavor
			}
			url, e, err := env.location(ctx, s.store, filepath.Join(bin, "keysync"))
			if err != nil {
				return fmt.Errorf("%s: %w", s.store, err)
			}
			fmt.Fprintf(os.Stderr, "footprint: %s build on %s for %s\n", flavor, s.store, duration)
			r, err := measure(ctx, binary, url, e, dir, duration, poll)
			if err != nil {
				return fmt.Errorf("%s build on %s: %w", flavor, s.store, err)
			}
			r.Flavor, r.Store = flavor, s.store
			runs = append(runs, r)
			fmt.Fprintf(os.Stderr, "  rss %.1f MiB (anon %.1f, file %.1f), %d polls, %s CPU per poll\n", mib(r.RSS), mib(r.Anon), mib(r.File), r.Polls, r.CPUPerPoll)
		}
	}
	md := markdown(runs, "go run ./test/footprint "+strings.Join(os.Args[1:], " "), duration, poll)
	fmt.Print(md)
	if report != "" {
		return docsection.Replace(report, Section, md)
	}
	return nil
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// environments start each store's real test server once and make fresh locations on it.
type environments struct {
	dir   string
	vault *servers.Vault
	kube  *servers.Kube
	gcp   *gcpfake.Server
	stops []func()
	seq   int
}

func (e *environments) stop() {
	for _, s := range e.stops {
		s()
	}
}

// location returns a fresh store URL holding a first keyring (written by the full
// keysync) and the environment that reaches it.
func (e *environments) location(ctx context.Context, kind, keysync string) (string, []string, error) {
	e.seq++
	name := fmt.Sprintf("footprint-%d-%d", os.Getpid(), e.seq)
	base := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + e.dir}
	var url string
	var env []string
	switch kind {
	case "file":
		url = "file://" + filepath.Join(e.dir, name+".json")
	case "vault":
		if e.vault == nil {
			bin, err := servers.VaultBinary()
			if err != nil {
				return "", nil, err
			}
			if e.vault, err = servers.StartVault(bin); err != nil {
				return "", nil, err
			}
			e.stops = append(e.stops, e.vault.Stop)
		}
		url, env = "vault://secret/keysync/"+name, []string{"VAULT_ADDR=" + e.vault.Addr, "VAULT_TOKEN=" + e.vault.Token}
	case "k8s":
		if e.kube == nil {
			var err error
			if e.kube, err = servers.StartKube(e.dir); err != nil {
				return "", nil, err
			}
			e.stops = append(e.stops, e.kube.Stop)
		}
		url, env = "k8s://default/"+name, []string{"KUBECONFIG=" + e.kube.Kubeconfig, "KUBERNETES_SERVICE_HOST="}
	case "ssm", "secretsmanager":
		ac := awsfake.Kumo()
		if kind == "secretsmanager" {
			f := awsfake.Start() // kumo cannot move staging labels
			e.stops = append(e.stops, f.Close)
			ac = f.AWS()
		}
		creds, err := ac.Base.Credentials.Retrieve(ctx)
		if err != nil {
			return "", nil, err
		}
		env = []string{"AWS_ACCESS_KEY_ID=" + creds.AccessKeyID, "AWS_SECRET_ACCESS_KEY=" + creds.SecretAccessKey,
			"AWS_REGION=" + ac.Base.Region, "AWS_ENDPOINT_URL=" + ac.Endpoint, "AWS_EC2_METADATA_DISABLED=true",
			"AWS_CONFIG_FILE=/nonexistent", "AWS_SHARED_CREDENTIALS_FILE=/nonexistent"}
		url = "secretsmanager://" + name
		if kind == "ssm" {
			url = "ssm:///" + name
		}
	case "gcpsm":
		if e.gcp == nil {
			f, stop, err := gcpfake.Listen()
			if err != nil {
				return "", nil, err
			}
			e.gcp = f
			e.stops = append(e.stops, stop)
		}
		url, env = "gcpsm://projects/footprint/secrets/"+name, []string{"SECRET_MANAGER_EMULATOR_HOST=" + e.gcp.Addr}
	default:
		return "", nil, fmt.Errorf("unknown store %q", kind)
	}
	env = append(base, env...)
	cmd := exec.CommandContext(ctx, keysync, "rotate", "--init", "--store", url, "--reason", "footprint")
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", nil, fmt.Errorf("keysync rotate --init: %v\n%s", err, out)
	}
	return url, env, nil
}

// measure runs one sidecar for the duration after a warm-up of two polls.
func measure(ctx context.Context, binary, url string, env []string, dir string, duration, poll time.Duration) (run, error) {
	var r run
	fi, err := os.Stat(binary)
	if err != nil {
		return r, fmt.Errorf("%w (run make flavors)", err)
	}
	r.BinaryBytes = fi.Size()
	out, err := os.MkdirTemp(dir, "out-")
	if err != nil {
		return r, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return r, err
	}
	addr := ln.Addr().String()
	ln.Close()
	var logs bytes.Buffer
	cmd := exec.CommandContext(ctx, binary, "sidecar", "--store", url, "--out", out, "--interval", poll.String(),
		"--listen", addr, "--log-format", "json")
	cmd.Env, cmd.Stdout, cmd.Stderr = env, &logs, &logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return r, err
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}()
	pid := cmd.Process.Pid
	// Warm-up: the first keys file written, then two polls. The sidecar's /metrics is
	// scraped as Prometheus would, every 15 s, not more: each scrape makes garbage.
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(out, "keys.json")); err == nil {
			break
		}
		if time.Now().After(deadline) || cmd.ProcessState != nil {
			return r, fmt.Errorf("no keys file in 30 s; sidecar log:\n%s", logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(2 * poll)
	p0, err := polls(addr)
	if err != nil {
		return r, err
	}
	c0, err := procfs.CPUTime(pid)
	if err != nil {
		return r, err
	}
	start := time.Now()
	lastScrape := start
	for time.Since(start) < duration {
		m, err := procfs.SmapsRollup(pid)
		if err != nil {
			return r, err
		}
		if m["Rss"] > r.RSS {
			r.RSS, r.Anon = m["Rss"], m["Anonymous"]
			r.File = r.RSS - r.Anon - m["Shmem"]
		}
		if time.Since(lastScrape) >= scrapeEvery {
			if _, err := polls(addr); err != nil {
				return r, err
			}
			lastScrape = time.Now()
		}
		time.Sleep(time.Second)
	}
	c1, err := procfs.CPUTime(pid)
	if err != nil {
		return r, err
	}
	p1, err := polls(addr)
	if err != nil {
		return r, err
	}
	if r.Polls = p1 - p0; r.Polls <= 0 {
		return r, fmt.Errorf("no polls while measured; sidecar log:\n%s", logs.String())
	}
	r.CPUPerPoll = (c1 - c0) / time.Duration(r.Polls)
	if r.InitTime, r.InitBytes, err = initCost(binary); err != nil {
		return r, err
	}
	if v, err := exec.Command("go", "version", binary).Output(); err == nil {
		f := strings.Fields(string(v))
		r.GoVersion = f[len(f)-1]
	}
	return r, nil
}

// scrapeEvery is Prometheus's usual scrape interval.
const scrapeEvery = 15 * time.Second

var initLine = regexp.MustCompile(`(?m)^init \S+ @[\d.]+ ms, ([\d.]+) ms clock, (\d+) bytes`)

// initCost sums the package initialisers of `binary version` as GODEBUG=inittrace=1
// reports them.
func initCost(binary string) (time.Duration, int64, error) {
	cmd := exec.Command(binary, "version")
	cmd.Env = []string{"GODEBUG=inittrace=1"}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return 0, 0, fmt.Errorf("%s version: %v", binary, err)
	}
	var ms float64
	var heap int64
	for _, m := range initLine.FindAllStringSubmatch(string(out), -1) {
		v, _ := strconv.ParseFloat(m[1], 64)
		n, _ := strconv.ParseInt(m[2], 10, 64)
		ms, heap = ms+v, heap+n
	}
	return time.Duration(ms * float64(time.Millisecond)), heap, nil
}

var okSyncs = regexp.MustCompile(`(?m)^keysync_syncs_total\{result="ok"\} (\d+)`)

// polls is the sidecar's count of good store reads.
func polls(addr string) (int, error) {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	m := okSyncs.FindSubmatch(b.Bytes())
	if m == nil {
		return 0, errors.New("no keysync_syncs_total{result=\"ok\"} yet")
	}
	return strconv.Atoi(string(m[1]))
}
