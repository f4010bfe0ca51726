package rotate

import (
	"time"

	"github.com/sigil-dna/keysync/keyring"
	"github.com/sigil-dna/keysync/rotate/fleet"
)

// Result describes a rotation. It holds key ids, never secrets.
type Result struct {
	Action             Action         `json:"action"`
	DryRun             bool           `json:"dry_run"`
	Store              string         `json:"store"`
	Generation         int64          `json:"generation"`
	PreviousGeneration int64          `json:"previous_generation"`
	NewKeyID           string         `json:"new_key_id,omitempty"`
	SigningKeyID       string         `json:"signing_key_id"`
	SigningFrom        time.Time      `json:"signing_from"`
	KeyIDs             []string       `json:"key_ids"`
	RemovedKeyIDs      []string       `json:"removed_key_ids,omitempty"`
	RotatedBy          string         `json:"rotated_by"`
	Reason             string         `json:"reason,omitempty"`
	RotatedAt          time.Time      `json:"rotated_at"`
	Attempts           int            `json:"attempts"`
	Mirrors            []MirrorResult `json:"mirrors,omitempty"`
	// Outcome of a hold, a fleet-confirmed rotation, a promotion or a stage that was not
	// due; empty for the other writes. Fleet is the gate's evidence.
	Outcome Outcome `json:"outcome,omitempty"`
	// ReplacedInvalid is what was wrong with the document an emergency replaced (never
	// its bytes).
	ReplacedInvalid string `json:"replaced_invalid,omitempty"`
	// Force: the rotation was allowed to replace a held or pending key.
	Force bool `json:"force,omitempty"`
	// Resumed is the held key a gated rotation found and promoted instead of writing a
	// new one.
	Resumed *Resumed `json:"resumed,omitempty"`
	// BasedOn is the store version the write replaces (its compare-and-swap condition).
	BasedOn string           `json:"based_on_version,omitempty"`
	Fleet   *fleet.Result    `json:"fleet,omitempty"`
	Keyring *keyring.Keyring `json:"-"`
	version string           // the store version this result's write made
}

// Resumed is a held key taken over from an earlier rotation.
type Resumed struct {
	KeyID     string    `json:"key_id"`
	HeldSince time.Time `json:"held_since"`
	HeldBy    string    `json:"held_by"`
	Reason    string    `json:"held_reason,omitempty"`
}

// Outcome is what a run that can end more than one way did.
type Outcome string

// Outcomes.
const (
	OutcomeHeld        Outcome = "held"               // written held (a hold, or a gated rotation's first write)
	OutcomeNotPromoted Outcome = "held, not promoted" // the gate did not confirm; the held key stays
	OutcomePromoted    Outcome = "promoted"
	OutcomeNotDue      Outcome = "not due" // IfOlderThan found the signing key young enough
)

// MirrorResult is the outcome of copying the keyring to one mirror.
type MirrorResult struct {
	Store string `json:"store"`
	Error string `json:"error,omitempty"`
}
