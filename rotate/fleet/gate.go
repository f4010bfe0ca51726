package fleet

import (
	"context"
	"errors"
	"fmt"
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
// that appear during the wait are waited for. A member is left out only when its source
// says it can no longer receive traffic: a pod terminating, finished or gone from the
// Kubernetes API. Every other member seen during the wait is waited for: a pod whose
// sidecar crash-loops, a sidecar that does not answer, an address gone from a DNS answer
// (Kubernetes publishes ready endpoints only; the pod may still serve with its old file).
type Gate struct {
	Sources []Source
	Client  *Client
	// Stores are the rotation's stores (String() of the primary and every mirror). A member
	// whose sidecar follows none of them is never counted: it is another fleet's. Empty:
	// not checked.
	Stores  []string
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
	// Ended is how the member ended the wait, in Result.Seen: confirmed, lagging,
	// skipped or deleted.
	Ended string `json:"ended,omitempty"`
}

// How a member ended a wait (MemberReport.Ended).
const (
	EndedConfirmed = "confirmed"
	EndedLagging   = "lagging"
	EndedSkipped   = "skipped"
	EndedDeleted   = "deleted"
)

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
	// Deleted are members listed earlier in the wait that their source no longer lists
	// (gone from the Kubernetes API): they receive no traffic.
	Deleted []MemberReport `json:"deleted,omitempty"`
	// Seen is every member seen during the wait, by name, and how each ended.
	Seen []MemberReport `json:"seen,omitempty"`
}

func (g *Gate) now() time.Time {
	if g.Now == nil {
		return time.Now()
	}
	return g.Now()
}

func (g *Gate) timeout() time.Duration {
	if g.Timeout <= 0 {
		return DefaultTimeout
	}
	return g.Timeout
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
// not answer as a keysync sidecar, follows another store, has no --confirm-url (its app
// could never confirm), or a pod's sidecar is not running. Skipped members (terminating,
// finished, never started) do not fail it.
func (g *Gate) Check(ctx context.Context) (*Round, error) {
	ctx, cancel := context.WithTimeout(ctx, g.timeout())
	defer cancel()
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
		case o.Member.Lag != "":
			problems = append(problems, fmt.Sprintf("%s: %s: the gate would wait for it (repair it, or delete the pod)", o.Member.Name, o.Member.Lag))
		case o.Err != nil:
			problems = append(problems, fmt.Sprintf("%s (%s): %v", o.Member.Name, o.Member.URL, o.Err))
		case !g.follows(o.Status):
			problems = append(problems, fmt.Sprintf("%s: %s", o.Member.Name, g.foreignStore(o.Status)))
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

// Wait asks the fleet every Poll until every member that is not skipped reports its app
// holding keyID, or Timeout passes (ErrNotConverged). since is when the key was written:
// confirmation times are measured from it. The deadline bounds everything, a listing or
// a member that stalls included.
func (g *Gate) Wait(ctx context.Context, keyID string, since time.Time) (*Result, error) {
	poll, timeout := g.Poll, g.timeout()
	if poll <= 0 {
		poll = DefaultPoll
	}
	deadline := g.now().Add(timeout)
	rctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	w := &wait{keyID: keyID, since: since, confirmedAt: map[string]time.Time{}, seen: map[string]*seenMember{}}
	last := &Result{KeyID: keyID}
	for {
		listed, err := List(rctx, g.Sources)
		if err != nil {
			// A listing that fails (the API server is away for a moment) is retried until
			// the deadline; it never counts as a confirmation.
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if rctx.Err() != nil && last.Members > 0 {
				// The deadline cut the listing short: the round before says who lags.
				return last, notConverged(timeout, last, keyID)
			}
			g.say(fmt.Sprintf("listing the fleet failed, retrying: %v", err))
			if !g.sleep(ctx, poll, deadline) {
				last.WaitedSeconds = g.now().Sub(since).Seconds()
				if last.Members > 0 {
					return last, fmt.Errorf("%w; the last listing failed: %v", notConverged(timeout, last, keyID), err)
				}
				return last, fmt.Errorf("%w: %v", ErrNotConverged, err)
			}
			continue
		}
		ask := w.merge(listed)
		r := &Round{Observations: g.client().Collect(rctx, ask)}
		r.At = g.now()
		if ctx.Err() != nil {
			return last, ctx.Err()
		}
		if rctx.Err() != nil && last.Members > 0 {
			// The deadline cut this round short: its answers say only that. The round
			// before says why each member lagged.
			return last, notConverged(timeout, last, keyID)
		}
		res := g.tally(r, w)
		last = res
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
			return res, notConverged(timeout, res, keyID)
		}
	}
}

// wait is what a Wait remembers between rounds.
type wait struct {
	keyID       string
	since       time.Time
	confirmedAt map[string]time.Time
	seen        map[string]*seenMember
	order       []string
}

type seenMember struct {
	m       Member // as last listed
	deleted bool   // its authoritative source no longer lists it
	absent  bool   // its other source no longer lists it: still asked, at its last URL
}

// merge records a round's listing and returns the members to ask: those listed, and
// those a source that is not authoritative listed before and no longer does.
func (w *wait) merge(listed []Member) []Member {
	now := map[string]bool{}
	for _, m := range listed {
		now[m.Name] = true
		s, ok := w.seen[m.Name]
		if !ok {
			s = &seenMember{}
			w.seen[m.Name] = s
			w.order = append(w.order, m.Name)
		}
		*s = seenMember{m: m}
	}
	ask := slices.Clone(listed)
	for _, name := range w.order {
		s := w.seen[name]
		if now[name] {
			continue
		}
		if s.m.Authoritative {
			s.deleted = true
			continue
		}
		s.absent = true
		if s.m.Skip == "" {
			ask = append(ask, s.m)
		}
	}
	return ask
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

// tally reads a round: who holds the key, who lags and why, who is skipped or deleted.
func (g *Gate) tally(r *Round, w *wait) *Result {
	res := &Result{KeyID: w.keyID, WaitedSeconds: r.At.Sub(w.since).Seconds()}
	ended := map[string]MemberReport{}
	var after []float64
	for _, o := range r.Observations {
		name := o.Member.Name
		if o.Member.Skip != "" {
			res.Skipped = append(res.Skipped, MemberReport{Name: name, Why: o.Member.Skip})
			ended[name] = MemberReport{Name: name, Why: o.Member.Skip, Ended: EndedSkipped}
			continue
		}
		res.Members++
		if o.Status == nil || !holds(o.Status, w.keyID) || !g.follows(o.Status) {
			why := g.why(o, w.keyID)
			if s := w.seen[name]; s != nil && s.absent {
				why = "gone from the fleet's answer, still waited for (its pod may serve with its old keys file): " + why
			}
			res.Lagging = append(res.Lagging, MemberReport{Name: name, Why: why})
			ended[name] = MemberReport{Name: name, Why: why, Ended: EndedLagging}
			continue
		}
		res.Confirmed++
		at, ok := w.confirmedAt[name]
		if !ok {
			at = confirmationTime(o, w.since)
			w.confirmedAt[name] = at
		}
		a := max(at.Sub(w.since), 0).Seconds()
		after = append(after, a)
		res.Confirmations = append(res.Confirmations, MemberReport{Name: name, AfterSeconds: a})
		ended[name] = MemberReport{Name: name, AfterSeconds: a, Ended: EndedConfirmed}
	}
	for _, name := range w.order {
		if s := w.seen[name]; s.deleted {
			d := MemberReport{Name: name, Why: "no longer listed by " + sourceOf(s.m), Ended: EndedDeleted}
			res.Deleted = append(res.Deleted, d)
			ended[name] = d
		}
	}
	for _, name := range w.order {
		if e, ok := ended[name]; ok {
			res.Seen = append(res.Seen, e)
		}
	}
	slices.SortFunc(res.Seen, func(a, b MemberReport) int { return strings.Compare(a.Name, b.Name) })
	res.P50Seconds, res.P99Seconds, res.MaxSeconds = percentile(after, 0.5), percentile(after, 0.99), percentile(after, 1)
	return res
}

func sourceOf(m Member) string {
	if m.Authoritative {
		return "the Kubernetes API (deleted)"
	}
	return "its source"
}

// why is Why, with the gate's own reason first: a member following another store.
func (g *Gate) why(o Observation, keyID string) string {
	if o.Status != nil && !g.follows(o.Status) {
		return g.foreignStore(o.Status)
	}
	return Why(o, keyID)
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
