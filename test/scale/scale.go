// Package scale measures how keysync's cost grows with the fleet: N sidecars against one
// store's real test server, for N up to thousands. Above what real processes allow on a
// small machine, the sidecars run in this process — the real sidecar package, one Run
// each, every one with its own store client (its own connections) and its own keys file
// on tmpfs — so what the store sees is what N pods would send. The keys file write is the
// end point: no app processes.
package scale

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/sigil-dna/keysync/keyring"
	"github.com/sigil-dna/keysync/rotate"
	"github.com/sigil-dna/keysync/sidecar"
	"github.com/sigil-dna/keysync/store"
)

// Options shape one run.
type Options struct {
	Interval   time.Duration // the sidecars' poll interval (jitter ±20 %)
	BackoffCap time.Duration
	Outage     time.Duration // how long the store is cut off; 0: no outage
	Dir        string        // where the keys files go (tmpfs: /dev/shm)
}

// Result is one store at one N.
type Result struct {
	Store string
	Pods  int
	// Requests per second the sidecars sent the store: steady at idle, the mean over the
	// rotation (from its write to the last keys file, plus one interval), the busiest
	// second after the outage.
	IdleRPS, RotationRPS float64
	MaxIdle              int // the busiest whole second at idle: the second-to-second spread
	MaxAfterOutage       int // the busiest whole second after the store came back
	MaxDuringOutage      int // the busiest second while it answered nothing (retries)
	// Propagation from the rotation's store write to each sidecar's keys file.
	PropagationMs [3]float64 // p50, p99, max
	Propagated    int        // sidecars that wrote the rotation
	// CPU of this process (every sidecar) per sidecar per second at idle.
	CPUPerPodSecond time.Duration
	// Kubernetes: the apiserver's resident memory and open watches on secrets at idle.
	APIServerRSS int64
	Watches      int
}

// written records, for each sidecar, when it wrote each generation.
type written struct {
	mu   sync.Mutex
	at   []map[int64]time.Time
	cond *sync.Cond
}

func newWritten(n int) *written {
	w := &written{at: make([]map[int64]time.Time, n)}
	for i := range w.at {
		w.at[i] = map[int64]time.Time{}
	}
	w.cond = sync.NewCond(&w.mu)
	return w
}

// count is how many sidecars wrote generation g.
func (w *written) count(g int64) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, m := range w.at {
		if _, ok := m[g]; ok {
			n++
		}
	}
	return n
}

// handler is one sidecar's log: it keeps the time of each "keys written" and drops the
// rest.
type handler struct {
	w *written
	i int
}

func (h handler) Enabled(context.Context, slog.Level) bool { return true }
func (h handler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h handler) WithGroup(string) slog.Handler            { return h }
func (h handler) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "keys written" {
		return nil
	}
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "generation" {
			h.w.mu.Lock()
			h.w.at[h.i][a.Value.Int64()] = r.Time
			h.w.mu.Unlock()
			return false
		}
		return true
	})
	return nil
}

// Run measures kind at n sidecars.
func Run(ctx context.Context, srv *Servers, kind string, n int, o Options) (*Result, error) {
	loc, err := srv.open(ctx, kind)
	if err != nil {
		return nil, err
	}
	defer loc.close()
	ko := keyring.Options{ActivationDelay: time.Hour, VerifyWindow: time.Hour, RotatedBy: "scale"}
	if _, err := rotate.Run(ctx, loc.writer, nil, rotate.Options{Init: true, Keyring: ko}); err != nil {
		return nil, fmt.Errorf("first keyring: %w", err)
	}
	dir, err := os.MkdirTemp(o.Dir, "keysync-scale-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)

	rctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	w := newWritten(n)
	var startErr error
	var stores []store.Store
	defer func() {
		for _, s := range stores {
			s.Close()
		}
	}()
	// Pods start over one interval, as a rollout would.
	for i := range n {
		st, err := loc.open(ctx)
		if err != nil {
			startErr = fmt.Errorf("sidecar %d: %w", i, err)
			break
		}
		stores = append(stores, st)
		out := filepath.Join(dir, fmt.Sprint(i))
		if err := os.Mkdir(out, 0o700); err != nil {
			return nil, err
		}
		sc, err := sidecar.New(sidecar.Config{Store: st, OutDir: out, Interval: o.Interval, Jitter: 0.2, BackoffCap: o.BackoffCap,
			Log: slog.New(handler{w: w, i: i})})
		if err != nil {
			return nil, err
		}
		wg.Add(1)
		go func() { defer wg.Done(); _ = sc.Run(rctx) }()
		time.Sleep(o.Interval / time.Duration(n))
	}
	if startErr != nil {
		return nil, startErr
	}
	if err := waitAll(ctx, w, 1, n, 3*o.Interval+time.Minute); err != nil {
		return nil, fmt.Errorf("start: %w", err)
	}
	res := &Result{Store: kind, Pods: n}

	// Idle: two intervals after the last start settled.
	time.Sleep(o.Interval)
	cpu0, t0 := cpuTime(), time.Now()
	time.Sleep(2 * o.Interval)
	cpu1, t1 := cpuTime(), time.Now()
	idle := loc.counts.Window(t0, t1)
	res.IdleRPS, res.MaxIdle = mean(idle), slices.Max(append(idle, 0))
	res.CPUPerPodSecond = time.Duration(float64(cpu1-cpu0) / t1.Sub(t0).Seconds() / float64(n))
	if loc.apiserver != nil {
		if res.APIServerRSS, res.Watches, err = loc.apiserver(ctx); err != nil {
			return nil, err
		}
	}

	// A rotation: its write is the start of every propagation.
	r, err := rotate.Run(ctx, loc.writer, nil, rotate.Options{Keyring: ko})
	if err != nil {
		return nil, fmt.Errorf("rotation: %w", err)
	}
	wrote := time.Now()
	waitErr := waitAll(ctx, w, r.Generation, n, 2*o.Interval+o.BackoffCap+10*time.Second)
	var props []float64
	w.mu.Lock()
	last := wrote
	for _, m := range w.at {
		if at, ok := m[r.Generation]; ok {
			props = append(props, float64(at.Sub(wrote).Microseconds())/1000)
			if at.After(last) {
				last = at
			}
		}
	}
	w.mu.Unlock()
	res.Propagated = len(props)
	res.PropagationMs = percentiles(props)
	end := last.Add(o.Interval)
	time.Sleep(time.Until(end))
	res.RotationRPS = mean(loc.counts.Window(wrote.Truncate(time.Second), end))
	if waitErr != nil {
		return res, fmt.Errorf("rotation: %w", waitErr)
	}

	if o.Outage > 0 {
		restore := loc.cut()
		cut := time.Now()
		time.Sleep(o.Outage)
		restore()
		back := time.Now()
		time.Sleep(o.BackoffCap + 2*o.Interval)
		// Whole seconds only: the second the store came back also holds the outage's
		// last retries.
		res.MaxDuringOutage = slices.Max(append(loc.counts.Window(cut.Add(time.Second), back), 0))
		res.MaxAfterOutage = slices.Max(append(loc.counts.Window(back.Add(time.Second), time.Now()), 0))
	}
	return res, nil
}

// waitAll waits until every sidecar wrote generation g.
func waitAll(ctx context.Context, w *written, g int64, n int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		got := w.count(g)
		if got == n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d sidecars wrote generation %d within %s", got, n, g, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func mean(xs []int) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := 0
	for _, x := range xs {
		s += x
	}
	return float64(s) / float64(len(xs))
}

func percentiles(xs []float64) [3]float64 {
	if len(xs) == 0 {
		return [3]float64{}
	}
	slices.Sort(xs)
	at := func(p float64) float64 { return xs[min(len(xs)-1, int(p*float64(len(xs))))] }
	return [3]float64{at(0.5), at(0.99), xs[len(xs)-1]}
}

// cpuTime is this process's user and system time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
