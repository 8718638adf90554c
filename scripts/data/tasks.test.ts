import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseWordnetData, sha256Hex, splitOf, type Split } from './corpus.js';
import {
  buildDefinitions, buildSupersense, corpusDocument, hasExamples, licenseText, orderKey, parseLexnames, parseSynsets,
  recordsToJsonl, roundRobin, SPLITS, topNounLabels, wordCount, type Synset,
} from './tasks.js';

// ---- (a) the pure helpers, on hand-written WordNet data ----

const DATA = '  1 This software and database is being provided to you, the LICENSEE, by  \n' +
  '02084071 05 n 03 dog 0 domestic_dog 0 Canis_familiaris 0 001 @ 02083346 n 0000 | a member of the genus Canis; "the dog barked all night"  \n' +
  '00001740 00 a 01 able(a) 0 005 ! 00002098 a 0101 | (usually followed by `to\') having the necessary means\n' +
  '01166351 34 v 01 eat 0 001 @ 01157517 v 0000 01 + 08 00 | take in solid food\n' +
  '00000000 03 n 01 empty 0 000 | \n';

test('parseSynsets reads offset, file number, part of speech, lemmas and gloss; skips the header', () => {
  assert.deepEqual(parseSynsets(DATA), [
    { offset: '02084071', pos: 'n', lexFilenum: 5, words: ['dog', 'domestic dog', 'Canis familiaris'], gloss: 'a member of the genus Canis; "the dog barked all night"' },
    { offset: '00001740', pos: 'a', lexFilenum: 0, words: ['able'], gloss: '(usually followed by `to\') having the necessary means' },
    { offset: '01166351', pos: 'v', lexFilenum: 34, words: ['eat'], gloss: 'take in solid food' },
  ]);
});

test('corpusDocument gives exactly the documents the LM corpus builder wrote', () => {
  assert.deepEqual(parseSynsets(DATA).map(corpusDocument), parseWordnetData(DATA));
  assert.equal(corpusDocument({ words: ['dog', 'domestic dog'], gloss: 'a canine' }), 'dog, domestic dog: a canine');
});

test('parseLexnames reads the lexnames(5WN) table in file-number order', () => {
  const man = '.TS\ncenter ;\nl l l.\n\\fBFile Number\\fP\t\\fBName\\fP\t\\fBContents\\fP\n_\n' +
    '00\tadj.all\tall adjective clusters\n01\tadj.pert\trelational adjectives (pertainyms)\n02\tadv.all\tall adverbs\n' +
    '03\tnoun.Tops\tunique beginner for nouns\n04\tnoun.person  \tnouns denoting people\n.TE\n';
  assert.deepEqual(parseLexnames(man), ['adj.all', 'adj.pert', 'adv.all', 'noun.Tops', 'noun.person']);
  assert.throws(() => parseLexnames('00\tadj.all\tx\n02\tadv.all\ty\n'), /out of order/);
});

test('hasExamples and wordCount', () => {
  assert.equal(hasExamples('a canine; "the dog barked"'), true);
  assert.equal(hasExamples('a canine'), false);
  assert.equal(wordCount('  a  member of\tthe genus '), 5);
});

test('roundRobin takes one from each group in turn until the cap or the groups run out', () => {
  const g = [['a1', 'a2', 'a3'], ['b1'], ['c1', 'c2']];
  assert.deepEqual(roundRobin(g, 4), ['a1', 'b1', 'c1', 'a2']);
  assert.deepEqual(roundRobin(g, 10), ['a1', 'b1', 'c1', 'a2', 'c2', 'a3']);
  assert.deepEqual(roundRobin(g, 0), []);
});

const LEX = ['adj.all', 'adj.pert', 'adv.all', 'noun.Tops', 'noun.act', 'noun.animal'];
const syn = (pos: string, lexFilenum: number, words: string[], gloss: string): Synset => ({ offset: '00000000', pos, lexFilenum, words, gloss });
const splitBy = (m: Record<string, Split>) => (doc: string): Split => m[doc] ?? 'train';
const identity = (k: string) => k;

test('topNounLabels ranks noun files by synset count (ties by name) and returns them sorted', () => {
  const all = [syn('n', 5, ['a'], 'x'), syn('n', 5, ['b'], 'y'), syn('n', 4, ['c'], 'z'), syn('n', 3, ['d'], 'w'), syn('v', 3, ['e'], 'v'), syn('v', 3, ['f'], 'u')];
  // animal 2, act 1, Tops 1 (verbs do not count); the tie goes by UTF-16 code units, where 'T' < 'a'.
  assert.deepEqual(topNounLabels(all, LEX, 2), ['noun.Tops', 'noun.animal']);
  assert.deepEqual(topNounLabels([...all, syn('n', 4, ['g'], 't')], LEX, 2), ['noun.act', 'noun.animal']);
});

test('buildSupersense: wanted noun files, unshared short glosses, corpus split, labels taking turns', () => {
  const all = [
    syn('n', 5, ['dog'], 'a domestic canine'), // test by the split map
    syn('n', 5, ['cat'], 'a small feline'),
    syn('n', 4, ['run'], 'a fast gait'), // shares its gloss with the verb below: dropped
    syn('n', 4, ['walk'], 'a slow gait'),
    syn('n', 3, ['entity'], 'that which exists'), // noun.Tops is not a wanted label
    syn('v', 0, ['sprint'], 'a fast gait'),
    syn('n', 5, ['eel'], 'a long fish with a very long gloss indeed'), // 9 words > 5
    syn('n', 5, ['ant'], 'an insect'),
    syn('n', 4, ['jog'], 'a slow run'),
  ];
  const out = buildSupersense(all, LEX, ['noun.act', 'noun.animal'], { maxWords: 5, caps: { train: 3, validation: 5, test: 5 }, split: splitBy({ 'dog: a domestic canine': 'test' }), key: identity });
  // train: act [a slow gait, a slow run], animal [a small feline, an insect]; turns act, animal, act; then key order.
  assert.deepEqual(out.train, [
    { text: 'a slow gait', label: 'noun.act', words: 'walk' },
    { text: 'a slow run', label: 'noun.act', words: 'jog' },
    { text: 'a small feline', label: 'noun.animal', words: 'cat' },
  ]);
  assert.deepEqual(out.validation, []);
  assert.deepEqual(out.test, [{ text: 'a domestic canine', label: 'noun.animal', words: 'dog' }]);
});

test('buildDefinitions: one-lemma glosses without examples; a word keeps to one split, test first', () => {
  const all = [
    syn('n', 0, ['bank'], 'sloping land beside water'), // train, but "bank" has a test sense: dropped
    syn('n', 0, ['Bank'], 'a financial institution'), // test
    syn('v', 0, ['eat'], 'take in solid food; "she ate"'), // example sentence
    syn('n', 0, ['dog', 'hound'], 'a canine'), // two lemmas
    syn('a', 0, ['able'], 'having the means'), // validation
    syn('s', 0, ['big'], 'large in size'), // gloss shared with an adverb: dropped
    syn('r', 0, ['hugely'], 'large in size'),
    syn('r', 0, ['quickly'], 'with speed'), // adverbs not asked for
    syn('n', 0, ['kite'], 'a toy flown in the wind on a string'), // 9 words > 6
    syn('n', 0, ['axe'], 'a tool'),
    syn('n', 0, ['apple'], 'a fruit'),
  ];
  const split = splitBy({ 'Bank: a financial institution': 'test', 'able: having the means': 'validation' });
  const out = buildDefinitions(all, ['n', 'v', 'a', 's'], { maxWords: 6, caps: { train: 1, validation: 5, test: 5 }, split, key: identity });
  assert.deepEqual(out, {
    train: [{ source: 'apple', target: 'a fruit' }], // "apple\na fruit" < "axe\na tool"; cap 1
    validation: [{ source: 'able', target: 'having the means' }],
    test: [{ source: 'Bank', target: 'a financial institution' }],
  });
});

test('licenseText unindents one License stanza of a Debian copyright file', () => {
  const c = 'Files: *\nLicense: WordNet3.0\n This software is provided.\n .\n WordNet 3.0 Copyright 2006.\n\nFiles: debian/*\nLicense: GPL-2+\n GPL text\n';
  assert.equal(licenseText(c, 'WordNet3.0'), 'This software is provided.\n\nWordNet 3.0 Copyright 2006.\n');
  assert.throws(() => licenseText(c, 'MIT'), /no "License: MIT"/);
});

test('recordsToJsonl writes one object per line, fields in record order', () => {
  assert.equal(recordsToJsonl([{ source: 'a "b"', target: 'c' }]), '{"source":"a \\"b\\"","target":"c"}\n');
  assert.equal(recordsToJsonl([]), '');
});

// ---- (b) the shipped files under datasets/ ----

const ROOT = fileURLToPath(new URL('../../../', import.meta.url)); // dist/scripts/data/ -> repository
const DS = join(ROOT, 'datasets');

interface Manifest {
  files: Record<string, { bytes: number; sha256: string; records?: number }>;
  settings: { maxWords: number; caps: Record<Split, number> };
  labels?: string[];
}

function readSet<T>(name: string): { manifest: Manifest; splits: Record<Split, T[]> } {
  const dir = join(DS, name);
  const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as Manifest;
  const splits = {} as Record<Split, T[]>;
  for (const sp of SPLITS) splits[sp] = readFileSync(join(dir, `${sp}.jsonl`), 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as T);
  return { manifest, splits };
}

function checkManifest(name: string, m: Manifest, splits: Record<Split, unknown[]>): void {
  const dir = join(DS, name);
  assert.deepEqual(readdirSync(dir).filter((f) => f !== 'manifest.json').sort(), Object.keys(m.files).sort(), `${name}: every shipped file is in the manifest`);
  let total = 0;
  for (const [file, f] of Object.entries(m.files)) {
    const bytes = readFileSync(join(dir, file));
    assert.equal(bytes.length, f.bytes, `${name}/${file} size`);
    assert.equal(sha256Hex(bytes), f.sha256, `${name}/${file} SHA-256`);
    total += bytes.length;
  }
  for (const sp of SPLITS) {
    assert.equal(splits[sp].length, m.files[`${sp}.jsonl`].records, `${name}/${sp}.jsonl record count`);
    assert.ok(splits[sp].length > 0 && splits[sp].length <= m.settings.caps[sp], `${name}/${sp}.jsonl within its cap`);
  }
  assert.ok(total < 1.1e6, `${name} stays about 1 MB, found ${total} bytes`);
  assert.match(readFileSync(join(dir, 'LICENSE'), 'utf8'), /WordNet 3\.0 Copyright 2006 by Princeton University\.\s+All rights reserved\./);
}

/** Records are written in key order, once each. */
function assertKeyOrder(keys: string[], what: string): void {
  const k = keys.map(orderKey);
  assert.ok(k.every((x, i) => i === 0 || k[i - 1] < x), `${what}: written in SHA-256 key order without duplicates`);
}

interface SS { text: string; label: string; words: string }
interface DF { source: string; target: string }

test('shipped makemost-supersense: manifest, labels, disjoint splits, corpus-consistent splits', () => {
  const { manifest, splits } = readSet<SS>('makemost-supersense');
  checkManifest('makemost-supersense', manifest, splits);
  const labels = JSON.parse(readFileSync(join(DS, 'makemost-supersense', 'labels.json'), 'utf8')) as string[];
  assert.deepEqual(labels, [...new Set(labels)].sort(), 'labels.json: sorted, no repeats (the order finetune numbers them)');
  assert.deepEqual(manifest.labels, labels);
  const readme = readFileSync(join(DS, 'makemost-supersense', 'README.md'), 'utf8');
  const seen = new Map<string, Split>();
  for (const sp of SPLITS) {
    const fmt = (n: number) => n.toLocaleString('en-US');
    for (const r of splits[sp]) {
      assert.deepEqual(Object.keys(r), ['text', 'label', 'words']);
      assert.ok(labels.includes(r.label), `label ${r.label} is in labels.json`);
      assert.ok(wordCount(r.text) <= manifest.settings.maxWords);
      assert.equal(seen.get(r.text), undefined, `"${r.text}" appears twice (${seen.get(r.text)} and ${sp})`);
      seen.set(r.text, sp);
      assert.equal(splitOf(`${r.words}: ${r.text}`), sp, `"${r.words}: ${r.text}" is in the corpus ${splitOf(`${r.words}: ${r.text}`)} split, but in ${sp}.jsonl`);
    }
    assertKeyOrder(splits[sp].map((r) => r.text), `supersense ${sp}`);
    for (const l of labels) assert.ok(splits[sp].some((r) => r.label === l), `${sp} has label ${l}`);
    assert.ok(readme.includes(fmt(splits[sp].length)), `README states the ${sp} count`);
  }
  // Balanced training set: labels take turns, so no label has more than one record above another.
  const c = labels.map((l) => splits.train.filter((r) => r.label === l).length);
  assert.ok(Math.max(...c) - Math.min(...c) <= 1, `train is balanced: ${c.join(', ')}`);
});

test('shipped makemost-definitions: manifest, disjoint words and targets, corpus-consistent splits', () => {
  const { manifest, splits } = readSet<DF>('makemost-definitions');
  checkManifest('makemost-definitions', manifest, splits);
  const wordSplit = new Map<string, Split>();
  const targets = new Set<string>();
  for (const sp of SPLITS) {
    for (const r of splits[sp]) {
      assert.deepEqual(Object.keys(r), ['source', 'target']);
      assert.ok(!hasExamples(r.target) && wordCount(r.target) <= manifest.settings.maxWords && r.source.length > 0);
      assert.ok(!targets.has(r.target), `target "${r.target}" appears twice`);
      targets.add(r.target);
      const w = r.source.toLowerCase();
      assert.ok((wordSplit.get(w) ?? sp) === sp, `"${r.source}" is in ${wordSplit.get(w)} and ${sp}`);
      wordSplit.set(w, sp);
      assert.equal(splitOf(`${r.source}: ${r.target}`), sp, `"${r.source}: ${r.target}" is in the corpus ${splitOf(`${r.source}: ${r.target}`)} split, but in ${sp}.jsonl`);
    }
    assertKeyOrder(splits[sp].map((r) => `${r.source}\n${r.target}`), `definitions ${sp}`);
  }
});

test('shipped sets agree with each other: no held-out gloss of one is a training text of the other', () => {
  const ss = readSet<SS>('makemost-supersense').splits;
  const df = readSet<DF>('makemost-definitions').splits;
  const dfTrain = new Set(df.train.map((r) => r.target));
  const ssTrain = new Set(ss.train.map((r) => r.text));
  for (const sp of ['validation', 'test'] as const) {
    for (const r of ss[sp]) assert.ok(!dfTrain.has(r.text), `supersense ${sp} "${r.text}" is a definitions train target`);
    for (const r of df[sp]) assert.ok(!ssTrain.has(r.target), `definitions ${sp} "${r.target}" is a supersense train text`);
  }
});

// Only where the corpus has been built (not in CI): every record's document is in that split of the real corpus.
const CORPUS = join(ROOT, '.cache', 'corpus');
test('shipped sets: each record\'s document is in the same split of the built corpus', { skip: !existsSync(join(CORPUS, 'train.jsonl')) && 'no .cache/corpus' }, () => {
  const corpus = new Map<string, Split>();
  for (const sp of SPLITS) for (const l of readFileSync(join(CORPUS, `${sp}.jsonl`), 'utf8').split('\n')) if (l) corpus.set((JSON.parse(l) as { text: string }).text, sp);
  const ss = readSet<SS>('makemost-supersense').splits;
  const df = readSet<DF>('makemost-definitions').splits;
  for (const sp of SPLITS) {
    for (const r of ss[sp]) assert.equal(corpus.get(`${r.words}: ${r.text}`), sp, `${r.words}: ${r.text}`);
    for (const r of df[sp]) assert.equal(corpus.get(`${r.source}: ${r.target}`), sp, `${r.source}: ${r.target}`);
  }
});
