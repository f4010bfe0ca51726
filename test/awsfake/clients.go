package awsfake

import (
	"fmt"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/sivchari/kumo"

	"github.com/sigil-dna/keysync/internal/awsapi"
)

// quick is the retry timing tests use: the real backoff shape, in milliseconds.
func quick(c awsapi.Config) awsapi.Config {
	c.BaseDelay, c.MaxBackoff = time.Millisecond, 20*time.Millisecond
	return c
}

// AWS returns the store configuration that reaches the fake with its credentials.
func (f *Server) AWS() awsapi.Config {
	cfg := Config()
	return quick(awsapi.Config{Base: &cfg, Endpoint: f.URL})
}

// StartT starts a fake that stops when the test ends.
func StartT(t testing.TB) *Server {
	f := Start()
	t.Cleanup(f.Close)
	return f
}

var (
	kumoOnce sync.Once
	kumoSrv  *kumo.Server
)

// Kumo returns the store configuration that reaches the kumo emulator (an in-process
// AWS emulator, not a fake), started once per test binary: every kumo server in a
// binary shares one state, so tests use unique names.
func Kumo() awsapi.Config {
	kumoOnce.Do(func() { kumoSrv = kumo.NewServer() })
	cfg := aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("AKIAKUMOTEST", "kumo-test-secret", "")}
	return quick(awsapi.Config{Base: &cfg, Endpoint: kumoSrv.URL})
}

var seq atomic.Int64

// Unique returns a name no other test, in this binary or an earlier run against a
// persistent emulator, uses: kumo's state is shared by every server in a binary.
func Unique(prefix string) string {
	return fmt.Sprintf("%s-%d-%d", prefix, time.Now().UnixNano(), seq.Add(1))
}

// HostPort is the host:port of an endpoint URL ("http://127.0.0.1:4566" → "127.0.0.1:4566").
func HostPort(endpoint string) string {
	u, err := url.Parse(endpoint)
	if err != nil {
		return endpoint
	}
	return u.Host
}

// SDKConfig is the SDK configuration a test's own client uses to reach ac's endpoint
// (to plant values the way the aws CLI would).
func SDKConfig(t testing.TB, ac awsapi.Config) aws.Config {
	t.Helper()
	cfg, err := awsapi.Load(t.Context(), ac)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}
