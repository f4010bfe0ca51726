package fleet

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// Defaults of the gate.
const (
	DefaultPoll         = time.Second
	DefaultTimeout      = 5 * time.Minute
	DefaultMaxClockSkew = 5 * time.Second
)

// ErrNotConverged is returned by Wait when some member's app did not confirm the key in
// time. The Result names each and why.
var ErrNotConverged = errors.New("the fleet did not confirm the key in time")

// Gate asks the fleet, round after round, until every member's app holds a key. Members
// that appear during the wait are waited for; members that vanish are dropped.
type Gate struct {
	Sources []Source
	Client  *Client
	Poll    time.Duration // between rounds; 0: DefaultPoll
	Timeout time.Duration // 0: DefaultTimeout
	// Progress receives a line after each round; nil: none.
	Progress func(line string)
	Now      func() time.Time
}

// Round is the fleet listed and asked once.
type Round struct {
	At           time.Time
	Observations []Observation
}

// MemberReport is one member in a result.
type MemberReport struct {
	Name string `json:"name"`
	// Why it is skipped or lagging.
	Why string `json:"why,omitempty"`
	// AfterSeconds is the time from the held write to its app's confirmation.
	AfterSeconds float64 `json:"after_seconds,omitempty"`
}

// Result is what a wait showed: the evidence a promotion's audit record carries.
type Result struct {
	KeyID         string         `json:"key_id"`
	Members       int            `json:"members"`
	Confirmed     int            `json:"confirmed"`
	WaitedSeconds float64        `json:"waited_seconds"`
	P50Seconds    float64        `json:"confirmation_p50_seconds"`
	P99Seconds    float64        `json:"confirmation_p99_seconds"`
	MaxSeconds    float64        `json:"confirmation_max_seconds"`
	Confirmations []MemberReport `json:"confirmations,omitempty"`
	Lagging       []MemberReport `json:"lagging,omitempty"`
	Skipped       []MemberReport `json:"skipped,omitempty"`
}

func (g *Gate) now() time.Time {
	if g.Now == nil {
		return time.Now()
	}
	return g.Now()
}

func (g *Gate) client() *Client {
	if g.Client == nil {
		g.Client = NewClient(0, 0)
	}
	return g.Client
}

// Round lists the fleet and asks every member once.
func (g *Gate) Round(ctx context.Context) (*Round, error) {
	members, err := List(ctx, g.Sources)
	if err != nil {
		return nil, err
	}
	return &Round{At: g.now(), Observations: g.client().Collect(ctx, members)}, nil
}

// Check is the gate's question before anything is written: it lists the fleet and asks
// every member once, and fails — naming the member and what to do — when the fleet is
// empty, a pod the selector matches has no sidecar, a member cannot be reached or does
// not answer as a keysync sidecar, or a sidecar has no --confirm-url (its app could
// never confirm). Skipped members (terminating, not started) do not fail it.
func (g *Gate) Check(ctx context.Context) (*Round, error) {
	r, err := g.Round(ctx)
	if err != nil {
		return nil, fmt.Errorf("fleet check failed, nothing was written: %w", err)
	}
	asked := 0
	var problems []string
	for _, o := range r.Observations {
		switch {
		case o.Member.Foreign:
			problems = append(problems, fmt.Sprintf("%s: %s: the selector matches pods without the sidecar (narrow it, or name the sidecar's container with container=)", o.Member.Name, o.Member.Skip))
		case o.Member.Skip != "":
		case o.Err != nil:
			problems = append(problems, fmt.Sprintf("%s (%s): %v", o.Member.Name, o.Member.URL, o.Err))
		case !o.Status.Settings.Confirms:
			problems = append(problems, fmt.Sprintf("%s: its sidecar has no --confirm-url, so its app can never confirm a key", o.Member.Name))
		default:
			asked++
		}
	}
	switch {
	case len(problems) > 0:
		return r, fmt.Errorf("fleet check failed, nothing was written:\n  %s", strings.Join(problems, "\n  "))
	case len(r.Observations) == 0:
		return r, fmt.Errorf("%w: no pod, address or URL matched %s; nothing was written", ErrEmpty, describe(g.Sources))
	case asked == 0:
		return r, fmt.Errorf("%w: every member is skipped (%s); nothing was written", ErrEmpty, skipped(r.Observations))
	}
	return r, nil
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

// Wait asks the fleet every Poll until every member that is not skipped reports its app
// holding keyID, or Timeout passes (ErrNotConverged). since is when the key was written:
// confirmation times are measured from it.
func (g *Gate) Wait(ctx context.Context, keyID string, since time.Time) (*Result, error) {
	poll, timeout := g.Poll, g.Timeout
	if poll <= 0 {
		poll = DefaultPoll
	}
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	deadline := g.now().Add(timeout)
	confirmedAt := map[string]time.Time{}
	for {
		r, err := g.Round(ctx)
		if err != nil {
			// A listing that fails (the API server is away for a moment) is retried until
			// the deadline; it never counts as a confirmation.
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			g.say(fmt.Sprintf("listing the fleet failed, retrying: %v", err))
			if !g.sleep(ctx, poll, deadline) {
				return &Result{KeyID: keyID, WaitedSeconds: g.now().Sub(since).Seconds()}, fmt.Errorf("%w: %v", ErrNotConverged, err)
			}
			continue
		}
		res := g.tally(r, keyID, since, confirmedAt)
		g.say(progress(res, keyID))
		if res.Members > 0 && res.Confirmed == res.Members {
			return res, nil
		}
		if !g.sleep(ctx, poll, deadline) {
			if ctx.Err() != nil {
				return res, ctx.Err()
			}
			if res.Members == 0 {
				return res, fmt.Errorf("%w: every member is skipped or gone", ErrNotConverged)
			}
			return res, fmt.Errorf("%w (%s): %d of %d members hold %s; lagging: %s", ErrNotConverged, timeout, res.Confirmed, res.Members, keyID, lagging(res.Lagging, 0))
		}
	}
}

// sleep waits d, or less up to the deadline; false when the deadline passed or ctx ended.
func (g *Gate) sleep(ctx context.Context, d time.Duration, deadline time.Time) bool {
	left := deadline.Sub(g.now())
	if left <= 0 {
		return false
	}
	t := time.NewTimer(min(d, left))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func (g *Gate) say(line string) {
	if g.Progress != nil {
		g.Progress(line)
	}
}

// tally reads a round: who holds keyID, who lags and why, who is skipped.
func (g *Gate) tally(r *Round, keyID string, since time.Time, confirmedAt map[string]time.Time) *Result {
	res := &Result{KeyID: keyID, WaitedSeconds: r.At.Sub(since).Seconds()}
	var after []float64
	for _, o := range r.Observations {
		name := o.Member.Name
		if o.Member.Skip != "" {
			res.Skipped = append(res.Skipped, MemberReport{Name: name, Why: o.Member.Skip})
			continue
		}
		res.Members++
		if o.Status == nil || !holds(o.Status, keyID) {
			res.Lagging = append(res.Lagging, MemberReport{Name: name, Why: Why(o, keyID)})
			continue
		}
		res.Confirmed++
		at, ok := confirmedAt[name]
		if !ok {
			at = confirmationTime(o, since)
			confirmedAt[name] = at
		}
		a := max(at.Sub(since), 0).Seconds()
		after = append(after, a)
		res.Confirmations = append(res.Confirmations, MemberReport{Name: name, AfterSeconds: a})
	}
	res.P50Seconds, res.P99Seconds, res.MaxSeconds = percentile(after, 0.5), percentile(after, 0.99), percentile(after, 1)
	return res
}

// confirmationTime is when the member's app was first seen holding the key: the
// sidecar's own confirmation time, moved to this clock by the member's clock offset,
// when that is after the write; else the time of this answer.
func confirmationTime(o Observation, since time.Time) time.Time {
	if c := o.Status.App.ConfirmedAt; !c.IsZero() {
		if local := c.Add(-o.Offset); local.After(since) && local.Before(o.At) {
			return local
		}
	}
	return o.At
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
	case o.Err != nil:
		return o.Err.Error()
	case st.StoreError != "":
		return fmt.Sprintf("store read failing for %.0f s: %s", st.At.Sub(st.FailingSince).Seconds(), st.StoreError)
	case !slices.Contains(st.KeyIDs, keyID):
		return fmt.Sprintf("keys file at generation %d, without the key yet (last store read %.0f s ago)", st.Generation, st.StaleSeconds)
	case !st.Settings.Confirms:
		return "its sidecar has no --confirm-url: the app cannot confirm"
	case st.App.Error != "":
		return "app not confirming: " + st.App.Error
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
