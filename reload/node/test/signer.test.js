'use strict';
// Verification character by character, as keyring/signer_test.go checks the Go library.
const test = require('node:test');
const assert = require('node:assert');
const crypto = require('crypto');
const { parse, keyId, Signer, Errors } = require('../keyring');

const HEX = /^[0-9a-fA-F]$/;

// oneKey returns a signer holding one current key, derived from label, an instant at which
// it signs, and a payload.
function oneKey(label) {
  const secret = crypto.createHash('sha256').update(label).digest();
  const r = parse(JSON.stringify({
    version: 1, generation: 1, rotated_at: '2026-12-03T12:00:00Z',
    keys: [{ id: keyId(secret), secret: secret.toString('base64'), not_before: '2026-12-03T11:00:00Z' }],
  }));
  return { s: new Signer(r), now: Date.parse('2026-12-03T12:00:00Z'), payload: Buffer.from('payload') };
}

// A keyed signature has one spelling: lower-case digits (an upper-case one is malformed);
// a legacy signature verifies in either case, as the existing service may send it.
test('every character of a MAC is checked on its own: keyed in lower case only, legacy in either case', () => {
  const { s, now, payload } = oneKey('node mac test');
  const sigs = { keyed: s.sign(now, payload), legacy: s.signLegacy(now, payload) };
  // Codes beyond one byte whose low byte is a hex digit, which a byte-wise write would alias.
  const codes = [...Array(256).keys(), 0x130, 0x161, 0x3030, 0xff10];
  for (const [name, sig] of Object.entries(sigs)) {
    const at = sig.length - 64;
    const upper = { keyed: Errors.MALFORMED, legacy: null }[name];
    assert.strictEqual(s.check(now, payload, sig.slice(0, at) + sig.slice(at).toUpperCase()), upper, `${name}: upper case`);
    let checked = 0;
    for (let i = at; i < sig.length; i++) {
      for (const c of codes) {
        const ch = String.fromCharCode(c);
        const variant = sig.slice(0, i) + ch + sig.slice(i + 1);
        let want = Errors.BAD_SIGNATURE;
        if (ch === sig[i] || (name === 'legacy' && ch.toLowerCase() === sig[i])) want = null;
        else if (!HEX.test(ch) || (name === 'keyed' && ch !== ch.toLowerCase())) want = Errors.MALFORMED;
        assert.strictEqual(s.check(now, payload, variant), want, `${name}: digit ${i - at} set to 0x${c.toString(16)}`);
        checked++;
      }
    }
    assert.strictEqual(checked, 64 * codes.length);
  }
});

test('every character before the MAC is checked on its own: prefix, key id, dot', () => {
  const { s, now, payload } = oneKey('node prefix test');
  const sig = s.sign(now, payload);
  const idEnd = 'ks1.'.length + 16;
  // Codes beyond one byte whose low byte is the right character, which a byte-wise write
  // would alias, and the same character in the other case.
  const codes = [...Array(256).keys(), 0x130, 0x161, 0x12e, 0x3030, 0xff10];
  let checked = 0;
  for (let i = 0; i <= idEnd; i++) {
    for (const c of codes) {
      const ch = String.fromCharCode(c);
      const variant = sig.slice(0, i) + ch + sig.slice(i + 1);
      let want = Errors.MALFORMED; // prefix 'ks1.' and the dot after the id: exactly these
      if (ch === sig[i]) want = null;
      else if (i >= 4 && i < idEnd) want = Errors.UNKNOWN_KEY; // the id names no key: exact, lower case
      assert.strictEqual(s.check(now, payload, variant), want, `character ${i} set to 0x${c.toString(16)}`);
      checked++;
    }
  }
  assert.strictEqual(checked, (idEnd + 1) * codes.length);
});

test('a signature naming an unknown or expired key is malformed first if its digits are', () => {
  const a = crypto.createHash('sha256').update('a').digest();
  const b = crypto.createHash('sha256').update('b').digest();
  const now = Date.parse('2026-12-03T12:00:00Z');
  const r = parse(JSON.stringify({
    version: 1, generation: 2, rotated_at: '2026-12-03T12:00:00Z',
    keys: [
      { id: keyId(a), secret: a.toString('base64'), not_before: '2026-12-03T10:00:00Z', not_after: '2026-12-03T11:00:00Z' },
      { id: keyId(b), secret: b.toString('base64'), not_before: '2026-12-03T10:30:00Z' },
    ],
  }));
  const s = new Signer(r);
  const old = new Signer(r).sign(Date.parse('2026-12-03T10:15:00Z'), 'p');
  assert.strictEqual(s.check(now, 'p', old), Errors.EXPIRED_KEY);
  assert.strictEqual(s.check(now, 'p', old.slice(0, -1) + 'g'), Errors.MALFORMED);
  const unknown = `ks1.${'0'.repeat(16)}.${'a'.repeat(64)}`;
  assert.strictEqual(s.check(now, 'p', unknown), Errors.UNKNOWN_KEY);
  assert.strictEqual(s.check(now, 'p', unknown.slice(0, -1) + 'z'), Errors.MALFORMED);
  // A key id that shares its first digit with a key's, then differs.
  const near = `ks1.${keyId(b)[0]}${keyId(b)[1] === '0' ? '1' : '0'}${keyId(b).slice(2)}.${'a'.repeat(64)}`;
  assert.strictEqual(s.check(now, 'p', near), Errors.UNKNOWN_KEY);
});
