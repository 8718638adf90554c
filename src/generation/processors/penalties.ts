/**
 * Penalties on what a row already contains: HF's RepetitionPenaltyLogitsProcessor and
 * NoRepeatNGramLogitsProcessor (transformers/generation/logits_process.py). Both look at the whole row,
 * prompt included, as HF does for decoder-only models.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { LogitsProcessor } from '../types.js';
import { banTokens, named, shapeOf } from './rows.js';

/**
 * CTRL's repetition penalty: every token present in the row has its score divided by `penalty` when
 * positive and multiplied by it when negative (so penalty > 1 always makes it less likely).
 */
export function repetitionPenalty(penalty: number): LogitsProcessor {
  return named('RepetitionPenaltyLogitsProcessor', (ids, scores) => {
    const [N, V] = shapeOf(scores);
    const mask = new Uint8Array(N * V);
    ids.forEach((row, r) => { for (const id of row) if (id >= 0 && id < V) mask[r * V + id] = 1; });
    return tf.tidy(() => {
      const penalised = tf.where(tf.less(scores, 0), tf.mul(scores, penalty), tf.div(scores, penalty));
      return tf.where(tf.tensor2d(mask, [N, V], 'bool'), penalised, scores);
    });
  });
}

/** Tokens that would complete an n-gram already present in `row` (its last n−1 tokens as the prefix). */
export function bannedNgramTokens(row: number[], n: number): number[] {
  const len = row.length;
  if (len < n) return [];
  const prefix = row.slice(len - n + 1);
  const banned: number[] = [];
  // The window starting at the prefix itself would need one more token, so it never matches.
  for (let i = 0; i + n <= len; i++) {
    let match = true;
    for (let j = 0; j < n - 1 && match; j++) match = row[i + j] === prefix[j];
    if (match) banned.push(row[i + n - 1]);
  }
  return banned;
}

/** No n-gram of size `n` may occur twice in a row: tokens completing a repeat get −∞. */
export function noRepeatNgram(n: number): LogitsProcessor {
  return named('NoRepeatNGramLogitsProcessor', (ids, scores) => banTokens(scores, ids.map((row) => bannedNgramTokens(row, n))));
}
