package rotate

// What a rotation leaves behind: the audit record (log line and audit file) and an event on
// each store that shows events.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/sigil-dna/keysync/store"
)

// record logs the audit event, appends it to the audit log and records it as an event on
// every store that shows events (a Kubernetes Secret); an event that cannot be recorded is
// a warning, never a failed rotation.
func record(ctx context.Context, o Options, res *Result, primary store.Store, mirrors []store.Store) error {
	audit(o, res)
	ev := eventOf(res)
	for _, st := range append([]store.Store{primary}, mirrors...) {
		er, ok := st.(store.EventRecorder)
		if !ok {
			continue
		}
		// A gate that timed out may have ended ctx: the event still goes out, bounded.
		ectx, cancel := context.WithTimeout(context.WithoutCancel(ctx), eventTimeout)
		if err := er.RecordEvent(ectx, ev); err != nil {
			o.Log.Warn("could not record the rotation as an event; the rotation itself is done", "store", st.String(), "reason", ev.Reason, "error", err)
		}
		cancel()
	}
	if o.AuditLog != "" {
		return appendAudit(o.AuditLog, "rotation", res)
	}
	return nil
}

// intend records what a write is about to do (who, why, the keyring it writes, --force,
// the store version it replaces) before the write: an audit log that cannot be written
// stops the rotation with nothing written, so no store write goes unrecorded. The
// outcome follows in record.
func intend(o Options, res *Result) error {
	o.Log.Info("rotation intent", "event", "rotation_intent", "action", string(res.Action), "store", res.Store,
		"generation", res.Generation, "previous_generation", res.PreviousGeneration, "new_key_id", res.NewKeyID,
		"key_ids", res.KeyIDs, "rotated_by", res.RotatedBy, "reason", res.Reason, "force", res.Force, "based_on_version", res.BasedOn)
	if o.AuditLog == "" {
		return nil
	}
	if err := appendAudit(o.AuditLog, "intent", res); err != nil {
		return fmt.Errorf("%w; nothing was written to %s", err, res.Store)
	}
	return nil
}

// eventTimeout bounds recording one event.
const eventTimeout = 5 * time.Second

// eventOf is the event a rotation's result leaves on the store: key ids, generations,
// who and why, the fleet's evidence; never a secret.
func eventOf(res *Result) store.Event {
	var e store.Event
	switch {
	case res.Outcome == OutcomeNotPromoted:
		e = store.Event{Warning: true, Reason: "FleetGateTimedOut"}
	case res.Outcome == OutcomeNotDue:
		e.Reason = "MirrorsRepaired"
	case res.Action == ActionHold:
		e.Reason = "KeyHeld"
	case res.Action == ActionPromote:
		e.Reason = "KeyPromoted"
	case res.Action == ActionEmergency:
		e = store.Event{Warning: true, Reason: "EmergencyRotation"}
	case res.Action == ActionRollback:
		e = store.Event{Warning: true, Reason: "KeyRolledBack"}
	default:
		e.Reason = "KeyStaged"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "generation %d -> %d", res.PreviousGeneration, res.Generation)
	switch {
	case res.Outcome == OutcomeNotPromoted:
		fmt.Fprintf(&b, ": key %s stays held (verifies everywhere, signs nowhere); not every pod confirmed it", res.NewKeyID)
	case res.Outcome == OutcomeNotDue:
		fmt.Fprintf(&b, ": not due (signing key %s since %s); mirrors brought up to the primary", res.SigningKeyID, res.SigningFrom.UTC().Format(time.RFC3339))
	case res.Action == ActionHold:
		fmt.Fprintf(&b, ": key %s held until every pod confirms it", res.NewKeyID)
	default:
		if res.NewKeyID != "" {
			fmt.Fprintf(&b, ", new key %s", res.NewKeyID)
		}
		fmt.Fprintf(&b, ", signing key %s from %s", res.SigningKeyID, res.SigningFrom.UTC().Format(time.RFC3339))
	}
	if len(res.RemovedKeyIDs) > 0 {
		fmt.Fprintf(&b, ", removed %s", strings.Join(res.RemovedKeyIDs, " "))
	}
	if f := res.Fleet; f != nil {
		fmt.Fprintf(&b, "; fleet: %d/%d pods confirmed in %.1fs", f.Confirmed, f.Members, f.WaitedSeconds)
		if n := len(f.Lagging); n > 0 {
			fmt.Fprintf(&b, ", %d lagging (first: %s: %s)", n, f.Lagging[0].Name, f.Lagging[0].Why)
		}
		if n := len(f.Deleted); n > 0 {
			fmt.Fprintf(&b, ", %d deleted during the gate", n)
		}
	}
	if rs := res.Resumed; rs != nil {
		fmt.Fprintf(&b, "; resumed the key held since %s by %s", rs.HeldSince.UTC().Format(time.RFC3339), rs.HeldBy)
	}
	if res.RotatedBy != "" {
		fmt.Fprintf(&b, "; by %s", res.RotatedBy)
	}
	if res.Reason != "" {
		fmt.Fprintf(&b, ": %s", res.Reason)
	}
	e.Message = b.String()
	return e
}

func audit(o Options, res *Result) {
	attrs := []any{"event", "rotation", "action", string(res.Action), "store", res.Store,
		"generation", res.Generation, "previous_generation", res.PreviousGeneration, "new_key_id", res.NewKeyID,
		"signing_key_id", res.SigningKeyID, "signing_from", res.SigningFrom, "key_ids", res.KeyIDs,
		"removed_key_ids", res.RemovedKeyIDs, "rotated_by", res.RotatedBy, "reason", res.Reason, "attempts", res.Attempts}
	if res.Outcome != "" {
		attrs = append(attrs, "outcome", string(res.Outcome))
	}
	if res.ReplacedInvalid != "" {
		attrs = append(attrs, "replaced_invalid", res.ReplacedInvalid)
	}
	if rs := res.Resumed; rs != nil {
		attrs = append(attrs, "resumed_key_id", rs.KeyID, "held_since", rs.HeldSince, "held_by", rs.HeldBy)
	}
	if f := res.Fleet; f != nil {
		attrs = append(attrs, "fleet_members", f.Members, "fleet_confirmed", f.Confirmed, "fleet_waited_seconds", f.WaitedSeconds,
			"confirmation_p50_seconds", f.P50Seconds, "confirmation_p99_seconds", f.P99Seconds, "confirmation_max_seconds", f.MaxSeconds)
		seen := make([]string, 0, len(f.Seen))
		for _, m := range f.Seen {
			seen = append(seen, m.Name+"="+m.Ended)
		}
		attrs = append(attrs, "fleet_seen", seen)
	}
	if res.Outcome == OutcomeNotPromoted {
		o.Log.Warn("key held, not promoted", attrs...)
		return
	}
	o.Log.Info("keys rotated", attrs...)
}

// appendAudit appends one JSON line to path and fsyncs it.
func appendAudit(path, event string, res *Result) error {
	line, err := json.Marshal(struct {
		Time  time.Time `json:"time"`
		Event string    `json:"event"`
		*Result
	}{time.Now().UTC(), event, res})
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o640)
	if err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	defer f.Close()
	if _, err := f.Write(append(line, '\n')); err != nil {
		return fmt.Errorf("audit log %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("audit log %s: %w", path, err)
	}
	return nil
}
