package awsfake

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/smithy-go"
)

func ssmClient(f *Server, mod func(*aws.Config)) *ssm.Client {
	cfg := Config()
	if mod != nil {
		mod(&cfg)
	}
	return ssm.NewFromConfig(cfg, func(o *ssm.Options) { o.BaseEndpoint = aws.String(f.URL); o.RetryMaxAttempts = 1 })
}

func code(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// tamper is an HTTP client that changes the body after the SDK signed it.
type tamper struct{}

func (tamper) Do(r *http.Request) (*http.Response, error) {
	b, _ := io.ReadAll(r.Body)
	b = bytes.Replace(b, []byte("honest"), []byte("forged"), 1)
	r.Body = io.NopCloser(bytes.NewReader(b))
	return http.DefaultClient.Do(r)
}

func TestEveryRequestsSignatureIsChecked(t *testing.T) {
	f := StartT(t)
	name := aws.String("sig")
	put := &ssm.PutParameterInput{Name: name, Value: aws.String("honest"), Type: "SecureString"}
	if _, err := ssmClient(f, nil).PutParameter(t.Context(), put); err != nil {
		t.Fatalf("a correctly signed request: %v", err)
	}
	cases := map[string]struct {
		mod  func(*aws.Config)
		want string
	}{
		"wrong secret key": {func(c *aws.Config) {
			c.Credentials = credentials.NewStaticCredentialsProvider(AccessKeyID, "not-the-secret", "")
		}, "InvalidSignatureException"},
		"unknown access key": {func(c *aws.Config) {
			c.Credentials = credentials.NewStaticCredentialsProvider("AKIAOTHER", SecretAccessKey, "")
		}, "UnrecognizedClientException"},
		"other region":               {func(c *aws.Config) { c.Region = "us-west-2" }, "InvalidSignatureException"},
		"body changed after signing": {func(c *aws.Config) { c.HTTPClient = tamper{} }, "InvalidSignatureException"},
		"anonymous":                  {func(c *aws.Config) { c.Credentials = aws.AnonymousCredentials{} }, "MissingAuthenticationTokenException"},
	}
	for what, c := range cases {
		put.Overwrite = aws.Bool(true)
		_, err := ssmClient(f, c.mod).PutParameter(t.Context(), put)
		if code(err) != c.want {
			t.Errorf("%s: %v, want %s", what, err, c.want)
		}
	}
	if f.Refused() != len(cases) {
		t.Fatalf("%d refused, want %d", f.Refused(), len(cases))
	}
	out, err := ssmClient(f, nil).GetParameter(t.Context(), &ssm.GetParameterInput{Name: name, WithDecryption: aws.Bool(true)})
	if err != nil || aws.ToString(out.Parameter.Value) != "honest" || out.Parameter.Version != 1 {
		t.Fatalf("a refused request changed the parameter: %v", err)
	}
}

func TestSSMVersionsHistoryAndSelectors(t *testing.T) {
	f := StartT(t)
	c := ssmClient(f, nil)
	name := aws.String("/sigil/h")
	for _, v := range []string{"a", "b", "c"} {
		if _, err := c.PutParameter(t.Context(), &ssm.PutParameterInput{Name: name, Value: aws.String(v), Type: "SecureString", Overwrite: aws.Bool(true)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.PutParameter(t.Context(), &ssm.PutParameterInput{Name: name, Value: aws.String("d"), Type: "SecureString"}); code(err) != "ParameterAlreadyExists" {
		t.Fatalf("without Overwrite: %v", err)
	}
	enc, _ := c.GetParameter(t.Context(), &ssm.GetParameterInput{Name: name})
	if v := aws.ToString(enc.Parameter.Value); v == "c" || enc.Parameter.Version != 3 {
		t.Fatalf("without decryption: %q version %d", v, enc.Parameter.Version)
	}
	sel, err := c.GetParameter(t.Context(), &ssm.GetParameterInput{Name: aws.String("/sigil/h:2"), WithDecryption: aws.Bool(true)})
	if err != nil || aws.ToString(sel.Parameter.Value) != "b" {
		t.Fatalf("selector :2: %v", err)
	}
	if _, err := c.GetParameter(t.Context(), &ssm.GetParameterInput{Name: aws.String("/sigil/h:9")}); code(err) != "ParameterVersionNotFound" {
		t.Fatalf("selector :9: %v", err)
	}
	var got []string
	p := ssm.NewGetParameterHistoryPaginator(c, &ssm.GetParameterHistoryInput{Name: name, WithDecryption: aws.Bool(true), MaxResults: aws.Int32(2)})
	pages := 0
	for p.HasMorePages() {
		page, err := p.NextPage(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, h := range page.Parameters {
			got = append(got, aws.ToString(h.Value))
		}
	}
	if strings.Join(got, "") != "abc" || pages != 2 {
		t.Fatalf("history %v in %d pages", got, pages)
	}
	if _, err := c.GetParameter(t.Context(), &ssm.GetParameterInput{Name: aws.String("missing")}); code(err) != "ParameterNotFound" {
		t.Fatalf("missing: %v", err)
	}
}

func TestSecretsManagerStagingLabels(t *testing.T) {
	f := StartT(t)
	c := secretsmanager.NewFromConfig(Config(), func(o *secretsmanager.Options) { o.BaseEndpoint = aws.String(f.URL) })
	id := aws.String("labels")
	created, err := c.CreateSecret(t.Context(), &secretsmanager.CreateSecretInput{Name: id, SecretString: aws.String("v1")})
	if err != nil {
		t.Fatal(err)
	}
	v1 := aws.ToString(created.VersionId)
	stages := func() map[string][]string {
		d, err := c.DescribeSecret(t.Context(), &secretsmanager.DescribeSecretInput{SecretId: id})
		if err != nil {
			t.Fatal(err)
		}
		return d.VersionIdsToStages
	}
	// AWSPENDING does not move AWSCURRENT (kumo gets this wrong).
	pend, err := c.PutSecretValue(t.Context(), &secretsmanager.PutSecretValueInput{SecretId: id, SecretString: aws.String("v2"),
		ClientRequestToken: aws.String("00000000-0000-4000-8000-000000000002"), VersionStages: []string{"AWSPENDING"}})
	if err != nil {
		t.Fatal(err)
	}
	v2 := aws.ToString(pend.VersionId)
	if s := stages(); strings.Join(s[v1], ",") != "AWSCURRENT" || strings.Join(s[v2], ",") != "AWSPENDING" {
		t.Fatalf("after AWSPENDING: %v", s)
	}
	// The same token and value again is a no-op; another value with it is refused.
	if _, err := c.PutSecretValue(t.Context(), &secretsmanager.PutSecretValueInput{SecretId: id, SecretString: aws.String("v2"),
		ClientRequestToken: aws.String(v2), VersionStages: []string{"AWSPENDING"}}); err != nil {
		t.Fatalf("idempotent retry: %v", err)
	}
	if _, err := c.PutSecretValue(t.Context(), &secretsmanager.PutSecretValueInput{SecretId: id, SecretString: aws.String("other"),
		ClientRequestToken: aws.String(v2)}); code(err) != "ResourceExistsException" {
		t.Fatalf("token reused for another value: %v", err)
	}
	// Moving AWSCURRENT needs the version it is on, and takes AWSPREVIOUS along.
	if _, err := c.UpdateSecretVersionStage(t.Context(), &secretsmanager.UpdateSecretVersionStageInput{SecretId: id,
		VersionStage: aws.String("AWSCURRENT"), MoveToVersionId: aws.String(v2), RemoveFromVersionId: aws.String(v2)}); code(err) != "InvalidParameterException" {
		t.Fatalf("move with the wrong RemoveFromVersionId: %v", err)
	}
	if _, err := c.UpdateSecretVersionStage(t.Context(), &secretsmanager.UpdateSecretVersionStageInput{SecretId: id,
		VersionStage: aws.String("AWSCURRENT"), MoveToVersionId: aws.String(v2), RemoveFromVersionId: aws.String(v1)}); err != nil {
		t.Fatal(err)
	}
	if s := stages(); strings.Join(s[v1], ",") != "AWSPREVIOUS" || strings.Join(s[v2], ",") != "AWSPENDING,AWSCURRENT" {
		t.Fatalf("after the move: %v", s)
	}
	got, err := c.GetSecretValue(t.Context(), &secretsmanager.GetSecretValueInput{SecretId: id, VersionStage: aws.String("AWSPREVIOUS")})
	if err != nil || aws.ToString(got.SecretString) != "v1" || got.CreatedDate == nil {
		t.Fatalf("AWSPREVIOUS: %v", err)
	}
	vs, err := c.ListSecretVersionIds(t.Context(), &secretsmanager.ListSecretVersionIdsInput{SecretId: id})
	if err != nil || len(vs.Versions) != 2 || aws.ToString(vs.Versions[0].VersionId) != v2 {
		t.Fatalf("list: %v %+v", err, vs)
	}
	if _, err := c.GetSecretValue(t.Context(), &secretsmanager.GetSecretValueInput{SecretId: aws.String("nope")}); code(err) != "ResourceNotFoundException" {
		t.Fatalf("missing: %v", err)
	}
	var rnf *smtypes.ResourceNotFoundException
	if _, err := c.DescribeSecret(t.Context(), &secretsmanager.DescribeSecretInput{SecretId: aws.String("nope")}); !errors.As(err, &rnf) {
		t.Fatalf("the SDK does not see its typed error: %v", err)
	}
}
