'use strict';
// The app-status document is defined once: docs/app-status.schema.json, which Go's
// reload.Status follows (reload/schema_test.go). This library's status() must be the same
// document, field for field; the sidecar's --confirm-url reads either.
const test = require('node:test');
const assert = require('node:assert');
const fs = require('fs');
const path = require('path');
const keysync = require('..');
const { tmpDir, makeDoc, writeAtomic } = require('./helpers');

const schema = JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', '..', 'docs', 'app-status.schema.json'), 'utf8'));

/** check applies the part of JSON Schema the file uses, as reload/schema_test.go does. */
function check(where, v, s, errs = []) {
  if (s.enum && !s.enum.includes(v)) errs.push(`${where}: ${JSON.stringify(v)} is not one of ${s.enum}`);
  switch (s.type) {
    case 'object':
      if (typeof v !== 'object' || v === null || Array.isArray(v)) { errs.push(`${where}: not an object`); break; }
      for (const r of s.required || []) if (!(r in v)) errs.push(`${where}: required ${r} missing`);
      for (const [name, fv] of Object.entries(v)) {
        if (!(name in (s.properties || {}))) {
          if (s.additionalProperties === false) errs.push(`${where}: ${name} is not in the schema`);
          continue;
        }
        check(`${where}.${name}`, fv, s.properties[name], errs);
      }
      break;
    case 'array':
      if (!Array.isArray(v)) { errs.push(`${where}: not an array`); break; }
      v.forEach((e, i) => check(`${where}[${i}]`, e, s.items, errs));
      break;
    case 'string':
      if (typeof v !== 'string') errs.push(`${where}: not a string`);
      break;
    case 'integer':
      if (!Number.isInteger(v)) errs.push(`${where}: not an integer`);
      else if (s.minimum !== undefined && v < s.minimum) errs.push(`${where}: ${v} is below ${s.minimum}`);
      break;
    default:
  }
  return errs;
}

test('status() is the document of docs/app-status.schema.json, with every field', async (t) => {
  const dir = tmpDir();
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'keys.json');
  const doc = JSON.parse(makeDoc(3, [{ notBefore: Date.now() - 60000 }, { notBefore: Date.now() - 1000 }]));
  doc.reason = 'every field';
  writeAtomic(file, JSON.stringify(doc));
  const k = await keysync.open(file, { signal: null, watch: false, pollIntervalMs: 0 });
  t.after(() => k.close());
  const sig = k.sign('event');
  k.verify('event', sig);
  k.verify('other', sig);
  k.verify('event', 'v1.ffffffffffffffff.00');
  fs.writeFileSync(file, '{');
  assert.ok(k.reload(), 'a broken file reloaded');
  const st = JSON.parse(JSON.stringify(k.status())); // what statusHandler() sends
  assert.deepStrictEqual(check('status', st, schema), []);
  assert.deepStrictEqual(Object.keys(schema.properties).filter((p) => !(p in st)), [], 'schema fields the status lacks');
  assert.ok(st.usage.verifications.length >= 3, JSON.stringify(st.usage));
});

test('the schema check refuses what differs', () => {
  const errs = check('status', { path: 1, generation: -1, extra: true, usage: { verifications: [{ key_id: '', state: 'odd', result: 'ok', count: 1 }], keys: [] } }, schema);
  for (const want of ['status.path: not a string', 'status.generation: -1 is below 0', 'extra is not in the schema', 'required key_ids missing', '"odd" is not one of']) {
    assert.ok(errs.some((e) => e.includes(want)), `${want} in ${errs}`);
  }
});
