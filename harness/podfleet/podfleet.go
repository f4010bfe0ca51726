// Package podfleet starts and drives a fleet of local pods — each a `keysync pod` process
// supervising a real sidecar and a real demo app, in a PID namespace of its own when
// root — and the signed traffic between them. The demo, the end-to-end tests and the
// fleet benchmark use it.
package podfleet

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/sigil-dna/keysync/harness/app"
	"github.com/sigil-dna/keysync/harness/pod"
	"github.com/sigil-dna/keysync/harness/ports"
	"github.com/sigil-dna/keysync/harness/procfs"
	"github.com/sigil-dna/keysync/keyring"
	"github.com/sigil-dna/keysync/keyring/secretscan"
	"github.com/sigil-dna/keysync/reload"
)

// Config shapes a fleet.
type Config struct {
	Work          string          // working directory: pod logs, pid files, the demo-app link
	Keysync       string          // the keysync binary: the sidecars
	Demo          string          // the keysync-demo binary: the pod launcher and, linked as demo-app, the app
	Store         string          // --store URL for every sidecar
	Pods          int             // number of pods
	PIDNamespaces bool            // one PID namespace per pod (root and unshare(1))
	Interval      time.Duration   // sidecar poll interval
	SidecarArgs   []string        // more sidecar flags
	Env           []string        // more environment for both processes (VAULT_ADDR, …)
	ClockOffsets  []time.Duration // per pod, cycled; the apps' clocks run this far ahead
	// PodStore, when set, may give pod i's sidecar another --store URL and more
	// environment (a path or an endpoint that a test can cut); "" keeps Store.
	PodStore func(i int) (store string, env []string)
	Log      *slog.Logger
}

// Fleet is N pods.
type Fleet struct {
	Pods          []*Pod
	PIDNamespaces bool
	once          sync.Once
	killed        int
}

// Pod is one `keysync pod` process: a sidecar and an app.
type Pod struct {
	Index       int
	AppURL      string
	SidecarURL  string // its /status, /metrics
	ClockOffset time.Duration
	KeysDir     string
	cmd         *exec.Cmd
	logPath     string
	logFile     *os.File
}

// AppName is the demo app's process name: keysync-demo run through a link of that name.
const AppName = "demo-app"

var httpClient = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 32}}

// PIDNamespacesAvailable reports whether pods can get PID namespaces of their own.
func PIDNamespacesAvailable() bool {
	if os.Geteuid() != 0 {
		return false
	}
	_, err := exec.LookPath("unshare")
	return err == nil
}

// memDir is where keys files go: tmpfs like an emptyDir with medium: Memory, when the
// machine has /dev/shm.
func memDir(work string) string {
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		if d, err := os.MkdirTemp("/dev/shm", "keysync-demo-"); err == nil {
			return d
		}
	}
	return filepath.Join(work, "keys")
}

// Start starts the pods. It does not wait for them: see WaitReady.
func Start(ctx context.Context, cfg Config) (*Fleet, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	// The demo-app link and the pods need both binaries from anywhere.
	for _, exe := range []*string{&cfg.Keysync, &cfg.Demo} {
		abs, err := filepath.Abs(*exe)
		if err != nil {
			return nil, err
		}
		*exe = abs
	}
	bin := filepath.Join(cfg.Work, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return nil, err
	}
	app := filepath.Join(bin, AppName)
	_ = os.Remove(app)
	if err := os.Symlink(cfg.Demo, app); err != nil {
		return nil, fmt.Errorf("podfleet: linking the demo app: %w", err)
	}
	mem := memDir(cfg.Work)
	fl := &Fleet{PIDNamespaces: cfg.PIDNamespaces}
	for i := range cfg.Pods {
		p, err := fl.startPod(cfg, app, mem, i)
		if err != nil {
			fl.Stop()
			return nil, err
		}
		fl.Pods = append(fl.Pods, p)
	}
	return fl, nil
}

func (fl *Fleet) startPod(cfg Config, app, mem string, i int) (*Pod, error) {
	podDir := filepath.Join(cfg.Work, fmt.Sprintf("pod%d", i))
	out := filepath.Join(mem, fmt.Sprintf("pod%d", i))
	for _, d := range []string{podDir, out} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	appPort, err := ports.Free()
	if err != nil {
		return nil, err
	}
	sidecarPort, err := ports.Free()
	if err != nil {
		return nil, err
	}
	appURL := "http://127.0.0.1:" + strconv.Itoa(appPort)
	pidFile := filepath.Join(podDir, "app.pid")
	var offset time.Duration
	if len(cfg.ClockOffsets) > 0 {
		offset = cfg.ClockOffsets[i%len(cfg.ClockOffsets)]
	}
	appArgs := []string{app, "--keys", filepath.Join(out, "keys.json"), "--listen", "127.0.0.1:" + strconv.Itoa(appPort),
		"--pid-file", pidFile, "--clock-offset", offset.String()}
	storeURL, podEnv := cfg.Store, []string(nil)
	if cfg.PodStore != nil {
		if s, env := cfg.PodStore(i); s != "" || env != nil {
			podEnv = env
			if s != "" {
				storeURL = s
			}
		}
	}
	sidecarArgs := []string{cfg.Keysync, "sidecar", "--store", storeURL, "--out", out, "--interval", cfg.Interval.String(),
		"--listen", "127.0.0.1:" + strconv.Itoa(sidecarPort), "--confirm-url", appURL + "/keysync/status", "--log-format", "json"}
	if cfg.PIDNamespaces {
		sidecarArgs = append(sidecarArgs, "--signal-process", AppName)
	} else {
		sidecarArgs = append(sidecarArgs, "--pid-file", pidFile)
	}
	sidecarArgs = append(sidecarArgs, cfg.SidecarArgs...)
	argv := append(append(append([]string{cfg.Demo, "pod"}, appArgs...), pod.Separator), sidecarArgs...)
	if cfg.PIDNamespaces {
		argv = append([]string{"unshare", "--pid", "--fork", "--mount-proc", "--kill-child=SIGTERM", "--"}, argv...)
	}
	logPath := filepath.Join(podDir, "output.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = append(append(os.Environ(), cfg.Env...), podEnv...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("podfleet: starting pod %d: %w", i, err)
	}
	cfg.Log.Debug("pod started", "pod", i, "pid", cmd.Process.Pid, "app", appURL)
	return &Pod{Index: i, AppURL: appURL, SidecarURL: "http://127.0.0.1:" + strconv.Itoa(sidecarPort), ClockOffset: offset,
		KeysDir: out, cmd: cmd, logPath: logPath, logFile: logFile}, nil
}

// Stop ends every pod: all are asked at once (SIGTERM to each pod's supervisor), each has
// 5 s to stop before SIGKILL, and the in-memory keys are removed. It returns how many pods
// had to be killed (0 when every pod stopped when asked).
func (fl *Fleet) Stop() (killed int) {
	fl.once.Do(func() {
		for _, p := range fl.Pods {
			p.terminate()
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		deadline := time.Now().Add(5 * time.Second)
		for _, p := range fl.Pods {
			wg.Add(1)
			go func() {
				defer wg.Done()
				done := make(chan struct{})
				go func() { _ = p.cmd.Wait(); close(done) }()
				select {
				case <-done:
				case <-time.After(time.Until(deadline)):
					_ = p.cmd.Process.Kill()
					<-done
					mu.Lock()
					fl.killed++
					mu.Unlock()
				}
				p.logFile.Close()
				os.RemoveAll(p.KeysDir)
			}()
		}
		wg.Wait()
	})
	return fl.killed
}

// terminate asks the pod to stop. In a PID namespace of its own the pod's supervisor runs
// under `unshare --fork`, whose parent ignores SIGTERM: the signal goes to its child, the
// supervisor (PID 1 of the namespace), which stops the app and the sidecar and exits.
func (p *Pod) terminate() {
	target := p.cmd.Process.Pid
	if kids := procfs.Children(target); len(kids) == 1 {
		target = kids[0]
	}
	_ = syscall.Kill(target, syscall.SIGTERM)
}

// LogFiles are the files holding everything each pod's processes printed.
func (fl *Fleet) LogFiles() []string {
	var out []string
	for _, p := range fl.Pods {
		out = append(out, p.logPath)
	}
	return out
}

// Status is the app's reload status.
func (p *Pod) Status(ctx context.Context) (reload.Status, error) {
	var st reload.Status
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.AppURL+"/keysync/status", nil)
	resp, err := httpClient.Do(req)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("status: %s", resp.Status)
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// Send has the app sign payload and deliver it to another app, which verifies it.
func (p *Pod) Send(ctx context.Context, to *Pod, payload string) (app.SendResult, error) {
	var res app.SendResult
	u := p.AppURL + "/send?to=" + url.QueryEscape(to.AppURL)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader([]byte(payload)))
	resp, err := httpClient.Do(req)
	if err != nil {
		return res, err
	}
	defer resp.Body.Close()
	return res, json.NewDecoder(resp.Body).Decode(&res)
}

// Deliver posts an event with a signature of the caller's to the app and returns the
// HTTP status: 204 verified, 401 refused.
func (p *Pod) Deliver(ctx context.Context, payload []byte, sig string) (int, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, p.AppURL+"/event", bytes.NewReader(payload))
	req.Header.Set(app.SignatureHeader, sig)
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// HostPIDs returns the host pids of this pod's processes whose comm is name.
func (p *Pod) HostPIDs(name string) []int {
	return append(ProcessesWithArg(name, p.KeysDir), ProcessesWithArg(name, filepath.Join(p.KeysDir, "keys.json"))...)
}

// ProcessesWithArg returns the pids of the processes whose comm is name and whose command
// line has arg as one whole argument (a path is never matched by its prefix: pod1's
// directory is a prefix of pod10's).
func ProcessesWithArg(name, arg string) []int {
	return procfs.Find(func(pid int, args []string) bool { return procfs.Comm(pid) == name && slices.Contains(args, arg) })
}

// WaitReady waits until every app has loaded generation gen or later.
func (fl *Fleet) WaitReady(ctx context.Context, gen int64) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for _, p := range fl.Pods {
		for {
			st, err := p.Status(ctx)
			if err == nil && st.Generation >= gen {
				break
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("podfleet: pod %d never became ready (see %s): %v", p.Index, p.logPath, err)
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	return nil
}

// Measure records, for each app, the time from the store write to the app's reload of
// generation gen (the app's own loaded_at), polling every step until ctx ends.
func (fl *Fleet) Measure(ctx context.Context, gen int64, written time.Time, step time.Duration, into *Latencies) {
	for _, p := range fl.Pods {
		for ctx.Err() == nil {
			st, err := p.Status(ctx)
			if err == nil && st.Generation >= gen {
				if st.Generation == gen {
					into.Add(st.LoadedAt.Sub(written))
				}
				break
			}
			select {
			case <-ctx.Done():
			case <-time.After(step):
			}
		}
	}
}

// Latencies collects durations; safe for concurrent use.
type Latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

// Add records one duration (negative ones count as zero).
func (l *Latencies) Add(d time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, max(d, 0))
	l.mu.Unlock()
}

// Durations returns a copy of what was recorded.
func (l *Latencies) Durations() []time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.d)
}

// Count is how many were recorded.
func (l *Latencies) Count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.d)
}

// Percentiles returns p50, p90, p99 and max in milliseconds.
func (l *Latencies) Percentiles() [4]float64 {
	l.mu.Lock()
	d := slices.Clone(l.d)
	l.mu.Unlock()
	var out [4]float64
	if len(d) == 0 {
		return out
	}
	slices.Sort(d)
	at := func(q float64) float64 {
		i := int(q * float64(len(d)-1))
		return float64(d[i].Microseconds()) / 1000
	}
	return [4]float64{at(0.50), at(0.90), at(0.99), at(1)}
}

// ScanForSecrets counts, over the files, the occurrences of every secret in hex, base64
// and base64url.
func ScanForSecrets(files []string, secrets []keyring.Secret) (int, error) {
	hits := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return hits, err
		}
		for _, s := range secrets {
			hits += secretscan.Count(data, s)
		}
	}
	return hits, nil
}
