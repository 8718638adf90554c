/**
 * Batching: right padding with masks and -100 labels, length bucketing (every row once per epoch, similar
 * lengths together, order fixed by the rng), resuming mid-epoch (the remaining batches and their masks
 * are unchanged), and MLM masking's rates (15%; 80/10/10) and rules (special tokens and padding never).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../backend/rng.js';
import type { TokenDataset } from './data.js';
import { batchFactory, countTokens, evalBatches, lengthGroupedBatches, makeBatch, maskTokens, type Batch } from './data_batches.js';

const collect = (it: Iterable<Batch> | AsyncIterable<Batch>) => [...(it as Iterable<Batch>)];

test('padding is on the right; the mask marks real tokens; LM labels are -100 on padding', () => {
  const data: TokenDataset = { rows: [{ ids: [5, 6, 7] }, { ids: [8] }], labels: [1, 0] };
  const lm = makeBatch(data, [0, 1], { kind: 'lm', batchSize: 2, padId: 0 });
  assert.deepEqual(lm.inputIds, [[5, 6, 7], [8, 0, 0]]);
  assert.deepEqual(lm.attentionMask, [[1, 1, 1], [1, 0, 0]]);
  assert.deepEqual(lm.tokenLabels, [[5, 6, 7], [8, -100, -100]]);
  assert.equal(countTokens(lm), 4);
  const cls = makeBatch(data, [1, 0], { kind: 'classification', batchSize: 2, padId: 9 });
  assert.deepEqual(cls.inputIds, [[8, 9, 9], [5, 6, 7]]);
  assert.deepEqual(cls.labels, [0, 1]);
  const typed: TokenDataset = { rows: [{ ids: [1, 2], typeIds: [0, 1] }, { ids: [3], typeIds: [0] }], labels: [0, 0] };
  assert.deepEqual(makeBatch(typed, [0, 1], { kind: 'classification', batchSize: 2, padId: 0 }).tokenTypeIds, [[0, 1], [0, 0]]);
});

test('length bucketing: each row once, rows of a batch close in length, order fixed by the rng', () => {
  const lengths = Array.from({ length: 100 }, (_, i) => 1 + ((i * 37) % 50));
  const batches = lengthGroupedBatches(lengths, 8, new Rng(3), 50);
  assert.deepEqual(batches.flat().sort((a, b) => a - b), lengths.map((_, i) => i));
  assert.equal(batches.filter((b) => b.length !== 8).length, 1, 'one partial batch');
  // One mega-batch holds all 100 rows here, so each batch is a run of the sorted lengths.
  const spread = batches.map((b) => Math.max(...b.map((i) => lengths[i])) - Math.min(...b.map((i) => lengths[i])));
  assert.ok(Math.max(...spread) <= 5, `spread within batches: ${spread}`);
  assert.deepEqual(lengthGroupedBatches(lengths, 8, new Rng(3), 50), batches);
  assert.notDeepEqual(lengthGroupedBatches(lengths, 8, new Rng(4), 50), batches);
  const random = lengthGroupedBatches(lengths, 8, new Rng(3), 1);
  assert.ok(random.some((b) => Math.max(...b.map((i) => lengths[i])) - Math.min(...b.map((i) => lengths[i])) > 5), 'mega-batches of one batch do not bucket');
});

test('a factory resumed at batch k yields exactly the rest of the epoch, masks included', () => {
  const rows = Array.from({ length: 37 }, (_, i) => ({ ids: [2, ...Array.from({ length: 1 + (i % 7) }, (_, j) => 5 + ((i + j) % 20)), 3] }));
  const data: TokenDataset = { rows };
  const f = batchFactory({ kind: 'mlm', batchSize: 4, padId: 0, mlm: { maskTokenId: 4, vocabSize: 31, specialIds: [0, 1, 2, 3, 4] } });
  assert.equal(f.count!(data), 10);
  const full = collect(f.iterate(data, 0, 0, new Rng(11)));
  assert.equal(full.length, 10);
  assert.deepEqual(collect(f.iterate(data, 0, 6, new Rng(11))), full.slice(6));
  assert.deepEqual(collect(f.iterate(data, 0, 0, new Rng(11))), full, 'deterministic');
  assert.notDeepEqual(collect(f.iterate(data, 1, 0, new Rng(12))), full, 'another epoch stream, another order');
});

test('MLM masking: ~15% of real non-special tokens chosen, 80/10/10 mask/random/keep, labels only there', () => {
  const B = 64;
  const T = 130;
  const rng = new Rng(5);
  const ids = Array.from({ length: B }, (_, b) => Array.from({ length: T }, (_, t) => (t === 0 ? 2 : t === T - 1 || t >= T - 1 - (b % 5) ? (t === T - 1 - (b % 5) ? 3 : 0) : 5 + rng.int(26))));
  const mask = ids.map((r) => r.map((id) => (id === 0 ? 0 : 1)));
  const special = [0, 1, 2, 3, 4];
  const { inputIds, labels } = maskTokens(ids, mask, { maskTokenId: 4, vocabSize: 31, specialIds: special }, new Rng(9));
  let eligible = 0;
  let chosen = 0;
  let masked = 0;
  let kept = 0;
  ids.forEach((row, b) => row.forEach((id, t) => {
    const isEligible = mask[b][t] === 1 && !special.includes(id);
    if (!isEligible) {
      assert.equal(labels[b][t], -100);
      assert.equal(inputIds[b][t], id, 'special tokens and padding are never changed');
      return;
    }
    eligible += 1;
    if (labels[b][t] === -100) {
      assert.equal(inputIds[b][t], id);
      return;
    }
    chosen += 1;
    assert.equal(labels[b][t], id);
    if (inputIds[b][t] === 4) masked += 1;
    else if (inputIds[b][t] === id) kept += 1;
  }));
  const rate = chosen / eligible;
  assert.ok(Math.abs(rate - 0.15) < 0.01, `chosen rate ${rate} of ${eligible}`);
  assert.ok(Math.abs(masked / chosen - 0.8) < 0.03, `mask share ${masked / chosen}`);
  // "Keep" also catches random draws that hit the same token (1/31 of the 10%).
  assert.ok(Math.abs(kept / chosen - (0.1 + 0.1 / 31)) < 0.025, `keep share ${kept / chosen}`);
  assert.deepEqual(maskTokens(ids, mask, { maskTokenId: 4, vocabSize: 31, specialIds: special }, new Rng(9)).inputIds, inputIds, 'seeded');
});

test('a batch always has at least one masked token (no 0/0 loss)', () => {
  for (let s = 0; s < 50; s++) {
    const { labels } = maskTokens([[2, 7, 3]], [[1, 1, 1]], { maskTokenId: 4, vocabSize: 31, specialIds: [2, 3], probability: 0.01 }, new Rng(s));
    assert.deepEqual(labels, [[-100, 7, -100]]);
  }
});

test('evaluation batches: longest first, fixed, masks from the seed', () => {
  const data: TokenDataset = { rows: [{ ids: [1] }, { ids: [1, 2, 3] }, { ids: [1, 2] }], labels: [0, 1, 0] };
  const b = evalBatches(data, { kind: 'classification', batchSize: 2, padId: 0 });
  assert.deepEqual(b.map((x) => x.labels), [[1, 0], [0]]);
  assert.deepEqual(b[0].inputIds, [[1, 2, 3], [1, 2, 0]]);
});
