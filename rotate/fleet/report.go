package fleet

// What the gate says: why a member lags, the progress line, the error of a gate that timed out.

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// notConverged is the error of a gate that timed out after round res: who lags and why.
func notConverged(timeout time.Duration, res *Result, keyID string) error {
	return fmt.Errorf("%w (%s): %d of %d members hold %s; lagging: %s", ErrNotConverged, timeout, res.Confirmed, res.Members, keyID, lagging(res.Lagging, 0))
}

func describe(sources []Source) string {
	var out []string
	for _, s := range sources {
		out = append(out, s.String())
	}
	return strings.Join(out, " ")
}

func skipped(obs []Observation) string {
	var out []string
	for _, o := range obs {
		out = append(out, o.Member.Name+": "+o.Member.Skip)
	}
	return strings.Join(out, "; ")
}

// percentile is the nearest-rank percentile of xs (0 for none).
func percentile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return math.Round(s[max(i, 0)]*1000) / 1000
}

// Why says why a member does not hold keyID yet.
func Why(o Observation, keyID string) string {
	st := o.Status
	switch {
	case o.Member.Lag != "":
		return o.Member.Lag
	case o.Err != nil:
		return o.Err.Error()
	case st == nil:
		return "not asked"
	case st.StoreError != "":
		return fmt.Sprintf("store read failing for %.0f s: %s", st.At.Sub(st.FailingSince).Seconds(), st.StoreError)
	case st.WriteError != "" && !slices.Contains(st.KeyIDs, keyID):
		return fmt.Sprintf("keys file cannot be written for %.0f s: %s", st.At.Sub(st.FailingSince).Seconds(), st.WriteError)
	case !slices.Contains(st.KeyIDs, keyID):
		return fmt.Sprintf("keys file at generation %d, without the key yet (last store read %.0f s ago)", st.Generation, st.StaleSeconds)
	case !st.Settings.Confirms:
		return "its sidecar has no --confirm-url: the app cannot confirm"
	case st.App.Error != "":
		return "app not confirming: " + st.App.Error
	case st.App.SignalError != "":
		return "app not signalled: " + st.App.SignalError
	}
	return fmt.Sprintf("app not confirming: it reports generation %d", st.App.Generation)
}

// progress is the line after each round:
// "18/20 hold 3f9c1a2b…; waiting for pod-a (store read failing for 95 s: …), pod-b (…)".
func progress(res *Result, keyID string) string {
	line := fmt.Sprintf("%d/%d hold %s…", res.Confirmed, res.Members, keyID[:min(8, len(keyID))])
	if len(res.Lagging) > 0 {
		line += "; waiting for " + lagging(res.Lagging, 5)
	}
	if len(res.Skipped) > 0 {
		line += fmt.Sprintf("; %d skipped", len(res.Skipped))
	}
	if len(res.Deleted) > 0 {
		line += fmt.Sprintf("; %d deleted", len(res.Deleted))
	}
	return line
}

// lagging names the lagging members and why, at most limit of them (0: all).
func lagging(ms []MemberReport, limit int) string {
	var parts []string
	for i, m := range ms {
		if limit > 0 && i == limit {
			parts = append(parts, fmt.Sprintf("and %d more", len(ms)-limit))
			break
		}
		parts = append(parts, fmt.Sprintf("%s (%s)", m.Name, m.Why))
	}
	return strings.Join(parts, ", ")
}
