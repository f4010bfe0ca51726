// Command keysync-demo is keysync's local demo: a fleet of pods on the embedded file
// store, each a real `keysync sidecar` and a real app process, rotating under load. It
// also holds the demo app and the pod launcher the demo, the end-to-end tests and the
// fleet benchmark start. It is never part of the keysync image: the demo app signs
// anything it is asked to and posts it anywhere. Run `keysync-demo --help`.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"syscall"

	"github.com/sigil-dna/keysync/demo"
	"github.com/sigil-dna/keysync/harness/app"
	"github.com/sigil-dna/keysync/harness/pod"
	"github.com/sigil-dna/keysync/harness/podfleet"
	"github.com/sigil-dna/keysync/internal/cli"
	"golang.org/x/term"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	args := os.Args[1:]
	// Called through a link named demo-app, the binary is the demo app: it then has a
	// process name of its own for the sidecar to find.
	if filepath.Base(os.Args[0]) == podfleet.AppName {
		args = append([]string{"app"}, args...)
	}
	err := run(ctx, args, os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil && !errors.Is(err, cli.ErrHelp) {
		fmt.Fprintln(os.Stderr, "keysync-demo:", err)
		var ue cli.UsageError
		if errors.As(err, &ue) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "app":
			return app.Main(ctx, args[1:], getenv, stderr)
		case "pod":
			i := slices.Index(args, pod.Separator)
			if i < 0 {
				return cli.Usagef("usage: keysync-demo pod APP-COMMAND... %s SIDECAR-COMMAND...", pod.Separator)
			}
			return pod.Run(ctx, args[1:i], args[i+1:], stdout, stderr)
		}
	}
	return runDemo(ctx, args, getenv, stdout, stderr)
}

func runDemo(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	c, f := demo.Command()
	c.Details += `

Also: 'keysync-demo app --help' (the demo app, also run through a link named demo-app)
and 'keysync-demo pod APP... --- SIDECAR...' (one pod: both processes, restarted when
they exit).`
	if err := c.Parse(args, getenv, stdout); err != nil {
		return err
	}
	// The progress is the show; log records would drown it: warnings only unless
	// --verbose, or everything to --log-file.
	if !f.Verbose && !c.IsSet("log-level") {
		f.Log.Level = "warn"
	}
	logTo := stderr
	if f.LogFile != "" {
		lf, err := os.OpenFile(f.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return fmt.Errorf("--log-file: %w", err)
		}
		defer lf.Close()
		logTo, f.Log.Format = lf, "json"
		if !c.IsSet("log-level") {
			f.Log.Level = "info"
		}
	}
	log, err := f.Log.Logger(logTo)
	if err != nil {
		return err
	}
	cfg := f.Config
	if fd, ok := stderr.(*os.File); ok {
		cfg.Terminal = term.IsTerminal(int(fd.Fd()))
	}
	if cfg.Demo, err = os.Executable(); err != nil {
		return err
	}
	if cfg.Keysync, err = findKeysync(cfg.Keysync, cfg.Demo); err != nil {
		return err
	}
	cfg.PIDNamespaces = !f.NoPIDNamespaces && podfleet.PIDNamespacesAvailable()
	cfg.Progress, cfg.Log = stderr, log
	sum, err := demo.Run(ctx, cfg)
	if err != nil {
		return err
	}
	if f.JSON {
		out, _ := json.Marshal(sum)
		fmt.Fprintln(stdout, string(out))
	} else {
		demo.PrintSummary(stdout, sum)
	}
	switch {
	case sum.FailedVerifications > 0:
		return fmt.Errorf("%d failed verifications (first: %s)", sum.FailedVerifications, sum.FirstFailure)
	case sum.SecretsInOutput > 0:
		return fmt.Errorf("a secret appeared %d times in process output", sum.SecretsInOutput)
	}
	return nil
}

// findKeysync returns the keysync binary the sidecars run: the flag, else keysync beside
// this binary (make demo builds both into bin/), else keysync on $PATH.
func findKeysync(flagValue, self string) (string, error) {
	if flagValue != "" {
		return flagValue, nil
	}
	beside := filepath.Join(filepath.Dir(self), "keysync")
	if fi, err := os.Stat(beside); err == nil && !fi.IsDir() {
		return beside, nil
	}
	if p, err := exec.LookPath("keysync"); err == nil {
		return p, nil
	}
	return "", cli.Usagef("no keysync binary beside %s or on $PATH: build it (make build) or give --keysync", self)
}
