// Package cli is the flag handling every keysync subcommand shares: each flag also reads
// a KEYSYNC_* environment variable (the flag wins), --help lists both, and bad values
// fail at start with a message that names the flag.
package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"golang.org/x/term"
)

// EnvName is the environment variable of a flag: "signal-process" → KEYSYNC_SIGNAL_PROCESS.
func EnvName(flagName string) string {
	return "KEYSYNC_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// UsageError is a command-line mistake: exit code 2.
type UsageError struct{ Err error }

func (e UsageError) Error() string { return e.Err.Error() }
func (e UsageError) Unwrap() error { return e.Err }

// Usagef returns a UsageError.
func Usagef(format string, args ...any) error { return UsageError{fmt.Errorf(format, args...)} }

// Command is one subcommand's flag set with its help text.
type Command struct {
	*flag.FlagSet
	Summary string // one line
	Details string // paragraphs after the usage line
	// Invocation is how the command is run, for help and errors: "keysync NAME" unless set.
	Invocation string
	fromEnv    map[string]bool
}

// New returns an empty command of the keysync binary.
func New(name, summary, details string) *Command {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return &Command{FlagSet: fs, Summary: summary, Details: details, Invocation: "keysync " + name}
}

// ErrHelp is returned by Parse after printing help.
var ErrHelp = flag.ErrHelp

// Parse reads args, then fills every flag not given from its environment variable.
func (c *Command) Parse(args []string, getenv func(string) string, help io.Writer) error {
	if err := c.FlagSet.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			c.PrintHelp(help)
			return ErrHelp
		}
		return UsageError{fmt.Errorf("%s: %w%s (see %s --help)", c.Name(), err, c.durationHint(err.Error()), c.Invocation)}
	}
	given := map[string]bool{}
	c.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	c.VisitAll(func(f *flag.Flag) {
		env := EnvName(f.Name)
		if given[f.Name] || err != nil {
			return
		}
		if v, ok := lookup(getenv, env); ok {
			if c.fromEnv == nil {
				c.fromEnv = map[string]bool{}
			}
			c.fromEnv[f.Name] = true
			if serr := c.Set(f.Name, v); serr != nil {
				// The value is not echoed: a variable may hold something sensitive.
				err = UsageError{fmt.Errorf("%s: invalid value in %s for --%s: %v%s", c.Name(), env, f.Name, cleanSetError(serr), unitHint(f, v))}
			}
		}
	})
	if err == nil && c.NArg() > 0 {
		err = Usagef("%s: unexpected argument %q (see %s --help)", c.Name(), c.Arg(0), c.Invocation)
	}
	return err
}

var badFlagValue = regexp.MustCompile(`^invalid value "([^"]*)" for flag -([a-z0-9-]+)`)

// durationHint is unitHint for the flag package's own error message.
func (c *Command) durationHint(msg string) string {
	m := badFlagValue.FindStringSubmatch(msg)
	if m == nil {
		return ""
	}
	f := c.Lookup(m[2])
	if f == nil {
		return ""
	}
	return unitHint(f, m[1])
}

// unitHint tells a duration flag given a bare number what it needs: `--activation-delay
// 30` is "parse error" to the flag package.
func unitHint(f *flag.Flag, v string) string {
	if _, err := time.ParseDuration(f.DefValue); err != nil {
		return ""
	}
	if _, err := strconv.ParseFloat(v, 64); err != nil {
		return ""
	}
	return fmt.Sprintf(": a duration needs a unit, e.g. --%s %ss (or 5m, 1h)", f.Name, v)
}

func lookup(getenv func(string) string, name string) (string, bool) {
	v := getenv(name)
	return v, v != ""
}

func cleanSetError(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 {
		return s[i+2:]
	}
	return s
}

// IsSet reports whether the flag was given on the command line or through its variable.
func (c *Command) IsSet(name string) bool {
	set := false
	c.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set || c.fromEnv[name]
}

// PrintHelp writes the usage line, the details, and every flag with its variable and default.
func (c *Command) PrintHelp(w io.Writer) {
	fmt.Fprintf(w, "Usage: %s [flags]\n\n%s\n", c.Invocation, c.Summary)
	if c.Details != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimSpace(c.Details))
	}
	fmt.Fprintf(w, "\nFlags (each also read from the environment variable shown; the flag wins):\n")
	c.VisitAll(func(f *flag.Flag) {
		name, usage := flag.UnquoteUsage(f)
		line := "  --" + f.Name
		if len(f.Name) == 1 {
			line = "  -" + f.Name // as it is typed: -o json
		}
		if name != "" {
			line += " " + name
		}
		fmt.Fprintf(w, "%s\n        %s\n        env %s", line, usage, EnvName(f.Name))
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" && f.DefValue != "[]" {
			fmt.Fprintf(w, ", default %s", f.DefValue)
		}
		fmt.Fprintln(w)
	})
}

// StringList is a repeatable flag; from the environment it reads a comma-separated list.
type StringList []string

func (l *StringList) String() string { return strings.Join(*l, ",") }

// Set implements flag.Value.
func (l *StringList) Set(v string) error {
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*l = append(*l, p)
		}
	}
	return nil
}

// FieldList is a repeatable flag whose values may hold commas (URLs with label
// selectors, lists of URLs): each occurrence, and in the variable each whitespace-separated
// word, is one value.
type FieldList []string

func (l *FieldList) String() string { return strings.Join(*l, " ") }

// Set implements flag.Value.
func (l *FieldList) Set(v string) error {
	*l = append(*l, strings.Fields(v)...)
	return nil
}

// LogFlags are the logging flags every long-running command has.
type LogFlags struct {
	Format string
	Level  string
}

// Register adds --log-format and --log-level.
func (l *LogFlags) Register(c *Command) {
	c.StringVar(&l.Format, "log-format", "auto", "log format: json, text, or auto (text on a terminal, JSON otherwise)")
	c.StringVar(&l.Level, "log-level", "info", "log level: debug, info, warn or error")
}

// Logger builds the slog logger the flags describe, writing to w.
func (l *LogFlags) Logger(w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(l.Level)); err != nil {
		return nil, Usagef("--log-level %q: use debug, info, warn or error", l.Level)
	}
	opts := &slog.HandlerOptions{Level: level}
	format := l.Format
	if format == "auto" {
		format = "json"
		if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			format = "text"
		}
	}
	switch format {
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return nil, Usagef("--log-format %q: use json, text or auto", l.Format)
}
