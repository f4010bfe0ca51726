'use strict';
// Real Node processes using the library: a real SIGHUP, and the directory watch alone.
const test = require('node:test');
const assert = require('node:assert');
const { fork } = require('child_process');
const path = require('path');
const fs = require('fs');
const { tmpDir, makeDoc, writeAtomic, waitFor } = require('./helpers');

function startApp(file, options) {
  const child = fork(path.join(__dirname, 'fixtures', 'app.js'), [file, JSON.stringify(options)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const seen = [];
  child.on('message', (m) => seen.push(m));
  return { child, seen, generation: () => Math.max(0, ...seen.map((m) => m.status.generation)) };
}

test('a real SIGHUP makes a real process reload (no watch, no polling)', async (t) => {
  const dir = tmpDir();
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'keys.json');
  writeAtomic(file, makeDoc(1));
  const app = startApp(file, { watch: false, pollIntervalMs: 0 });
  t.after(() => app.child.kill('SIGKILL'));
  await waitFor('the app to start', () => app.seen.find((m) => m.type === 'ready'));
  writeAtomic(file, makeDoc(2));
  await new Promise((r) => setTimeout(r, 100));
  assert.strictEqual(app.generation(), 1, 'reloaded without a signal');
  app.child.kill('SIGHUP');
  await waitFor('generation 2 after SIGHUP', () => app.generation() === 2);
  app.child.send('status');
  await waitFor('a status answer', () => app.seen.find((m) => m.type === 'status' && m.status.generation === 2));
  assert.strictEqual(app.child.exitCode, null, 'SIGHUP killed the process');
});

test('the directory watch alone reloads a real process (no signal handler)', async (t) => {
  const dir = tmpDir();
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'keys.json');
  writeAtomic(file, makeDoc(1));
  const app = startApp(file, { signal: null, pollIntervalMs: 0 });
  t.after(() => app.child.kill('SIGKILL'));
  await waitFor('the app to start', () => app.seen.find((m) => m.type === 'ready'));
  for (let g = 2; g <= 5; g++) {
    writeAtomic(file, makeDoc(g));
    await waitFor(`generation ${g} by the watch`, () => app.generation() === g);
  }
});
