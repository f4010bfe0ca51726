// Package awsapi is what the AWS stores share: loading the SDK configuration through the
// default credential chain (environment, shared config and credentials files, web
// identity / IRSA, ECS and EC2 instance roles), the SDK's standard retryer following the
// store package's one retry policy (store.Attempts, store.Backoff: full jitter, one attempt
// for the sidecar's poll), and error descriptions that name the call and never carry a
// value.
package awsapi

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/smithy-go"

	"github.com/sigil-dna/keysync/keyring"
	"github.com/sigil-dna/keysync/keyring/secretscan"
	"github.com/sigil-dna/keysync/store"
)

// Defaults of the retryer: the store package's one retry policy.
const (
	DefaultMaxAttempts = store.DefaultAttempts
	DefaultBaseDelay   = store.DefaultBaseDelay
	DefaultMaxBackoff  = store.DefaultMaxBackoff
)

// Config is how a store reaches AWS.
type Config struct {
	// Region overrides AWS_REGION / the shared config's region.
	Region string
	// Endpoint overrides the service endpoint (AWS_ENDPOINT_URL_SSM,
	// AWS_ENDPOINT_URL_SECRETS_MANAGER and AWS_ENDPOINT_URL are honoured without it).
	Endpoint string
	// Base, when set, is used instead of loading the default chain (tests).
	Base *aws.Config
	// MaxAttempts bounds the attempts of one call (0: DefaultMaxAttempts).
	MaxAttempts int
	// BaseDelay and MaxBackoff shape the full-jitter backoff between attempts.
	BaseDelay, MaxBackoff time.Duration
}

// Load returns the SDK configuration: the default chain (or Base), the region, and a
// standard retryer with full-jitter backoff and no client-side retry quota (a sidecar
// that polls for hours must not end up refusing to retry after a burst of throttling).
func Load(ctx context.Context, c Config) (aws.Config, error) {
	var cfg aws.Config
	if c.Base != nil {
		cfg = c.Base.Copy()
	} else {
		var err error
		if cfg, err = config.LoadDefaultConfig(ctx); err != nil {
			return aws.Config{}, fmt.Errorf("loading the AWS configuration: %w", err)
		}
	}
	if c.Region != "" {
		cfg.Region = c.Region
	}
	if cfg.Region == "" {
		return aws.Config{}, errors.New("no AWS region: set --aws-region, AWS_REGION or a region in the shared config")
	}
	if c.Endpoint != "" {
		cfg.BaseEndpoint = aws.String(c.Endpoint)
	}
	b := Backoff{Base: c.BaseDelay, Max: c.MaxBackoff}
	attempts := c.MaxAttempts
	if attempts <= 0 {
		attempts = DefaultMaxAttempts
	}
	cfg.Retryer = func() aws.Retryer {
		return retry.NewStandard(func(o *retry.StandardOptions) {
			o.MaxAttempts = attempts
			o.Backoff = b
			o.RateLimiter = ratelimit.None
		})
	}
	return cfg, nil
}

// Attempts is the RetryMaxAttempts of one call made with ctx under the store package's
// policy (store.Attempts): 1 when its caller retries with a backoff of its own (the
// sidecar's poll), 0 (the client's retryer, Config.MaxAttempts) otherwise.
func Attempts(ctx context.Context) int {
	if store.Attempts(ctx) == 1 {
		return 1
	}
	return 0
}

// Backoff is store.Backoff, the one full-jitter backoff of every backend, as the SDK's
// retry.BackoffDelayer.
type Backoff store.Backoff

// BackoffDelay implements retry.BackoffDelayer.
func (b Backoff) BackoffDelay(attempt int, _ error) (time.Duration, error) {
	return b.Delay(attempt, rand.Float64()), nil
}

// Delay is store.Backoff's delay of attempt n for a random draw r in [0, 1).
func (b Backoff) Delay(attempt int, r float64) time.Duration {
	return store.Backoff(b).Delay(attempt, r)
}

// Code returns the AWS error code of err ("ParameterNotFound"), or "".
func Code(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// Throttled reports whether err is AWS refusing a request rate.
func Throttled(err error) bool {
	switch Code(err) {
	case "ThrottlingException", "Throttling", "ThrottledException", "TooManyRequestsException",
		"RequestLimitExceeded", "RequestThrottled", "RequestThrottledException", "SlowDown":
		return true
	}
	return false
}

// Describe wraps err from call for a log line: the service's error code and message (AWS
// messages name resources, never values), and for throttling how many attempts were made.
func Describe(call string, err error) error {
	var re *retry.MaxAttemptsError
	if Throttled(err) && errors.As(err, &re) {
		return fmt.Errorf("%s: throttled by AWS, still after %d attempts with backoff: %w", call, re.Attempt, err)
	}
	return fmt.Errorf("%s: %w", call, err)
}

// Description is what a write records on the parameter or secret — who rotated, when, why
// and which key ids — cut to max characters (never inside a character).
func Description(r *keyring.Keyring, max int) string {
	d := fmt.Sprintf("keysync generation %d by %s at %s; keys %s; reason: %s", r.Generation, r.RotatedBy,
		r.RotatedAt.UTC().Format(time.RFC3339), strings.Join(r.IDs(), ","), r.Reason)
	if utf8.RuneCountInString(d) <= max {
		return d
	}
	runes := []rune(d)
	return string(runes[:max-3]) + "..."
}

// Redact returns err unless its message quotes the value a call was writing, or a key in
// it (raw, hex or base64). Such an error — a service or proxy echoing the request in a
// validation message — is replaced by one that keeps only the AWS error code, so that
// the value cannot reach a log.
func Redact(err error, value []byte) error {
	if err == nil {
		return nil
	}
	secrets := [][]byte{value}
	if r, perr := keyring.Parse(value); perr == nil {
		for _, k := range r.Keys {
			secrets = append(secrets, k.Secret)
		}
	}
	if secretscan.Count([]byte(err.Error()), secrets...) == 0 {
		return err
	}
	return &redacted{code: Code(err)}
}

// redacted is an AWS error whose message was withheld; it keeps the code for callers
// that branch on it.
type redacted struct{ code string }

func (e *redacted) Error() string {
	return fmt.Sprintf("api error %s: (message withheld: it quoted the value being written)", e.code)
}
func (e *redacted) ErrorCode() string             { return e.code }
func (e *redacted) ErrorMessage() string          { return "(withheld)" }
func (e *redacted) ErrorFault() smithy.ErrorFault { return smithy.FaultUnknown }
