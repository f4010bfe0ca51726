// Package fleet finds the members of a fleet (the pods whose sidecars keep an app's keys)
// and asks each sidecar what its app holds, through the sidecar's /status. It is what
// makes a rotation fleet-confirmed: a held key is promoted only once every member's app
// has confirmed loading it (Gate), and `keysync status --fleet` shows which member holds
// which key.
//
// Members come from sources: Kubernetes pods by label selector (k8s://), every address
// of a DNS name such as a headless Service (dns://), or a static list of sidecar URLs.
package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sigil-dna/keysync/internal/statusapi"
)

// DefaultPort is the sidecar's status port.
const DefaultPort = 9102

// Member is one sidecar of the fleet.
type Member struct {
	// Name names the member in progress lines and reports: NAMESPACE/POD for a pod (with
	// the kubeconfig context first, when the source names one), HOST:PORT otherwise.
	Name string
	// URL is the sidecar's base URL (http://IP:PORT).
	URL string
	// Skip, when not empty, says why the member is listed but not asked and not waited
	// for: a pod that terminates, or whose sidecar has not started (it reads the store
	// when it starts).
	Skip string
	// Foreign: a pod the selector matches that has no sidecar at all. A rotation refuses
	// to start on such a fleet: that pod's app would never hold a new key.
	Foreign bool
	// Lag, when not empty, says why the source already knows this member cannot confirm
	// (its sidecar has run but is not running now: crash loop, OOM kill): it is not asked,
	// and the gate waits for it, since its app may still verify with its old keys file.
	Lag string
	// Authoritative: the source lists every member that can still receive traffic (the
	// Kubernetes API), so a member it no longer lists is gone and the gate drops it. A
	// member of any other source (a DNS answer, which publishes ready pods only) that
	// disappears stays a member until the rotation ends.
	Authoritative bool
}

// Source lists the members of a fleet.
type Source interface {
	Members(ctx context.Context) ([]Member, error)
	String() string
}

// ErrEmpty is returned when the sources list no member at all: a rotation is never
// gated on an empty fleet by accident.
var ErrEmpty = errors.New("the fleet has no member")

// Status is what a member's sidecar serves on /status.
type Status = statusapi.Status

// rawMarkers are the fields whose presence says an answer is a keysync sidecar's status.
type rawMarkers struct {
	Store    *string          `json:"store"`
	Settings *json.RawMessage `json:"settings"`
	App      *json.RawMessage `json:"app"`
	At       *string          `json:"at"`
}

// holds reports whether the member's app reported holding key id.
func holds(s *Status, id string) bool { return slices.Contains(s.App.KeyIDs, id) }

// Observation is one member asked once.
type Observation struct {
	Member Member
	Status *Status // nil when the member was skipped or did not answer
	Err    error   // why it did not answer, or answered something that is not a keysync status
	// Offset estimates how far the member's clock is ahead of this one: its "at" minus
	// the middle of the request.
	Offset time.Duration
	RTT    time.Duration
	At     time.Time // when the answer came
}

// Client asks sidecars. The zero value is not usable: use NewClient.
type Client struct {
	http        *http.Client
	concurrency int
	now         func() time.Time
}

// DefaultConcurrency bounds the members asked at once.
const DefaultConcurrency = 64

// NewClient returns a client that asks at most concurrency members at once (0: the
// default), each with timeout.
func NewClient(concurrency int, timeout time.Duration) *Client {
	if concurrency <= 0 {
		concurrency = DefaultConcurrency
	}
	if timeout <= 0 {
		timeout = 3 * time.Second
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost, tr.MaxIdleConns = 2, 2*concurrency
	tr.Proxy = nil // sidecars are reached directly, never through an HTTP proxy of the environment
	tr.MaxResponseHeaderBytes = 16 << 10
	hc := &http.Client{Timeout: timeout, Transport: tr,
		// A sidecar never redirects: a member that does would be credited with another
		// pod's status, or make the rotator fetch any URL it names.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return &Client{http: hc, concurrency: concurrency, now: time.Now}
}

// Collect asks every member that is not skipped, at most the client's concurrency at
// once, and returns one observation per member, in the members' order.
func (c *Client) Collect(ctx context.Context, members []Member) []Observation {
	out := make([]Observation, len(members))
	sem := make(chan struct{}, c.concurrency)
	var wg sync.WaitGroup
	for i, m := range members {
		out[i].Member = m
		if m.Skip != "" || m.Lag != "" {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			out[i] = c.observe(ctx, m)
		}()
	}
	wg.Wait()
	return out
}

func (c *Client) observe(ctx context.Context, m Member) Observation {
	o := Observation{Member: m}
	start := c.now()
	st, err := c.status(ctx, m.URL)
	o.At = c.now()
	o.RTT = o.At.Sub(start)
	if err != nil {
		o.Err = err
		return o
	}
	o.Status = st
	if !st.At.IsZero() {
		o.Offset = st.At.Sub(start.Add(o.RTT / 2))
	}
	return o
}

// maxStatusBytes bounds a member's answer.
const maxStatusBytes = 1 << 20

func (c *Client) status(ctx context.Context, base string) (*Status, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(base, "/")+"/status", nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("sidecar unreachable: %w", unwrapURL(err))
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		return nil, fmt.Errorf("not a keysync sidecar status: the answer is a redirect (%d), which a sidecar never sends; not followed", resp.StatusCode)
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("sidecar status answered %d %s", resp.StatusCode, Clean(http.StatusText(resp.StatusCode)))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxStatusBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading the sidecar status: %w", err)
	}
	if len(body) > maxStatusBytes {
		return nil, errors.New("not a keysync sidecar status: the answer is larger than 1 MiB")
	}
	var st Status
	var raw rawMarkers
	if json.Unmarshal(body, &st) != nil || json.Unmarshal(body, &raw) != nil {
		return nil, errors.New("not a keysync sidecar status: the answer is not its JSON")
	}
	if raw.Store == nil || raw.Settings == nil || raw.App == nil || raw.At == nil || st.Settings.Interval <= 0 {
		return nil, errors.New("not a keysync sidecar status: store, settings, app or at missing (a keysync sidecar older than fleet support, or another service on that port)")
	}
	// Everything a member says may be printed: to the operator's terminal, a log, an
	// audit record. None of it reaches them with control characters or at any length.
	cleanStrings(reflect.ValueOf(&st).Elem())
	return &st, nil
}

// unwrapURL drops net/url's "Get URL:" prefix; the member's name is said by the caller.
func unwrapURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// List lists the members of every source, in order, with duplicate URLs listed once.
func List(ctx context.Context, sources []Source) ([]Member, error) {
	var all []Member
	seen := map[string]bool{}
	for _, s := range sources {
		ms, err := s.Members(ctx)
		if err != nil {
			return nil, fmt.Errorf("fleet %s: %w", s, err)
		}
		for _, m := range ms {
			key := m.URL
			if m.URL == "" {
				key = "skip:" + m.Name
			}
			if !seen[key] {
				seen[key] = true
				all = append(all, m)
			}
		}
	}
	return all, nil
}
