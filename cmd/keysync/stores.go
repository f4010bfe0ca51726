package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/sigil-dna/keysync/internal/awsapi"
	"github.com/sigil-dna/keysync/internal/cli"
	"github.com/sigil-dna/keysync/keyring"
	"github.com/sigil-dna/keysync/store"
	"github.com/sigil-dna/keysync/store/awssm"
	"github.com/sigil-dna/keysync/store/awsssm"
	"github.com/sigil-dna/keysync/store/file"
	"github.com/sigil-dna/keysync/store/gcpsm"
	"github.com/sigil-dna/keysync/store/kube"
	"github.com/sigil-dna/keysync/store/vault"
)

// storeFlags are the flags of every command that opens a --store: the plain-value
// schedule and each backend's connection settings.
type storeFlags struct {
	plainDelay, plainWindow time.Duration
	vault                   struct {
		addr, namespace, cacert, auth, tokenFile, roleID, secretIDFile, role, jwtFile, mount string
	}
	kube struct{ kubeconfig, key, plainKey string }
	gcp  struct{ disableOld bool }
	aws  struct{ region, endpoint, kmsKey string }
}

func (f *storeFlags) register(c *cli.Command) {
	c.DurationVar(&f.plainDelay, "plain-activation-delay", keyring.DefaultActivationDelay, "for a store holding a plain value: how long after the store's own timestamp a new value starts signing (same on every pod)")
	c.DurationVar(&f.plainWindow, "plain-verify-window", keyring.DefaultVerifyWindow, "for a store holding a plain value: how long the previous value keeps verifying after that (same on every pod)")
	v := &f.vault
	c.StringVar(&v.addr, "vault-addr", "", "Vault address (default: $VAULT_ADDR)")
	c.StringVar(&v.namespace, "vault-namespace", "", "Vault namespace (default: $VAULT_NAMESPACE)")
	c.StringVar(&v.cacert, "vault-cacert", "", "CA certificate `file` for Vault's TLS (default: $VAULT_CACERT)")
	c.StringVar(&v.auth, "vault-auth", vault.MethodToken, "Vault login: token ($VAULT_TOKEN), token-file, approle or kubernetes")
	c.StringVar(&v.tokenFile, "vault-token-file", "", "token `file` for --vault-auth token-file (e.g. a Vault Agent sink; re-read after a 403)")
	c.StringVar(&v.roleID, "vault-role-id", "", "AppRole role id for --vault-auth approle")
	c.StringVar(&v.secretIDFile, "vault-secret-id-file", "", "`file` holding the AppRole secret id")
	c.StringVar(&v.role, "vault-role", "", "Vault role for --vault-auth kubernetes")
	c.StringVar(&v.jwtFile, "vault-jwt-file", vault.DefaultJWTFile, "service-account token `file` for --vault-auth kubernetes")
	c.StringVar(&v.mount, "vault-auth-mount", "", "auth mount path (default: approle or kubernetes)")
	c.StringVar(&f.kube.kubeconfig, "kubeconfig", "", "kubeconfig `file` for k8s:// stores (default: in-cluster config in a pod, else $KUBECONFIG or ~/.kube/config)")
	c.StringVar(&f.kube.key, "kube-key", kube.DefaultKey, "data key of the keyring document in the Secret")
	c.StringVar(&f.kube.plainKey, "kube-plain-key", kube.DefaultPlainKey, "data key of a plain value in the Secret")
	c.StringVar(&f.aws.region, "aws-region", "", "AWS region for ssm:// and secretsmanager:// stores (default: $AWS_REGION, then the shared config)")
	c.StringVar(&f.aws.endpoint, "aws-endpoint-url", "", "AWS endpoint `URL` override, e.g. a VPC endpoint (default: $AWS_ENDPOINT_URL_SSM / $AWS_ENDPOINT_URL_SECRETS_MANAGER / $AWS_ENDPOINT_URL)")
	c.StringVar(&f.aws.kmsKey, "aws-kms-key-id", "", "KMS key id, ARN or alias that encrypts what keysync writes to an ssm:// parameter or creates in secretsmanager:// (default: the account's aws/ssm or aws/secretsmanager key)")
	c.BoolVar(&f.gcp.disableOld, "gcp-disable-old-versions", false, "gcpsm:// stores: after each write, disable enabled versions older than --plain-activation-delay + --plain-verify-window")
}

func (f *storeFlags) awsConfig() awsapi.Config {
	return awsapi.Config{Region: f.aws.region, Endpoint: f.aws.endpoint}
}

func (f *storeFlags) plain() store.PlainOptions {
	return store.PlainOptions{ActivationDelay: f.plainDelay, VerifyWindow: f.plainWindow}
}

// open turns a --store URL into a store. Logging in is bounded by a start-up timeout.
func (f *storeFlags) open(ctx context.Context, raw string, getenv func(string) string, log *slog.Logger) (store.Store, error) {
	if raw == "" {
		return nil, cli.Usagef("--store is required (for example file:///var/lib/keysync/keys.json or vault://secret/sigil/spiral-event-secret)")
	}
	// No store URL takes parameters: one that does is a typo or a wish, never ignored.
	if q, err := url.Parse(raw); err == nil && q.RawQuery != "" {
		vals, _ := url.ParseQuery(q.RawQuery)
		for k := range vals {
			return nil, cli.Usagef("--store %s: unknown parameter %q (store URLs take none; see keysync --help)", redact(raw), k)
		}
		return nil, cli.Usagef("--store %s: unexpected query %q", redact(raw), q.RawQuery)
	}
	// An AWS name may be an ARN, which is not a URL host.
	switch {
	case strings.HasPrefix(raw, "ssm://"):
		name, err := awsssm.ParseURL(raw)
		if err != nil {
			return nil, cli.UsageError{Err: err}
		}
		return awsssm.New(ctx, awsssm.Config{Name: name, KMSKeyID: f.aws.kmsKey, AWS: f.awsConfig(), Plain: f.plain(), Log: log})
	case strings.HasPrefix(raw, "secretsmanager://"):
		name, err := awssm.ParseURL(raw)
		if err != nil {
			return nil, cli.UsageError{Err: err}
		}
		return awssm.New(ctx, awssm.Config{Name: name, KMSKeyID: f.aws.kmsKey, AWS: f.awsConfig(), Plain: f.plain(), Log: log})
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, cli.Usagef("--store: not a URL: %v", err)
	}
	switch u.Scheme {
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			// file://var/lib/k.json makes "var" a host: never guess a relative path.
			return nil, cli.Usagef("--store %s: %q is read as a host; a file URL has three slashes: file:///%s%s", raw, u.Host, u.Host, u.Path)
		}
		if u.Path == "" {
			return nil, cli.Usagef("--store %s: no path", raw)
		}
		return file.New(u.Path, f.plain())
	case "vault":
		mount, path, err := vault.ParseURL(raw)
		if err != nil {
			return nil, cli.UsageError{Err: err}
		}
		v := f.vault
		startup, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		return vault.New(startup, vault.Config{
			Mount: mount, Path: path, Address: v.addr, Namespace: v.namespace, CACert: v.cacert, Plain: f.plain(), Log: log,
			Auth: vault.Auth{Method: v.auth, Token: keyring.Secret(getenv("VAULT_TOKEN")), TokenFile: v.tokenFile,
				RoleID: v.roleID, SecretIDFile: v.secretIDFile, Role: v.role, JWTFile: v.jwtFile, Mount: v.mount},
		})
	case "k8s":
		ns, name, err := kube.ParseURL(raw)
		if err != nil {
			return nil, cli.UsageError{Err: err}
		}
		return kube.New(kube.Config{Namespace: ns, Name: name, Key: f.kube.key, PlainKey: f.kube.plainKey,
			Kubeconfig: f.kube.kubeconfig, Plain: f.plain(), Log: log})
	case "gcpsm":
		project, secret, err := gcpsm.ParseURL(raw)
		if err != nil {
			return nil, cli.UsageError{Err: err}
		}
		return gcpsm.New(ctx, gcpsm.Config{Project: project, Secret: secret, DisableOldVersions: f.gcp.disableOld,
			OldAfter: f.plainDelay + f.plainWindow, Plain: f.plain(), Log: log})
	case "":
		if strings.HasPrefix(raw, "/") || strings.HasPrefix(raw, ".") {
			return file.New(raw, f.plain())
		}
	}
	return nil, cli.Usagef("--store %s: unknown scheme %q; supported: file, vault, k8s, ssm, secretsmanager, gcpsm", u.Redacted(), u.Scheme)
}

// redact drops what a URL's user info may hold.
func redact(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		return u.Redacted()
	}
	return "the store URL"
}

func (f *storeFlags) openAll(ctx context.Context, primary string, mirrors []string, getenv func(string) string, log *slog.Logger) (store.Store, []store.Store, error) {
	p, err := f.open(ctx, primary, getenv, log)
	if err != nil {
		return nil, nil, err
	}
	var ms []store.Store
	for _, m := range mirrors {
		s, err := f.open(ctx, m, getenv, log)
		if err != nil {
			closeAll(p, ms)
			var ue cli.UsageError
			if errors.As(err, &ue) {
				return nil, nil, cli.Usagef("--mirror: %v", ue.Err)
			}
			return nil, nil, fmt.Errorf("--mirror: %w", err)
		}
		ms = append(ms, s)
	}
	return p, ms, nil
}
