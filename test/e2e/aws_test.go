package e2e

import (
	"testing"

	"github.com/sigil-dna/keysync/internal/awsapi"
	"github.com/sigil-dna/keysync/store/awssm"
	"github.com/sigil-dna/keysync/store/awsssm"
	"github.com/sigil-dna/keysync/test/awsfake"
)

// awsEnv points the keysync processes at ac through the standard AWS variables, as a
// user's environment (or IRSA, or an instance role) would.
func awsEnv(t *testing.T, ac awsapi.Config) {
	creds, err := ac.Base.Credentials.Retrieve(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_ACCESS_KEY_ID", creds.AccessKeyID)
	t.Setenv("AWS_SECRET_ACCESS_KEY", creds.SecretAccessKey)
	t.Setenv("AWS_REGION", ac.Base.Region)
	t.Setenv("AWS_ENDPOINT_URL", ac.Endpoint)
	t.Setenv("AWS_CONFIG_FILE", "/nonexistent")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
}

// TestSSMEndToEnd drives the real CLI and a pod's processes against the kumo emulator.
func TestSSMEndToEnd(t *testing.T) {
	ac := awsfake.Kumo()
	awsEnv(t, ac)
	e := newEnv(t)
	name := "/sigil/e2e/" + t.Name()
	e.cliEndToEnd("ssm:///"+name[1:], func() {
		st, err := awsssm.New(t.Context(), awsssm.Config{Name: name, AWS: ac})
		if err != nil {
			t.Fatal(err)
		}
		e.record(st)
	})
}

// TestSecretsManagerEndToEnd drives the real CLI and a pod's processes against the fake
// (the label moves a write makes are beyond kumo).
func TestSecretsManagerEndToEnd(t *testing.T) {
	ac := awsfake.StartT(t).AWS()
	awsEnv(t, ac)
	e := newEnv(t)
	e.cliEndToEnd("secretsmanager://sigil/spiral-event-secret", func() {
		st, err := awssm.New(t.Context(), awssm.Config{Name: "sigil/spiral-event-secret", AWS: ac})
		if err != nil {
			t.Fatal(err)
		}
		e.record(st)
	})
}
