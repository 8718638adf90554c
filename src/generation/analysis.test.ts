/** Degeneracy statistics on hand-counted outputs, and methods.md §6.5 Demo 1's table. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { contaminationDemo, contentTokens, degeneracyJSON, degeneracyStats, formatContaminationTable, formatDegeneracyTable, seqRepN } from './analysis.js';
import { ShapeError } from '../errors.js';

test('seq-rep-n: the fraction of n-grams already seen earlier in the same output', () => {
  // bigrams 12 21 12 21: two of four repeat an earlier one.
  assert.equal(seqRepN([1, 2, 1, 2, 1], 2), 0.5);
  // three identical 4-grams: the last two repeat the first.
  assert.ok(Math.abs((seqRepN([5, 5, 5, 5, 5, 5], 4) as number) - 2 / 3) < 1e-12);
  assert.equal(seqRepN([1, 2, 3, 4, 5], 4), 0);
  // 1 2 3 1 2 3 1: 4-grams 1231 2312 3123 1231 → one repeat of four.
  assert.equal(seqRepN([1, 2, 3, 1, 2, 3, 1], 4), 1 / 4);
  assert.equal(seqRepN([1, 2, 3], 4), null);
  assert.throws(() => seqRepN([1], 0), ShapeError);
});

test('content ends at the first EOS', () => {
  assert.deepEqual(contentTokens([4, 5, 0, 7], [0]), [4, 5]);
  assert.deepEqual(contentTokens([0], [0, 9]), []);
  assert.deepEqual(contentTokens([4, 5]), [4, 5]);
});

test('degeneracy statistics of four hand-counted outputs', () => {
  const outputs = [
    { tokens: [0], logprob: -1 }, // empty
    { tokens: [5, 5, 5, 5, 5, 5, 0], logprob: -3 }, // 6 tokens, seq-rep-4 = 2/3
    { tokens: [1, 2, 3, 4], logprob: -8 }, // cut by length, no EOS: seq-rep-4 = 0
    { tokens: [7, 8, 0], logprob: -4 }, // too short for a 4-gram
  ];
  const s = degeneracyStats(outputs, { eosTokenIds: [0] });
  assert.equal(s.count, 4);
  assert.equal(s.emptyShare, 0.25);
  assert.equal(s.n, 4);
  assert.ok(Math.abs((s.seqRep as number) - 1 / 3) < 1e-12);
  assert.equal(s.seqRepOutputs, 2);
  assert.equal(s.meanLength, (0 + 6 + 4 + 2) / 4);
  assert.equal(s.meanLogprob, -4);
  assert.ok(Math.abs((s.tokenLogprob as number) - -16 / 15) < 1e-12);
  const s2 = degeneracyStats(outputs, { n: 2 }); // no EOS given: everything is content
  assert.equal(s2.emptyShare, 0);
  // bigram rates: [0] has none; 55 55 55 55 55 50 → 2 distinct of 6 → 2/3; [1,2,3,4] 0; [7,8,0] 0
  assert.ok(Math.abs((s2.seqRep as number) - (4 / 6 + 0 + 0) / 3) < 1e-12);
  assert.throws(() => degeneracyStats([]), ShapeError);
});

test('the table and JSON report carry every statistic', () => {
  const rows = [
    { name: 'greedy', stats: degeneracyStats([{ tokens: [1, 1, 1, 1, 1, 0], logprob: -2 }], { eosTokenIds: [0] }) },
    { name: 'exact', stats: degeneracyStats([{ tokens: [0], logprob: -1.5 }], { eosTokenIds: [0] }) },
  ];
  const table = formatDegeneracyTable(rows).split('\n');
  assert.equal(table.length, 4);
  assert.match(table[0], /strategy\s+outputs\s+empty %\s+seq-rep-4\s+mean len\s+mean logp\s+logp\/token/);
  assert.match(table[2], /^greedy\s+1\s+0\.0\s+0\.500\s+5\.00\s+-2\.000\s+-0\.333$/);
  assert.match(table[3], /^exact\s+1\s+100\.0\s+—\s+0\.00\s+-1\.500\s+-1\.500$/);
  const json = JSON.parse(degeneracyJSON(rows));
  assert.deepEqual(json[1], { name: 'exact', count: 1, emptyShare: 1, n: 4, seqRep: null, seqRepOutputs: 0, meanLength: 0, meanLogprob: -1.5, tokenLogprob: -1.5 });
});

test('contamination demo reproduces methods.md §6.5 Demo 1 (n = 20, 30, 40; crossover 29.9)', () => {
  const demo = contaminationDemo([20, 30, 40], 1e-9);
  assert.deepEqual(demo.rows.map((r) => r.cleanProb.toExponential(2)), ['9.54e-7', '9.31e-10', '9.09e-13']);
  assert.deepEqual(demo.rows.map((r) => r.emptyProb), [1e-9, 1e-9, 1e-9]);
  assert.deepEqual(demo.rows.map((r) => r.mode), ['clean', 'empty', 'empty']);
  assert.deepEqual(demo.rows.map((r) => r.conditionalMode), ['clean', 'clean', 'clean']);
  assert.equal(demo.crossover.toFixed(1), '29.9');
  // Demo 2's numbers: 4 symbols, 12 positions, ε = 1e−3: p* ≈ 6e−8 and the empty string wins.
  const d2 = contaminationDemo([12], 1e-3, 4);
  assert.equal(d2.rows[0].cleanProb.toExponential(0), '6e-8');
  assert.equal(d2.rows[0].mode, 'empty');
  const text = formatContaminationTable(demo);
  assert.match(text, /crossover n\* = 29\.9$/);
  assert.match(text, /30\s+9\.31e-10\s+1\.00e-9\s+empty\s+clean/);
  assert.throws(() => contaminationDemo([1], 0), ShapeError);
});
