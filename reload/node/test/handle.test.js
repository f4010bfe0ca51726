'use strict';
const test = require('node:test');
const assert = require('node:assert');
const fs = require('fs');
const path = require('path');
const http = require('http');
const crypto = require('crypto');
const keysync = require('..');
const { tmpDir, makeDoc, writeAtomic, waitFor } = require('./helpers');

function setup(t) {
  const dir = tmpDir();
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return path.join(dir, 'keys.json');
}

test('open waits for the first valid file', async (t) => {
  const file = setup(t);
  setTimeout(() => fs.writeFileSync(file, 'not yet'), 50);
  setTimeout(() => writeAtomic(file, makeDoc(1)), 250);
  const k = await keysync.open(file, { signal: null });
  t.after(() => k.close());
  assert.strictEqual(k.status().generation, 1);
  assert.strictEqual(k.status().errors, 0);
});

test('open gives up at its deadline naming the file', async (t) => {
  const file = setup(t);
  await assert.rejects(keysync.open(file, { signal: null, openTimeoutMs: 200 }), (e) => e.message.includes(file));
});

test('a bad or vanished file keeps the last good keyring, and no secret is logged', async (t) => {
  const file = setup(t);
  const secret = crypto.randomBytes(32);
  writeAtomic(file, makeDoc(1, [{ notBefore: Date.now() - 1000, secret }]));
  const logs = [];
  const logger = { info: (o) => logs.push(JSON.stringify(o)), warn: (o) => logs.push(JSON.stringify(o)) };
  const k = await keysync.open(file, { signal: null, watch: false, pollIntervalMs: 0, logger });
  t.after(() => k.close());
  const sig = k.sign('event');
  const breakers = {
    'corrupt JSON': () => fs.writeFileSync(file, '{"version":1,'),
    'a short secret': () => fs.writeFileSync(file, makeDoc(2, [{ notBefore: Date.now(), secret: crypto.randomBytes(16) }])),
    'an empty file': () => fs.writeFileSync(file, ''),
    'the file vanished': () => fs.rmSync(file, { force: true }),
    'a file over 64 KiB': () => fs.writeFileSync(file, Buffer.alloc(70000, 32)),
  };
  let n = 0;
  for (const [name, breakIt] of Object.entries(breakers)) {
    fs.rmSync(file, { force: true });
    breakIt();
    const err = k.reload();
    n++;
    assert.ok(err && err.message.includes(file), `${name}: ${err}`);
    assert.strictEqual(k.status().generation, 1, name);
    assert.strictEqual(k.status().errors, n, name);
    assert.ok(k.verify('event', sig), `${name}: old keyring lost`);
  }
  const all = logs.join('\n');
  for (const enc of [secret.toString('hex'), secret.toString('base64'), secret.toString('base64url')]) assert.ok(!all.includes(enc), 'secret in logs');
  assert.ok(all.includes('reload_failed'));
});

test('close removes every listener and timer, and leaves other SIGHUP listeners alone', async (t) => {
  const file = setup(t);
  writeAtomic(file, makeDoc(1));
  const other = () => {};
  process.on('SIGHUP', other);
  t.after(() => process.removeListener('SIGHUP', other));
  const before = process.listenerCount('SIGHUP');
  const k = await keysync.open(file);
  assert.strictEqual(process.listenerCount('SIGHUP'), before + 1);
  assert.ok(process.listeners('SIGHUP').includes(other), 'another listener was replaced');
  k.close();
  k.close();
  assert.strictEqual(process.listenerCount('SIGHUP'), before);
  assert.strictEqual(k.watcher, null);
  assert.strictEqual(k.viewTimer, null);
  // A closed handle still signs with its last keyring.
  assert.ok(k.verify('x', k.sign('x')));
});

test('pending keys verify but never sign; expired keys are refused by time', async (t) => {
  const file = setup(t);
  const now = Date.parse('2026-11-27T12:00:00Z');
  let clock = now;
  const a = crypto.randomBytes(32);
  const b = crypto.randomBytes(32);
  writeAtomic(file, makeDoc(2, [
    { notBefore: now - 3600000, notAfter: now + 60000 + 900000, secret: a },
    { notBefore: now + 60000, secret: b },
  ]));
  const k = await keysync.open(file, { signal: null, clock: () => clock });
  t.after(() => k.close());
  const sigA = k.sign('p');
  assert.ok(sigA.includes(keysync.keyId(a)), 'a pending key signed');
  clock = now + 60000;
  assert.ok(k.sign('p').includes(keysync.keyId(b)), 'no switch at not_before');
  assert.ok(k.verify('p', sigA));
  clock = now + 60000 + 900000;
  assert.strictEqual(k.check('p', sigA), keysync.Errors.EXPIRED_KEY);
});

test('the default handle meets each boundary on the real clock, without a reload', async (t) => {
  const file = setup(t);
  const now = Date.now();
  const a = crypto.randomBytes(32);
  const b = crypto.randomBytes(32);
  const activates = now + 1500;
  const expires = now + 3000;
  writeAtomic(file, makeDoc(2, [
    { notBefore: now - 3600000, notAfter: expires, secret: a },
    { notBefore: activates, secret: b },
  ]));
  const k = await keysync.open(file, { signal: null, watch: false, pollIntervalMs: 0 });
  t.after(() => k.close());
  assert.notStrictEqual(k.live, null, 'a default handle decides from its view');
  const oldSig = k.sign('p');
  assert.ok(oldSig.includes(keysync.keyId(a)), `signed ${oldSig} before the activation`);
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms)); // the view's timer runs meanwhile
  const deadline = Date.now() + 30000;
  let switched = false;
  let refused = false;
  while (!(switched && refused) && Date.now() < deadline) {
    const start = Date.now();
    const sig = k.sign('p');
    const code = k.check('p', oldSig);
    const end = Date.now();
    if (sig.includes(keysync.keyId(b))) {
      assert.ok(end >= activates, `signed with the new key at ${end}, before its activation at ${activates}`);
      switched = true;
    }
    if (code === null) {
      assert.ok(!refused, `the old key verified at ${start}, after it had been refused`);
    } else {
      assert.strictEqual(code, keysync.Errors.EXPIRED_KEY);
      assert.ok(end >= expires, `the old key refused at ${end}, before its end at ${expires}`);
      refused = true;
    }
    await sleep(1);
  }
  assert.ok(switched && refused, `30 s after the boundaries: new key signing ${switched}, old key refused ${refused}`);
  assert.strictEqual(k.status().reloads, 1, 'the boundaries must be met without a reload');

  // After close nothing refreshes the view: the handle reads the clock per call.
  const file2 = path.join(path.dirname(file), 'keys2.json');
  const end2 = Date.now() + 300;
  writeAtomic(file2, makeDoc(3, [{ notBefore: Date.now() - 1000, notAfter: end2, secret: a }, { notBefore: Date.now() + 50, secret: b }]));
  const k2 = await keysync.open(file2, { signal: null, watch: false, pollIntervalMs: 0 });
  const oldSig2 = k2.sign('p');
  k2.close();
  while (Date.now() < end2) await sleep(10);
  assert.strictEqual(k2.check('p', oldSig2), keysync.Errors.EXPIRED_KEY, 'after close the expired key verified');
});

test('createEventSigner is a drop-in with sign, verify and reloadSecret', async (t) => {
  const file = setup(t);
  const legacySecret = Buffer.from(crypto.randomBytes(32).toString('hex')); // like SPIRAL_EVENT_SECRET
  writeAtomic(file, makeDoc(1, [{ notBefore: Date.now() - 1000, secret: legacySecret }]));
  const signer = keysync.createEventSigner(file, { signal: null, legacySignatures: true });
  assert.throws(() => signer.sign('x'), /not loaded yet/);
  await signer.ready;
  t.after(() => signer.close());
  const sig = signer.sign('payload');
  assert.strictEqual(sig, crypto.createHmac('sha256', legacySecret).update('payload').digest('hex'), 'legacy form differs from eventSign');
  assert.ok(signer.verify('payload', sig));
  writeAtomic(file, makeDoc(2));
  signer.reloadSecret();
  assert.strictEqual(signer.status().generation, 2);
});

// Issue 33: no example served the status for the sidecar's --confirm-url from createEventSigner.
test('createEventSigner serves the status for --confirm-url, 503 until loaded', async (t) => {
  const file = setup(t);
  const signer = keysync.createEventSigner(file, { signal: null, openTimeoutMs: 5000 });
  t.after(() => signer.close());
  const srv = http.createServer(signer.statusHandler());
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  t.after(() => srv.close());
  const get = () => new Promise((resolve, reject) => {
    http.get(`http://127.0.0.1:${srv.address().port}/keysync/status`, (res) => {
      let data = '';
      res.on('data', (c) => { data += c; });
      res.on('end', () => resolve({ code: res.statusCode, body: data }));
    }).on('error', reject);
  });
  assert.strictEqual((await get()).code, 503);
  writeAtomic(file, makeDoc(3));
  await signer.ready;
  const { code, body } = await get();
  assert.strictEqual(code, 200);
  assert.strictEqual(JSON.parse(body).generation, 3);
});

test('the status handler serves JSON without secrets', async (t) => {
  const file = setup(t);
  const secret = crypto.randomBytes(32);
  writeAtomic(file, makeDoc(7, [{ notBefore: Date.now() - 1000, secret }]));
  const k = await keysync.open(file, { signal: null });
  t.after(() => k.close());
  const srv = http.createServer(k.statusHandler());
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  t.after(() => srv.close());
  const body = await new Promise((resolve, reject) => {
    http.get(`http://127.0.0.1:${srv.address().port}/keysync/status`, (res) => {
      let data = '';
      res.on('data', (c) => { data += c; });
      res.on('end', () => resolve(data));
    }).on('error', reject);
  });
  const st = JSON.parse(body);
  assert.strictEqual(st.generation, 7);
  assert.deepStrictEqual(st.key_ids, [keysync.keyId(secret)]);
  assert.ok(!body.includes(secret.toString('base64')) && !body.includes(secret.toString('hex')));
});

test('a kubelet-style ..data symlink swap is seen by the watch', async (t) => {
  const file = setup(t);
  const dir = path.dirname(file);
  const publish = (n, doc) => {
    const ts = `..2026_11_27_${n}`;
    fs.mkdirSync(path.join(dir, ts));
    fs.writeFileSync(path.join(dir, ts, 'keys.json'), doc);
    fs.symlinkSync(ts, path.join(dir, '..data_tmp'));
    fs.renameSync(path.join(dir, '..data_tmp'), path.join(dir, '..data'));
    if (n === 1) fs.symlinkSync('..data/keys.json', file);
  };
  publish(1, makeDoc(1));
  const k = await keysync.open(file, { signal: null, pollIntervalMs: 0 });
  t.after(() => k.close());
  publish(2, makeDoc(2));
  await waitFor('generation 2', () => k.status().generation === 2);
});
