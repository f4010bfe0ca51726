'use strict';
// Sign and verify throughput next to raw crypto.createHmac, same payloads, same run:
//   node reload/node/test/bench.js
// Through a handle with the default clock (it decides from a view its timer refreshes),
// and through a Signer given Date.now() on each call (what a handle with a clock option does).
const crypto = require('crypto');
const fs = require('fs');
const path = require('path');
const keysync = require('..');
const { parse, Signer, Usage, keyId, rawMac, asciiBytes, macMatches, SIG_BYTES } = require('../keyring');
const { tmpDir } = require('./helpers');

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

function bench(fn, ms) {
  let n = 0;
  const start = process.hrtime.bigint();
  const end = start + BigInt(ms) * 1000000n;
  let now;
  do {
    for (let i = 0; i < 1000; i++) fn();
    n += 1000;
    now = process.hrtime.bigint();
  } while (now < end);
  return Number(now - start) / n; // ns per call
}

// floor is what any keyed verification must do at least: the HMAC, and a comparison of its
// 32 bytes with the signature's 64 digits of either case that reads them all (the
// library's own: the signature copied into bytes once, then four digits against each
// character of a UTF-16 digest), without parsing the signature, finding its key or
// counting. The difference between it and "verify keyed" is the rest of the library's cost.
function floor(secret, payload, sig) {
  return asciiBytes(sig) && macMatches(rawMac(secret, payload), SIG_BYTES, sig.length - 64) === 1;
}

async function main() {
  const text = doc();
  const dir = tmpDir();
  const file = path.join(dir, 'keys.json');
  fs.writeFileSync(file, text);
  const k = await keysync.open(file, { signal: null, watch: false, pollIntervalMs: 0 });
  const s = new Signer(parse(text), new Usage()); // counting, as a handle does
  const current = s.signingKey(Date.now()).secret;
  // The machine's speed drifts by several per cent over seconds (a shared VM), so the
  // cases of a size run in short interleaved rounds, each round in another order, and a
  // case's ratio is the median over rounds of its time over raw's time in the same round.
  const ROUNDS = 21;
  const ROUND_MS = 150;
  const out = [];
  for (const size of [64, 1024]) {
    const payload = crypto.randomBytes(size);
    // Signatures arrive in headers or message fields: flat strings, not the concatenation
    // sign returns (which V8 keeps as a rope until it is read).
    const sig = Buffer.from(k.sign(payload)).toString();
    const legacy = Buffer.from(s.signLegacy(Date.now(), payload)).toString();
    if (k.check(payload, sig) !== null || k.check(payload, legacy) !== null || s.check(Date.now(), payload, sig) !== null || !floor(current, payload, sig)) {
      throw new Error('the benchmark signatures do not verify');
    }
    const cases = [
      [`raw createHmac ${size}B`, () => crypto.createHmac('sha256', current).update(payload).digest('hex')],
      [`floor: HMAC + compare ${size}B`, () => floor(current, payload, sig)],
      [`sign ${size}B`, () => k.sign(payload)],
      [`verify keyed ${size}B`, () => k.check(payload, sig)],
      [`verify legacy ${size}B (3 keys)`, () => k.check(payload, legacy)],
      [`Signer sign ${size}B, Date.now()`, () => s.sign(Date.now(), payload)],
      [`Signer verify ${size}B, Date.now()`, () => s.check(Date.now(), payload, sig)],
    ];
    for (const [, fn] of cases) for (let i = 0; i < 20000; i++) fn(); // warm up
    const runs = cases.map(() => []);
    for (let round = 0; round < ROUNDS; round++) {
      // Each round starts with another case: none always runs right after the same one.
      for (let j = 0; j < cases.length; j++) {
        const i = (round + j) % cases.length;
        runs[i].push(bench(cases[i][1], ROUND_MS));
      }
    }
    const median = (xs) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)];
    cases.forEach(([name], i) => out.push({ name, nsPerOp: median(runs[i]), ratio: median(runs[i].map((t, r) => t / runs[0][r])) }));
  }
  console.log(`node ${process.version} (${ROUNDS} interleaved rounds: median ns per call, median ratio to raw createHmac + hex in the same round)`);
  for (const row of out) {
    console.log(`${row.name.padEnd(34)} ${row.nsPerOp.toFixed(0).padStart(7)} ns/op  ${row.ratio.toFixed(3)}x`);
  }
  k.close();
  fs.rmSync(dir, { recursive: true, force: true });
}

main().catch((e) => { console.error(e); process.exit(1); });
