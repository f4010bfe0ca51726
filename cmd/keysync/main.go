// Command keysync rotates the HMAC secret that signs and verifies events across every
// running pod with no restart and no failed verification. Run `keysync --help`.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/sigil-dna/keysync/internal/cli"
)

// version is set with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil && !errors.Is(err, cli.ErrHelp) {
		fmt.Fprintln(os.Stderr, "keysync:", err)
		var ue cli.UsageError
		if errors.As(err, &ue) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

type command struct {
	summary string
	run     func(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error
}

func commands() map[string]command {
	return map[string]command{
		"sidecar":  {summary: "keep an app's keys file in step with the store and signal the app", run: runSidecar},
		"rotate":   {summary: "stage a new key in the store (or --emergency: replace all keys now)", run: runRotate},
		"rollback": {summary: "make the previous key sign again, or withdraw a held key, under a new generation", run: runRollback},
		"promote":  {summary: "promote the held key once every member of the fleet holds it", run: runPromote},
		"status":   {summary: "show the keys in the store: pending, current, previous, with times", run: runStatus},
		"verify":   {summary: "check a signature against the store's keyring: which key, its state, or why it is refused", run: runVerify},
		"sign":     {summary: "sign a payload with the store's signing key (tests, demos)", run: runSign},
		"version": {summary: "print the version", run: func(_ context.Context, _ []string, _ func(string) string, out, _ io.Writer) error {
			fmt.Fprintf(out, "keysync %s %s build (stores: %s)\n", version, flavor(), strings.Join(linkedSchemes(), ", "))
			return nil
		}},
	}
}

// commandOrder is the order of the commands in --help.
var commandOrder = []string{"sidecar", "rotate", "promote", "rollback", "status", "verify", "sign", "version"}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		printHelp(stdout)
		if len(args) == 0 {
			return cli.Usagef("no command given")
		}
		return nil
	}
	cmd, ok := commands()[args[0]]
	if !ok {
		return cli.Usagef("unknown command %q (see keysync --help)", args[0])
	}
	return cmd.run(ctx, args[1:], getenv, stdout, stderr)
}

func printHelp(w io.Writer) {
	fmt.Fprint(w, `keysync rotates the HMAC secret that signs and verifies events across every running
pod: no restart, no downtime, no failed verification. New keys are staged: published
first (they verify but do not sign), switched to once every pod's app holds them
(rotate --confirm-fleet) or at one instant by every pod's own clock, and the replaced key
keeps verifying for a window.

Usage: keysync <command> [flags]

Commands:
`)
	for _, name := range commandOrder {
		fmt.Fprintf(w, "  %-9s %s\n", name, commands()[name].summary)
	}
	fmt.Fprint(w, `
Fleets (--confirm-fleet, status --fleet):
  k8s://NAMESPACE?selector=LABELS[&port=9102]  pods by label selector (needs list on pods)
  dns://NAME:PORT                             every address of a name (a headless Service)
  http://HOST:PORT[,http://HOST:PORT…]         a static list of sidecars

Stores (--store):
`)
	for _, fam := range families {
		for _, k := range fam.Stores {
			fmt.Fprintf(w, "  %-40s  %s\n", k.Example, strings.ReplaceAll(k.Help, "\n", "\n"+strings.Repeat(" ", 44)))
		}
	}
	fmt.Fprintln(w, "\n"+buildLine())
	fmt.Fprint(w, `
Run 'keysync <command> --help' for the flags of a command. Every flag can also be set
with a KEYSYNC_* environment variable (--signal-process: KEYSYNC_SIGNAL_PROCESS).
Exit codes: 0 success, 1 failure, 2 usage error.
`)
}

// flagSets returns the flag set of every public command, for --help, the configuration
// reference (docs/configuration.md) and the compose test.
func flagSets() map[string]*cli.Command {
	sc, _ := sidecarCommand()
	rot, _ := rotateCommand("rotate")
	rb, _ := rotateCommand("rollback")
	pr, _ := rotateCommand("promote")
	st, _ := statusCommand()
	vf, _ := verifyCommand("verify")
	sg, _ := verifyCommand("sign")
	return map[string]*cli.Command{"sidecar": sc, "rotate": rot, "promote": pr, "rollback": rb, "status": st, "verify": vf, "sign": sg}
}
