// Package statusapi is the JSON of a sidecar's /status: what its keys file holds, what
// its app confirmed holding, how its store reads go and the settings that bound how fast a
// new document reaches its pod. The sidecar serves it; the fleet gate and
// `keysync status --fleet` read it. One type for both sides keeps them in step. It holds
// key ids and generations, never a secret.
package statusapi

import (
	"time"

	"github.com/sigil-dna/keysync/keyring"
)

// Status is a sidecar's /status.
type Status struct {
	Store string `json:"store"`
	Path  string `json:"path"`
	Ready bool   `json:"ready"`
	// Generation, KeyIDs and Keys are what the keys file holds; Keys gives each key's
	// state now (held, pending, current, previous).
	Generation int64      `json:"generation"`
	KeyIDs     []string   `json:"key_ids"`
	Keys       []KeyState `json:"keys"`
	WrittenAt  time.Time  `json:"written_at"`
	// LastSuccess is the last successful sync; StaleSeconds the time since.
	LastSuccess  time.Time `json:"last_success"`
	StaleSeconds float64   `json:"stale_seconds"`
	// StoreError is why store reads fail, since FailingSince; empty while they succeed.
	StoreError   string    `json:"store_error,omitempty"`
	FailingSince time.Time `json:"failing_since,omitzero"`
	// WriteError is why the newest keyring read could not be written to the keys file
	// (an unwritable or full --out), until it is; the file keeps older keys, or none.
	WriteError string   `json:"write_error,omitempty"`
	App        App      `json:"app"`
	Settings   Settings `json:"settings"`
	// At is the sidecar's clock when it answered, for estimating clock skew.
	At time.Time `json:"at"`
}

// KeyState is one key of the keys file and its state.
type KeyState struct {
	ID    string        `json:"id"`
	State keyring.State `json:"state"`
}

// App is what the sidecar knows of its app.
type App struct {
	// URL is the app's status endpoint (--confirm-url); empty: the app is not asked.
	URL string `json:"url,omitempty"`
	// Generation and KeyIDs are what the app reported last.
	Generation int64    `json:"generation"`
	KeyIDs     []string `json:"key_ids"`
	// Confirmed: the app holds what the keys file holds.
	Confirmed bool `json:"confirmed"`
	// ConfirmedAt is when the app was first seen holding the keys file's generation.
	ConfirmedAt time.Time `json:"confirmed_at,omitzero"`
	// ReloadSeconds is the time from the keys file write to that confirmation.
	ReloadSeconds float64 `json:"reload_seconds,omitempty"`
	// CheckedAt is when the app last answered or failed to.
	CheckedAt time.Time `json:"checked_at,omitzero"`
	// Error is why the last check failed.
	Error string `json:"error,omitempty"`
	// SignalError is why the last signal was refused, until one is sent.
	SignalError string `json:"signal_error,omitempty"`
}

// Settings are a sidecar's timing, in seconds.
type Settings struct {
	Interval         float64 `json:"interval_seconds"`
	Jitter           float64 `json:"jitter"`
	BackoffCap       float64 `json:"backoff_cap_seconds"`
	ReadTimeout      float64 `json:"read_timeout_seconds"`
	WorstPropagation float64 `json:"worst_propagation_seconds"`
	MaxStale         float64 `json:"max_stale_seconds"`
	Signals          bool    `json:"signals"`  // --signal-process or --pid-file is set
	Confirms         bool    `json:"confirms"` // --confirm-url is set
}
