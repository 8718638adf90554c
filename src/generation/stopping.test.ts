/**
 * Stopping rules on hand-made rows: EOS ids, length, time (a fake clock), stop strings over a fake
 * decoder (id i is the letter 'a' + i), and cutting text after the first completed stop string.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cutAtStopString, eosCriterion, maxNewTokensCriterion, maxTimeCriterion, stopStringCriterion } from './stopping.js';

const letters = { decode: (ids: number[]) => ids.map((i) => String.fromCharCode(97 + i)).join('') };

test('EOS: any of several ids as the last new token', () => {
  const eos = eosCriterion([2, 5]);
  assert.deepEqual(eos([[0, 2], [0, 5], [0, 1], [0]], [[2], [5], [1], []]), [true, true, false, false]);
  assert.deepEqual(eosCriterion([])([[1]], [[1]]), [false]);
});

test('length and time', () => {
  assert.deepEqual(maxNewTokensCriterion(2)([[0], [0]], [[1], [1, 2]]), [false, true]);
  let now = 1000;
  const timer = maxTimeCriterion(0.5, () => now);
  assert.deepEqual(timer([[0], [1]], [[], []]), [false, false]);
  now = 1600;
  assert.deepEqual(timer([[0], [1]], [[], []]), [true, true]);
});

test('stop strings match anywhere in the new text, across tokens', () => {
  const stop = stopStringCriterion(letters, ['cd', 'x']);
  // "abc" no; "abcd" yes (c + d across two tokens); "x" yes; the prompt is not searched.
  assert.deepEqual(stop([[2, 3], [0], [0]], [[0, 1, 2], [0, 1, 2, 3], [23]]), [false, true, true]);
  assert.deepEqual(stop([[2, 3]], [[]]), [false]);
});

test('cutAtStopString ends the text right after the first completed stop string', () => {
  assert.equal(cutAtStopString('hello. world. again', ['.']), 'hello.');
  assert.equal(cutAtStopString('say world. again', ['world.', 'again']), 'say world.');
  assert.equal(cutAtStopString('abcdef', ['ef', 'bcd']), 'abcd');
  assert.equal(cutAtStopString('no match', ['zz']), 'no match');
});
