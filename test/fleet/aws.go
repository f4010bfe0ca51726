package main

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/sigil-dna/keysync/internal/awsapi"
	"github.com/sigil-dna/keysync/store/awssm"
	"github.com/sigil-dna/keysync/store/awsssm"
	"github.com/sigil-dna/keysync/test/awsfake"
	"github.com/sigil-dna/keysync/test/counting"
)

// startAWS serves Parameter Store from the kumo emulator, in this process, or Secrets
// Manager from the fake (kumo cannot move staging labels), behind the counting proxy.
// The sidecars reach it through the standard AWS variables; the harness's own client
// goes straight to it, uncounted.
func (b *bench) startAWS(ctx context.Context) error {
	var ac awsapi.Config
	if b.cfg.Store == "ssm" {
		ac = awsfake.Kumo()
	} else {
		b.awsFake = awsfake.Start()
		ac = b.awsFake.AWS()
	}
	var err error
	if b.proxy, err = counting.Start(ac.Endpoint); err != nil {
		return err
	}
	creds, err := ac.Base.Credentials.Retrieve(ctx)
	if err != nil {
		return err
	}
	b.env = []string{"AWS_ACCESS_KEY_ID=" + creds.AccessKeyID, "AWS_SECRET_ACCESS_KEY=" + creds.SecretAccessKey,
		"AWS_REGION=" + ac.Base.Region, "AWS_ENDPOINT_URL=" + b.proxy.URL(), "AWS_EC2_METADATA_DISABLED=true",
		"AWS_CONFIG_FILE=/nonexistent", "AWS_SHARED_CREDENTIALS_FILE=/nonexistent"}
	cfg, err := awsapi.Load(ctx, ac)
	if err != nil {
		return err
	}
	name := awsfake.Unique("fleet/" + storePath)
	if b.cfg.Store == "ssm" {
		name = "/" + name
		b.sidecarStore = "ssm://" + name
		b.st, err = awsssm.New(ctx, awsssm.Config{Name: name, AWS: ac})
		client := ssm.NewFromConfig(cfg)
		b.rawPut = func(ctx context.Context, doc []byte) error {
			_, err := client.PutParameter(ctx, &ssm.PutParameterInput{Name: &name, Value: aws.String(string(doc)), Type: "SecureString", Overwrite: aws.Bool(true)})
			return err
		}
		return err
	}
	b.sidecarStore = "secretsmanager://" + name
	b.st, err = awssm.New(ctx, awssm.Config{Name: name, AWS: ac})
	client := secretsmanager.NewFromConfig(cfg)
	b.rawPut = func(ctx context.Context, doc []byte) error {
		_, err := client.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: &name, SecretString: aws.String(string(doc))})
		return err
	}
	return err
}
