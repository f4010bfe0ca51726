//go:build !keysync_omit_gcp

package main

import (
	"context"
	"log/slog"

	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/sigil-dna/keysync/internal/cli"
	"github.com/sigil-dna/keysync/store"
	"github.com/sigil-dna/keysync/store/gcpsm"
)

// EmulatorHostEnv names a Secret Manager emulator (host:port) reached with plain gRPC and
// no credentials, the convention of Google's own emulators (PUBSUB_EMULATOR_HOST, …): for
// local development and tests, never in a cluster.
const EmulatorHostEnv = "SECRET_MANAGER_EMULATOR_HOST"

func init() {
	register(family{familyInfo: familyInfo{
		Name: "gcp",
		Stores: []storeKind{{"gcpsm", "gcpsm://projects/PROJECT/secrets/NAME",
			"Google Cloud Secret Manager (Application Default Credentials;\n" + EmulatorHostEnv + "=HOST:PORT for a local emulator)"}},
		Flags: []flagDef{
			{"gcp-disable-old-versions", "bool", "false", "gcpsm:// stores: after each write, disable enabled versions older than --plain-activation-delay + --plain-verify-window"},
		},
	}, open: func(ctx context.Context, f *storeFlags, raw string, getenv func(string) string, log *slog.Logger) (store.Store, error) {
		project, secret, err := gcpsm.ParseURL(raw)
		if err != nil {
			return nil, cli.UsageError{Err: err}
		}
		var opts []option.ClientOption
		if host := getenv(EmulatorHostEnv); host != "" {
			log.Warn("using a Secret Manager emulator: plain gRPC, no credentials", "env", EmulatorHostEnv, "address", host)
			opts = []option.ClientOption{option.WithEndpoint(host), option.WithoutAuthentication(),
				option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials()))}
		}
		return gcpsm.New(ctx, gcpsm.Config{Project: project, Secret: secret, DisableOldVersions: f.boolean("gcp-disable-old-versions"),
			OldAfter: f.plainDelay + f.plainWindow, Plain: f.plain(), Log: log, ClientOptions: opts})
	}})
}
