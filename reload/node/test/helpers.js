'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const crypto = require('crypto');
const { keyId } = require('../keyring');

function tmpDir() {
  const base = fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir(); // in memory, like an emptyDir
  return fs.mkdtempSync(path.join(base, 'keysync-node-'));
}

/** makeDoc builds a valid keyring document with fresh secrets. */
function makeDoc(generation, keys = [{ notBefore: Date.now() - 60000 }]) {
  return JSON.stringify({
    version: 1, generation, rotated_at: new Date().toISOString(), rotated_by: 'node test',
    keys: keys.map((k) => {
      const secret = k.secret || crypto.randomBytes(32);
      const out = { id: keyId(secret), secret: secret.toString('base64'), not_before: new Date(k.notBefore).toISOString() };
      if (k.notAfter) out.not_after = new Date(k.notAfter).toISOString();
      return out;
    }),
  });
}

/** writeAtomic replaces file by rename, as the sidecar does. */
function writeAtomic(file, data) {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.tmp-${process.pid}-${Date.now()}`);
  fs.writeFileSync(tmp, data, { mode: 0o440 });
  fs.renameSync(tmp, file);
}

function waitFor(what, cond, timeoutMs = 10000) {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const tick = () => {
      const v = cond();
      if (v) return resolve(v);
      if (Date.now() > deadline) return reject(new Error(`timed out waiting for ${what}`));
      setTimeout(tick, 10);
    };
    tick();
  });
}

module.exports = { tmpDir, makeDoc, writeAtomic, waitFor };
