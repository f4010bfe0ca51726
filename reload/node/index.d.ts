/// <reference types="node" />
import type { IncomingMessage, ServerResponse } from 'http';

export type Payload = string | Buffer | Uint8Array;

/** Verification outcomes, named as in the Go library. */
export declare const Errors: Readonly<{
  MALFORMED: 'malformed_signature';
  UNKNOWN_KEY: 'unknown_key';
  EXPIRED_KEY: 'expired_key';
  BAD_SIGNATURE: 'bad_signature';
  NO_SIGNING_KEY: 'no_signing_key';
  /** A bare legacy signature, which the keyring refuses ("legacy_signatures": false). */
  LEGACY_OFF: 'legacy_off';
}>;
export type ErrorCode = (typeof Errors)[keyof typeof Errors];

export interface Options {
  /** Signal that triggers a reload; null installs no handler. Default 'SIGHUP'. Other listeners stay. */
  signal?: NodeJS.Signals | null;
  /** Watch the file's directory (fs.watch). Default true. */
  watch?: boolean;
  /** Fallback periodic re-read in ms; 0 turns it off. Default 60000. */
  pollIntervalMs?: number;
  /** How long directory events settle before a reload. Default 20. */
  debounceMs?: number;
  /** How long open() waits for the first valid file. Default 60000. */
  openTimeoutMs?: number;
  /** Sign the bare hex HMAC of the existing eventSign module. Verify accepts both forms anyway. */
  legacySignatures?: boolean;
  /** Clock in ms since the epoch, for tests and clock-skew experiments. */
  clock?: () => number;
  /** Receives { msg, path, event?, ... } objects; never secrets. */
  logger?: { info?(o: object): void; warn?(o: object): void } | null;
  onReload?: ((status: Status) => void) | null;
}

/** What a handle has loaded; the same fields as the Go library's Status. */
export interface Status {
  path: string;
  generation: number;
  key_ids: string[];
  signing_key_id: string;
  rotated_at?: string;
  rotated_by?: string;
  reason?: string;
  loaded_at?: string;
  reloads: number;
  errors: number;
  last_error?: string;
  /** What each key signed and verified since open(), across reloads. */
  usage: UsageSnapshot;
}

/** One series of the usage counts: verifications of key_id ('' when none can be named) in state with result. */
export interface UsageCount {
  key_id: string;
  /** held, pending, current, previous; legacy for bare signatures; expired; '' for a malformed signature or an unknown key id. */
  state: KeyState | 'legacy' | '';
  result: 'ok' | ErrorCode;
  count: number;
}
export interface KeyUsage { key_id: string; signatures: number; verified: number; last_verified?: string }
export interface UsageSnapshot { verifications: UsageCount[]; keys: KeyUsage[] }

/** Counts what keys signed and verified; a handle keeps one across reloads. */
export declare class Usage {
  constructor();
  snapshot(): UsageSnapshot;
  /** The counts in the Prometheus text format (keysync_app_verifications_total, …). */
  metricsText(): string;
}

/** A live handle on a keys file. Not constructible: open() makes one once the file is valid. */
export declare class Keyring {
  private constructor();
  readonly path: string;
  /** 'ks1.<key id>.<hex HMAC-SHA256>', or the bare hex with legacySignatures. */
  sign(payload: Payload): string;
  verify(payload: Payload, signature: string): boolean;
  /** null when the signature verifies now, else why not. */
  check(payload: Payload, signature: string): ErrorCode | null;
  /** Reads the file now; returns the error (the last good keyring stays) or null. */
  reload(): Error | null;
  status(): Status;
  /** What each key signed and verified, in the Prometheus text format, for the app's /metrics. */
  metricsText(): string;
  statusHandler(): (req: IncomingMessage, res: ServerResponse) => void;
  close(): void;
}

/** Resolves once the file holds a valid keyring; rejects after openTimeoutMs. */
export declare function open(path: string, options?: Options): Promise<Keyring>;

/** Drop-in for the existing signing module: { sign, verify, reloadSecret }. */
export declare function createEventSigner(path: string, options?: Options): {
  ready: Promise<Keyring>;
  sign(payload: Payload): string;
  verify(payload: Payload, signature: string): boolean;
  reloadSecret(): void;
  status(): Status | null;
  /** For the sidecar's --confirm-url: the status as JSON, 503 until the keys are loaded. */
  statusHandler(): (req: IncomingMessage, res: ServerResponse) => void;
  metricsText(): string;
  close(): Promise<void>;
};

/** notBefore is null for a held key: it verifies everywhere and signs nowhere until promoted. */
export interface ParsedKey { id: string; secret: Buffer; notBefore: number | null; notAfter: number | null }
export type KeyState = 'held' | 'pending' | 'current' | 'previous' | 'expired';
export interface ParsedKeyring { generation: number; rotatedAt: number; rotatedBy: string; reason: string; /** bare legacy signatures are refused */ noLegacy: boolean; keys: ParsedKey[] }

export declare class KeyringError extends Error { readonly field: string }
/** Parses and validates a keyring document exactly as the Go library does. */
export declare function parse(data: string | Buffer): ParsedKeyring;
export declare function keyId(secret: Buffer): string;
/**
 * A Signer's decisions, which hold for every instant in [from, until): the index of the
 * key that signs (-1: none) and each key's state as an index of 'held', 'pending',
 * 'current', 'previous' (-1: expired).
 */
export interface SignerView { readonly from: number; readonly until: number; readonly signing: number; readonly state: Int8Array }
export declare class Signer {
  /** With usage, every signature and verification is counted in it. */
  constructor(keyring: ParsedKeyring, usage?: Usage | null);
  sign(nowMs: number, payload: Payload): string;
  signLegacy(nowMs: number, payload: Payload): string;
  check(nowMs: number, payload: Payload, signature: string): ErrorCode | null;
  /** The decisions at nowMs; the last ones are reused while nowMs stays in their interval. */
  decide(nowMs: number): SignerView;
  /** sign, signLegacy and check with decisions taken earlier; sec is the Unix second recorded as a key's last use. */
  signIn(view: SignerView, payload: Payload): string;
  signLegacyIn(view: SignerView, payload: Payload): string;
  checkIn(view: SignerView, sec: number, payload: Payload, signature: string): ErrorCode | null;
  /** The key that signs at nowMs (never a held key), or null. */
  signingKey(nowMs: number): ParsedKey | null;
  stateAt(key: ParsedKey, nowMs: number): KeyState;
}
export declare function isHeld(key: ParsedKey): boolean;

/**
 * Adds keysync's per-key series (those of metricsText()) to prom-client, passed in so the
 * library has no runtime dependency; each scrape reads the handle's usage.
 */
export declare function registerPromClient(
  client: { Counter: new (config: any) => unknown; Gauge: new (config: any) => unknown; register: unknown },
  keys: Keyring,
  options?: { registers?: unknown[] },
): unknown[];
