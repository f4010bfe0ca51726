'use strict';
// Per-key usage through a handle: counts carried over a reload, a previous key draining to
// zero, the status's usage field, and metricsText in the Prometheus text format with the
// Go reloadprom collector's series.
const test = require('node:test');
const assert = require('node:assert');
const path = require('path');
const crypto = require('crypto');
const { open, keyId } = require('..');
const { tmpDir, makeDoc, writeAtomic } = require('./helpers');

test('a previous key drains to zero uses; metricsText has the Go series', async () => {
  const dir = tmpDir();
  const file = path.join(dir, 'keys.json');
  let now = Date.parse('2026-12-01T12:00:00Z');
  const a = crypto.randomBytes(32);
  const b = crypto.randomBytes(32);
  writeAtomic(file, makeDoc(1, [{ secret: a, notBefore: now - 60000 }]));
  const keys = await open(file, { signal: null, watch: false, pollIntervalMs: 0, clock: () => now });
  try {
    const queue = [];
    for (let i = 0; i < 10; i++) queue.push([`event ${i}`, keys.sign(`event ${i}`)]);
    for (const [p, s] of queue.slice(0, 4)) assert.strictEqual(keys.check(p, s), null);

    // The rotation: b signs from now + 1 min, a verifies for 15 min more.
    writeAtomic(file, makeDoc(2, [
      { secret: a, notBefore: now - 60000, notAfter: now + 16 * 60000 },
      { secret: b, notBefore: now + 60000 },
    ]));
    assert.strictEqual(keys.reload(), null);
    now += 2 * 60000;
    for (const [p, s] of queue.slice(4)) assert.strictEqual(keys.check(p, s), null);
    const count = (id, state, result) => {
      const c = keys.status().usage.verifications.find((v) => v.key_id === id && v.state === state && v.result === result);
      return c ? c.count : 0;
    };
    const drained = count(keyId(a), 'previous', 'ok');
    assert.strictEqual(drained, 6);
    assert.strictEqual(count(keyId(a), 'current', 'ok'), 4, 'counts carried over the reload');
    for (let i = 0; i < 5; i++) {
      const s = keys.sign(`new ${i}`);
      assert.ok(s.includes(keyId(b)));
      assert.strictEqual(keys.check(`new ${i}`, s), null);
      now += 60000;
    }
    assert.strictEqual(count(keyId(a), 'previous', 'ok'), drained, 'the previous key no longer verifies anything');
    now += 15 * 60000;
    assert.strictEqual(keys.check(queue[0][0], queue[0][1]), 'expired_key');
    assert.strictEqual(count(keyId(a), 'expired', 'expired_key'), 1);
    assert.strictEqual(keys.check('x', 'ks1.0000000000000000.' + '0'.repeat(64)), 'unknown_key');
    assert.strictEqual(count('', '', 'unknown_key'), 1);

    const text = keys.metricsText();
    for (const name of ['keysync_app_verifications_total', 'keysync_app_signatures_total', 'keysync_app_key_last_verified_timestamp_seconds']) {
      assert.match(text, new RegExp(`^# TYPE ${name} (counter|gauge)$`, 'm'), name);
    }
    assert.match(text, new RegExp(`^keysync_app_verifications_total\\{key_id="${keyId(a)}",state="previous",result="ok"\\} 6$`, 'm'));
    assert.match(text, new RegExp(`^keysync_app_signatures_total\\{key_id="${keyId(a)}"\\} 10$`, 'm'));
    assert.match(text, /^keysync_app_verifications_total\{key_id="",state="",result="unknown_key"\} 1$/m);
    // Every sample line is NAME{LABELS} VALUE.
    for (const line of text.trim().split('\n')) {
      if (!line.startsWith('#')) assert.match(line, /^keysync_app_[a-z_]+\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\} [0-9.e+]+$/, line);
    }
    assert.ok(!text.includes(a.toString('hex')) && !text.includes(a.toString('base64')), 'no secret in the metrics');
  } finally {
    keys.close();
  }
});
