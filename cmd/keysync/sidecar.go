package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime/debug"
	"strconv"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/sigil-dna/keysync/internal/cli"
	"github.com/sigil-dna/keysync/sidecar"
)

func sidecarCommand() (*cli.Command, *sidecarFlags) {
	c := cli.New("sidecar", "Keep an app's keys file in step with the store and signal the app on each change.", `
Reads the store (watching it where the store allows, else polling with jitter),
validates and prunes the keyring, writes it atomically into --out (an in-memory volume
shared with the app), signals the app through the shared process namespace, confirms
the reload through the app's status endpoint, and serves /healthz, /readyz, /metrics and
/status on --listen. When the store is down or holds an invalid document, the last good
keys file stays and staleness is reported; the file is never blanked. The Go runtime
collects garbage at GOGC=25 unless GOGC is set (a small heap stays small); in a pod, set
GOMEMLIMIT to the memory limit (the shipped manifests do).`)
	f := &sidecarFlags{}
	c.StringVar(&f.store, "store", "", "store `URL`, e.g. file:///etc/keysync/keys.json")
	c.StringVar(&f.out, "out", "", "`directory` the keys file is written into (an emptyDir with medium: Memory)")
	c.StringVar(&f.file, "file", sidecar.DefaultFileName, "keys file `name` inside --out")
	c.StringVar(&f.mode, "mode", "0440", "keys file permission bits, octal; at most 0640 (the app's group may read it, nobody else) unless --allow-mode")
	c.BoolVar(&f.allowMode, "allow-mode", false, "accept a --mode wider than 0640 (others could read the keys)")
	c.DurationVar(&f.interval, "interval", sidecar.DefaultInterval, "poll interval (a store watch, where available, reacts sooner)")
	c.Float64Var(&f.jitter, "jitter", sidecar.DefaultJitter, "poll jitter as a `fraction` of --interval, ±")
	c.StringVar(&f.process, "signal-process", "", "`name` of the app's executable to signal (needs shareProcessNamespace)")
	c.StringVar(&f.pidFile, "pid-file", "", "`path` of a file holding the app's pid, instead of --signal-process")
	c.StringVar(&f.signal, "signal", "HUP", "signal sent to the app after each change")
	c.DurationVar(&f.signalMinAge, "signal-min-age", sidecar.DefaultSignalMinAge, "do not signal an app process younger than this (it may not handle the signal yet; it reads the keys file when it starts); retried")
	c.StringVar(&f.confirmURL, "confirm-url", "", "app status `URL` (the reload library's status handler) to confirm each reload")
	c.DurationVar(&f.confirmTimeout, "confirm-timeout", sidecar.DefaultConfirmTimeout, "how long to wait for a reload confirmation")
	c.DurationVar(&f.maxStale, "max-stale", 0, "readiness fails after this long without a good store read (0: never)")
	c.DurationVar(&f.backoffCap, "backoff-cap", sidecar.DefaultBackoffCap, "longest wait between retries of a failing store (full jitter)")
	c.StringVar(&f.listen, "listen", "127.0.0.1:9102", "`address` for /healthz, /readyz, /metrics and /status; in a pod use :9102 so probes reach it")
	c.BoolVar(&f.once, "once", false, "write the keys file once and exit (init-container mode): 0 on success")
	f.stores.register(c)
	f.log.Register(c)
	return c, f
}

type sidecarFlags struct {
	store, out, file, mode, process, pidFile, signal, confirmURL, listen string
	interval, confirmTimeout, maxStale, backoffCap, signalMinAge         time.Duration
	jitter                                                               float64
	once, allowMode                                                      bool
	stores                                                               storeFlags
	log                                                                  cli.LogFlags
}

func runSidecar(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	c, f := sidecarCommand()
	if err := c.Parse(args, getenv, stdout); err != nil {
		return err
	}
	log, err := f.log.Logger(stderr)
	if err != nil {
		return err
	}
	setSidecarGC(getenv)
	mode, err := strconv.ParseUint(f.mode, 8, 32)
	if err != nil || mode > 0o777 {
		return cli.Usagef("--mode %q: want octal permission bits such as 0440", f.mode)
	}
	if mode&^0o640 != 0 && !f.allowMode {
		return cli.Usagef("--mode %s lets users other than the sidecar's and the app's group read or write the keys: use 0440 or 0640, or --allow-mode", f.mode)
	}
	sig, err := sidecar.ParseSignal(f.signal)
	if err != nil {
		return cli.Usagef("--signal: %v", err)
	}
	st, err := f.stores.open(ctx, f.store, getenv, log)
	if err != nil {
		return err
	}
	defer st.Close()
	sc, err := sidecar.New(sidecar.Config{
		Store: st, OutDir: f.out, FileName: f.file, Mode: os.FileMode(mode), Interval: f.interval, Jitter: f.jitter,
		ProcessName: f.process, PidFile: f.pidFile, Signal: sig, SignalMinAge: f.signalMinAge, ConfirmURL: f.confirmURL,
		ConfirmTimeout: f.confirmTimeout, MaxStale: f.maxStale, BackoffCap: f.backoffCap, Log: log,
	})
	if err != nil {
		return cli.UsageError{Err: err}
	}
	if f.once {
		if err := sc.Once(ctx); err != nil {
			return fmt.Errorf("sidecar --once: %w", err)
		}
		log.Info("keys file written once, exiting", "store", st.String())
		return nil
	}
	ln, err := net.Listen("tcp", f.listen)
	if err != nil {
		return fmt.Errorf("--listen %s: %w", f.listen, err)
	}
	log.Info("sidecar started", "store", st.String(), "out", f.out, "listen", ln.Addr().String(),
		"interval", f.interval.String(), "signal_target", firstNonEmpty(f.process, f.pidFile))
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return sc.Serve(gctx, ln) })
	g.Go(func() error {
		err := sc.Run(gctx)
		if err == nil {
			err = context.Canceled // stop the server too
		}
		return err
	})
	if err := g.Wait(); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	log.Info("sidecar stopped")
	return nil
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// SidecarGCPercent is the sidecar's GOGC unless the environment sets one. Its live heap is
// a few hundred KB, so the runtime's 4 MB minimum heap target (GOGC=100) let garbage from
// /metrics scrapes more than double its resident memory before a collection; at 25 the
// target is 1 MB and a collection of so small a heap costs about 100 µs
// (docs/benchmarks.md, footprint).
const SidecarGCPercent = 25

func setSidecarGC(getenv func(string) string) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(SidecarGCPercent)
	}
}
