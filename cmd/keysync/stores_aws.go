//go:build !keysync_omit_aws

package main

import (
	"context"
	"log/slog"

	"github.com/sigil-dna/keysync/internal/awsapi"
	"github.com/sigil-dna/keysync/internal/cli"
	"github.com/sigil-dna/keysync/store"
	"github.com/sigil-dna/keysync/store/awssm"
	"github.com/sigil-dna/keysync/store/awsssm"
)

func init() {
	register(family{familyInfo: familyInfo{
		Name: "aws",
		Stores: []storeKind{
			{"ssm", "ssm:///NAME", "AWS SSM Parameter Store SecureString (AWS default credential chain)"},
			{"secretsmanager", "secretsmanager://NAME", "AWS Secrets Manager (name or ARN; AWS default credential chain)"},
		},
		Flags: []flagDef{
			{"aws-region", "string", "", "AWS region for ssm:// and secretsmanager:// stores (default: $AWS_REGION, then the shared config)"},
			{"aws-endpoint-url", "string", "", "AWS endpoint `URL` override, e.g. a VPC endpoint (default: $AWS_ENDPOINT_URL_SSM / $AWS_ENDPOINT_URL_SECRETS_MANAGER / $AWS_ENDPOINT_URL)"},
			{"aws-kms-key-id", "string", "", "KMS key id, ARN or alias that encrypts what keysync writes to an ssm:// parameter or creates in secretsmanager:// (default: the account's aws/ssm or aws/secretsmanager key)"},
		},
	}, open: func(ctx context.Context, f *storeFlags, raw string, _ func(string) string, log *slog.Logger) (store.Store, error) {
		aws := awsapi.Config{Region: f.str("aws-region"), Endpoint: f.str("aws-endpoint-url")}
		if scheme, _ := storeScheme(raw); scheme == "ssm" {
			name, err := awsssm.ParseURL(raw)
			if err != nil {
				return nil, cli.UsageError{Err: err}
			}
			return awsssm.New(ctx, awsssm.Config{Name: name, KMSKeyID: f.str("aws-kms-key-id"), AWS: aws, Plain: f.plain(), Log: log})
		}
		name, err := awssm.ParseURL(raw)
		if err != nil {
			return nil, cli.UsageError{Err: err}
		}
		return awssm.New(ctx, awssm.Config{Name: name, KMSKeyID: f.str("aws-kms-key-id"), AWS: aws, Plain: f.plain(), Log: log})
	}})
}
