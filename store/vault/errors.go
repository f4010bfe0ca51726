package vault

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"github.com/hashicorp/vault/api"
)

// apiError is the Vault client's *api.ResponseError on one line: "GET /v1/PATH: 403
// Forbidden: permission denied". The client's own text spans six lines (and Vault nests
// "1 error occurred:" lists in it), which broke every progress line, log line and status
// table that showed it. errors.As still finds the *api.ResponseError.
type apiError struct{ re *api.ResponseError }

func (e *apiError) Unwrap() error { return e.re }

func (e *apiError) Error() string {
	path := e.re.URL
	if u, err := url.Parse(e.re.URL); err == nil && u.Path != "" {
		path = u.Path
	}
	var msgs []string
	for _, m := range e.re.Errors {
		if m = condense(m); m != "" {
			msgs = append(msgs, m)
		}
	}
	msg := strings.Join(msgs, "; ")
	if msg == "" {
		msg = "no message"
	}
	const maxMessage = 300
	if len(msg) > maxMessage {
		msg = strings.ToValidUTF8(msg[:maxMessage], "") + "…"
	}
	if e.re.StatusCode == http.StatusTooManyRequests {
		msg = "throttled (a rate-limit quota): " + msg
	}
	return fmt.Sprintf("%s %s: %d %s: %s", e.re.HTTPMethod, path, e.re.StatusCode, http.StatusText(e.re.StatusCode), msg)
}

var (
	occurred = regexp.MustCompile(`\d+ errors? occurred:`)
	spaces   = regexp.MustCompile(`[\s*]+`)
)

// condense is one of Vault's messages without its multierror framing, on one line.
func condense(m string) string {
	m = occurred.ReplaceAllString(m, " ")
	var parts []string
	for _, l := range strings.Split(m, "\n") {
		if l = strings.TrimSpace(strings.TrimLeft(strings.TrimSpace(l), "*")); l != "" {
			parts = append(parts, spaces.ReplaceAllString(l, " "))
		}
	}
	return strings.Join(parts, "; ")
}

// oneLine wraps a Vault API error in apiError; any other error is returned as it is.
func oneLine(err error) error {
	var re *api.ResponseError
	if err == nil || !errors.As(err, &re) {
		return err
	}
	var already *apiError
	if errors.As(err, &already) {
		return err
	}
	if err == error(re) || !strings.Contains(err.Error(), re.Error()) {
		return &apiError{re}
	}
	// Wrapped: keep the wrapping's words, replace the client's text.
	return fmt.Errorf("%s: %w", strings.TrimSuffix(strings.TrimSpace(strings.Replace(err.Error(), re.Error(), "", 1)), ":"), &apiError{re})
}
