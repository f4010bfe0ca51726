package awsapi_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/sigil-dna/keysync/internal/awsapi"
	"github.com/sigil-dna/keysync/keyring"
	"github.com/sigil-dna/keysync/test/awsfake"
)

func TestBackoffIsFullJitterExponentialAndCapped(t *testing.T) {
	b := awsapi.Backoff{Base: 100 * time.Millisecond, Max: time.Second}
	for attempt, ceiling := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 4: 800 * time.Millisecond, 5: time.Second, 40: time.Second} {
		if got := b.Delay(attempt, 0.999999); got > ceiling || got < ceiling*99/100 {
			t.Errorf("attempt %d: top of the range %s, want just under %s", attempt, got, ceiling)
		}
		if got := b.Delay(attempt, 0); got != 0 {
			t.Errorf("attempt %d: bottom of the range %s, want 0", attempt, got)
		}
	}
	// Drawn delays spread over the range rather than repeating one value.
	seen := map[time.Duration]bool{}
	for range 50 {
		d, _ := b.BackoffDelay(3, nil)
		if d < 0 || d >= 400*time.Millisecond {
			t.Fatalf("attempt 3 drew %s", d)
		}
		seen[d] = true
	}
	if len(seen) < 40 {
		t.Fatalf("only %d distinct delays in 50 draws", len(seen))
	}
}

// isolate clears the AWS variables so that only what a test sets is seen.
func isolate(t *testing.T) {
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "AWS_") {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
}

func TestNoRegionIsAClearError(t *testing.T) {
	isolate(t)
	_, err := awsapi.Load(t.Context(), awsapi.Config{})
	if err == nil || !strings.Contains(err.Error(), "--aws-region") {
		t.Fatalf("err = %v", err)
	}
}

// TestTheDefaultChainReadsASharedCredentialsFile: credentials from a profile in the
// shared credentials file; the fake checks the signature, so the secret key was read.
func TestTheDefaultChainReadsASharedCredentialsFile(t *testing.T) {
	isolate(t)
	f := awsfake.StartT(t)
	creds := filepath.Join(t.TempDir(), "credentials")
	os.WriteFile(creds, []byte("[keysync]\naws_access_key_id = "+awsfake.AccessKeyID+"\naws_secret_access_key = "+awsfake.SecretAccessKey+"\n"), 0o600)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", creds)
	t.Setenv("AWS_PROFILE", "keysync")
	t.Setenv("AWS_REGION", awsfake.Region)
	cfg, err := awsapi.Load(t.Context(), awsapi.Config{Endpoint: f.URL})
	if err != nil {
		t.Fatal(err)
	}
	_, err = ssm.NewFromConfig(cfg).PutParameter(t.Context(), &ssm.PutParameterInput{Name: aws.String("p"), Value: aws.String("v"), Type: "SecureString"})
	if err != nil || f.Refused() != 0 {
		t.Fatalf("%v (%d refused)", err, f.Refused())
	}
}

// TestWebIdentityAsOnEKSWithIRSA: AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE, as EKS
// injects them, make the chain call STS AssumeRoleWithWebIdentity (kumo's) and use the
// role's temporary credentials. (The chain's own STS client reads AWS_ENDPOINT_URL_STS,
// not AWS_ENDPOINT_URL.)
func TestWebIdentityAsOnEKSWithIRSA(t *testing.T) {
	isolate(t)
	ac := awsfake.Kumo()
	token := filepath.Join(t.TempDir(), "token")
	os.WriteFile(token, []byte("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6c2lnaWw6YXBwIn0.c2ln"), 0o600)
	t.Setenv("AWS_ROLE_ARN", "arn:aws:iam::000000000000:role/keysync-sidecar")
	t.Setenv("AWS_WEB_IDENTITY_TOKEN_FILE", token)
	t.Setenv("AWS_ROLE_SESSION_NAME", "keysync-test")
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_ENDPOINT_URL", ac.Endpoint)
	t.Setenv("AWS_ENDPOINT_URL_STS", ac.Endpoint)
	cfg, err := awsapi.Load(t.Context(), awsapi.Config{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := cfg.Credentials.Retrieve(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if c.Source != "WebIdentityCredentials" || c.SessionToken == "" || !c.CanExpire {
		t.Fatalf("credentials from %q (session token %t, expiring %t)", c.Source, c.SessionToken != "", c.CanExpire)
	}
	name := "irsa-" + time.Now().Format("150405.000000000")
	if _, err := ssm.NewFromConfig(cfg).PutParameter(t.Context(), &ssm.PutParameterInput{Name: &name, Value: aws.String("v"), Type: "SecureString"}); err != nil {
		t.Fatal(err)
	}
}

func TestDescriptionIsCutOnACharacterBoundary(t *testing.T) {
	r, err := keyring.Stage(nil, time.Now(), make(keyring.Secret, 32), keyring.Options{RotatedBy: "ops"})
	if err != nil {
		t.Fatal(err)
	}
	r.Reason = strings.Repeat("é", 3000)
	d := awsapi.Description(r, 1024)
	if utf8.RuneCountInString(d) != 1024 || !utf8.ValidString(d) || !strings.HasSuffix(d, "...") || !strings.Contains(d, "by ops") || !strings.Contains(d, r.Keys[0].ID) {
		t.Fatalf("%d characters, valid %t: %.80s", utf8.RuneCountInString(d), utf8.ValidString(d), d)
	}
}
