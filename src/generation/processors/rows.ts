/**
 * Helpers the logits processors share: naming a processor (so a list can be inspected, as HF's class
 * names can), banning tokens per row, and row-wise filtering done in JS (float64) where HF sorts.
 */
import * as tf from '@tensorflow/tfjs-core';
import { ShapeError } from '../../errors.js';
import type { LogitsProcessor } from '../types.js';

/** Give a processor a name (HF's class name), visible as `fn.name`. */
export function named(name: string, fn: LogitsProcessor): LogitsProcessor {
  Object.defineProperty(fn, 'name', { value: name });
  return fn;
}

/** Rows × vocabulary of a [N, V] scores tensor. */
export function shapeOf(scores: tf.Tensor): [number, number] {
  if (scores.rank !== 2) throw new ShapeError(`logits processor: expected scores [N, V], found shape [${scores.shape.join(', ')}]`);
  return [scores.shape[0] as number, scores.shape[1] as number];
}

/** Set the scores of `banned[r]` (token ids) in each row r to −∞; returns a new tensor. */
export function banTokens(scores: tf.Tensor, banned: Iterable<number>[]): tf.Tensor {
  const [N, V] = shapeOf(scores);
  const mask = new Uint8Array(N * V);
  let any = false;
  banned.forEach((ids, r) => {
    for (const id of ids) {
      if (id >= 0 && id < V) { mask[r * V + id] = 1; any = true; }
    }
  });
  if (!any) return scores.clone();
  return tf.tidy(() => tf.where(tf.tensor2d(mask, [N, V], 'bool'), tf.fill([N, V], -Infinity), scores));
}

/** Softmax of one row in float64 (−∞ scores get probability 0). */
export function softmaxRow(row: ArrayLike<number>): Float64Array {
  let max = -Infinity;
  for (let i = 0; i < row.length; i++) if (row[i] > max) max = row[i];
  const p = new Float64Array(row.length);
  let sum = 0;
  for (let i = 0; i < row.length; i++) { p[i] = Math.exp(row[i] - max); sum += p[i]; }
  for (let i = 0; i < row.length; i++) p[i] /= sum;
  return p;
}

/** Indices of the row sorted by `key` ascending; ties keep index order (a stable sort). */
export function argsortAscending(key: ArrayLike<number>): number[] {
  return Array.from({ length: key.length }, (_, i) => i).sort((a, b) => (key[a] - key[b]) || (a - b));
}

/**
 * Apply a per-row filter computed in JS: `remove(row)` returns the token ids to set to −∞.
 * Used by the warpers HF writes with sorts and cumulative sums.
 */
export function filterRows(scores: tf.Tensor, remove: (row: Float32Array) => number[]): tf.Tensor {
  const [N, V] = shapeOf(scores);
  const data = scores.dataSync() as Float32Array;
  const out = new Float32Array(data);
  for (let r = 0; r < N; r++) {
    for (const id of remove(data.subarray(r * V, (r + 1) * V))) out[r * V + id] = -Infinity;
  }
  return tf.tensor2d(out, [N, V]);
}

/** Scores of the k-th largest entry of a row (k ≥ 1), for HF's "keep min_tokens_to_keep" rule. */
export function kthLargest(row: ArrayLike<number>, k: number): number {
  return Array.from(row).sort((a, b) => b - a)[Math.min(k, row.length) - 1];
}

/** Which prompt row r belongs to when each of `prompts` prompts fills N / prompts consecutive rows (HF's repeat_interleave). */
export function promptOfRow(r: number, N: number, prompts: number): number {
  if (N % prompts !== 0) throw new ShapeError(`logits processor: ${N} rows do not split evenly over ${prompts} prompts`, 'give rows grouped by prompt: prompt i owns rows i·k … i·k + k − 1');
  return Math.floor(r / (N / prompts));
}
