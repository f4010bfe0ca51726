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
	register("aws", backend{open: func(ctx context.Context, f *storeFlags, raw string, _ func(string) string, log *slog.Logger) (store.Store, error) {
		aws := awsapi.Config{Region: f.aws.region, Endpoint: f.aws.endpoint}
		if scheme, _ := storeScheme(raw); scheme == "ssm" {
			name, err := awsssm.ParseURL(raw)
			if err != nil {
				return nil, cli.UsageError{Err: err}
			}
			return awsssm.New(ctx, awsssm.Config{Name: name, KMSKeyID: f.aws.kmsKey, AWS: aws, Plain: f.plain(), Log: log})
		}
		name, err := awssm.ParseURL(raw)
		if err != nil {
			return nil, cli.UsageError{Err: err}
		}
		return awssm.New(ctx, awssm.Config{Name: name, KMSKeyID: f.aws.kmsKey, AWS: aws, Plain: f.plain(), Log: log})
	}})
}
