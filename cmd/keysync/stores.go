package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/sigil-dna/keysync/internal/cli"
	"github.com/sigil-dna/keysync/keyring"
	"github.com/sigil-dna/keysync/store"
)

// The defaults of store flags, here so that a build without the store still has its flags
// (one configuration for every flavor); TestStoreFlagDefaults checks them against the
// stores' own.
const (
	defaultVaultAuth    = "token"
	defaultVaultJWTFile = "/var/run/secrets/kubernetes.io/serviceaccount/token"
	defaultKubeKey      = "keyring"
	defaultKubePlainKey = "value"
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
	c.StringVar(&v.auth, "vault-auth", defaultVaultAuth, "Vault login: token ($VAULT_TOKEN), token-file, approle or kubernetes")
	c.StringVar(&v.tokenFile, "vault-token-file", "", "token `file` for --vault-auth token-file (e.g. a Vault Agent sink; re-read after a 403)")
	c.StringVar(&v.roleID, "vault-role-id", "", "AppRole role id for --vault-auth approle")
	c.StringVar(&v.secretIDFile, "vault-secret-id-file", "", "`file` holding the AppRole secret id")
	c.StringVar(&v.role, "vault-role", "", "Vault role for --vault-auth kubernetes")
	c.StringVar(&v.jwtFile, "vault-jwt-file", defaultVaultJWTFile, "service-account token `file` for --vault-auth kubernetes")
	c.StringVar(&v.mount, "vault-auth-mount", "", "auth mount path (default: approle or kubernetes)")
	c.StringVar(&f.kube.kubeconfig, "kubeconfig", "", "kubeconfig `file` for k8s:// stores (default: in-cluster config in a pod, else $KUBECONFIG or ~/.kube/config)")
	c.StringVar(&f.kube.key, "kube-key", defaultKubeKey, "data key of the keyring document in the Secret")
	c.StringVar(&f.kube.plainKey, "kube-plain-key", defaultKubePlainKey, "data key of a plain value in the Secret")
	c.StringVar(&f.aws.region, "aws-region", "", "AWS region for ssm:// and secretsmanager:// stores (default: $AWS_REGION, then the shared config)")
	c.StringVar(&f.aws.endpoint, "aws-endpoint-url", "", "AWS endpoint `URL` override, e.g. a VPC endpoint (default: $AWS_ENDPOINT_URL_SSM / $AWS_ENDPOINT_URL_SECRETS_MANAGER / $AWS_ENDPOINT_URL)")
	c.StringVar(&f.aws.kmsKey, "aws-kms-key-id", "", "KMS key id, ARN or alias that encrypts what keysync writes to an ssm:// parameter or creates in secretsmanager:// (default: the account's aws/ssm or aws/secretsmanager key)")
	c.BoolVar(&f.gcp.disableOld, "gcp-disable-old-versions", false, "gcpsm:// stores: after each write, disable enabled versions older than --plain-activation-delay + --plain-verify-window")
}

func (f *storeFlags) plain() store.PlainOptions {
	return store.PlainOptions{ActivationDelay: f.plainDelay, VerifyWindow: f.plainWindow}
}

// open turns a --store URL into a store of a family linked into this build. Logging in is
// bounded by a start-up timeout.
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
	scheme, err := storeScheme(raw)
	if err != nil {
		return nil, err
	}
	fam := familyOf(scheme)
	if fam == nil {
		return nil, cli.Usagef("--store %s: unknown scheme %q; supported: %s", redact(raw), scheme, strings.Join(allSchemes(), ", "))
	}
	b, ok := linked[fam.name]
	if !ok {
		return nil, cli.UsageError{Err: notInThisBuild("--store "+redact(raw), fam)}
	}
	return b.open(ctx, f, raw, getenv, log)
}

// storeScheme is the scheme of a --store URL; a bare absolute or relative path is a file.
// An AWS name may be an ARN, which is not a URL host, so the scheme is read before parsing.
func storeScheme(raw string) (string, error) {
	for _, s := range []string{"ssm", "secretsmanager"} {
		if strings.HasPrefix(raw, s+"://") {
			return s, nil
		}
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", cli.Usagef("--store: not a URL: %v", err)
	}
	if u.Scheme == "" && (strings.HasPrefix(raw, "/") || strings.HasPrefix(raw, ".")) {
		return "file", nil
	}
	if u.Scheme == "" {
		return "", cli.Usagef("--store %s: no scheme: a relative file path starts with ./ (./%s), an absolute one with /; or give a URL: file:///ABS/PATH, vault://MOUNT/PATH, k8s://NAMESPACE/NAME, ssm:///NAME, secretsmanager://NAME, gcpsm://projects/P/secrets/S", redact(raw), raw)
	}
	return u.Scheme, nil
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
