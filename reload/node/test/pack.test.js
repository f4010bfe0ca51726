'use strict';
// Issue 33: `npm install ./reload/node` makes a symlink into the checkout, which a container
// build (a multi-stage COPY, a .dockerignore) breaks. The README says `npm pack`: the
// tarball must install into a project of its own, offline, and load there with its types.
const { test } = require('node:test');
const assert = require('node:assert');
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

test('npm pack makes a tarball that installs and loads in another project', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'keysync-pack-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const env = { ...process.env, npm_config_cache: path.join(dir, 'npm-cache'), npm_config_update_notifier: 'false' };
  const out = execFileSync('npm', ['pack', '--pack-destination', dir, '--json'], { cwd: path.join(__dirname, '..'), env }).toString();
  const [{ filename, files }] = JSON.parse(out);
  const names = files.map((f) => f.path).sort();
  assert.deepStrictEqual(names, ['README.md', 'index.d.ts', 'index.js', 'keyring.js', 'package.json']);
  const app = path.join(dir, 'app');
  fs.mkdirSync(app);
  fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true }));
  execFileSync('npm', ['install', '--offline', '--no-audit', '--no-fund', path.join(dir, filename)], { cwd: app, env, stdio: 'pipe' });
  const installed = path.join(app, 'node_modules', '@sigil-dna', 'keysync-reload');
  assert.ok(!fs.lstatSync(installed).isSymbolicLink(), 'installed as a link into the checkout');
  const loaded = execFileSync(process.execPath, ['-e', "const k = require('@sigil-dna/keysync-reload'); process.stdout.write(typeof k.createEventSigner)"], { cwd: app }).toString();
  assert.strictEqual(loaded, 'function');
  assert.ok(fs.existsSync(path.join(installed, 'index.d.ts')));
});
