package reload

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/sigil-dna/keysync/keyring"
)

// Status is what a handle has loaded. It holds no secret and is what the sidecar reads
// to confirm a reload.
type Status struct {
	Path         string    `json:"path"`
	Generation   int64     `json:"generation"`
	KeyIDs       []string  `json:"key_ids"`
	SigningKeyID string    `json:"signing_key_id"`
	RotatedAt    time.Time `json:"rotated_at"`
	RotatedBy    string    `json:"rotated_by,omitempty"`
	Reason       string    `json:"reason,omitempty"`
	LoadedAt     time.Time `json:"loaded_at"`
	Reloads      uint64    `json:"reloads"`
	Errors       uint64    `json:"errors"`
	LastError    string    `json:"last_error,omitempty"`
	// Usage is what each key signed and verified since Open, across reloads: verifications
	// by the key's state and their result, and when each key last verified something. A
	// previous key's count that stops growing has drained.
	Usage keyring.UsageSnapshot `json:"usage"`
}

// Status reports the loaded keyring.
func (k *Handle) Status() Status {
	st := Status{Path: k.path, Reloads: k.reloads.Load(), Errors: k.failures.Load(), Usage: k.usage.Snapshot()}
	if e := k.lastErr.Load(); e != nil {
		st.LastError = *e
	}
	l := k.cur.Load()
	if l == nil {
		return st
	}
	r := l.signer.Keyring()
	st.Generation, st.KeyIDs, st.LoadedAt = r.Generation, r.IDs(), l.loadedAt
	st.RotatedAt, st.RotatedBy, st.Reason = r.RotatedAt, r.RotatedBy, r.Reason
	if sk, ok := r.SigningKey(k.cfg.clock()); ok {
		st.SigningKeyID = sk.ID
	}
	return st
}

// StatusHandler serves Status as JSON on GET, for the sidecar's --confirm-url and for
// operators. It shows key ids and generations, never a secret.
func (k *Handle) StatusHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_ = json.NewEncoder(w).Encode(k.Status())
	})
}

// Usage returns what each key signed and verified since Open (see Status.Usage).
func (k *Handle) Usage() keyring.UsageSnapshot { return k.usage.Snapshot() }
