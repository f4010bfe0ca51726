package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sigil-dna/keysync/internal/cli"
	"github.com/sigil-dna/keysync/keyring"
	"github.com/sigil-dna/keysync/rotate/fleet"
	"github.com/sigil-dna/keysync/store"
)

type keyStatus struct {
	ID        string        `json:"id"`
	State     keyring.State `json:"state"`
	NotBefore *time.Time    `json:"not_before,omitempty"` // none for a held key
	NotAfter  *time.Time    `json:"not_after,omitempty"`
	// Left is the time until the key's next change: activation when pending, expiry otherwise.
	LeftSeconds *float64 `json:"left_seconds,omitempty"`
}

type storeStatus struct {
	Store      string    `json:"store"`
	Generation int64     `json:"generation"`
	RotatedAt  time.Time `json:"rotated_at"`
	RotatedBy  string    `json:"rotated_by,omitempty"`
	Reason     string    `json:"reason,omitempty"`
	Plain      bool      `json:"plain_value"`
	// Note says what a plain value in a store without history cannot give.
	Note string      `json:"note,omitempty"`
	At   time.Time   `json:"at"`
	Keys []keyStatus `json:"keys"`
}

type statusFlags struct {
	storeURL, output string
	fleets           cli.FieldList
	concurrency      int
	allowPartial     bool
	stores           storeFlags
}

func statusCommand() (*cli.Command, *statusFlags) {
	c := cli.New("status", "Show the keys in the store, and which member of a fleet holds which key. No secret is shown.", `
With --store: each key's state (held, pending, current, previous), validity and time left.
With --fleet: one row per member (pod): whether its sidecar is ready, the generation its
keys file holds and the one its app confirmed, the held, pending, current and previous key
ids, how stale its store reads are and its last reload time; then a summary. Both may be
given. The exit code is 1 when a member did not answer or its app did not confirm its keys
file (with --store too: or its app is not at the store's generation), so that a script can
check a rotation; --allow-partial reports and exits 0.`)
	f := &statusFlags{}
	c.StringVar(&f.storeURL, "store", "", "store `URL`")
	c.Var(&f.fleets, "fleet", "`fleet` to show member by member (repeatable). "+fleetSyntax)
	c.IntVar(&f.concurrency, "fleet-concurrency", fleet.DefaultConcurrency, "members asked at once")
	c.BoolVar(&f.allowPartial, "allow-partial", false, "with --fleet: exit 0 even if a member did not answer or confirm (a report, not a check)")
	c.StringVar(&f.output, "o", "table", "output: table or json")
	f.stores.register(c)
	return c, f
}

func runStatus(ctx context.Context, args []string, getenv func(string) string, stdout, _ io.Writer) error {
	c, f := statusCommand()
	if err := c.Parse(args, getenv, stdout); err != nil {
		return err
	}
	storeURL, output, stores := f.storeURL, f.output, &f.stores
	if output != "table" && output != "json" {
		return cli.Usagef("-o %q: use table or json", output)
	}
	var ss *storeStatus
	if storeURL != "" || len(f.fleets) == 0 {
		st, err := stores.open(ctx, storeURL, getenv, slog.New(slog.DiscardHandler))
		if err != nil {
			return err
		}
		defer st.Close()
		snap, err := st.Read(ctx)
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("status: %w (nothing there yet: a typo in --store? `keysync rotate --init --store %s --reason \"first keyring\"` makes the first keyring)", err, st.String())
		}
		if err != nil {
			return fmt.Errorf("status: %w", err)
		}
		s := describeStore(st, snap, time.Now().UTC())
		ss = &s
	}
	if len(f.fleets) == 0 {
		if output == "json" {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(ss)
		}
		return printStore(stdout, *ss)
	}
	var ff fleetFlags
	srcs, err := ff.sources(f.fleets, stores.str("kubeconfig"))
	if err != nil {
		return err
	}
	if ss != nil && output == "table" {
		if err := printStore(stdout, *ss); err != nil {
			return err
		}
		fmt.Fprintln(stdout)
	}
	fs, err := showFleet(ctx, srcs, f.concurrency, ss, output, stdout)
	if err != nil || f.allowPartial {
		return err
	}
	return fs.check()
}

// check fails when a member that is not skipped did not answer, its app did not confirm
// its keys file, or (the store shown too) its app is not at the store's generation.
func (fs *fleetStatus) check() error {
	var bad []string
	for _, m := range fs.Members {
		switch {
		case m.Skipped != "":
		case m.Error != "":
			bad = append(bad, m.Member+" did not answer ("+fleet.Clean(m.Error)+")")
		case !m.AppConfirmed:
			bad = append(bad, m.Member+"'s app did not confirm its keys file")
		case fs.Store != nil && m.AppGeneration != fs.Store.Generation:
			bad = append(bad, fmt.Sprintf("%s's app is at generation %d, the store at %d", m.Member, m.AppGeneration, fs.Store.Generation))
		}
	}
	if len(bad) == 0 {
		return nil
	}
	n, more := len(bad), ""
	if n > 3 {
		more, bad = fmt.Sprintf("; and %d more", n-3), bad[:3]
	}
	return fmt.Errorf("status: %d of %d members not in step: %s%s (--allow-partial: report only)", n, fs.Summary.Members, strings.Join(bad, "; "), more)
}

func printStore(stdout io.Writer, s storeStatus) error {
	fmt.Fprintf(stdout, "store %s  generation %d  rotated %s by %q", s.Store, s.Generation, s.RotatedAt.Format(time.RFC3339), s.RotatedBy)
	if s.Reason != "" {
		fmt.Fprintf(stdout, " (%s)", s.Reason)
	}
	fmt.Fprintln(stdout)
	if s.Note != "" {
		fmt.Fprintln(stdout, "note:", s.Note)
	}
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KEY ID\tSTATE\tNOT BEFORE\tNOT AFTER\tTIME LEFT")
	for _, k := range s.Keys {
		na, left := "-", "-"
		if k.NotAfter != nil {
			na = k.NotAfter.Format(time.RFC3339)
		}
		if k.LeftSeconds != nil {
			left = (time.Duration(*k.LeftSeconds) * time.Second).String()
		}
		nb := "when promoted"
		if k.NotBefore != nil {
			nb = k.NotBefore.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", k.ID, k.State, nb, na, left)
	}
	return tw.Flush()
}

func describeStore(st store.Store, snap *store.Snapshot, now time.Time) storeStatus {
	r := snap.Keyring
	s := storeStatus{Store: st.String(), Generation: r.Generation, RotatedAt: r.RotatedAt, RotatedBy: r.RotatedBy,
		Reason: r.Reason, Plain: snap.Plain, At: now, Keys: []keyStatus{}}
	if snap.PlainCurrent != nil {
		kind := "a Kubernetes Secret"
		if strings.HasPrefix(st.String(), "file://") {
			kind = "a file"
		}
		s.Note = "plain value in " + kind + ": no history. A running sidecar keeps the value it held before as the previous key for the verify window; " +
			"a pod started after the value changed never saw the previous value and cannot verify what was signed with it. " +
			"`keysync rotate` adopts the value into a keyring document, which carries every key."
	}
	for _, k := range r.Keys {
		ks := keyStatus{ID: k.ID, State: r.StateAt(k, now)}
		if !k.Held() {
			nb := k.NotBefore
			ks.NotBefore = &nb
		}
		if !k.NotAfter.IsZero() {
			na := k.NotAfter
			ks.NotAfter = &na
		}
		var until time.Time
		switch {
		case ks.State == keyring.StatePending:
			until = k.NotBefore
		case !k.NotAfter.IsZero() && ks.State != keyring.StateExpired:
			until = k.NotAfter
		}
		if !until.IsZero() {
			left := until.Sub(now).Truncate(time.Second).Seconds()
			ks.LeftSeconds = &left
		}
		s.Keys = append(s.Keys, ks)
	}
	return s
}

func closeAll(primary store.Store, mirrors []store.Store) {
	primary.Close()
	for _, m := range mirrors {
		m.Close()
	}
}
