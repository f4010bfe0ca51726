// Command attack runs the five attacks of issue 28 on a real `keysync sidecar` process —
// what any pod of a cluster can send to its status port — and measures the sidecar's
// resident memory and open files before, during and after each, while a rotation is
// written to its store: the rotation must reach the app (this process, through the reload
// library, signalled by the sidecar with SIGHUP) during every attack, and a legitimate
// client (another source address) must still be answered.
//
//	go run ./test/attack --bin bin/keysync-file --flavor file --report docs/benchmarks.md   (make bench-attack)
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/sigil-dna/keysync/harness/procfs"
	"github.com/sigil-dna/keysync/reload"
	"github.com/sigil-dna/keysync/sidecar"
	"github.com/sigil-dna/keysync/test/docsection"
)

// Section is the section of docs/benchmarks.md this program writes.
const Section = "attacks"

// Config is one run.
type Config struct {
	Bin    string        // the keysync binary
	Flavor string        // its build, for the shipped memory limit
	Hold   time.Duration // how long each attack lasts
	Scale  int           // 1: the numbers; tests use less
}

// Result is one attack measured.
type Result struct {
	Attack                       string
	RSSBefore, RSSPeak, RSSAfter int64 // bytes
	FDsBefore, FDsPeak, FDsAfter int
	Refused                      float64 // connections closed at accept (keysync_http_connections_refused_total)
	Rotation                     time.Duration
	RotationErr                  string
	LegitOK, LegitTried          int
	Sent                         int64 // bytes the attacker wrote
	LimitBytes                   int64
}

func main() {
	var c Config
	var report string
	flag.StringVar(&c.Bin, "bin", "bin/keysync-file", "the keysync binary to attack")
	flag.StringVar(&c.Flavor, "flavor", "file", "its flavor (the shipped memory limit compared with)")
	flag.DurationVar(&c.Hold, "hold", 20*time.Second, "how long each attack lasts")
	flag.IntVar(&c.Scale, "scale", 1, "divide the attacks' connection counts by this")
	flag.StringVar(&report, "report", "", "benchmarks file whose attacks section is replaced")
	flag.Parse()
	res, err := Run(context.Background(), c)
	md := Markdown(c, res)
	fmt.Print(md)
	if err != nil {
		fmt.Fprintln(os.Stderr, "attack:", err)
		os.Exit(1)
	}
	if report != "" {
		if err := docsection.Replace(report, Section, md); err != nil {
			fmt.Fprintln(os.Stderr, "attack:", err)
			os.Exit(1)
		}
	}
}

// ShippedLimit is the chart's memory limit of a flavor (manifests/helm/keysync-app/values.yaml).
func ShippedLimit(root, flavor string) (int64, error) {
	data, err := os.ReadFile(filepath.Join(root, "manifests/helm/keysync-app/values.yaml"))
	if err != nil {
		return 0, err
	}
	var v struct {
		Keysync struct {
			FlavorMemory map[string]struct{ Limit string } `json:"flavorMemory"`
		} `json:"keysync"`
	}
	if err := yaml.Unmarshal(data, &v); err != nil {
		return 0, err
	}
	l, ok := v.Keysync.FlavorMemory[flavor]
	mib, err := strconv.ParseInt(strings.TrimSuffix(l.Limit, "Mi"), 10, 64)
	if !ok || err != nil {
		return 0, fmt.Errorf("no memory limit for flavor %q in values.yaml", flavor)
	}
	return mib << 20, nil
}

// world is the sidecar under attack and the app beside it (this process).
type world struct {
	bin, dir, store, status string
	cmd                     *exec.Cmd
	app                     *reload.Handle
	legit                   *http.Client
}

func start(ctx context.Context, bin string) (*world, error) {
	w := &world{bin: bin}
	dir, err := os.MkdirTemp("", "keysync-attack-")
	if err != nil {
		return w, err
	}
	w.dir, w.store = dir, filepath.Join(dir, "store.json")
	if out, err := exec.Command(bin, "rotate", "--store", "file://"+w.store, "--init", "--reason", "attack bench").CombinedOutput(); err != nil {
		return w, fmt.Errorf("first keyring: %v\n%s", err, out)
	}
	out := filepath.Join(dir, "out")
	if err := os.Mkdir(out, 0o700); err != nil {
		return w, err
	}
	// The app: this process, reloading on SIGHUP, with the status the sidecar confirms by.
	// SIGHUP is caught from now on: the sidecar's first signal may come before the
	// library listens for it, and the default action would end this process.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGHUP)
	appLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return w, err
	}
	pid := filepath.Join(dir, "app.pid")
	if err := os.WriteFile(pid, []byte(strconv.Itoa(os.Getpid())), 0o600); err != nil {
		return w, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return w, err
	}
	addr := ln.Addr().String()
	ln.Close()
	w.status = "http://" + addr
	w.cmd = exec.CommandContext(ctx, bin, "sidecar", "--store", "file://"+w.store, "--out", out, "--interval", "500ms",
		"--listen", addr, "--pid-file", pid, "--signal-min-age", "0s", "--confirm-url", "http://"+appLn.Addr().String()+"/keysync/status",
		"--log-format", "json", "--log-level", "warn")
	w.cmd.Stderr = os.Stderr
	if err := w.cmd.Start(); err != nil {
		return w, err
	}
	// A legitimate client from another source address: the rotator, Prometheus.
	w.legit = &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{
		DialContext:       (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 99)}}).DialContext,
		DisableKeepAlives: true}}
	if err := until(30*time.Second, func() bool { return w.get("/readyz") == nil }); err != nil {
		return w, fmt.Errorf("the sidecar never became ready: %w", err)
	}
	octx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if w.app, err = reload.Open(octx, filepath.Join(out, "keys.json"), reload.WithSignals(), reload.WithPollInterval(0)); err != nil {
		return w, err
	}
	mux := http.NewServeMux()
	mux.Handle("/keysync/status", w.app.StatusHandler())
	go http.Serve(appLn, mux)
	return w, nil
}

func (w *world) stop() {
	if w.cmd != nil && w.cmd.Process != nil {
		w.cmd.Process.Signal(syscall.SIGTERM)
		w.cmd.Wait()
	}
	if w.app != nil {
		w.app.Close()
	}
	os.RemoveAll(w.dir)
}

func (w *world) get(path string) error {
	resp, err := w.legit.Get(w.status + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", path, resp.Status)
	}
	return nil
}

// refused reads the sidecar's count of connections closed at accept. Right
// after a flood /metrics may still answer 503 (its in-flight limit), so it
// asks again for up to five seconds; -1 means it never answered.
func (w *world) refused() float64 {
	for range 50 {
		if n, ok := w.refusedOnce(); ok {
			return n
		}
		time.Sleep(100 * time.Millisecond)
	}
	return -1
}

func (w *world) refusedOnce() (float64, bool) {
	resp, err := w.legit.Get(w.status + "/metrics")
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		return 0, false
	}
	var n float64
	seen := false
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "keysync_http_connections_refused_total{"); ok {
			_, v, _ := strings.Cut(rest, "} ")
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return 0, false
			}
			n += f
			seen = true
		}
	}
	return n, seen && sc.Err() == nil
}

// rotate writes a new keyring to the store and waits for the app to hold it.
func (w *world) rotate(timeout time.Duration) (time.Duration, error) {
	before := w.app.Status().Generation
	t0 := time.Now()
	if out, err := exec.Command(w.bin, "rotate", "--store", "file://"+w.store, "--force", "--min-propagation", "0s",
		"--activation-delay", "1s", "--reason", "during an attack").CombinedOutput(); err != nil {
		return 0, fmt.Errorf("rotate: %v\n%s", err, out)
	}
	err := until(timeout, func() bool { return w.app.Status().Generation > before })
	return time.Since(t0), err
}

func until(d time.Duration, f func() bool) error {
	deadline := time.Now().Add(d)
	for !f() {
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %s", d)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// proc reads a process's resident memory and open files.
func proc(pid int) (rss int64, fds int) {
	rss, _ = procfs.RSS(pid)
	fds, _ = procfs.OpenFiles(pid)
	return rss, fds
}

// Run measures every attack on one sidecar.
func Run(ctx context.Context, c Config) ([]Result, error) {
	if c.Scale <= 0 {
		c.Scale = 1
	}
	root, err := repoRoot()
	if err != nil {
		return nil, err
	}
	limit, err := ShippedLimit(root, c.Flavor)
	if err != nil {
		return nil, err
	}
	w, err := start(ctx, c.Bin)
	defer w.stop()
	if err != nil {
		return nil, err
	}
	pid := w.cmd.Process.Pid
	addr := strings.TrimPrefix(w.status, "http://")
	var out []Result
	var errs []error
	for _, a := range attacks() {
		time.Sleep(time.Second) // the last attack's connections are closed
		r := Result{Attack: a.name, LimitBytes: limit}
		r.RSSBefore, r.FDsBefore = proc(pid)
		refusedBefore := w.refused()
		actx, cancel := context.WithTimeout(ctx, c.Hold)
		var sent atomic.Int64
		done := make(chan struct{})
		go func() { a.run(actx, addr, c.Scale, &sent); close(done) }()
		var mu sync.Mutex
		sample := func() {
			rss, fds := proc(pid)
			mu.Lock()
			r.RSSPeak, r.FDsPeak = max(r.RSSPeak, rss), max(r.FDsPeak, fds)
			mu.Unlock()
		}
		sampled := make(chan struct{})
		go func() {
			defer close(sampled)
			t := time.NewTicker(100 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-done:
					return
				case <-t.C:
					sample()
					r.LegitTried++
					if w.get("/status") == nil {
						r.LegitOK++
					}
				}
			}
		}()
		time.Sleep(c.Hold / 3) // the attack at full strength
		d, err := w.rotate(c.Hold / 2)
		r.Rotation = d
		if err != nil {
			r.RotationErr = err.Error()
			errs = append(errs, fmt.Errorf("%s: the rotation did not reach the app: %w", a.name, err))
		}
		<-done
		<-sampled
		cancel()
		sample()
		r.Sent = sent.Load()
		r.Refused = w.refused() - refusedBefore
		time.Sleep(2 * time.Second)
		r.RSSAfter, r.FDsAfter = proc(pid)
		if r.RSSPeak > limit {
			errs = append(errs, fmt.Errorf("%s: resident %.1f MiB, over the shipped limit %d MiB", a.name, mib(r.RSSPeak), limit>>20))
		}
		out = append(out, r)
	}
	if err := w.cmd.Process.Signal(syscall.Signal(0)); err != nil {
		errs = append(errs, errors.New("the sidecar died during the attacks"))
	}
	return out, errors.Join(errs...)
}

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	for err == nil {
		if _, serr := os.Stat(filepath.Join(dir, "go.mod")); serr == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	return "", errors.New("not inside the keysync module")
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// Markdown is the report.
func Markdown(c Config, rs []Result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "One `keysync sidecar` (%s build, `%s`), polling a file store every 500 ms, with this program as its app (the reload library, signalled with SIGHUP by `--pid-file`, confirming through `--confirm-url`). Each attack runs %s from one source address (the flood from 16); a third of the way in, `keysync rotate` writes a new keyring and the time until the app holds it is measured; a legitimate client on another address asks `/status` every 100 ms throughout. Resident memory (`VmRSS`) and open files (`/proc/PID/fd`) are sampled every 100 ms. Shipped memory limit of the build: %d MiB. Limits in force: %d connections, %d per source address, %d KiB headers, read header %s / read %s / write %s / idle %s timeouts, %d `/metrics` in flight.\n\n",
		c.Flavor, filepath.Base(c.Bin), c.Hold, limitOf(rs)>>20, sidecar.MaxConns, sidecar.MaxConnsPerSource, sidecar.MaxHeaderBytes>>10,
		sidecar.ServerReadHeaderTimeout, sidecar.ServerReadTimeout, sidecar.ServerWriteTimeout, sidecar.ServerIdleTimeout, sidecar.MaxMetricsInFlight)
	b.WriteString("| attack | resident before / peak / after | open files before / peak / after | refused at accept | rotation reached the app | legitimate /status answered |\n|---|---|---|---|---|---|\n")
	for _, r := range rs {
		rot := fmt.Sprintf("in %.2f s", r.Rotation.Seconds())
		if r.RotationErr != "" {
			rot = "**no**: " + r.RotationErr
		}
		fmt.Fprintf(&b, "| %s | %.1f / %.1f / %.1f MiB | %d / %d / %d | %.0f | %s | %d of %d |\n", r.Attack,
			mib(r.RSSBefore), mib(r.RSSPeak), mib(r.RSSAfter), r.FDsBefore, r.FDsPeak, r.FDsAfter, r.Refused, rot, r.LegitOK, r.LegitTried)
	}
	return b.String()
}

func limitOf(rs []Result) int64 {
	if len(rs) == 0 {
		return 0
	}
	return rs[0].LimitBytes
}
