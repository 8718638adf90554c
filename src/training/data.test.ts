/**
 * Column mapping, labels, the seeded split, tokenisation memo and LM packing, against hand-computed
 * expectations (HF run_glue's label rules, HF run_clm's group_texts) and the errors for bad input.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError } from '../errors.js';
import { classificationDataset, groupTexts, labelIds, lmDataset, mlmDataset, resolveLabelSpace, selectExamples, splitTrainValidation, TokenCache, type TextExample } from './data.js';
import { parseCsv, parseJsonLines } from './data_formats.js';
import { bertTokenizer, gpt2Tokenizer } from './tiny_fixture.test.js';

const ex = (label: unknown, i = 0): TextExample => ({ text: 'a', label, where: `d.jsonl line ${i + 1}` });

test('column mapping: defaults text/label, custom names, pairs; missing columns list what exists', () => {
  const t = parseJsonLines('{"sentence": "a b", "other": "c", "y": "pos"}\n{"sentence": "d", "other": "e", "y": "neg"}\n', 'd.jsonl');
  const got = selectExamples(t, { text: 'sentence', textPair: 'other', label: 'y' }, { labels: true });
  assert.deepEqual(got, [
    { text: 'a b', pair: 'c', label: 'pos', where: 'd.jsonl line 1' },
    { text: 'd', pair: 'e', label: 'neg', where: 'd.jsonl line 2' },
  ]);
  assert.throws(() => selectExamples(t, {}, { labels: false }), (e: Error) => e instanceof ConfigError && /d\.jsonl has no column 'text' \(the text column\); its columns are: sentence, other, y/.test(e.message) && /--text-column/.test(e.message));
  assert.throws(() => selectExamples(t, { text: 'sentence' }, { labels: true }), /no column 'label' \(the label column\).*HINT: pass --label-column/s);
  assert.throws(() => selectExamples(t, { text: 'sentence', textPair: 'nope' }, { labels: false }), /no column 'nope' \(the text-pair column\)/);
});

test('empty datasets and non-string texts fail, naming the file and line', () => {
  assert.throws(() => selectExamples(parseJsonLines('\n\n', 'e.jsonl'), {}, { labels: false }), /the data file e\.jsonl holds no examples/);
  assert.throws(() => selectExamples(parseCsv('text,label\n', 'e.csv'), {}, { labels: true }), /e\.csv holds no examples/);
  const t = parseJsonLines('{"text": "ok", "label": 1}\n{"text": 5, "label": 0}\n', 'd.jsonl');
  assert.throws(() => selectExamples(t, {}, { labels: true }), /d\.jsonl line 2: column 'text' holds 5 \(number\), expected a string/);
  const noLabel = parseJsonLines('{"text": "ok", "label": 1}\n{"text": "x", "label": null}\n', 'd.jsonl');
  assert.throws(() => selectExamples(noLabel, {}, { labels: true }), /d\.jsonl line 2: the label column 'label' is empty/);
});

test('labels: names sorted (run_glue), ids as given, CSV digits as ids, the checkpoint mapping when it names them', () => {
  const names = resolveLabelSpace(['pos', 'neg', 'neutral', 'neg'].map((l) => ex(l)));
  assert.deepEqual(names.id2label, { 0: 'neg', 1: 'neutral', 2: 'pos' });
  assert.deepEqual(labelIds(['pos', 'neg'].map((l) => ex(l)), names), [2, 0]);
  const ids = resolveLabelSpace([0, 3, 1].map((l) => ex(l)));
  assert.equal(ids.numLabels, 4);
  assert.equal(ids.kind, 'int');
  assert.deepEqual(resolveLabelSpace(['0', '1'].map((l) => ex(l))).numLabels, 2);
  assert.equal(resolveLabelSpace([0, 0].map((l) => ex(l))).numLabels, 2, 'at least two classes');
  const known = { numLabels: 2, id2label: { 0: 'spam', 1: 'ham' }, label2id: { spam: 0, ham: 1 }, fixed: true };
  const viaCheckpoint = resolveLabelSpace(['ham', 'spam'].map((l) => ex(l)), known);
  assert.deepEqual(labelIds(['ham', 'spam'].map((l) => ex(l)), viaCheckpoint), [1, 0], 'not re-sorted');
  const reg = resolveLabelSpace([0.5, 1, 2.25].map((l) => ex(l)));
  assert.equal(reg.problemType, 'regression');
  assert.deepEqual(labelIds([0.5, '2.5'].map((l) => ex(l)), reg), [0.5, 2.5]);
  assert.equal(resolveLabelSpace(['0.5', '3'].map((l) => ex(l))).kind, 'regression', 'CSV numbers with a fraction');
  const oneOutput = { numLabels: 1, id2label: { 0: 'LABEL_0' }, label2id: { LABEL_0: 0 }, fixed: true };
  assert.equal(resolveLabelSpace([1, 2].map((l) => ex(l)), oneOutput).kind, 'regression', 'a one-output head regresses even on whole numbers');
});

test('label errors: outside num_labels, unknown names, mixed kinds, one class, names the checkpoint lacks', () => {
  const fixed = { numLabels: 2, id2label: { 0: 'LABEL_0', 1: 'LABEL_1' }, label2id: { LABEL_0: 0, LABEL_1: 1 }, fixed: true };
  const space = resolveLabelSpace([0, 1].map((l) => ex(l)), fixed);
  assert.throws(() => labelIds([ex(0), ex(2, 6)], space), (e: Error) => e instanceof ConfigError && /d\.jsonl line 7: label 2 is outside the 2 classes \(ids 0\.\.1\)/.test(e.message));
  assert.throws(() => labelIds([ex(-1)], space), /label -1 is outside/);
  const three = resolveLabelSpace([0, 1].map((l) => ex(l)), undefined, { numLabels: 3 });
  assert.throws(() => labelIds([ex(5)], three), /label 5 is outside the 3 classes/);
  const names = resolveLabelSpace(['a', 'b'].map((l) => ex(l)));
  assert.throws(() => labelIds([ex('c', 2)], names), /d\.jsonl line 3: label "c" is not one of the labels \(a, b\)/);
  assert.throws(() => resolveLabelSpace([ex(1), ex('b', 1)]), /the labels mix numbers and strings/);
  assert.throws(() => resolveLabelSpace([ex('x'), ex('x')]), /a single label value \("x"\)/);
  assert.throws(() => resolveLabelSpace([ex('x'), ex('y')], { ...fixed, label2id: { a: 0, b: 1 } }), /labels "x", "y" are not among the checkpoint's labels \(a, b\)/);
  assert.throws(() => resolveLabelSpace([ex([1, 0])]), /neither a number nor a string.*multi-label/s);
});

test('the train/validation split is ceil(ratio·n), disjoint, in file order, and fixed by the seed', () => {
  const items = Array.from({ length: 23 }, (_, i) => i);
  const a = splitTrainValidation(items, 0.1, 7);
  assert.equal(a.validation.length, 3);
  assert.equal(a.train.length, 20);
  assert.deepEqual([...a.train, ...a.validation].sort((x, y) => x - y), items);
  assert.deepEqual(a.validation, [...a.validation].sort((x, y) => x - y));
  assert.deepEqual(splitTrainValidation(items, 0.1, 7), a);
  const others = [8, 9, 10, 11].map((s) => splitTrainValidation(items, 0.1, s).validation.join());
  assert.ok(others.some((v) => v !== a.validation.join()), 'another seed picks other examples');
  assert.throws(() => splitTrainValidation([1, 2], 0.9, 0), /leaves no training examples out of 2/);
  assert.throws(() => splitTrainValidation(items, 1, 0), /strictly between 0 and 1/);
});

test('group_texts concatenates and cuts into blocks, dropping the remainder', () => {
  assert.deepEqual(groupTexts([[1, 2, 3], [4, 5], [6, 7, 8, 9]], 4), [[1, 2, 3, 4], [5, 6, 7, 8]]);
  assert.deepEqual(groupTexts([[1, 2]], 4), []);
});

test('LM dataset: each text ends with EOS, then packed; unpacked rows are truncated; too little data fails', () => {
  const tok = gpt2Tokenizer();
  const cache = new TokenCache(tok);
  const texts = ['ab', 'cde', 'f'].map((text, i) => ({ text, where: `t.txt line ${i + 1}` }));
  const [a, b, c, d, e, f, eos] = [97, 98, 99, 100, 101, 102, 256];
  assert.deepEqual(lmDataset(texts, cache, { blockSize: 4, eosId: eos }).rows.map((r) => r.ids), [[a, b, eos, c], [d, e, eos, f]]);
  assert.deepEqual(lmDataset(texts, cache, { blockSize: 3, eosId: eos, packing: false }).rows.map((r) => r.ids), [[a, b, eos], [c, d, e], [f, eos]]);
  assert.throws(() => lmDataset(texts, cache, { blockSize: 64, eosId: eos }), /the data gives 9 tokens, fewer than one block of block_size 64/);
});

test('tokenisation is memoised per (text, pair, options); classification and MLM rows carry special tokens', () => {
  const tok = bertTokenizer();
  const cache = new TokenCache(tok);
  const examples = [{ text: 'a b', label: 'x', where: 'l1' }, { text: 'a b', label: 'y', where: 'l2' }, { text: 'c d e f g h', label: 'x', where: 'l3' }];
  const space = resolveLabelSpace(examples);
  const ds = classificationDataset(examples, cache, space, { maxLength: 5 });
  assert.equal(cache.size, 2);
  assert.equal(ds.rows[0], ds.rows[1], 'the same encoding object is reused');
  assert.deepEqual(ds.rows[0].ids, [2, 5, 6, 3]);
  assert.deepEqual(ds.rows[2].ids, [2, 7, 8, 9, 3], 'truncated to maxLength with [CLS] … [SEP]');
  assert.deepEqual(ds.rows[0].typeIds, [0, 0, 0, 0]);
  assert.deepEqual(ds.labels, [0, 1, 0]);
  const pair = cache.encode('a', 'b', { maxLength: 8 });
  assert.deepEqual(pair, { ids: [2, 5, 3, 6, 3], typeIds: [0, 0, 0, 1, 1] });
  const mlm = mlmDataset([{ text: 'a', where: 'l1' }, { text: '', where: 'l2' }], cache, { maxLength: 8 });
  assert.deepEqual(mlm.rows.map((r) => r.ids), [[2, 5, 3]], 'a row of special tokens only is dropped');
});
