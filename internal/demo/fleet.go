package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
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

	"github.com/sigil-dna/keysync/internal/demoapp"
	"github.com/sigil-dna/keysync/internal/pod"
	"github.com/sigil-dna/keysync/internal/secretscan"
	"github.com/sigil-dna/keysync/keyring"
	"github.com/sigil-dna/keysync/reload"
)

type fleetConfig struct {
	work, store, exe string
	pods             int
	pidns            bool
	interval         time.Duration
	log              *slog.Logger
}

// fleet is N pods of the demo, each a `keysync pod` process supervising a sidecar and an app.
type fleet struct {
	pods  []*podProc
	pidns bool
	once  sync.Once
}

type podProc struct {
	index    int
	appURL   string
	cmd      *exec.Cmd
	logPath  string
	logFile  *os.File
	keysPath string
}

var httpClient = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 32}}

// PIDNamespacesAvailable reports whether pods can get PID namespaces of their own.
func PIDNamespacesAvailable() bool {
	if os.Geteuid() != 0 {
		return false
	}
	_, err := exec.LookPath("unshare")
	return err == nil
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
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

func startFleet(ctx context.Context, cfg fleetConfig) (*fleet, error) {
	bin := filepath.Join(cfg.work, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return nil, err
	}
	app := filepath.Join(bin, "demo-app")
	_ = os.Remove(app)
	if err := os.Symlink(cfg.exe, app); err != nil {
		return nil, fmt.Errorf("demo: linking the demo app: %w", err)
	}
	mem := memDir(cfg.work)
	fl := &fleet{pidns: cfg.pidns}
	for i := range cfg.pods {
		p, err := fl.startPod(ctx, cfg, app, mem, i)
		if err != nil {
			fl.stop()
			return nil, err
		}
		fl.pods = append(fl.pods, p)
	}
	return fl, nil
}

func (fl *fleet) startPod(ctx context.Context, cfg fleetConfig, app, mem string, i int) (*podProc, error) {
	podDir := filepath.Join(cfg.work, fmt.Sprintf("pod%d", i))
	out := filepath.Join(mem, fmt.Sprintf("pod%d", i))
	for _, d := range []string{podDir, out} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	appPort, err := freePort()
	if err != nil {
		return nil, err
	}
	sidecarPort, err := freePort()
	if err != nil {
		return nil, err
	}
	appURL := "http://127.0.0.1:" + strconv.Itoa(appPort)
	pidFile := filepath.Join(podDir, "app.pid")
	appArgs := []string{app, "--keys", filepath.Join(out, "keys.json"), "--listen", "127.0.0.1:" + strconv.Itoa(appPort), "--pid-file", pidFile}
	sidecarArgs := []string{cfg.exe, "sidecar", "--store", cfg.store, "--out", out, "--interval", cfg.interval.String(),
		"--listen", "127.0.0.1:" + strconv.Itoa(sidecarPort), "--confirm-url", appURL + "/keysync/status", "--log-format", "json"}
	if cfg.pidns {
		sidecarArgs = append(sidecarArgs, "--signal-process", "demo-app")
	} else {
		sidecarArgs = append(sidecarArgs, "--pid-file", pidFile)
	}
	argv := append(append(append([]string{cfg.exe, "pod"}, appArgs...), pod.Separator), sidecarArgs...)
	if cfg.pidns {
		argv = append([]string{"unshare", "--pid", "--fork", "--mount-proc", "--kill-child=SIGTERM", "--"}, argv...)
	}
	logPath := filepath.Join(podDir, "output.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("demo: starting pod %d: %w", i, err)
	}
	cfg.log.Debug("pod started", "pod", i, "pid", cmd.Process.Pid, "app", appURL)
	return &podProc{index: i, appURL: appURL, cmd: cmd, logPath: logPath, logFile: logFile, keysPath: filepath.Join(out, "keys.json")}, nil
}

// stop ends every pod (SIGTERM, then SIGKILL after 5 s) and removes the in-memory keys.
func (fl *fleet) stop() {
	fl.once.Do(func() {
		for _, p := range fl.pods {
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
		}
		for _, p := range fl.pods {
			done := make(chan struct{})
			go func() { _ = p.cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				_ = p.cmd.Process.Kill()
				<-done
			}
			p.logFile.Close()
			os.RemoveAll(filepath.Dir(p.keysPath))
		}
	})
}

func (fl *fleet) logFiles() []string {
	var out []string
	for _, p := range fl.pods {
		out = append(out, p.logPath)
	}
	return out
}

func (p *podProc) status(ctx context.Context) (reload.Status, error) {
	var st reload.Status
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.appURL+"/keysync/status", nil)
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

func (p *podProc) send(ctx context.Context, to *podProc, payload string) (demoapp.SendResult, error) {
	var res demoapp.SendResult
	u := p.appURL + "/send?to=" + url.QueryEscape(to.appURL)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader([]byte(payload)))
	resp, err := httpClient.Do(req)
	if err != nil {
		return res, err
	}
	defer resp.Body.Close()
	return res, json.NewDecoder(resp.Body).Decode(&res)
}

// waitReady waits until every app has loaded generation gen or later.
func (fl *fleet) waitReady(ctx context.Context, gen int64) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for _, p := range fl.pods {
		for {
			st, err := p.status(ctx)
			if err == nil && st.Generation >= gen {
				break
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("demo: pod %d never became ready (see %s): %v", p.index, p.logPath, err)
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	return nil
}

// measure records, for each app, the time from the store write to the app's reload of
// generation gen (the app's own loaded_at).
func (fl *fleet) measure(ctx context.Context, gen int64, written time.Time, into *latencies) {
	for _, p := range fl.pods {
		for ctx.Err() == nil {
			st, err := p.status(ctx)
			if err == nil && st.Generation >= gen {
				if st.Generation == gen {
					into.add(st.LoadedAt.Sub(written))
				}
				break
			}
			select {
			case <-ctx.Done():
			case <-time.After(5 * time.Millisecond):
			}
		}
	}
}

type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, max(d, 0))
	l.mu.Unlock()
}

func (l *latencies) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.d)
}

// percentiles returns p50, p90, p99 and max in milliseconds.
func (l *latencies) percentiles() [4]float64 {
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

// scanForSecrets counts, over the files, the occurrences of every secret in hex,
// base64 and base64url.
func scanForSecrets(files []string, secrets []keyring.Secret) (int, error) {
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
