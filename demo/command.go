package demo

import (
	"fmt"
	"io"
	"time"

	"github.com/sigil-dna/keysync/internal/cli"
)

// Flags are the settings of `keysync-demo`.
type Flags struct {
	Config
	JSON, NoPIDNamespaces, Verbose bool
	LogFile                        string
	Log                            cli.LogFlags
}

// Command returns the flag set of `keysync-demo`.
func Command() (*cli.Command, *Flags) {
	c := cli.New("demo", "Run a local fleet on the embedded file store and rotate its key under load.", `
Starts --pods pods, each a real keysync sidecar process and a real app process built on
the reload library (in a PID namespace of their own when run as root, so signals cross a
shared process namespace as in Kubernetes). Every app sends signed events to the others
while the key is rotated every --rotate-every. Prints progress each second and a
summary at the end; exits 1 if any verification failed or a secret appeared in any
process's output. On a terminal the pods are a table redrawn in place (which key each signs
with, which it holds pending or previous, its last reload, the events it verified and
refused), with one short line per rotation; piped, plain lines. Log records (warnings and
errors only, unless --verbose) go to stderr, or all of them to --log-file.

The demo is a binary of its own, never in the keysync image: its app signs whatever it
is asked to and posts it anywhere, which no production pod may offer.`)
	c.Invocation = "keysync-demo"
	f := &Flags{}
	cfg := &f.Config
	c.IntVar(&cfg.Pods, "pods", 4, "number of pods")
	c.DurationVar(&cfg.Duration, "duration", 30*time.Second, "how long to run")
	c.DurationVar(&cfg.RotateEvery, "rotate-every", 4*time.Second, "time between rotations")
	c.DurationVar(&cfg.Interval, "interval", 2*time.Second, "sidecar poll interval (the file store is also watched)")
	c.DurationVar(&cfg.ActivationDelay, "activation-delay", 2*time.Second, "activation delay of each rotation")
	c.DurationVar(&cfg.VerifyWindow, "verify-window", 6*time.Second, "verify window of each rotation")
	c.IntVar(&cfg.Rate, "rate", 200, "events per second across all apps")
	c.StringVar(&cfg.Dir, "dir", "", "working directory to keep (default: a temporary one, removed after)")
	c.StringVar(&cfg.Keysync, "keysync", "", "the keysync `binary` the sidecars run (default: keysync beside keysync-demo, else on $PATH)")
	c.BoolVar(&f.NoPIDNamespaces, "no-pid-namespaces", false, "do not give each pod a PID namespace even when root")
	c.BoolVar(&f.JSON, "json", false, "print the summary as one JSON object")
	c.BoolVar(&f.Verbose, "verbose", false, "print every log record (each rotation's audit event) between the progress lines")
	c.StringVar(&f.LogFile, "log-file", "", "write every log record to this `file` (JSON) instead")
	f.Log.Register(c)
	return c, f
}

// PrintSummary writes the summary for a terminal.
func PrintSummary(w io.Writer, s *Summary) {
	ns := "no (one process namespace, signals by pid file)"
	if s.PIDNamespaces {
		ns = "yes (one per pod, signals by process name)"
	}
	fmt.Fprintf(w, `
keysync demo summary
  pods                   %d
  own PID namespaces     %s
  duration               %.1fs
  rotations              %d
  events signed          %d
  events verified        %d
  failed verifications   %d
  delivery errors        %d
  reload after write     p50 %.1fms  p90 %.1fms  p99 %.1fms  max %.1fms  (%d reloads)
  secrets in any output  %d
`, s.Pods, ns, s.DurationSeconds, s.Rotations, s.EventsSigned, s.EventsVerified, s.FailedVerifications,
		s.DeliveryErrors, s.PropagationP50Ms, s.PropagationP90Ms, s.PropagationP99Ms, s.PropagationMaxMs, s.Reloads, s.SecretsInOutput)
}
