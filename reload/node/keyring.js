'use strict';
// The keysync keyring document: parsing and validation with the Go library's exact rules
// and field names, key ids, and signing/verification. Pure: no I/O, no timers.
const crypto = require('crypto');

const FORMAT_VERSION = 1;
const MIN_SECRET_BYTES = 32;
const MAX_SECRET_BYTES = 1024;
const MAX_KEYS = 16;
const MAX_DOCUMENT_BYTES = 64 * 1024;
const MAX_TEXT_LEN = 1024;
const MAX_GENERATION = Number.MAX_SAFE_INTEGER; // 2^53-1
const KEY_ID_LEN = 16;
const SIG_PREFIX = 'ks1.';
const MAC_HEX_LEN = 64;
const KEYED_SIG_LEN = SIG_PREFIX.length + KEY_ID_LEN + 1 + MAC_HEX_LEN;
const GO_ZERO_TIME_MS = -62135596800000; // 0001-01-01T00:00:00Z, Go's zero time
const KEY_ID_LABEL = Buffer.from('keysync key id v1');

/** A rejected document. `field` names the offending field ('' for the whole document). */
class KeyringError extends Error {
  constructor(field, problem) {
    super(field ? `keyring: ${field}: ${problem}` : `keyring: ${problem}`);
    this.name = 'KeyringError';
    this.field = field;
  }
}

/** keyId returns the fingerprint naming a key: first 8 bytes of HMAC-SHA256(secret, label), hex. */
function keyId(secret) {
  return crypto.createHmac('sha256', secret).update(KEY_ID_LABEL).digest('hex').slice(0, KEY_ID_LEN);
}

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|([+-])(\d{2}):(\d{2}))$/;

/** parseTime reads RFC 3339 as Go's time.RFC3339Nano does, truncated to milliseconds. */
function parseTime(field, s) {
  const m = RFC3339.exec(s);
  if (!m) throw new KeyringError(field, 'not an RFC 3339 time');
  const [y, mo, d, h, mi, se] = m.slice(1, 7).map(Number);
  const daysIn = new Date(Date.UTC(2000, mo, 0)).getUTCDate(); // month length, leap year checked below
  const leap = (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
  const maxDay = mo === 2 ? (leap ? 29 : 28) : daysIn;
  if (mo < 1 || mo > 12 || d < 1 || d > maxDay || h > 23 || mi > 59 || se > 59) {
    throw new KeyringError(field, 'not an RFC 3339 time');
  }
  let offsetMin = 0;
  if (m[8] !== 'Z') {
    const oh = Number(m[10]);
    const om = Number(m[11]);
    if (oh > 23 || om > 59) throw new KeyringError(field, 'not an RFC 3339 time');
    offsetMin = (m[9] === '-' ? -1 : 1) * (oh * 60 + om);
  }
  const ms = m[7] ? Number((m[7] + '00').slice(0, 3)) : 0;
  const utc = new Date(0);
  utc.setUTCFullYear(y, mo - 1, d);
  utc.setUTCHours(h, mi, se, ms);
  return utc.getTime() - offsetMin * 60000;
}

function jsonType(v) {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  return typeof v === 'object' ? 'object' : typeof v;
}

// The document's names, in the order their types are checked (Go's docFields, keyFields).
const DOC_FIELDS = ['version', 'generation', 'rotated_at', 'rotated_by', 'reason', 'legacy_signatures', 'keys'];
const KEY_FIELDS = ['id', 'secret', 'not_before', 'not_after', 'held', 'restored'];
const own = (o, name) => Object.prototype.hasOwnProperty.call(o, name);
// kindName names a value's JSON type as Go's decoder does: never the value itself.
const kindName = (v) => ({ boolean: 'bool' })[jsonType(v)] || jsonType(v);

// knownNames refuses a name the format does not have, in the document or in any key, as
// Go's knownNames does: before any type is checked.
function knownNames(doc) {
  for (const name of Object.keys(doc)) {
    if (!DOC_FIELDS.includes(name)) throw new KeyringError('', `unknown field (a document has ${DOC_FIELDS.join(', ')})`);
  }
  if (!Array.isArray(doc.keys)) return;
  doc.keys.forEach((k, i) => {
    if (jsonType(k) !== 'object') return;
    for (const name of Object.keys(k)) {
      if (!KEY_FIELDS.includes(name)) throw new KeyringError(`keys[${i}]`, `unknown field (a key has ${KEY_FIELDS.join(', ')})`);
    }
  });
}

// checkTypes types every field in Go's fixed order; null leaves a field unset.
function checkTypes(doc) {
  const is = {
    int: (v) => typeof v === 'number' && Number.isInteger(v) && Math.abs(v) < 2 ** 63,
    string: (v) => typeof v === 'string',
    bool: (v) => typeof v === 'boolean',
  };
  const names = { int: 'an integer', string: 'a string', bool: 'a boolean' };
  const check = (o, name, kind, field) => {
    const v = o[name];
    if (v === undefined || v === null || is[kind](v)) return;
    throw new KeyringError(field, `JSON ${kindName(v)} where ${names[kind]} is expected`);
  };
  check(doc, 'version', 'int', 'version');
  check(doc, 'generation', 'int', 'generation');
  check(doc, 'rotated_at', 'string', 'rotated_at');
  check(doc, 'rotated_by', 'string', 'rotated_by');
  check(doc, 'reason', 'string', 'reason');
  check(doc, 'legacy_signatures', 'bool', 'legacy_signatures');
  const keys = doc.keys;
  if (keys === undefined || keys === null) return;
  if (!Array.isArray(keys)) throw new KeyringError('keys', `JSON ${kindName(keys)} where an array is expected`);
  keys.forEach((k, i) => {
    if (k === null) return;
    if (jsonType(k) !== 'object') throw new KeyringError(`keys[${i}]`, `JSON ${kindName(k)} where an object is expected`);
    for (const [name, kind] of [['id', 'string'], ['secret', 'string'], ['not_before', 'string'], ['not_after', 'string'], ['held', 'bool'], ['restored', 'bool']]) {
      check(k, name, kind, `keys[${i}].${name}`);
    }
  });
}

// syntaxError says where the text stops being JSON, as Go's decoder does: truncated when
// the parser ran out of input, else the byte offset where V8 stopped (when it says one).
// Nothing of the text is quoted: V8's message may hold document bytes.
function syntaxError(e, text) {
  const m = /at position (\d+)/.exec(e.message);
  if (/Unexpected end of JSON input/.test(e.message) || (m && Number(m[1]) >= text.length)) {
    return new KeyringError('', 'truncated JSON');
  }
  if (/Unexpected non-whitespace character after JSON/.test(e.message)) {
    return new KeyringError('', `unexpected data after the JSON object at byte offset ${Buffer.byteLength(text.slice(0, Number(m[1])))}`);
  }
  return new KeyringError('', m ? `not valid JSON at byte offset ${Buffer.byteLength(text.slice(0, Number(m[1])))}` : 'not valid JSON');
}

const BASE64_STD = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

function decodeSecret(field, s) {
  if (!BASE64_STD.test(s)) throw new KeyringError(field, 'not standard padded base64');
  const b = Buffer.from(s, 'base64');
  if (b.toString('base64') !== s) throw new KeyringError(field, 'not standard padded base64'); // non-zero padding bits
  return b;
}

function validateKey(field, k) {
  if (k.secret.length < MIN_SECRET_BYTES) throw new KeyringError(field('secret'), `${k.secret.length} bytes, at least ${MIN_SECRET_BYTES} are required`);
  if (k.secret.length > MAX_SECRET_BYTES) throw new KeyringError(field('secret'), `${k.secret.length} bytes, the limit is ${MAX_SECRET_BYTES}`);
  if (k.id.length !== KEY_ID_LEN || !/^[0-9a-f]+$/.test(k.id)) throw new KeyringError(field('id'), `not ${KEY_ID_LEN} lower-case hex digits`);
  if (k.id !== keyId(k.secret)) throw new KeyringError(field('id'), 'does not match the fingerprint of its secret');
  if (isHeld(k) && k.notAfter !== null) throw new KeyringError(field('not_after'), 'a held key has none');
  if (k.notAfter !== null && !(k.notAfter > k.notBefore)) throw new KeyringError(field('not_after'), 'not after not_before');
}

/** isHeld: the key waits for a promotion (no not_before): it verifies, it never signs. */
const isHeld = (k) => k.notBefore === null;

/**
 * parse decodes and validates a keyring document (a string or Buffer) by the rules of
 * docs/keyring-format.md. It throws KeyringError naming the field; messages never hold
 * secret bytes.
 */
function parse(data) {
  const buf = Buffer.isBuffer(data) ? data : Buffer.from(String(data), 'utf8');
  const text = buf.toString('utf8');
  if (/^[ \t\r\n]*$/.test(text)) throw new KeyringError('', 'empty document');
  // Readers stop at the limit plus one byte: the size is unknown, not buf.length.
  if (buf.length > MAX_DOCUMENT_BYTES) throw new KeyringError('', `document is larger than the limit of ${MAX_DOCUMENT_BYTES} bytes`);
  let doc;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw syntaxError(e, text);
  }
  if (doc !== null && jsonType(doc) !== 'object') throw new KeyringError('', `the document is a JSON ${kindName(doc)}, want an object`);
  doc = doc || {};
  knownNames(doc);
  checkTypes(doc);
  const has = (o, f) => o[f] !== undefined && o[f] !== null;
  if (!has(doc, 'version')) throw new KeyringError('version', 'missing');
  if (doc.version !== FORMAT_VERSION) throw new KeyringError('version', `unknown format version ${doc.version}, this build reads version ${FORMAT_VERSION}`);
  if (!has(doc, 'generation')) throw new KeyringError('generation', 'missing');
  if (!has(doc, 'rotated_at')) throw new KeyringError('rotated_at', 'missing');
  const wireKeys = doc.keys || [];
  if (wireKeys.length > MAX_KEYS) throw new KeyringError('keys', `${wireKeys.length} keys, the limit is ${MAX_KEYS}`);
  const rotatedAt = parseTime('rotated_at', doc.rotated_at);
  const keys = wireKeys.map((wk, i) => {
    const field = (n) => `keys[${i}].${n}`;
    if (wk === null) throw new KeyringError(`keys[${i}]`, 'null where an object is expected');
    if (!has(wk, 'id')) throw new KeyringError(field('id'), 'missing');
    if (!has(wk, 'secret')) throw new KeyringError(field('secret'), 'missing');
    const held = wk.held === true;
    if (held && has(wk, 'not_before')) throw new KeyringError(field('not_before'), 'a held key has none: it signs from its promotion');
    if (held && has(wk, 'not_after')) throw new KeyringError(field('not_after'), 'a held key has none');
    if (!held && !has(wk, 'not_before')) throw new KeyringError(field('not_before'), 'missing (a key waiting for its promotion says "held": true instead)');
    // restored: a rollback staged the key again; it changes nothing about signing or
    // verifying (Go's Rollback reads it), but a held key is never restored.
    if (held && wk.restored === true) throw new KeyringError(field('restored'), 'a held key is never restored: a rollback withdraws it');
    const secret = decodeSecret(field('secret'), wk.secret);
    const k = { id: wk.id, secret, notBefore: null, notAfter: null };
    if (!held) {
      k.notBefore = parseTime(field('not_before'), wk.not_before);
      if (k.notBefore === GO_ZERO_TIME_MS) throw new KeyringError(field('not_before'), 'the zero time');
    }
    if (has(wk, 'not_after')) k.notAfter = parseTime(field('not_after'), wk.not_after);
    validateKey(field, k);
    return k;
  });
  // By not_before, the held key last (a stable sort, as Go's).
  keys.sort((a, b) => (isHeld(a) || isHeld(b) ? isHeld(a) - isHeld(b) : a.notBefore - b.notBefore));
  const r = {
    generation: doc.generation, rotatedAt, rotatedBy: doc.rotated_by || '', reason: doc.reason || '',
    noLegacy: doc.legacy_signatures === false, keys,
  };
  validate(r);
  return r;
}

function validate(r) {
  if (!(r.generation > 0)) throw new KeyringError('generation', `must be positive, got ${r.generation}`);
  if (r.generation > MAX_GENERATION) throw new KeyringError('generation', 'larger than 2^53-1');
  if (r.rotatedAt === GO_ZERO_TIME_MS) throw new KeyringError('rotated_at', 'missing');
  if (Buffer.byteLength(r.rotatedBy) > MAX_TEXT_LEN) throw new KeyringError('rotated_by', `longer than ${MAX_TEXT_LEN} bytes`);
  if (Buffer.byteLength(r.reason) > MAX_TEXT_LEN) throw new KeyringError('reason', `longer than ${MAX_TEXT_LEN} bytes`);
  if (r.keys.length === 0) throw new KeyringError('keys', 'no keys');
  const seen = new Map();
  r.keys.forEach((k, i) => {
    const field = (n) => `keys[${i}].${n}`;
    validateKey(field, k);
    if (seen.has(k.id)) throw new KeyringError(field('id'), `duplicate of keys[${seen.get(k.id)}].id ${k.id}`);
    seen.set(k.id, i);
    if (isHeld(k)) {
      if (r.keys.slice(i + 1).some(isHeld)) throw new KeyringError('keys', 'more than one held key');
      if (i !== r.keys.length - 1) throw new KeyringError('keys', 'not ordered: the held key comes last');
      if (i === 0) throw new KeyringError('keys', 'only a held key: a keyring needs a key that signs');
      return;
    }
    if (i > 0 && k.notBefore === r.keys[i - 1].notBefore) throw new KeyringError(field('not_before'), `same not_before as key ${r.keys[i - 1].id}`);
  });
}

const validAt = (k, now) => k.notAfter === null || now < k.notAfter;

/** Error codes shared with the Go library (keyring.Err… sentinels). */
const Errors = Object.freeze({
  MALFORMED: 'malformed_signature', UNKNOWN_KEY: 'unknown_key', EXPIRED_KEY: 'expired_key',
  BAD_SIGNATURE: 'bad_signature', NO_SIGNING_KEY: 'no_signing_key', LEGACY_OFF: 'legacy_off',
});

/** Key states (Go's keyring.State); LEGACY labels bare signatures in the usage counts. */
const States = Object.freeze({
  HELD: 'held', PENDING: 'pending', CURRENT: 'current', PREVIOUS: 'previous', EXPIRED: 'expired', LEGACY: 'legacy',
});

/** Verification results of the usage counts (Go's keyring.Result…). */
const Results = Object.freeze({
  OK: 'ok', BAD_SIGNATURE: Errors.BAD_SIGNATURE, EXPIRED_KEY: Errors.EXPIRED_KEY, UNKNOWN_KEY: Errors.UNKNOWN_KEY,
  MALFORMED: Errors.MALFORMED, LEGACY_OFF: Errors.LEGACY_OFF,
});

// The states a keyed verification is counted under, in index order (Go's usageStates).
const USAGE_STATES = Object.freeze([States.HELD, States.PENDING, States.CURRENT, States.PREVIOUS]);

/**
 * Usage counts what keys verified and signed: per key id, verifications by the key's state
 * at that instant and their result, signatures, and when the key last verified something;
 * and the verifications no key can be named for. It outlives a keyring: a handle keeps one
 * for its life and gives it to each new Signer. Go's keyring.Usage, count for count.
 */
class Usage {
  constructor() {
    this.keys = new Map();
    this.unknown = 0;
    this.malformed = 0;
    this.legacyBad = 0;
    this.legacyOff = 0;
  }

  key(id) {
    let k = this.keys.get(id);
    if (!k) {
      k = { ok: [0, 0, 0, 0], bad: [0, 0, 0, 0], legacy: 0, expired: 0, signed: 0, last: 0 };
      this.keys.set(id, k);
    }
    return k;
  }

  /** snapshot: the non-zero counts, sorted, in the Go library's JSON shape. */
  snapshot() {
    const verifications = [];
    const keys = [];
    const add = (id, state, result, n) => { if (n > 0) verifications.push({ key_id: id, state, result, count: n }); };
    for (const id of [...this.keys.keys()].sort()) {
      const k = this.keys.get(id);
      const ku = { key_id: id, signatures: k.signed, verified: 0 };
      USAGE_STATES.forEach((st, j) => {
        ku.verified += k.ok[j];
        add(id, st, Results.OK, k.ok[j]);
        add(id, st, Results.BAD_SIGNATURE, k.bad[j]);
      });
      ku.verified += k.legacy;
      add(id, States.LEGACY, Results.OK, k.legacy);
      add(id, States.EXPIRED, Results.EXPIRED_KEY, k.expired);
      if (k.last > 0) ku.last_verified = new Date(k.last * 1000).toISOString().replace('.000Z', 'Z');
      keys.push(ku);
    }
    add('', States.LEGACY, Results.BAD_SIGNATURE, this.legacyBad);
    add('', States.LEGACY, Results.LEGACY_OFF, this.legacyOff);
    add('', '', Results.UNKNOWN_KEY, this.unknown);
    add('', '', Results.MALFORMED, this.malformed);
    const key = (c) => `${c.key_id}|${c.state}|${c.result}`;
    verifications.sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
    return { verifications, keys };
  }

  /** metricsText: the counts in the Prometheus text format, the Go reloadprom collector's series. */
  metricsText() {
    const u = this.snapshot();
    const esc = (v) => String(v).replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
    const lines = [
      '# HELP keysync_app_verifications_total Signature verifications by the key\'s state at that instant and the result.',
      '# TYPE keysync_app_verifications_total counter',
      ...u.verifications.map((v) => `keysync_app_verifications_total{key_id="${esc(v.key_id)}",state="${esc(v.state)}",result="${esc(v.result)}"} ${v.count}`),
      '# HELP keysync_app_signatures_total Signatures made with each key.',
      '# TYPE keysync_app_signatures_total counter',
      ...u.keys.map((k) => `keysync_app_signatures_total{key_id="${esc(k.key_id)}"} ${k.signatures}`),
      '# HELP keysync_app_key_last_verified_timestamp_seconds Unix time each key last verified a signature.',
      '# TYPE keysync_app_key_last_verified_timestamp_seconds gauge',
      ...u.keys.filter((k) => k.last_verified).map((k) => `keysync_app_key_last_verified_timestamp_seconds{key_id="${esc(k.key_id)}"} ${Date.parse(k.last_verified) / 1000}`),
    ];
    return lines.join('\n') + '\n';
  }
}

class Signer {
  constructor(keyring, usage = null) {
    this.keyring = keyring;
    this.usage = usage;
    // Each key's counters, looked up once (Go's signerKey.use).
    this.uses = usage ? keyring.keys.map((k) => usage.key(k.id)) : null;
    // Each key id's bytes (ASCII hex), key i at [KEY_ID_LEN*i, KEY_ID_LEN*(i+1)).
    this.idBytes = new Uint8Array(KEY_ID_LEN * keyring.keys.length);
    keyring.keys.forEach((k, i) => {
      for (let j = 0; j < KEY_ID_LEN; j++) this.idBytes[KEY_ID_LEN * i + j] = k.id.charCodeAt(j);
    });
    // Every instant at which some decision changes (each not_before and not_after), sorted.
    this.boundaries = [...new Set(keyring.keys.flatMap((k) => [k.notBefore, k.notAfter]).filter((t) => t !== null))]
      .sort((a, b) => a - b);
    this.view = { from: Infinity, until: -Infinity, signing: -1, state: null }; // holds for no instant
  }

  /**
   * decide returns the signer's decisions at now, Go's View: { from, until, signing,
   * state } — the index of the key that signs (-1: none) and each key's state as an index
   * of USAGE_STATES (-1: expired), which hold for every instant in [from, until). The last
   * one is kept and reused while now stays in it: a call costs two comparisons.
   */
  decide(now) {
    const v = this.view;
    if (now >= v.from && now < v.until) return v;
    this.view = this.viewAt(now);
    return this.view;
  }

  viewAt(now) {
    let from = -Infinity;
    let until = Infinity;
    for (const b of this.boundaries) {
      if (b <= now) from = b;
      else if (until === Infinity) until = b;
    }
    const ks = this.keyring.keys;
    const signing = this.signingIndex(now);
    const state = new Int8Array(ks.length);
    ks.forEach((k, i) => {
      if (!validAt(k, now)) state[i] = -1;
      else if (isHeld(k)) state[i] = 0;
      else if (i === signing) state[i] = 2;
      else state[i] = k.notBefore > now ? 1 : 3;
    });
    return { from, until, signing, state };
  }

  /** stateIndex: k's state at now as an index of USAGE_STATES (Go's stateIndex), -1 expired. */
  stateIndex(k, now) {
    return this.decide(now).state[this.keyring.keys.indexOf(k)];
  }

  /**
   * signingIndex: the index of the latest not_before <= now among valid keys that are not
   * held, else of the earliest valid pending key, else -1; a held key never signs. Go's
   * Keyring.SigningKey rule.
   */
  signingIndex(now) {
    const ks = this.keyring.keys;
    for (let i = ks.length - 1; i >= 0; i--) if (!isHeld(ks[i]) && validAt(ks[i], now) && ks[i].notBefore <= now) return i;
    return ks.findIndex((k) => !isHeld(k) && validAt(k, now));
  }

  /** signingKey: the key that signs at now, or null. */
  signingKey(now) {
    const i = this.decide(now).signing;
    return i < 0 ? null : this.keyring.keys[i];
  }

  /** stateAt: 'held', 'pending', 'current', 'previous' or 'expired', as Go's Keyring.StateAt. */
  stateAt(k, now) {
    const st = this.stateIndex(k, now);
    return st < 0 ? States.EXPIRED : USAGE_STATES[st];
  }

  /** sign returns 'ks1.<id>.<hex>' or throws an Error whose code is 'no_signing_key'. */
  sign(now, payload) {
    return this.signIn(this.decide(now), payload);
  }

  /** signLegacy returns the bare hex HMAC-SHA256 that eventSign produces. */
  signLegacy(now, payload) {
    return this.signLegacyIn(this.decide(now), payload);
  }

  /** check returns null when sig is valid over payload at now, else an Errors code. */
  check(now, payload, sig) {
    return this.checkIn(this.decide(now), Math.floor(now / 1000), payload, sig);
  }

  /** signIn is sign with the decisions v (from decide) instead of an instant. */
  signIn(v, payload) {
    const k = this.keyring.keys[this.signed(v)];
    return SIG_PREFIX + k.id + '.' + hexMac(k.secret, payload);
  }

  /** signLegacyIn is signLegacy with the decisions v; it throws legacy_off where the keyring refuses bare signatures. */
  signLegacyIn(v, payload) {
    if (this.keyring.noLegacy) {
      const e = new Error('keyring: bare legacy signatures are switched off in this keyring');
      e.code = Errors.LEGACY_OFF;
      throw e;
    }
    return hexMac(this.keyring.keys[this.signed(v)].secret, payload);
  }

  // signed returns the index of the key that signs in v, counted, or throws no_signing_key.
  signed(v) {
    const i = v.signing;
    if (i < 0) {
      const e = new Error('keyring: no key is valid for signing');
      e.code = Errors.NO_SIGNING_KEY;
      throw e;
    }
    if (this.uses) this.uses[i].signed++;
    return i;
  }

  /**
   * checkIn is check with the decisions v (from decide) and sec, the Unix second recorded
   * as a key's last verification.
   */
  checkIn(v, sec, payload, sig) {
    if (typeof sig !== 'string' || sig.length !== KEYED_SIG_LEN) {
      return typeof sig === 'string' && sig.length === MAC_HEX_LEN ? this.checkLegacy(v, sec, payload, sig) : this.malformed();
    }
    // A keyed signature is checked against its key alone, read from its bytes: one copy
    // into SIG_BYTES costs less than reading its 85 characters one by one. (The keyed path
    // is written out here and its rare outcomes kept in unusable and checkLegacy: a
    // smaller function with one call less measured 20-35 ns faster at 64 B in
    // test/bench.js.)
    const b = SIG_BYTES;
    const dot = SIG_PREFIX.length + KEY_ID_LEN;
    if (!asciiBytes(sig)) {
      // Not a key id nor hex digits: unknown key, or malformed, as the characters say.
      return sig.startsWith(SIG_PREFIX) && sig.charCodeAt(dot) === 46 ? this.unusable(-1, sig) : this.malformed();
    }
    if (b[0] !== 107 || b[1] !== 115 || b[2] !== 49 || b[3] !== 46 || b[dot] !== 46 /* 'ks1.', '.' */) return this.malformed();
    const i = this.keyIndex(b);
    if (i < 0 || v.state[i] < 0) return this.unusable(i, sig);
    const m = macMatches(rawMac(this.keyring.keys[i].secret, payload), b, dot + 1);
    if (m < 0) return this.malformed();
    const ku = this.uses === null ? null : this.uses[i];
    if (m === 0) {
      if (ku !== null) ku.bad[v.state[i]]++;
      return Errors.BAD_SIGNATURE;
    }
    if (ku !== null) {
      ku.ok[v.state[i]]++;
      if (sec > ku.last) ku.last = sec;
    }
    return null;
  }

  // unusable answers a keyed signature whose key is not in the keyring (i < 0) or expired.
  unusable(i, sig) {
    if (!LOWER_HEX_MAC.test(sig.slice(SIG_PREFIX.length + KEY_ID_LEN + 1))) return this.malformed();
    if (i < 0) {
      if (this.usage) this.usage.unknown++;
      return Errors.UNKNOWN_KEY;
    }
    if (this.uses) this.uses[i].expired++;
    return Errors.EXPIRED_KEY;
  }

  // keyIndex returns the index of the key whose id the keyed signature in b (its bytes)
  // names, or -1. Key ids are not secret: the comparison stops at the first difference.
  keyIndex(b) {
    const ids = this.idBytes;
    const off = SIG_PREFIX.length;
    for (let base = 0; base < ids.length; base += KEY_ID_LEN) {
      if (ids[base] !== b[off]) continue;
      let j = 1;
      while (j < KEY_ID_LEN && b[off + j] === ids[base + j]) j++;
      if (j === KEY_ID_LEN) return base / KEY_ID_LEN;
    }
    return -1;
  }

  // checkLegacy checks a bare hex signature against every key valid in v, all of them,
  // unless the keyring refuses bare signatures ("legacy_signatures": false).
  checkLegacy(v, sec, payload, sig) {
    if (this.keyring.noLegacy) {
      if (this.usage) this.usage.legacyOff++;
      return Errors.LEGACY_OFF;
    }
    if (!HEX_MAC.test(sig)) return this.malformed();
    asciiBytes(sig); // hex digits: all ASCII
    const ks = this.keyring.keys;
    let matched = -1;
    for (let i = 0; i < ks.length; i++) {
      // Every valid key is tried, without an early exit.
      if (v.state[i] >= 0 && macMatchesIn(HEX_PAIR, rawMac(ks[i].secret, payload), SIG_BYTES, 0) === 1) matched = i;
    }
    if (matched < 0) {
      if (this.usage) this.usage.legacyBad++;
      return Errors.BAD_SIGNATURE;
    }
    if (this.uses) {
      const ku = this.uses[matched];
      ku.legacy++;
      if (sec > ku.last) ku.last = sec;
    }
    return null;
  }

  malformed() {
    if (this.usage) this.usage.malformed++;
    return Errors.MALFORMED;
  }
}

function hexMac(secret, payload) {
  return crypto.createHmac('sha256', secret).update(payload).digest('hex');
}

// rawMac is HMAC-SHA256(secret, payload) as a 16-character UTF-16LE string: character i
// holds byte 2i of the MAC in its low 8 bits and byte 2i+1 in its high 8.
function rawMac(secret, payload) {
  return crypto.createHmac('sha256', secret).update(payload).digest('utf16le');
}

// A legacy signature: 64 hex digits of either case. A keyed signature's MAC has one
// spelling: 64 lower-case hex digits.
const HEX_MAC = /^[0-9a-fA-F]{64}$/;
const LOWER_HEX_MAC = /^[0-9a-f]{64}$/;

// SIG_BYTES holds the signature being checked, as asciiBytes wrote it (UTF-8 takes at most
// 3 bytes per UTF-16 code unit, so no signature of a checked length is cut short).
const SIG_BYTES = new Uint8Array(3 * KEYED_SIG_LEN);
const ENCODER = new TextEncoder();

// asciiBytes writes sig's UTF-8 bytes to SIG_BYTES and reports whether they are all ASCII,
// one byte per character: any other character takes two or more.
function asciiBytes(sig) {
  return ENCODER.encodeInto(sig, SIG_BYTES).written === sig.length;
}

// hexPairs maps two ASCII bytes a, b (at index a << 7 | b) to the byte they spell as two
// hex digits in the given alphabet, and any other pair to -4096: shifted and or-ed into a
// MAC character it leaves the result negative. LOWER_HEX_PAIR reads keyed signatures
// (lower case only), HEX_PAIR legacy ones (either case).
function hexPairs(alphabet) {
  const digit = new Int16Array(128).fill(-1);
  for (let c = 0; c < alphabet.length; c++) digit[alphabet.charCodeAt(c)] = c % 16;
  const t = new Int16Array(128 * 128).fill(-4096);
  for (let a = 0; a < 128; a++) {
    for (let c = 0; c < 128; c++) if (digit[a] >= 0 && digit[c] >= 0) t[(a << 7) | c] = (digit[a] << 4) | digit[c];
  }
  return t;
}
const LOWER_HEX_PAIR = hexPairs('0123456789abcdef');
const HEX_PAIR = hexPairs('0123456789abcdef0123456789ABCDEF');

/**
 * macMatchesIn compares mac (a MAC as rawMac spells it) with the 64 hex digits the pair
 * table reads in the ASCII bytes b from off, in one pass and in constant time: 1 when they
 * match, 0 when they do not, -1 when the bytes there are not all digits of its alphabet.
 * Four digits meet one character of mac.
 */
function macMatchesIn(table, mac, b, off) {
  let d = 0;
  for (let i = 0, j = off; i < MAC_HEX_LEN / 4; i++, j += 4) {
    d |= ((table[(b[j + 2] << 7) | b[j + 3]] << 8) | table[(b[j] << 7) | b[j + 1]]) ^ mac.charCodeAt(i);
  }
  if (d < 0) return -1;
  return d === 0 ? 1 : 0;
}

/** macMatches is macMatchesIn for a keyed signature's lower-case digits. */
function macMatches(mac, b, off) {
  return macMatchesIn(LOWER_HEX_PAIR, mac, b, off);
}

module.exports = {
  parse, keyId, parseTime, isHeld, Signer, Usage, KeyringError, Errors, States, Results, USAGE_STATES,
  FORMAT_VERSION, MIN_SECRET_BYTES, MAX_KEYS, MAX_DOCUMENT_BYTES,
  // The comparison's parts, for test/bench.js's floor.
  rawMac, asciiBytes, macMatches, SIG_BYTES,
};
