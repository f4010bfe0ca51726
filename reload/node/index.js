'use strict';
// keysync reload for Node.js: loads the keys file the keysync sidecar writes, reloads it on
// SIGHUP, on changes of its directory and on a slow periodic re-read, signs with the active
// key and verifies against every key valid now. The last good keyring is kept on errors.
// No runtime dependencies; Node 18+.
const fs = require('fs');
const path = require('path');
const { parse, keyId, isHeld, Signer, Usage, KeyringError, Errors, MAX_DOCUMENT_BYTES } = require('./keyring');

const DEFAULTS = Object.freeze({
  signal: 'SIGHUP',
  watch: true,
  pollIntervalMs: 60000,
  debounceMs: 20,
  openTimeoutMs: 60000,
  legacySignatures: false,
  clock: () => Date.now(),
  logger: null,
  onReload: null,
});
const OPEN_RETRY_MS = 100;
// VIEW_REFRESH_MS bounds how long the decisions sign and verify use go without a look at
// the clock: a step of the clock is noticed within it, and a key's last verification is
// recorded to it. Each boundary (a key activating or expiring) has a timer of its own.
const VIEW_REFRESH_MS = 1000;

function readBounded(file) {
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.alloc(MAX_DOCUMENT_BYTES + 1);
    let n = 0;
    for (;;) {
      const r = fs.readSync(fd, buf, n, buf.length - n, null);
      if (r === 0 || n + r >= buf.length) { n += r; break; }
      n += r;
    }
    return buf.subarray(0, n);
  } finally {
    fs.closeSync(fd);
  }
}

/** Keyring is a live handle on a keys file. Create it with open(). */
class Keyring {
  constructor(file, options) {
    this.path = path.resolve(file);
    this.options = { ...DEFAULTS, ...options };
    this.current = null; // { signer, raw, loadedAt }
    // With the default clock, sign and verify read no clock: they decide from live, the
    // current signer's decisions now ({ signer, view, sec }), which refreshView replaces
    // at each load, at each boundary and every VIEW_REFRESH_MS. null with a clock option
    // and after close(), when they read the clock per call.
    this.customClock = typeof (options && options.clock) === 'function';
    this.live = null;
    this.viewTimer = null;
    // Signatures and verifications per key over the handle's life, across reloads.
    this.usage = new Usage();
    this.reloads = 0;
    this.errors = 0;
    this.lastError = '';
    this.closed = false;
    this.watcher = null;
    this.pollTimer = null;
    this.debounceTimer = null;
    this.onSignal = () => this.reload();
  }

  log(level, msg, fields) {
    const l = this.options.logger;
    if (l && typeof l[level] === 'function') l[level]({ msg, path: this.path, ...fields });
  }

  /** reload reads the file now; on error the current keyring stays and the error is returned. */
  reload() {
    let raw;
    let keyring;
    try {
      try {
        raw = readBounded(this.path);
      } catch (err) {
        // A ..data symlink swap removes the old directory right after the new link is in
        // place: a read that resolved the old link meets a missing file. Read again.
        if (err.code !== 'ENOENT' || !this.current) throw err;
        raw = readBounded(this.path);
      }
      if (this.current && raw.equals(this.current.raw)) {
        this.lastError = '';
        return null;
      }
      keyring = parse(raw);
    } catch (err) {
      const msg = `reload: ${this.path}: ${err.message}`;
      if (this.current) {
        this.errors++;
        this.lastError = msg;
        this.log('warn', 'keys file rejected, keeping the last good keyring', { event: 'reload_failed', error: msg, generation: this.current.signer.keyring.generation });
      }
      const e = new Error(msg);
      e.field = err instanceof KeyringError ? err.field : undefined;
      e.code = err.code;
      return e;
    }
    const prev = this.current;
    if (prev && keyring.generation < prev.signer.keyring.generation) {
      this.log('warn', 'keys file generation went backwards', { generation: keyring.generation, previous_generation: prev.signer.keyring.generation });
    }
    this.current = { signer: new Signer(keyring, this.usage), raw, loadedAt: new Date() };
    this.refreshView();
    this.reloads++;
    this.lastError = '';
    const st = this.status();
    this.log('info', 'reloaded spiral event secret', { event: 'reload', generation: st.generation, key_ids: st.key_ids, signing_key_id: st.signing_key_id });
    if (this.options.onReload) this.options.onReload(st);
    return null;
  }

  /**
   * refreshView takes the current signer's decisions now and arms a timer for the next
   * boundary, or VIEW_REFRESH_MS if sooner. A timer runs at or after its instant (and an
   * early one re-arms), so a key starts signing and stops verifying at its boundary or as
   * late as the event loop runs the timer, the latency a reload on SIGHUP has too.
   */
  refreshView() {
    clearTimeout(this.viewTimer);
    this.viewTimer = null;
    if (this.customClock || this.closed || !this.current) {
      this.live = null;
      return;
    }
    const now = Date.now();
    const { signer } = this.current;
    const view = signer.decide(now);
    this.live = { signer, view, sec: Math.floor(now / 1000) };
    this.viewTimer = setTimeout(() => this.refreshView(), Math.max(1, Math.min(VIEW_REFRESH_MS, view.until - now)));
    this.viewTimer.unref();
  }

  start() {
    if (this.options.signal) process.on(this.options.signal, this.onSignal);
    if (this.options.watch) this.startWatch();
    if (this.options.pollIntervalMs > 0) {
      this.pollTimer = setInterval(() => this.reload(), this.options.pollIntervalMs);
      this.pollTimer.unref();
    }
  }

  startWatch() {
    if (this.watcher || this.closed) return;
    try {
      // The directory, not the file: renames and Kubernetes ..data swaps replace the inode.
      this.watcher = fs.watch(path.dirname(this.path), () => {
        clearTimeout(this.debounceTimer);
        this.debounceTimer = setTimeout(() => this.reload(), this.options.debounceMs);
        this.debounceTimer.unref();
      });
      this.watcher.on('error', (err) => {
        this.log('warn', 'file watch error, relying on signals and polling', { error: err.message });
        this.stopWatch();
      });
      this.watcher.unref();
    } catch (err) {
      this.watcher = null; // the directory may not exist yet; open() retries
    }
  }

  stopWatch() {
    if (this.watcher) this.watcher.close();
    this.watcher = null;
  }

  loaded() {
    if (!this.current) throw new Error('keysync: keys not loaded yet (await open() first)');
    return this.current.signer;
  }

  /** sign returns 'ks1.<key id>.<hex HMAC-SHA256>' (or the bare hex with legacySignatures). */
  sign(payload) {
    const l = this.live;
    if (l !== null) return this.options.legacySignatures ? l.signer.signLegacyIn(l.view, payload) : l.signer.signIn(l.view, payload);
    const s = this.loaded();
    const now = this.options.clock();
    return this.options.legacySignatures ? s.signLegacy(now, payload) : s.sign(now, payload);
  }

  /** check returns null if sig verifies now, else a code from Errors. */
  check(payload, signature) {
    const l = this.live;
    if (l !== null) return l.signer.checkIn(l.view, l.sec, payload, signature);
    return this.loaded().check(this.options.clock(), payload, signature);
  }

  /** verify reports whether sig verifies now: keyed against its key, bare hex against every valid key. */
  verify(payload, signature) {
    return this.check(payload, signature) === null;
  }

  /** status reports what is loaded; the same JSON fields as the Go library, no secrets. */
  status() {
    const st = { path: this.path, generation: 0, key_ids: [], signing_key_id: '', reloads: this.reloads, errors: this.errors, usage: this.usage.snapshot() };
    if (this.lastError) st.last_error = this.lastError;
    if (!this.current) return st;
    const r = this.current.signer.keyring;
    const sk = this.current.signer.signingKey(this.options.clock());
    return {
      ...st,
      generation: r.generation,
      key_ids: r.keys.map((k) => k.id),
      signing_key_id: sk ? sk.id : '',
      rotated_at: new Date(r.rotatedAt).toISOString(),
      rotated_by: r.rotatedBy || undefined,
      reason: r.reason || undefined,
      loaded_at: this.current.loadedAt.toISOString(),
    };
  }

  /**
   * metricsText: what each key signed and verified since open(), in the Prometheus text
   * format (the series of the Go library's reloadprom collector). Serve it on the app's
   * /metrics beside prom-client's output: res.end(await register.metrics() + keys.metricsText()).
   */
  metricsText() {
    return this.usage.metricsText();
  }

  /** statusHandler returns an http request listener serving status() as JSON. */
  statusHandler() {
    return (req, res) => {
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405, { Allow: 'GET, HEAD' });
        res.end('method not allowed\n');
        return;
      }
      res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' });
      res.end(req.method === 'HEAD' ? undefined : JSON.stringify(this.status()) + '\n');
    };
  }

  /** close removes the signal listener, the watch and every timer. Idempotent. */
  close() {
    if (this.closed) return;
    this.closed = true;
    if (this.options.signal) process.removeListener(this.options.signal, this.onSignal);
    this.stopWatch();
    clearInterval(this.pollTimer);
    clearTimeout(this.debounceTimer);
    this.refreshView(); // stops its timer: from now on the clock is read per call
  }
}

/**
 * open resolves to a Keyring once the file at `file` holds a valid keyring, retrying on
 * directory events and every 100 ms until options.openTimeoutMs. The reload signal is
 * handled from the start, so it cannot end the process while open waits.
 */
function open(file, options = {}) {
  const k = new Keyring(file, options);
  if (k.options.signal) process.on(k.options.signal, k.onSignal);
  return new Promise((resolve, reject) => {
    const deadline = Date.now() + k.options.openTimeoutMs;
    const attempt = () => {
      const err = k.reload();
      if (!err) {
        if (k.options.signal) process.removeListener(k.options.signal, k.onSignal);
        k.start();
        resolve(k);
        return;
      }
      if (Date.now() >= deadline) {
        k.close();
        reject(new Error(`keysync: no valid keys file at ${k.path} before the deadline: ${err.message}`));
        return;
      }
      setTimeout(attempt, OPEN_RETRY_MS);
    };
    attempt();
  });
}

/**
 * createEventSigner is a drop-in for the existing signing module's shape: { sign, verify,
 * reloadSecret }. Until `ready` resolves, sign and verify throw.
 */
function createEventSigner(file, options = {}) {
  let handle = null;
  const ready = open(file, options).then((k) => { handle = k; return k; });
  const need = () => {
    if (!handle) throw new Error('keysync: keys not loaded yet (await signer.ready)');
    return handle;
  };
  return {
    ready,
    sign: (payload) => need().sign(payload),
    verify: (payload, signature) => need().verify(payload, signature),
    reloadSecret: () => {
      const err = need().reload();
      if (err) throw err;
    },
    status: () => (handle ? handle.status() : null),
    // For the sidecar's --confirm-url: the handle's status, or 503 until the keys are loaded.
    statusHandler: () => (req, res) => {
      if (handle) {
        handle.statusHandler()(req, res);
        return;
      }
      res.writeHead(503, { 'Content-Type': 'text/plain', 'Cache-Control': 'no-store' });
      res.end('keys not loaded yet\n');
    },
    metricsText: () => (handle ? handle.metricsText() : ''),
    close: () => ready.then((k) => k.close(), () => {}),
  };
}

/**
 * registerPromClient adds keysync's per-key series to prom-client (passed in, so the library
 * keeps no runtime dependency): three metrics whose collect() reads keys' usage at each
 * scrape, the series of metricsText(). Returns them.
 *
 *   const client = require('prom-client');
 *   keysync.registerPromClient(client, keys);              // the default registry
 *   keysync.registerPromClient(client, keys, { registers: [myRegistry] });
 */
function registerPromClient(client, keys, options = {}) {
  const registers = options.registers || [client.register];
  const usage = () => keys.usage.snapshot();
  return [
    new client.Counter({
      name: 'keysync_app_verifications_total',
      help: "Signature verifications by the key's state at that instant and the result.",
      labelNames: ['key_id', 'state', 'result'],
      registers,
      collect() {
        this.reset();
        for (const v of usage().verifications) this.inc({ key_id: v.key_id, state: v.state, result: v.result }, v.count);
      },
    }),
    new client.Counter({
      name: 'keysync_app_signatures_total',
      help: 'Signatures made with each key.',
      labelNames: ['key_id'],
      registers,
      collect() {
        this.reset();
        for (const k of usage().keys) this.inc({ key_id: k.key_id }, k.signatures);
      },
    }),
    new client.Gauge({
      name: 'keysync_app_key_last_verified_timestamp_seconds',
      help: 'Unix time each key last verified a signature.',
      labelNames: ['key_id'],
      registers,
      collect() {
        this.reset();
        for (const k of usage().keys) if (k.last_verified) this.set({ key_id: k.key_id }, Date.parse(k.last_verified) / 1000);
      },
    }),
  ];
}

module.exports = { open, createEventSigner, registerPromClient, Keyring, parse, keyId, isHeld, Signer, Usage, KeyringError, Errors };
