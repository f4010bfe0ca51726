// Package awsfake is a fake AWS endpoint for the calls the in-process emulator (kumo)
// lacks or gets wrong: SSM GetParameterHistory and `name:version` selectors, Secrets
// Manager staging labels (PutSecretValue with VersionStages, UpdateSecretVersionStage,
// ListSecretVersionIds). It is a fake, not an emulator: it serves the AWS JSON 1.1
// protocol (the operation in X-Amz-Target) for those two services only, with the
// semantics the AWS API reference documents, and refuses every request whose SigV4
// signature does not verify, recomputed with the SDK's own signer. Tests use it with the
// real SDK clients, and inject what a real service cannot be made to do on demand:
// throttling, and a write landing between two calls of a client.
package awsfake

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
)

// Credentials the fake accepts; any other access key is refused.
const (
	AccessKeyID     = "AKIAKEYSYNCFAKE00001"
	SecretAccessKey = "keysync-fake-secret-access-key-not-a-real-one"
	Region          = "eu-west-1"
)

// Server is the fake. Its zero value is not usable: call Start.
type Server struct {
	URL string
	srv *httptest.Server

	mu       sync.Mutex
	params   map[string]*parameter
	secrets  map[string]*secret
	calls    map[string]int
	throttle map[string]int
	echo     map[string]bool
	before   func(op string)
	clock    func() time.Time
	last     time.Time
	refused  int
}

// Start serves the fake on a loopback port until Close.
func Start() *Server {
	f := &Server{params: map[string]*parameter{}, secrets: map[string]*secret{}, calls: map[string]int{},
		throttle: map[string]int{}, echo: map[string]bool{}, clock: time.Now}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	f.URL = f.srv.URL
	return f
}

// Close stops the server.
func (f *Server) Close() { f.srv.Close() }

// Config returns an SDK configuration with the fake's credentials and region; set
// BaseEndpoint to URL on the client.
func Config() aws.Config {
	return aws.Config{Region: Region, Credentials: credentials.NewStaticCredentialsProvider(AccessKeyID, SecretAccessKey, "")}
}

// Calls returns the number of requests per operation ("ssm.GetParameter") since the
// last call, and resets the counts. Refused requests are counted too.
func (f *Server) Calls() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.calls
	f.calls = map[string]int{}
	return c
}

// Requests returns the number of requests since the last Calls or Requests, and resets
// the counts.
func (f *Server) Requests() int {
	n := 0
	for _, c := range f.Calls() {
		n += c
	}
	return n
}

// Refused returns how many requests failed signature verification.
func (f *Server) Refused() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.refused
}

// Throttle makes the next n requests of op ("ssm.GetParameter", or "*" for any) fail
// with ThrottlingException, as a service over its request rate does.
func (f *Server) Throttle(op string, n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.throttle[op] = n
}

// RejectQuoting makes the next request of op fail with a ValidationException whose
// message quotes the request body — values included — as a careless service or proxy
// might: the client must not pass such a message on.
func (f *Server) RejectQuoting(op string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.echo[op] = true
}

// Before runs fn (without the fake's lock held) before each operation is served, so a
// test can make another client's write land between two calls of the client under test.
func (f *Server) Before(fn func(op string)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.before = fn
}

type apiError struct {
	status int
	code   string
	msg    string
}

func (e *apiError) Error() string { return e.code + ": " + e.msg }

func errf(status int, code, format string, a ...any) *apiError {
	return &apiError{status, code, fmt.Sprintf(format, a...)}
}

func (f *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	target := r.Header.Get("X-Amz-Target")
	svc, op, _ := strings.Cut(target, ".")
	var name string
	switch svc {
	case "AmazonSSM":
		name = "ssm." + op
	case "secretsmanager":
		name = "secretsmanager." + op
	default:
		writeErr(w, errf(400, "UnknownOperationException", "unknown target %q", target))
		return
	}
	f.mu.Lock()
	f.calls[name]++
	before := f.before
	f.mu.Unlock()
	if err := verify(r, body, strings.SplitN(name, ".", 2)[0]); err != nil {
		f.mu.Lock()
		f.refused++
		f.mu.Unlock()
		writeErr(w, err)
		return
	}
	if before != nil {
		before(name)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, k := range []string{name, "*"} {
		if f.throttle[k] > 0 {
			f.throttle[k]--
			writeErr(w, errf(400, "ThrottlingException", "Rate exceeded"))
			return
		}
	}
	if f.echo[name] {
		delete(f.echo, name)
		writeErr(w, errf(400, "ValidationException", "1 validation error detected: request %s failed to satisfy constraint", body))
		return
	}
	var out any
	if strings.HasPrefix(name, "ssm.") {
		out, err = f.ssm(op, body)
	} else {
		out, err = f.secretsManager(op, body)
	}
	if err != nil {
		writeErr(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	json.NewEncoder(w).Encode(out)
}

func writeErr(w http.ResponseWriter, err error) {
	e, ok := err.(*apiError)
	if !ok {
		e = errf(400, "ValidationException", "%v", err)
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-ErrorType", e.code)
	w.WriteHeader(e.status)
	json.NewEncoder(w).Encode(map[string]string{"__type": e.code, "message": e.msg})
}

// verify recomputes the request's SigV4 signature with the SDK's signer over the headers
// the request says it signed, the body's SHA-256 and its own date, and compares.
func verify(r *http.Request, body []byte, service string) error {
	auth := r.Header.Get("Authorization")
	fields := map[string]string{}
	rest, ok := strings.CutPrefix(auth, "AWS4-HMAC-SHA256 ")
	if !ok {
		return errf(400, "MissingAuthenticationTokenException", "the request is not signed with SigV4")
	}
	for _, p := range strings.Split(rest, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
		fields[k] = v
	}
	scope := strings.Split(fields["Credential"], "/")
	if len(scope) != 5 || scope[4] != "aws4_request" {
		return errf(400, "IncompleteSignatureException", "malformed credential scope")
	}
	if scope[0] != AccessKeyID {
		return errf(400, "UnrecognizedClientException", "The security token included in the request is invalid.")
	}
	if scope[2] != Region || scope[3] != service {
		return errf(403, "InvalidSignatureException", "credential scope %s/%s does not match %s/%s", scope[2], scope[3], Region, service)
	}
	at, err := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
	if err != nil {
		return errf(400, "IncompleteSignatureException", "no valid X-Amz-Date")
	}
	if d := time.Since(at); d > 5*time.Minute || d < -5*time.Minute {
		return errf(403, "InvalidSignatureException", "Signature expired: the request time is more than 5 minutes from the server's")
	}
	sum := sha256.Sum256(body)
	payload := hex.EncodeToString(sum[:])
	if h := r.Header.Get("X-Amz-Content-Sha256"); h != "" && h != payload {
		return errf(400, "XAmzContentSHA256Mismatch", "the body does not match X-Amz-Content-Sha256")
	}
	re, _ := http.NewRequest(r.Method, "http://"+r.Host+r.URL.RequestURI(), bytes.NewReader(body))
	re.Host = r.Host
	re.ContentLength = r.ContentLength
	for _, h := range strings.Split(fields["SignedHeaders"], ";") {
		switch h {
		case "host", "content-length":
		default:
			for _, v := range r.Header.Values(h) {
				re.Header.Add(h, v)
			}
		}
	}
	creds := aws.Credentials{AccessKeyID: AccessKeyID, SecretAccessKey: SecretAccessKey}
	if err := v4.NewSigner().SignHTTP(r.Context(), creds, re, payload, service, Region, at); err != nil {
		return errf(500, "InternalFailure", "signer: %v", err)
	}
	_, want, _ := strings.Cut(re.Header.Get("Authorization"), "Signature=")
	if subtle.ConstantTimeCompare([]byte(want), []byte(fields["Signature"])) != 1 {
		return errf(403, "InvalidSignatureException", "The request signature we calculated does not match the signature you provided.")
	}
	return nil
}

func epoch(t time.Time) float64 { return float64(t.UnixMilli()) / 1000 }

// now returns the fake's clock, strictly increasing by at least a millisecond so that
// versions made in one test have distinct timestamps, as they have on the real service.
func (f *Server) now() time.Time {
	t := f.clock().UTC().Truncate(time.Millisecond)
	if !t.After(f.last) {
		t = f.last.Add(time.Millisecond)
	}
	f.last = t
	return t
}
