'use strict';
// Sign and verify throughput next to raw crypto.createHmac, same payloads, same run:
//   node reload/node/test/bench.js
const crypto = require('crypto');
const { parse, Signer, Usage, keyId } = require('../keyring');

function doc() {
  const now = Date.now();
  const keys = [now - 3600000, now - 60000, now + 60000].map((nb, i) => {
    const s = crypto.randomBytes(32);
    const k = { id: keyId(s), secret: s.toString('base64'), not_before: new Date(nb).toISOString() };
    if (i < 2) k.not_after = new Date(now + 3600000).toISOString();
    return k;
  });
  return JSON.stringify({ version: 1, generation: 1, rotated_at: new Date(now).toISOString(), keys });
}

function bench(name, fn, ms = 1500) {
  for (let i = 0; i < 20000; i++) fn(); // warm up
  let n = 0;
  const start = process.hrtime.bigint();
  const end = start + BigInt(ms) * 1000000n;
  let now;
  do {
    for (let i = 0; i < 1000; i++) fn();
    n += 1000;
    now = process.hrtime.bigint();
  } while (now < end);
  const secs = Number(now - start) / 1e9;
  return { name, opsPerSec: Math.round(n / secs), nsPerOp: Math.round((secs * 1e9) / n) };
}

const r = parse(doc());
const s = new Signer(r, new Usage()); // counting, as a handle does
const current = s.signingKey(Date.now()).secret;
const rows = [];
for (const size of [64, 1024]) {
  const payload = crypto.randomBytes(size);
  const sig = s.sign(Date.now(), payload);
  const legacy = s.signLegacy(Date.now(), payload);
  rows.push(bench(`raw createHmac ${size}B`, () => crypto.createHmac('sha256', current).update(payload).digest('hex')));
  rows.push(bench(`sign ${size}B`, () => s.sign(Date.now(), payload)));
  rows.push(bench(`verify keyed ${size}B`, () => s.check(Date.now(), payload, sig)));
  rows.push(bench(`verify legacy ${size}B (3 keys)`, () => s.check(Date.now(), payload, legacy)));
}
console.log(`node ${process.version}`);
for (const row of rows) console.log(`${row.name.padEnd(32)} ${String(row.opsPerSec).padStart(9)} ops/s ${String(row.nsPerOp).padStart(7)} ns/op`);
