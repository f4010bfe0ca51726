package vault

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/sigil-dna/keysync/keyring"
)

// Auth methods.
const (
	MethodToken      = "token"
	MethodTokenFile  = "token-file"
	MethodAppRole    = "approle"
	MethodKubernetes = "kubernetes"
	// DefaultJWTFile is where Kubernetes projects the service-account token.
	DefaultJWTFile = "/var/run/secrets/kubernetes.io/serviceaccount/token"
)

// Auth says how to obtain a Vault token. Tokens are held in keyring.Secret, which never
// prints.
type Auth struct {
	Method       string         // token (default), token-file, approle or kubernetes
	Token        keyring.Secret // token method: usually VAULT_TOKEN
	TokenFile    string         // token-file method: e.g. a Vault Agent sink, re-read on each login
	RoleID       string         // approle
	SecretIDFile string         // approle
	Role         string         // kubernetes: the Vault role
	JWTFile      string         // kubernetes: default DefaultJWTFile
	Mount        string         // auth mount; default "approle" or "kubernetes"
}

// authenticator logs in, keeps the token renewed before it expires, and logs in again
// when renewal is impossible.
type authenticator struct {
	client *api.Client
	cfg    Auth
	log    *slog.Logger

	mu     sync.Mutex
	cancel context.CancelFunc
	wg     sync.WaitGroup
	closed bool
}

func newAuthenticator(c *api.Client, cfg Auth, log *slog.Logger) *authenticator {
	if cfg.Method == "" {
		cfg.Method = MethodToken
	}
	if cfg.JWTFile == "" {
		cfg.JWTFile = DefaultJWTFile
	}
	if cfg.Mount == "" {
		cfg.Mount = map[string]string{MethodAppRole: "approle", MethodKubernetes: "kubernetes"}[cfg.Method]
	}
	return &authenticator{client: c, cfg: cfg, log: log}
}

func (a *authenticator) method() string { return a.cfg.Method }

// login obtains a token, sets it on the client and (re)starts renewal.
func (a *authenticator) login(ctx context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return errors.New("vault: store closed")
	}
	token, ttl, renewable, err := a.obtain(ctx)
	if err != nil {
		return fmt.Errorf("vault: %s login: %w", a.cfg.Method, oneLine(err))
	}
	a.client.SetToken(string(token))
	a.log.Info("vault login", "method", a.cfg.Method, "ttl", ttl.String(), "renewable", renewable)
	if a.cancel != nil {
		a.cancel()
	}
	if ttl > 0 {
		rctx, cancel := context.WithCancel(context.Background())
		a.cancel = cancel
		a.wg.Add(1)
		go a.renew(rctx, ttl, renewable)
	}
	return nil
}

func (a *authenticator) obtain(ctx context.Context) (keyring.Secret, time.Duration, bool, error) {
	switch a.cfg.Method {
	case MethodToken, MethodTokenFile:
		token := a.cfg.Token
		if a.cfg.Method == MethodTokenFile {
			b, err := os.ReadFile(a.cfg.TokenFile)
			if err != nil {
				return nil, 0, false, fmt.Errorf("reading the token file: %w", err)
			}
			token = keyring.Secret(bytes.TrimSpace(b))
		}
		if len(token) == 0 {
			return nil, 0, false, errors.New("no token: set VAULT_TOKEN or use --vault-auth token-file/approle/kubernetes")
		}
		a.client.SetToken(string(token))
		sec, err := a.client.Auth().Token().LookupSelfWithContext(ctx)
		if err != nil {
			return nil, 0, false, fmt.Errorf("looking up the token: %w", err)
		}
		ttl, _ := sec.TokenTTL()
		renewable, _ := sec.TokenIsRenewable()
		return token, ttl, renewable, nil
	case MethodAppRole:
		secretID, err := os.ReadFile(a.cfg.SecretIDFile)
		if err != nil {
			return nil, 0, false, fmt.Errorf("reading the secret id file: %w", err)
		}
		return a.write(ctx, map[string]any{"role_id": a.cfg.RoleID, "secret_id": string(bytes.TrimSpace(secretID))})
	case MethodKubernetes:
		jwt, err := os.ReadFile(a.cfg.JWTFile)
		if err != nil {
			return nil, 0, false, fmt.Errorf("reading the service-account token: %w", err)
		}
		return a.write(ctx, map[string]any{"role": a.cfg.Role, "jwt": string(bytes.TrimSpace(jwt))})
	}
	return nil, 0, false, fmt.Errorf("unknown auth method %q (token, token-file, approle, kubernetes)", a.cfg.Method)
}

func (a *authenticator) write(ctx context.Context, body map[string]any) (keyring.Secret, time.Duration, bool, error) {
	a.client.ClearToken()
	sec, err := a.client.Logical().WriteWithContext(ctx, "auth/"+a.cfg.Mount+"/login", body)
	if err != nil {
		return nil, 0, false, err
	}
	if sec == nil || sec.Auth == nil || sec.Auth.ClientToken == "" {
		return nil, 0, false, errors.New("the login answered no token")
	}
	return keyring.Secret(sec.Auth.ClientToken), time.Duration(sec.Auth.LeaseDuration) * time.Second, sec.Auth.Renewable, nil
}

// renew renews the token at two thirds of its TTL; when it cannot, it logs in again
// (a token given as such cannot be replaced: then it only warns).
func (a *authenticator) renew(ctx context.Context, ttl time.Duration, renewable bool) {
	defer a.wg.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(ttl * 2 / 3):
		}
		if renewable {
			sec, err := a.client.Auth().Token().RenewSelfWithContext(ctx, 0)
			if err == nil && sec != nil && sec.Auth != nil && sec.Auth.LeaseDuration > 0 {
				ttl = time.Duration(sec.Auth.LeaseDuration) * time.Second
				a.log.Debug("vault token renewed", "ttl", ttl.String())
				continue
			}
			if ctx.Err() != nil {
				return
			}
			a.log.Warn("vault token renewal failed", "error", err)
		}
		if a.cfg.Method == MethodToken {
			a.log.Warn("the vault token cannot be renewed and will expire; give a renewable token or use another --vault-auth", "ttl", ttl.String())
			return
		}
		a.wg.Add(1) // owned like the renewal itself: close waits for it
		go func() {
			defer a.wg.Done()
			if err := a.login(context.Background()); err != nil {
				a.log.Error("vault login failed, will retry on the next request", "error", err)
			}
		}()
		return
	}
}

func (a *authenticator) close() {
	a.mu.Lock()
	a.closed = true
	if a.cancel != nil {
		a.cancel()
	}
	a.mu.Unlock()
	a.wg.Wait()
}
