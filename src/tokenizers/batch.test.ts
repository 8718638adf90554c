/**
 * Truncation against the table of HF tokenizers' own unit test (utils/truncation.rs,
 * `truncate_encodings_longest_first`, max_length 7), and padding on hand-written rows.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { padRows, truncateLongestFirst } from './batch.js';

const seq = (n: number, start = 0): number[] => Array.from({ length: n }, (_, i) => start + i);

test('LongestFirst matches the tokenizers table for max_length 7', () => {
  // [len(a), len(b)] → [kept a, kept b], copied from truncation.rs.
  const table: [number, number, number, number][] = [
    [0, 0, 0, 0], [0, 2, 0, 2], [0, 4, 0, 4], [0, 8, 0, 7],
    [2, 0, 2, 0], [2, 2, 2, 2], [2, 4, 2, 4], [2, 8, 2, 5],
    [4, 0, 4, 0], [4, 2, 4, 2], [4, 4, 3, 4], [4, 8, 3, 4],
    [8, 0, 7, 0], [8, 2, 5, 2], [8, 4, 4, 3], [8, 8, 3, 4],
  ];
  for (const [la, lb, ka, kb] of table) {
    const [a, b] = truncateLongestFirst(seq(la), seq(lb, 100), 7, 'right');
    assert.deepEqual([a.length, b!.length], [ka, kb], `lengths ${la}, ${lb}`);
  }
});

test('right truncation keeps the head, left keeps the tail; a single sequence is cut to the limit', () => {
  assert.deepEqual(truncateLongestFirst(seq(5), null, 3, 'right'), [[0, 1, 2], null]);
  assert.deepEqual(truncateLongestFirst(seq(5), null, 3, 'left'), [[2, 3, 4], null]);
  assert.deepEqual(truncateLongestFirst(seq(4), seq(8, 10), 7, 'left'), [[1, 2, 3], [14, 15, 16, 17]]);
  assert.deepEqual(truncateLongestFirst(seq(2), null, 0, 'right'), [[], null]);
});

test('padding: right and left, mask 0 and token type 0 on padding, long rows untouched', () => {
  const rows = [
    { ids: [5, 6], attentionMask: [1, 1], tokenTypeIds: [0, 1] },
    { ids: [7, 8, 9, 10], attentionMask: [1, 1, 1, 1], tokenTypeIds: [0, 0, 1, 1] },
  ];
  assert.deepEqual(padRows(rows, 4, 0, 'right'), [
    { ids: [5, 6, 0, 0], attentionMask: [1, 1, 0, 0], tokenTypeIds: [0, 1, 0, 0] },
    rows[1],
  ]);
  assert.deepEqual(padRows(rows, 3, 99, 'left'), [
    { ids: [99, 5, 6], attentionMask: [0, 1, 1], tokenTypeIds: [0, 0, 1] },
    rows[1],
  ]);
});
