package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"time"

	"github.com/sigil-dna/keysync/internal/cli"
	"github.com/sigil-dna/keysync/keyring"
	"github.com/sigil-dna/keysync/rotate"
	"github.com/sigil-dna/keysync/rotate/fleet"
)

type rotateFlags struct {
	store, initiator, reason, auditLog, output string
	mirrors                                    cli.StringList
	bytes, retries                             int
	delay, window, minPropagation, ifOlderThan time.Duration
	emergency, dryRun, force, init             bool
	replaceInvalid                             bool
	legacy                                     legacyFlag
	fleet                                      fleetFlags
	stores                                     storeFlags
	log                                        cli.LogFlags
}

func rotateCommand(name string) (*cli.Command, *rotateFlags) {
	summary := "Stage a new 256-bit key in the store with compare-and-swap, copy it to the mirrors, record an audit event."
	details := `
The new key is pending for --activation-delay (it verifies everywhere but signs nowhere),
then every pod switches to it at the same instant by its own clock; the replaced key keeps
verifying for --verify-window after that. --emergency instead makes the new key sign now
and drops every other key at once: signatures of a leaked key fail as soon as each pod
reloads; it never waits for a fleet. On a compare-and-swap conflict (another rotation won) the store is read again,
up to --retries times.

With --confirm-fleet the switch waits for a fact instead of a timer: the fleet is asked
first (nothing is written if it is empty or cannot confirm), the new key is written held
(it verifies everywhere and signs nowhere), every member's app must confirm holding it,
then the promotion is written: the key signs from then plus --max-clock-skew, the others
verify for --verify-window. If the fleet does not converge within --confirm-timeout, the
key stays held (it harms nothing), the laggards are named and the exit code is 1; the
next 'rotate --confirm-fleet' (a job's retry, next month's run) or 'keysync promote'
resumes that key: the gate again, then its promotion, and no new key. A held key younger
than --confirm-timeout is refused instead: its own rotation may still be at its gate.
--check-fleet keeps the timer but asks the fleet
first and refuses a delay below its slowest member's propagation.

A rotation while a key is held or still pending is refused (it would replace a key pods
may not all hold yet) unless --force, which replaces it; an emergency rotation never is.
--if-older-than makes a scheduled run idempotent: with a signing key younger than that
and nothing held or pending it rotates nothing, brings the mirrors up to the primary and
exits 0.`
	switch name {
	case "rollback":
		summary = "Make the previous key sign again, under a new generation (a staged switch back)."
		details = `
A held key is withdrawn and nothing else changes. If the newest key is still pending, it
is withdrawn and the current key keeps signing. Otherwise the previous key (which still
verifies) becomes pending again and signs from --activation-delay on; the key it replaces
verifies for --verify-window more. A second rollback while that key is still pending is
refused (it would withdraw the key the first one restored) unless --force.`
	case "promote":
		summary = "Promote the held key once every member of the fleet holds it: finish or resume a fleet-confirmed rotation."
		details = `
Reads the store's held key, waits at the gate of --confirm-fleet until every member's app
holds it, then writes the promotion with compare-and-swap: the key signs from then plus
--max-clock-skew and the others verify for --verify-window. --force promotes without
asking any fleet (you vouch for it; the audit record says so).`
	}
	c := cli.New(name, summary, details)
	f := &rotateFlags{}
	c.StringVar(&f.store, "store", "", "primary store `URL`, e.g. file:///etc/keysync/keys.json")
	c.Var(&f.mirrors, "mirror", "another store `URL` that receives the same keyring (repeatable; comma-separated in the variable)")
	if name == "rotate" {
		c.IntVar(&f.bytes, "bytes", keyring.MinSecretBytes, "length of the new secret in bytes (at least 32)")
		c.BoolVar(&f.emergency, "emergency", false, "leaked key: the new key signs now and every other key is dropped at once")
		c.BoolVar(&f.force, "force", false, "rotate although a key is held or still pending (it is replaced)")
		c.DurationVar(&f.ifOlderThan, "if-older-than", 0, "rotate only if the signing key has signed this long and nothing is held or pending; otherwise exit 0 with nothing rotated, after bringing the mirrors up to the primary (a scheduled job's retries and reruns are then harmless; 0: always rotate)")
		c.BoolVar(&f.replaceInvalid, "replace-invalid", false, "with --emergency: replace a store document that does not parse (an incident); what was wrong with it is printed and audited, never its bytes")
		c.Var(&f.legacy, "legacy", "`mode` of bare legacy signatures in the new keyring: keep (what the keyring says), on, or off (once every service signs keyed: every pod then refuses bare signatures as legacy_off)")
		c.BoolVar(&f.init, "init", false, "the store may be empty: create the first keyring (without it, an empty store is an error: a typo must not create a store nobody reads)")
	}
	if name == "promote" {
		c.BoolVar(&f.force, "force", false, "promote without asking any fleet (the audit record says so)")
	}
	if name == "rollback" {
		c.BoolVar(&f.force, "force", false, "withdraw the key the last rollback restored while it is still pending, which undoes that rollback (refused without it)")
	}
	if name != "promote" {
		c.DurationVar(&f.delay, "activation-delay", keyring.DefaultActivationDelay, "timer rotation: how long the new key is pending before every pod signs with it")
		c.DurationVar(&f.minPropagation, "min-propagation", defaultMinPropagation(), "refuse an --activation-delay below this: the worst time for every pod to load a new keyring, plus clock skew (default: a sidecar with default settings)")
	}
	c.DurationVar(&f.window, "verify-window", keyring.DefaultVerifyWindow, "how long replaced keys keep verifying after the switch")
	if name != "rollback" {
		f.fleet.registerGate(c, name)
	}
	if name == "rotate" {
		c.Var(&f.fleet.check, "check-fleet", "timer rotation: ask this `fleet` first and refuse an --activation-delay below its slowest member's worst propagation plus --max-clock-skew (repeatable). "+fleetSyntax)
	}
	c.StringVar(&f.initiator, "initiator", "", "who rotates, recorded in the keyring and the audit event (free text; default: in a pod its ServiceAccount, system:serviceaccount:NS:NAME@POD, otherwise USER@HOST)")
	c.StringVar(&f.reason, "reason", "", "why, recorded in the keyring and the audit event (required by rotate and rollback, except with --dry-run)")
	c.StringVar(&f.auditLog, "audit-log", "", "`file` to append one JSON audit line to (fsynced)")
	c.IntVar(&f.retries, "retries", rotate.DefaultRetries, "re-reads after a compare-and-swap conflict (0: fail at the first conflict)")
	c.BoolVar(&f.dryRun, "dry-run", false, "show what would change and write nothing")
	c.StringVar(&f.output, "o", "text", "output: text or json")
	f.stores.register(c)
	f.log.Register(c)
	return c, f
}

// serviceAccountDir is where Kubernetes mounts a pod's ServiceAccount token;
// KEYSYNC_SERVICEACCOUNT_DIR replaces it.
const serviceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount"

// defaultInitiator is who rotates when --initiator is not given: in a pod, its
// ServiceAccount ("system:serviceaccount:NS:NAME@POD", from the mounted token's subject);
// elsewhere the OS user and host. Free text either way: the store's own audit log is the
// authenticated record.
func defaultInitiator(getenv func(string) string) string {
	host, _ := os.Hostname()
	dir := serviceAccountDir
	if d := getenv("KEYSYNC_SERVICEACCOUNT_DIR"); d != "" {
		dir = d
	}
	if sa := serviceAccount(filepath.Join(dir, "token")); sa != "" {
		return sa + "@" + host
	}
	name := "unknown"
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	return name + "@" + host
}

// serviceAccount is the subject of the ServiceAccount token at path, unverified (it names,
// it does not authenticate), or "" if there is none.
func serviceAccount(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	token, _ := io.ReadAll(io.LimitReader(f, 64<<10))
	parts := strings.Split(strings.TrimSpace(string(token)), ".")
	if len(parts) != 3 {
		return ""
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return ""
	}
	var claims struct {
		Sub string `json:"sub"`
	}
	if json.Unmarshal(payload, &claims) != nil || !strings.HasPrefix(claims.Sub, "system:serviceaccount:") || len(claims.Sub) > 300 {
		return ""
	}
	return fleet.Clean(claims.Sub)
}

func runRotate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	return runLifecycle(ctx, "rotate", args, getenv, stdout, stderr)
}

func runRollback(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	return runLifecycle(ctx, "rollback", args, getenv, stdout, stderr)
}

func runPromote(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	return runLifecycle(ctx, "promote", args, getenv, stdout, stderr)
}

// runLifecycle is rotate, rollback and promote: one flag set, one store opening, one
// result printer; name picks the action.
func runLifecycle(ctx context.Context, name string, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	c, f := rotateCommand(name)
	if err := c.Parse(args, getenv, stdout); err != nil {
		return err
	}
	if f.output != "text" && f.output != "json" {
		return cli.Usagef("-o %q: use text or json", f.output)
	}
	if name == "rotate" && f.bytes < keyring.MinSecretBytes {
		return cli.Usagef("--bytes %d: at least %d", f.bytes, keyring.MinSecretBytes)
	}
	log, err := f.log.Logger(stderr)
	if err != nil {
		return err
	}
	if f.initiator == "" {
		f.initiator = defaultInitiator(getenv)
	}
	if f.reason == "" && !f.dryRun && (name == "rotate" || name == "rollback") {
		return cli.Usagef("%s: --reason is required: why (it is recorded in the keyring and the audit trail), e.g. --reason \"30-day cadence\" or --reason \"INC-1234: key exposed\"", name)
	}
	if c.IsSet("audit-log") && f.auditLog == "" {
		// `--audit-log "$KEYSYNC_AUDIT_LOG"` with the variable unset: the record would be lost.
		return cli.Usagef("--audit-log is empty (an unset variable?): give the file the audit record goes to, or leave the flag out")
	}
	switch {
	case f.replaceInvalid && !f.emergency:
		return cli.Usagef("--replace-invalid needs --emergency: only an emergency key may replace a document that cannot be read")
	case name == "promote" && f.force == (len(f.fleet.confirm) > 0):
		return cli.Usagef("promote: give --confirm-fleet, or --force to promote without asking any fleet")
	case len(f.fleet.confirm) > 0 && len(f.fleet.check) > 0:
		return cli.Usagef("--confirm-fleet and --check-fleet: use one (the gate, or the timer checked against the fleet)")
	}
	if f.emergency || name == "rollback" {
		// An emergency key signs at once and a rollback restores a key every pod holds:
		// neither waits for the fleet, whatever KEYSYNC_CONFIRM_FLEET says.
		f.fleet.confirm, f.fleet.check = nil, nil
	}
	// Everything that can fail before a write does: the fleets parse, the stores open.
	gate, err := f.fleet.gate(f.stores.str("kubeconfig"), stderr)
	if err != nil {
		return err
	}
	primary, mirrors, err := f.stores.openAll(ctx, f.store, f.mirrors, getenv, log)
	if err != nil {
		return err
	}
	defer closeAll(primary, mirrors)
	if gate != nil {
		// A member counts only if its sidecar reads one of these.
		gate.Stores = []string{primary.String()}
		for _, m := range mirrors {
			gate.Stores = append(gate.Stores, m.String())
		}
	}
	action := rotate.ActionStage
	switch {
	case name == "rollback":
		action = rotate.ActionRollback
	case name == "promote":
		action = rotate.ActionPromote
	case f.emergency:
		action = rotate.ActionEmergency
	}
	if action == rotate.ActionStage && gate == nil {
		if err := f.fleet.checkTimer(ctx, f.delay, f.stores.str("kubeconfig")); err != nil {
			return err
		}
	}
	o := rotate.Options{
		Action: action, Bytes: f.bytes, DryRun: f.dryRun, Retries: f.retries, AuditLog: f.auditLog, Log: log, Force: f.force, Init: f.init,
		ReplaceInvalid: f.replaceInvalid, IfOlderThan: f.ifOlderThan, ResumeAfter: f.fleet.timeout,
		MaxClockSkew: f.fleet.maxClockSkew,
		Keyring: keyring.Options{ActivationDelay: f.delay, VerifyWindow: f.window, MinPropagation: f.minPropagation,
			RotatedBy: f.initiator, Reason: f.reason, Legacy: f.legacy.v},
	}
	if gate != nil {
		o.Gate = gate
	}
	res, err := rotate.Run(ctx, primary, mirrors, o)
	if res != nil {
		printResult(stdout, f.output, res)
	}
	return err
}

func printResult(w io.Writer, output string, res *rotate.Result) {
	if output == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(res)
		return
	}
	prefix := ""
	if res.DryRun {
		prefix = "dry run, nothing written: "
	}
	fmt.Fprintf(w, "%s%s %s: generation %d -> %d\n", prefix, res.Action, res.Store, res.PreviousGeneration, res.Generation)
	if res.ReplacedInvalid != "" {
		fmt.Fprintf(w, "  replaced an invalid document: %s\n", res.ReplacedInvalid)
	}
	if res.Outcome == rotate.OutcomeNotDue {
		fmt.Fprintf(w, "  not due:      nothing rotated, nothing is held or pending and the signing key is younger than --if-older-than\n")
	}
	if rs := res.Resumed; rs != nil {
		fmt.Fprintf(w, "  resumed:      key %s, held since %s by %s\n", rs.KeyID, rs.HeldSince.UTC().Format(time.RFC3339), fleet.Clean(rs.HeldBy))
	} else if res.NewKeyID != "" {
		fmt.Fprintf(w, "  new key:      %s\n", res.NewKeyID)
	}
	if res.Outcome == rotate.OutcomeHeld || res.Outcome == rotate.OutcomeNotPromoted {
		fmt.Fprintf(w, "  held:         %s verifies everywhere, signs nowhere until promoted (%s)\n", res.NewKeyID, res.Outcome)
	}
	fmt.Fprintf(w, "  signing key:  %s from %s\n", res.SigningKeyID, res.SigningFrom.Format(time.RFC3339))
	fmt.Fprintf(w, "  keys:         %v\n", res.KeyIDs)
	if len(res.RemovedKeyIDs) > 0 {
		fmt.Fprintf(w, "  removed:      %v\n", res.RemovedKeyIDs)
	}
	if res.Keyring != nil && (res.Action == rotate.ActionRollback || res.Action == rotate.ActionStage) {
		for _, k := range res.Keyring.Keys {
			if !k.NotAfter.IsZero() {
				fmt.Fprintf(w, "  verifies until %s: %s\n", k.NotAfter.UTC().Format(time.RFC3339), k.ID)
			}
		}
	}
	if fl := res.Fleet; fl != nil {
		fmt.Fprintf(w, "  fleet:        %d/%d members hold %s after %.1fs; confirmation p50 %.2fs, p99 %.2fs, max %.2fs\n",
			fl.Confirmed, fl.Members, fl.KeyID, fl.WaitedSeconds, fl.P50Seconds, fl.P99Seconds, fl.MaxSeconds)
		for _, l := range fl.Lagging {
			fmt.Fprintf(w, "  lagging:      %s: %s\n", l.Name, l.Why)
		}
		for _, s := range fl.Skipped {
			fmt.Fprintf(w, "  skipped:      %s: %s\n", s.Name, s.Why)
		}
		for _, d := range fl.Deleted {
			fmt.Fprintf(w, "  deleted:      %s: %s\n", d.Name, d.Why)
		}
	}
	for _, m := range res.Mirrors {
		state := "ok"
		if m.Error != "" {
			state = m.Error
		}
		fmt.Fprintf(w, "  mirror %s: %s\n", m.Store, state)
	}
}

// legacyFlag is --legacy: keep, on or off.
type legacyFlag struct{ v keyring.Legacy }

func (l *legacyFlag) String() string {
	if l.v == keyring.LegacyKeep {
		return "keep"
	}
	return string(l.v)
}

func (l *legacyFlag) Set(s string) error {
	v, err := keyring.ParseLegacy(s)
	l.v = v
	return err
}
