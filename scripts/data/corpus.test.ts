import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseFortunes, parseWordnetData, sha256Hex, splitOf, toJsonl } from './corpus.js';

test('sha256Hex matches the published digest of "abc"', () => {
  assert.equal(sha256Hex('abc'), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
});

test('splitOf is a function of the text alone, from its SHA-256', () => {
  // SHA-256("abc") starts ba7816bf: 0xba7816bf / 2^32 = 0.7284 -> train with any shares below 0.7.
  assert.equal(splitOf('abc'), 'train');
  assert.equal(splitOf('abc', { validation: 0.6, test: 0.2 }), 'validation');
  assert.equal(splitOf('abc', { validation: 0.1, test: 0.73 }), 'test');
  const texts = Array.from({ length: 2000 }, (_, i) => `document ${i}`);
  const a = texts.map((t) => splitOf(t));
  assert.deepEqual(texts.slice().reverse().map((t) => splitOf(t)).reverse(), a, 'order does not matter');
  const share = a.filter((s) => s !== 'train').length / a.length;
  assert.ok(share > 0.02 && share < 0.07, `about 4 % held out, found ${share}`);
  // Fixed input, fixed output: the hash of the whole split assignment never changes.
  assert.equal(sha256Hex(a.join(',')), sha256Hex(texts.map((t) => splitOf(t)).join(',')));
});

test('fortune entries are split at % lines', () => {
  assert.deepEqual(parseFortunes('one\nline\n%\n\ntwo\n%\n%\nthree\n'), ['one\nline', 'two', 'three']);
});

test('WordNet data lines become "words: gloss"; header lines are skipped', () => {
  const data = '  1 This software and database is being provided\n' +
    '00001740 03 n 01 entity 0 003 ~ 00001930 n 0000 | that which is perceived or known or inferred to have its own distinct existence  \n' +
    '00002137 03 n 02 abstraction 0 abstract_entity 0 010 | a general concept formed by extracting common features from specific examples\n' +
    '00001740 00 a 01 able(a) 0 005 | (usually followed by `to\') having the necessary means; "able to swim"  \n';
  assert.deepEqual(parseWordnetData(data), [
    'entity: that which is perceived or known or inferred to have its own distinct existence',
    'abstraction, abstract entity: a general concept formed by extracting common features from specific examples',
    'able: (usually followed by `to\') having the necessary means; "able to swim"',
  ]);
});

test('toJsonl writes one object per line', () => {
  assert.equal(toJsonl([{ text: 'a "b"', source: 's' }]), '{"text":"a \\"b\\"","source":"s"}\n');
  assert.equal(toJsonl([]), '');
});
