'use strict';
// The shared test vectors of keyring/testdata/vectors.json: the Go library passes the
// same file (cd keyring && go test -run TestVectors).
const test = require('node:test');
const assert = require('node:assert');
const fs = require('fs');
const path = require('path');
const { parse, keyId, Signer, Usage, KeyringError, parseTime, Errors, States, Results, USAGE_STATES } = require('../keyring');

const vectors = JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', '..', 'keyring', 'testdata', 'vectors.json'), 'utf8'));
const at = (s) => parseTime('at', s);

test('the vectors file has every kind of case', () => {
  assert.ok(vectors.keyrings.length >= 7);
  assert.ok(vectors.rejected.length >= 36);
  assert.ok(vectors.keyrings.some((kv) => kv.states.some((st) => st.states.includes('held'))), 'a held key');
});

// The words of states, results and error codes are defined once, in Go (keyring.Vocabulary);
// the vectors carry them and this library's constants must be the same list.
test('the vocabulary is the Go library\'s', () => {
  const v = vectors.vocabulary;
  const { LEGACY, ...keyStates } = States;
  assert.deepStrictEqual(Object.values(keyStates), v.states);
  assert.deepStrictEqual([LEGACY], v.legacy_state);
  assert.deepStrictEqual([...USAGE_STATES], v.usage_states);
  assert.deepStrictEqual(Object.values(Results), v.results);
  assert.deepStrictEqual(Object.values(Errors), v.error_codes);
});

test('key ids', () => {
  for (const v of vectors.key_ids) assert.strictEqual(keyId(Buffer.from(v.secret_hex, 'hex')), v.id);
});

for (const kv of vectors.keyrings) {
  test(`keyring: ${kv.name}`, () => {
    const r = parse(kv.document);
    const s = new Signer(r);
    assert.ok(kv.states.length > 0);
    for (const st of kv.states) {
      assert.deepStrictEqual(r.keys.map((k) => s.stateAt(k, at(st.at))), st.states, `states at ${st.at}`);
    }
    for (const sv of kv.sign) {
      if (sv.error) {
        assert.throws(() => s.sign(at(sv.at), sv.payload), (e) => e.code === sv.error);
        continue;
      }
      assert.strictEqual(s.sign(at(sv.at), sv.payload), sv.signature, `sign at ${sv.at} ${JSON.stringify(sv.payload)}`);
      if (sv.legacy_error) assert.throws(() => s.signLegacy(at(sv.at), sv.payload), (e) => e.code === sv.legacy_error);
      else assert.strictEqual(s.signLegacy(at(sv.at), sv.payload), sv.legacy);
      assert.strictEqual(s.sign(at(sv.at), Buffer.from(sv.payload, 'utf8')), sv.signature, 'Buffer payload');
    }
    for (const vv of kv.verify) {
      assert.strictEqual(s.check(at(vv.at), vv.payload, vv.signature), vv.error || null, vv.name);
    }
    // The same counts as the Go library for the same cases in the same order.
    const u = new Usage();
    const us = new Signer(r, u);
    for (const sv of kv.sign) {
      try { us.sign(at(sv.at), sv.payload); } catch { /* no signing key: nothing counted */ }
      try { us.signLegacy(at(sv.at), sv.payload); } catch { /* idem */ }
    }
    for (const vv of kv.verify) us.check(at(vv.at), vv.payload, vv.signature);
    assert.deepStrictEqual(u.snapshot(), kv.usage, 'usage after the cases');
  });
}

for (const rv of vectors.rejected) {
  test(`rejected: ${rv.name}`, () => {
    assert.throws(() => parse(rv.document), (e) => {
      assert.ok(e instanceof KeyringError, `${e}`);
      assert.strictEqual(e.field, rv.field, e.message);
      return true;
    });
  });
}
