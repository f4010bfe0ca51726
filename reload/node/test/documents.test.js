'use strict';
// The shared document corpus of keyring/testdata/documents.json: the Go library passes the
// same file (cd keyring && go test -run TestDocumentCorpus). Every document is accepted or
// refused exactly as Go does, naming the same field with the same problem (byte offsets
// aside: the two JSON parsers count them differently), and no error holds a piece of a
// secret the document carries.
const test = require('node:test');
const assert = require('node:assert');
const fs = require('fs');
const path = require('path');
const { parse, KeyringError } = require('../keyring');

const corpus = JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', '..', 'keyring', 'testdata', 'documents.json'), 'utf8'));
const maskOffsets = (s) => s.replace(/ at byte offset \d+/g, '');

// forms are the spellings a planted string could leak in: itself, and the hex, base64 and
// base64url spellings of the bytes it spells in base64 or hex (Go's plantedIn).
function forms(p) {
  const out = [p];
  const spell = (b) => [b.toString('latin1'), b.toString('hex'), b.toString('hex').toUpperCase(), b.toString('base64'),
    b.toString('base64').replace(/=+$/, ''), b.toString('base64url'), b.toString('base64').replace(/\+/g, '-').replace(/\//g, '_')];
  if (/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(p)) out.push(...spell(Buffer.from(p, 'base64')));
  if (/^(?:[0-9a-fA-F]{2})*$/.test(p)) out.push(...spell(Buffer.from(p, 'hex')));
  return out;
}

function plantedIn(text, planted) {
  for (const p of planted) {
    for (const f of forms(p)) {
      for (let i = 0; i + 16 <= f.length; i++) {
        if (text.includes(f.slice(i, i + 16))) return f.slice(i, i + 16);
      }
    }
  }
  return '';
}

test('the corpus has every kind of document', () => {
  const accepted = corpus.documents.filter((d) => d.accepted).length;
  assert.ok(corpus.documents.length >= 380 && accepted >= 20 && corpus.documents.length - accepted >= 330, `${corpus.documents.length} documents, ${accepted} accepted`);
});

test('every document is accepted or refused as the Go library does, and no error holds a secret', () => {
  const wrong = [];
  for (const d of corpus.documents) {
    let err = null;
    try {
      parse(d.document);
    } catch (e) {
      err = e;
    }
    if (d.accepted) {
      if (err) wrong.push(`${d.name}: refused: ${err.message}`);
      continue;
    }
    if (!(err instanceof KeyringError)) {
      wrong.push(`${d.name}: ${err ? `not a KeyringError: ${err}` : 'accepted'}`);
      continue;
    }
    const problem = maskOffsets(err.message.replace(/^keyring: /, '').replace(err.field ? `${err.field}: ` : '', ''));
    if (err.field !== (d.field || '') || problem !== d.problem) {
      wrong.push(`${d.name}: ${JSON.stringify(err.field)} ${JSON.stringify(problem)}, want ${JSON.stringify(d.field || '')} ${JSON.stringify(d.problem)}`);
    }
    const leak = plantedIn(err.message, [...(d.planted || []), ...corpus.planted]);
    if (leak) wrong.push(`${d.name}: the error ${JSON.stringify(err.message)} holds ${leak}`);
  }
  assert.deepStrictEqual(wrong, []);
});
