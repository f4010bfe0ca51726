package main

// The compressed-calendar soak (issue 29): years of monthly fleet-confirmed rotations,
// one "month" every --soak-month, run by a scheduler that behaves like the shipped
// CronJob — one Job per month, never two at once, each Job up to 1+backoffLimit attempts
// of the real `keysync rotate` process with a doubling backoff and a deadline — over a
// fleet of real sidecars and apps on a real Vault under signed traffic, with a chaos
// calendar: a pod lagging past the gate's timeout, the rotator killed at each step, a
// store outage at the scheduled time, the ticket's `vault kv put` three times within the
// plain activation delay, an emergency rotation and a rollback.

import (
	"bufio"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sigil-dna/keysync/harness/podfleet"
	"github.com/sigil-dna/keysync/harness/procfs"
	"github.com/sigil-dna/keysync/keyring"
)

// SoakConfig is the calendar's shape. Every duration is compressed: a month of 45 s has
// a gate timeout of 6 s and a Job backoff doubling from 1 s.
type SoakConfig struct {
	Months       int
	Month        time.Duration
	GateTimeout  time.Duration // --confirm-timeout; a held key older than this is resumed
	BackoffLimit int           // the Job's retries
	Backoff      time.Duration // before the first retry, doubling
	JobDeadline  time.Duration // activeDeadlineSeconds
	IfOlderThan  time.Duration // --if-older-than
	VerifyWindow time.Duration
	PlainDelay   time.Duration // the sidecars' --plain-activation-delay
}

// SoakMonth is one month of the calendar.
type SoakMonth struct {
	Month         int      `json:"month"`
	Chaos         string   `json:"chaos,omitempty"`
	Attempts      []string `json:"attempts"` // each attempt: exit status and how it ended
	Succeeded     bool     `json:"succeeded"`
	Signing       string   `json:"signing_key_id"` // after the month's Job
	Rotated       bool     `json:"rotated"`        // the Job left a new signing key
	Failed        int64    `json:"failed_verifications"`
	SidecarRSSMax float64  `json:"sidecar_rss_mib_max"`
	SidecarFDsMax int      `json:"sidecar_fds_max"`
}

// SoakReport is the soak's result.
type SoakReport struct {
	Config            SoakConfig  `json:"-"`
	Months            []SoakMonth `json:"months"`
	Due, Completed    int
	LongestStuck      float64 // months between two scheduled rotations that took effect, at most
	Failed            int64   // failed verifications outside the emergency's own window
	EmergencyFailed   int64
	Events            int64
	Intents, Outcomes int   // audit records: intents, and outcomes of a store write
	StoreWrites       int64 // Vault versions written by keysync
	PlainPuts         int
	RSSFirst, RSSLast [2]float64 // sidecar RSS, median and max, first and last month
	FDsFirst, FDsLast [2]int
	Duration          time.Duration
}

// soak runs the calendar over the running fleet.
func (b *bench) soak(ctx context.Context, sc SoakConfig) (*SoakReport, error) {
	rep := &SoakReport{Config: sc, Due: sc.Months}
	audit := filepath.Join(b.cfg.Work, "soak-audit.jsonl")
	tr := &podfleet.Traffic{Fleet: b.fleet}
	tctx, stopTraffic := context.WithCancel(ctx)
	var twg sync.WaitGroup
	twg.Add(1)
	go func() { defer twg.Done(); tr.Run(tctx, b.cfg.Rate) }()
	defer func() { stopTraffic(); twg.Wait() }()

	startVersion, err := b.vaultVersion()
	if err != nil {
		return nil, err
	}
	var urls []string
	for _, p := range b.fleet.Pods {
		urls = append(urls, p.SidecarURL)
	}
	rotateArgs := func(month int) []string {
		return []string{"rotate", "--store", b.sidecarStore, "--confirm-fleet", strings.Join(urls, ","),
			"--confirm-timeout", sc.GateTimeout.String(), "--max-clock-skew", (b.cfg.Skew + time.Second).String(),
			"--verify-window", sc.VerifyWindow.String(), "--if-older-than", sc.IfOlderThan.String(),
			"--initiator", "cronjob/keysync-rotate", "--reason", fmt.Sprintf("scheduled rotation, month %d", month),
			"--audit-log", audit, "--log-format", "json"}
	}
	chaos := map[int]string{3: "lag", 6: "kill:held", 7: "kill:gate", 8: "kill:promote-intent", 9: "kill:promoted",
		12: "outage", 15: "plain-burst", 20: "emergency", 24: "rollback"}
	start := time.Now()
	var lastChange time.Time
	lastSigning := b.signingKey(ctx)
	emergencyFrom, emergencyTo := time.Time{}, time.Time{}
	failedBefore := int64(0)
	for m := 1; m <= sc.Months && ctx.Err() == nil; m++ {
		due := start.Add(time.Duration(m-1) * sc.Month)
		b.sleep(ctx, time.Until(due))
		sm := SoakMonth{Month: m, Chaos: chaos[m]}
		kill := ""
		var restore func()
		switch c := chaos[m]; {
		case c == "lag":
			restore = b.cut() // pod 0 cannot read the store for 2.5 gate timeouts
			go func(r func()) { b.sleep(ctx, sc.GateTimeout*5/2); r() }(restore)
			b.note(fmt.Sprintf("month %d: pod 0 cut off the store for %s (the gate's timeout is %s)", m, sc.GateTimeout*5/2, sc.GateTimeout))
		case strings.HasPrefix(c, "kill:"):
			kill = strings.TrimPrefix(c, "kill:")
			b.note(fmt.Sprintf("month %d: the rotator SIGKILLed at %s", m, kill))
		case c == "outage":
			r := b.proxy.Cut()
			go func() { b.sleep(ctx, 3*sc.GateTimeout); r() }()
			b.note(fmt.Sprintf("month %d: the store unreachable (every request 503) for %s from the scheduled time", m, 3*sc.GateTimeout))
		}
		sm.Attempts, sm.Succeeded = b.soakJob(ctx, sc, rotateArgs(m), kill)
		if sm.Signing = b.signingKey(ctx); sm.Signing != lastSigning && sm.Signing != "" {
			// The month's Job left a new signing key (its own, or one it resumed).
			sm.Rotated, lastSigning = true, sm.Signing
			rep.Completed++
			if !lastChange.IsZero() {
				rep.LongestStuck = max(rep.LongestStuck, float64(time.Since(lastChange))/float64(sc.Month))
			}
			lastChange = time.Now()
		}
		switch chaos[m] {
		case "plain-burst":
			// After the month's rotation: three plain values, each within the plain
			// activation delay of the one before, with the real CLI.
			for i := range 3 {
				s, _ := keyring.NewSecret(32)
				value := hex.EncodeToString(s)
				b.forg.remember(keyring.Secret(value))
				if out, err := b.vault.CLI("kv", "put", "secret/"+storePath, "value="+value); err != nil {
					return nil, fmt.Errorf("soak: vault kv put: %v: %s", err, out)
				}
				rep.PlainPuts++
				if i < 2 {
					b.sleep(ctx, sc.PlainDelay/3)
				}
			}
			b.note(fmt.Sprintf("month %d: `vault kv put … value=…` three times, %s apart (plain activation delay %s)", m, sc.PlainDelay/3, sc.PlainDelay))
		case "emergency":
			b.sleep(ctx, sc.Month/3)
			emergencyFrom = time.Now()
			sm.Attempts = append(sm.Attempts, b.soakRun(ctx, sc.JobDeadline, []string{"rotate", "--store", b.sidecarStore, "--emergency",
				"--initiator", "oncall", "--reason", "key exposed (soak)", "--audit-log", audit, "--log-format", "json"}, ""))
			emergencyTo = time.Now().Add(2 * b.worstPropagation())
			b.note(fmt.Sprintf("month %d: an emergency rotation mid-month", m))
		case "rollback":
			b.sleep(ctx, sc.Month/3)
			sm.Attempts = append(sm.Attempts, b.soakRun(ctx, sc.JobDeadline, []string{"rollback", "--store", b.sidecarStore,
				"--activation-delay", sc.PlainDelay.String(), "--min-propagation", (sc.PlainDelay - time.Second).String(), "--verify-window", sc.VerifyWindow.String(),
				"--initiator", "oncall", "--reason", "roll back (soak)", "--audit-log", audit, "--log-format", "json"}, ""))
			b.note(fmt.Sprintf("month %d: a rollback mid-month", m))
		}
		b.rememberStore(ctx)
		if k := b.signingKey(ctx); k != "" {
			lastSigning = k // an emergency or a rollback changes it too
		}
		sm.SidecarRSSMax, sm.SidecarFDsMax = b.sidecarFootprint()
		sm.Failed = tr.Failed.Load() - failedBefore
		failedBefore = tr.Failed.Load()
		rep.Months = append(rep.Months, sm)
		fmt.Fprintf(b.cfg.Progress, "soak month %2d/%d %-20s %-60s signing %s rotated %-5v failed %d rss %.1f MiB fds %d\n",
			m, sc.Months, sm.Chaos, strings.Join(sm.Attempts, ", "), sm.Signing, sm.Rotated, sm.Failed, sm.SidecarRSSMax, sm.SidecarFDsMax)
	}
	// Traffic on until the last switch has happened everywhere.
	b.sleep(ctx, sc.VerifyWindow)
	stopTraffic()
	twg.Wait()
	rep.Duration = time.Since(start)
	rep.Events = tr.Signed.Load()
	for _, t := range tr.FailureTimes() {
		if !emergencyFrom.IsZero() && !t.Before(emergencyFrom) && t.Before(emergencyTo) {
			rep.EmergencyFailed++
		} else {
			rep.Failed++
		}
	}
	endVersion, err := b.vaultVersion()
	if err != nil {
		return nil, err
	}
	rep.StoreWrites = endVersion - startVersion - int64(rep.PlainPuts)
	if data, err := os.ReadFile(audit); err == nil {
		for _, l := range strings.Split(string(data), "\n") {
			switch {
			case strings.Contains(l, `"event":"intent"`):
				rep.Intents++
			case strings.Contains(l, `"event":"rotation"`) && !strings.Contains(l, `"outcome":"held, not promoted"`) && !strings.Contains(l, `"outcome":"not due"`):
				rep.Outcomes++ // the outcome of a store write
			}
		}
	}
	rep.RSSFirst, rep.FDsFirst = footprintOf(rep.Months[:min(3, len(rep.Months))])
	rep.RSSLast, rep.FDsLast = footprintOf(rep.Months[max(0, len(rep.Months)-3):])
	return rep, nil
}

// soakJob is one Job: attempts until one exits 0, at most 1+BackoffLimit, with a
// doubling backoff between them, all within the Job's deadline. kill names the step at
// which the first attempt is SIGKILLed ("" for none).
func (b *bench) soakJob(ctx context.Context, sc SoakConfig, args []string, kill string) ([]string, bool) {
	deadline := time.Now().Add(sc.JobDeadline)
	var attempts []string
	backoff := sc.Backoff
	for i := 0; i <= sc.BackoffLimit; i++ {
		left := time.Until(deadline)
		if left <= 0 {
			attempts = append(attempts, "deadline")
			return attempts, false
		}
		a := b.soakRun(ctx, left, args, kill)
		kill = ""
		attempts = append(attempts, a)
		if strings.HasPrefix(a, "ok") {
			return attempts, true
		}
		b.sleep(ctx, min(backoff, time.Until(deadline)))
		backoff *= 2
	}
	return attempts, false
}

// killAt are the lines of the rotator's output at which a kill step is reached.
var killAt = map[string]func(line string) bool{
	"held": func(l string) bool {
		return strings.Contains(l, `"event":"rotation"`) && strings.Contains(l, `"outcome":"held"`)
	},
	"gate": func(l string) bool { return strings.HasPrefix(l, "gate: ") },
	"promote-intent": func(l string) bool {
		return strings.Contains(l, `"event":"rotation_intent"`) && strings.Contains(l, `"action":"promote"`)
	},
	"promoted": func(l string) bool {
		return strings.Contains(l, `"event":"rotation"`) && strings.Contains(l, `"action":"promote"`)
	},
}

// soakRun runs one attempt of the real keysync binary and says how it ended: "ok
// (promoted)", "ok (not due)", "exit 1 (a key is held)", "killed at gate", "deadline".
func (b *bench) soakRun(ctx context.Context, limit time.Duration, args []string, kill string) string {
	rctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	cmd := exec.CommandContext(rctx, b.cfg.Keysync, args...)
	cmd.Env = append(os.Environ(), b.env...)
	log, err := os.OpenFile(filepath.Join(b.cfg.Work, "soak-rotator.log"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return "error: " + err.Error()
	}
	defer log.Close()
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = io.MultiWriter(log, pw), io.MultiWriter(log, pw)
	if err := cmd.Start(); err != nil {
		return "error: " + err.Error()
	}
	var outcome, killed string
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			l := sc.Text()
			if kill != "" && killed == "" && killAt[kill](l) {
				killed = kill
				_ = cmd.Process.Signal(syscall.SIGKILL)
			}
			switch {
			case strings.Contains(l, `"event":"rotation_not_due"`):
				outcome = "not due"
			case strings.Contains(l, `"event":"rotation"`) && strings.Contains(l, `"outcome":"promoted"`):
				outcome = "promoted"
				if strings.Contains(l, `"resumed_key_id"`) {
					outcome = "resumed, promoted"
				}
			case strings.Contains(l, `"event":"rotation"`) && strings.Contains(l, `"action":"emergency"`):
				outcome = "emergency"
			case strings.Contains(l, `"event":"rotation"`) && strings.Contains(l, `"action":"rollback"`):
				outcome = "rolled back"
			case strings.HasPrefix(l, "keysync: ") && outcome == "":
				outcome = why(l)
			}
		}
	}()
	err = cmd.Wait()
	pw.Close()
	<-done
	switch {
	case killed != "":
		return "killed at " + killed
	case rctx.Err() == context.DeadlineExceeded:
		return "deadline"
	case err == nil:
		return "ok (" + outcome + ")"
	}
	return fmt.Sprintf("exit %d (%s)", cmd.ProcessState.ExitCode(), outcome)
}

// why is an error line cut to what it is about.
func why(line string) string {
	for _, w := range []string{"a key is held", "not promoted", "store changed", "connection refused", "503", "not converge"} {
		if strings.Contains(line, w) {
			return w
		}
	}
	if len(line) > 60 {
		return line[:60] + "…"
	}
	return line
}

// signingKey is the id of the key that signs (or will, once pending), "" if unreadable.
func (b *bench) signingKey(ctx context.Context) string {
	snap, err := b.st.Read(ctx)
	if err != nil {
		return ""
	}
	var newest string
	for _, k := range snap.Keyring.Keys {
		if !k.Held() {
			newest = k.ID
		}
	}
	return newest
}

// rememberStore adds the store's keys to the secrets the output is scanned for.
func (b *bench) rememberStore(ctx context.Context) {
	if snap, err := b.st.Read(ctx); err == nil {
		for _, k := range snap.Keyring.Keys {
			b.forg.remember(k.Secret)
		}
	}
}

func (b *bench) vaultVersion() (int64, error) {
	out, err := b.vault.CLI("kv", "metadata", "get", "-format=json", "secret/"+storePath)
	if err != nil {
		return 0, fmt.Errorf("soak: vault kv metadata get: %v: %s", err, out)
	}
	var md struct {
		Data struct {
			CurrentVersion int64 `json:"current_version"`
		} `json:"data"`
	}
	if err := json.Unmarshal(out, &md); err != nil {
		return 0, err
	}
	return md.Data.CurrentVersion, nil
}

// sidecarFootprint is the largest sidecar RSS (MiB) and open-file count now.
func (b *bench) sidecarFootprint() (float64, int) {
	var rss float64
	var fds int
	for _, p := range b.fleet.Pods {
		for _, pid := range p.HostPIDs("keysync") {
			if !isSidecar(pid) {
				continue
			}
			if r, err := procfs.RSS(pid); err == nil {
				rss = max(rss, float64(r)/(1<<20))
			}
			if n, err := procfs.OpenFiles(pid); err == nil {
				fds = max(fds, n)
			}
		}
	}
	return rss, fds
}

// footprintOf is the median and max of the months' largest sidecar RSS and fds.
func footprintOf(ms []SoakMonth) ([2]float64, [2]int) {
	var rss []float64
	var fds []int
	for _, m := range ms {
		rss, fds = append(rss, m.SidecarRSSMax), append(fds, m.SidecarFDsMax)
	}
	if len(rss) == 0 {
		return [2]float64{}, [2]int{}
	}
	slices.Sort(rss)
	slices.Sort(fds)
	return [2]float64{rss[len(rss)/2], rss[len(rss)-1]}, [2]int{fds[len(fds)/2], fds[len(fds)-1]}
}

// soakSidecarArgs are the sidecars' plain-value schedule of the soak (nothing otherwise).
func (b *bench) soakSidecarArgs() []string {
	if b.cfg.Soak.Months == 0 {
		return nil
	}
	return []string{"--plain-activation-delay", b.cfg.Soak.PlainDelay.String(), "--plain-verify-window", b.cfg.Soak.VerifyWindow.String()}
}

// soakDefaults derives what the flags leave out from the month and the gate's timeout.
func soakDefaults(sc SoakConfig) SoakConfig {
	sc.BackoffLimit = 6             // the shipped CronJob's
	sc.Backoff = sc.GateTimeout / 6 // doubling: the 5th attempt comes after the gate's timeout
	sc.JobDeadline = sc.Month * 4 / 5
	sc.IfOlderThan = sc.Month / 3
	sc.VerifyWindow = 20 * time.Second
	sc.PlainDelay = 12 * time.Second
	return sc
}
