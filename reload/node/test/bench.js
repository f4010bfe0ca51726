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
const ROUNDS = 5; // each row is the median of 5 rounds, the rows of a size interleaved
const out = [];
for (const size of [64, 1024]) {
  const payload = crypto.randomBytes(size);
  // Signatures arrive in headers or message fields: flat strings, not the concatenation
  // sign returns (which V8 keeps as a rope until it is read).
  const sig = Buffer.from(s.sign(Date.now(), payload)).toString();
  const legacy = Buffer.from(s.signLegacy(Date.now(), payload)).toString();
  const cases = [
    [`raw createHmac ${size}B`, () => crypto.createHmac('sha256', current).update(payload).digest('hex')],
    [`sign ${size}B`, () => s.sign(Date.now(), payload)],
    [`verify keyed ${size}B`, () => s.check(Date.now(), payload, sig)],
    [`verify legacy ${size}B (3 keys)`, () => s.check(Date.now(), payload, legacy)],
  ];
  const runs = cases.map(() => []);
  for (let round = 0; round < ROUNDS; round++) {
    cases.forEach(([name, fn], i) => runs[i].push(bench(name, fn, 600)));
  }
  const median = (xs) => xs.map((x) => x.nsPerOp).sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const raw = median(runs[0]);
  cases.forEach(([name], i) => out.push({ name, nsPerOp: median(runs[i]), ratio: median(runs[i]) / raw }));
}
console.log(`node ${process.version} (medians of ${ROUNDS} interleaved rounds; ratio to raw createHmac + hex)`);
for (const row of out) {
  console.log(`${row.name.padEnd(32)} ${String(row.nsPerOp).padStart(7)} ns/op  ${row.ratio.toFixed(2)}x`);
}
