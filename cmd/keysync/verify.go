package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/sigil-dna/keysync/internal/cli"
	"github.com/sigil-dna/keysync/keyring"
)

// maxPayload bounds what verify and sign read: an event, not a file system.
const maxPayload = 16 << 20

type verifyFlags struct {
	store, signature, payloadFile, at string
	stores                            storeFlags
}

func verifyCommand(name string) (*cli.Command, *verifyFlags) {
	summary := "Check a signature against the store's keyring: which key made it and its state, or why it is refused. No secret is shown."
	details := `
The payload is read from --payload-file, or from standard input. A keyed signature
(ks1.KEYID.MAC) is checked against the key it names; a bare legacy one (64 hex digits, what
eventSign makes today) against every key valid at --at, and the key that made it is named.
Exit 0: verified; 1: refused (the reason is printed: unknown_key, expired_key,
bad_signature, malformed_signature, legacy_off). Use it to check that a leaked key's
forgery fails after an emergency rotation, or which key an event was signed with.`
	if name == "sign" {
		summary = "Sign a payload with the store's signing key at --at (tests, demos, checks of a rollout). Prints the keyed signature only."
		details = `
The payload is read from --payload-file, or from standard input. The signature is
ks1.KEYID.MAC with the key that signs at --at; the key's secret is never shown.`
	}
	c := cli.New(name, summary, details)
	f := &verifyFlags{}
	c.StringVar(&f.store, "store", "", "store `URL`")
	if name == "verify" {
		c.StringVar(&f.signature, "signature", "", "the signature to check: ks1.KEYID.MAC or 64 hex digits")
	}
	c.StringVar(&f.payloadFile, "payload-file", "", "`file` holding the payload, byte for byte (default: standard input)")
	c.StringVar(&f.at, "at", "", "the instant, RFC 3339 (default: now)")
	f.stores.register(c)
	return c, f
}

func runVerify(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	return verifyOrSign(ctx, "verify", args, getenv, stdout)
}

func runSign(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	return verifyOrSign(ctx, "sign", args, getenv, stdout)
}

// errRefused is verify's exit 1 once the reason is printed.
var errRefused = errors.New("verify: refused")

func verifyOrSign(ctx context.Context, name string, args []string, getenv func(string) string, stdout io.Writer) error {
	c, f := verifyCommand(name)
	if err := c.Parse(args, getenv, stdout); err != nil {
		return err
	}
	if name == "verify" && !c.IsSet("signature") {
		return cli.Usagef("verify: give --signature")
	}
	now := time.Now()
	if f.at != "" {
		t, err := time.Parse(time.RFC3339Nano, f.at)
		if err != nil {
			return cli.Usagef("--at %q: an RFC 3339 instant, e.g. 2026-12-04T12:00:00Z", f.at)
		}
		now = t
	}
	payload, err := readPayload(f.payloadFile)
	if err != nil {
		return err
	}
	st, err := f.stores.open(ctx, f.store, getenv, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	defer st.Close()
	snap, err := st.Read(ctx)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	r := snap.Keyring
	s := keyring.NewSigner(r)
	if name == "sign" {
		sig, err := s.Sign(now, payload)
		if err != nil {
			return fmt.Errorf("sign: %w (generation %d of %s)", err, r.Generation, st.String())
		}
		fmt.Fprintln(stdout, sig)
		return nil
	}
	sig := strings.TrimSpace(f.signature)
	where := fmt.Sprintf("generation %d of %s at %s", r.Generation, st.String(), now.UTC().Format(time.RFC3339))
	if err := s.Verify(now, payload, sig); err != nil {
		fmt.Fprintf(stdout, "refused: %s: %s (%s)\n", keyring.ErrorCode(err), why(r, sig, err, now), where)
		return errRefused
	}
	k, kind := madeBy(r, now, payload, sig)
	fmt.Fprintf(stdout, "verified: %s signature by key %s, %s (%s)\n", kind, k.ID, r.StateAt(k, now), where)
	return nil
}

// readPayload reads the payload, bounded.
func readPayload(path string) ([]byte, error) {
	in := io.Reader(os.Stdin)
	if path != "" {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("--payload-file: %w", err)
		}
		defer f.Close()
		in = f
	}
	b, err := io.ReadAll(io.LimitReader(in, maxPayload+1))
	if err != nil {
		return nil, fmt.Errorf("reading the payload: %w", err)
	}
	if len(b) > maxPayload {
		return nil, fmt.Errorf("the payload is over %d MiB: not an event", maxPayload>>20)
	}
	return b, nil
}

// madeBy is the key that made a verified signature: the one a keyed signature names, or
// the one whose HMAC a legacy signature is.
func madeBy(r *keyring.Keyring, now time.Time, payload []byte, sig string) (keyring.Key, string) {
	if id, ok := keyedID(sig); ok {
		k, _ := r.Key(id)
		return k, "keyed"
	}
	for _, k := range r.Keys {
		one := &keyring.Keyring{Generation: r.Generation, RotatedAt: r.RotatedAt, Keys: []keyring.Key{k}}
		if k.ValidAt(now) && keyring.NewSigner(one).Verify(now, payload, sig) == nil {
			return k, "legacy"
		}
	}
	return keyring.Key{}, "legacy"
}

// keyedID is the key id a keyed signature names.
func keyedID(sig string) (string, bool) {
	rest, ok := strings.CutPrefix(sig, "ks1.")
	if !ok || len(rest) < keyring.KeyIDLen+1 {
		return "", false
	}
	return rest[:keyring.KeyIDLen], true
}

// why says, in words, why a signature was refused.
func why(r *keyring.Keyring, sig string, err error, now time.Time) string {
	id, keyed := keyedID(sig)
	switch {
	case errors.Is(err, keyring.ErrUnknownKey):
		return fmt.Sprintf("key %s is not in the keyring (it holds %s): removed by a rotation, or never ours", cleanID(id), strings.Join(r.IDs(), ", "))
	case errors.Is(err, keyring.ErrExpiredKey) && keyed:
		k, _ := r.Key(id)
		return fmt.Sprintf("key %s stopped verifying at %s", id, k.NotAfter.UTC().Format(time.RFC3339))
	case errors.Is(err, keyring.ErrBadSignature) && keyed:
		return fmt.Sprintf("not key %s's HMAC of this payload (another payload, or a forgery)", id)
	case errors.Is(err, keyring.ErrBadSignature):
		return "no key valid now made this legacy signature (another payload, an expired key, or a forgery)"
	case errors.Is(err, keyring.ErrLegacyOff):
		return "bare legacy signatures are switched off in this keyring"
	case errors.Is(err, keyring.ErrMalformedSignature):
		return "neither ks1.KEYID.MAC (lower-case hex) nor 64 hex digits"
	}
	return err.Error()
}

// cleanID is a key id as a signature gave it, safe to print.
func cleanID(id string) string {
	for _, c := range id {
		if !strings.ContainsRune("0123456789abcdef", c) {
			return "(not a key id)"
		}
	}
	return id
}
