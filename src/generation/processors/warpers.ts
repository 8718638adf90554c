/**
 * The sampling warpers, applied only when do_sample is true: HF's TemperatureLogitsWarper, TopKLogitsWarper,
 * TopPLogitsWarper, MinPLogitsWarper, TypicalLogitsWarper, EpsilonLogitsWarper and EtaLogitsWarper
 * (transformers/generation/logits_process.py). The sort-based ones run per row in JS (float64); a sort's
 * ties are broken by token index.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { LogitsProcessor } from '../types.js';
import { argsortAscending, filterRows, kthLargest, named, shapeOf, softmaxRow } from './rows.js';

/** Divide the scores by `t` (t < 1 sharpens, t > 1 flattens). */
export function temperature(t: number): LogitsProcessor {
  return named('TemperatureLogitsWarper', (_ids, scores) => tf.div(scores, t));
}

/** Keep the k highest scores; every token tied with the k-th is kept too (HF compares with the k-th value). */
export function topK(k: number, minTokensToKeep = 1): LogitsProcessor {
  return named('TopKLogitsWarper', (_ids, scores) => tf.tidy(() => {
    const [, V] = shapeOf(scores);
    const kk = Math.min(Math.max(k, minTokensToKeep), V);
    const kth = tf.topk(scores, kk).values.slice([0, kk - 1], [-1, 1]);
    return tf.where(tf.less(scores, kth), tf.fill(scores.shape, -Infinity), scores);
  }));
}

/**
 * Nucleus: keep the smallest set of most probable tokens whose mass is >= p, boundary token included.
 * HF: sort ascending, drop tokens whose cumulative mass is <= 1 − p, never the last min_tokens_to_keep.
 */
export function topP(p: number, minTokensToKeep = 1): LogitsProcessor {
  return named('TopPLogitsWarper', (_ids, scores) => filterRows(scores, (row) => {
    const order = argsortAscending(row);
    const probs = softmaxRow(row);
    const removed: number[] = [];
    let cum = 0;
    for (let j = 0; j < order.length - minTokensToKeep; j++) {
      cum += probs[order[j]];
      if (cum <= 1 - p) removed.push(order[j]);
    }
    return removed;
  }));
}

/** Drop tokens less probable than `minP` times the most probable one (the top min_tokens_to_keep stay). */
export function minP(minPValue: number, minTokensToKeep = 1): LogitsProcessor {
  return named('MinPLogitsWarper', (_ids, scores) => filterRows(scores, (row) => {
    const probs = softmaxRow(row);
    let top = 0;
    for (const q of probs) if (q > top) top = q;
    const threshold = minPValue * top;
    const keep = new Set(argsortAscending(probs.map((x) => -x)).slice(0, minTokensToKeep));
    return Array.from(probs.keys()).filter((i) => probs[i] < threshold && !keep.has(i));
  }));
}

/**
 * Locally typical sampling: rank tokens by |−log p − H| and keep the most typical ones until their mass
 * reaches `mass` (HF keeps every token whose distance is <= the one at the crossing).
 */
export function typical(mass: number, minTokensToKeep = 1): LogitsProcessor {
  return named('TypicalLogitsWarper', (_ids, scores) => filterRows(scores, (row) => {
    const probs = softmaxRow(row);
    let entropy = 0;
    for (const q of probs) if (q > 0) entropy -= q * Math.log(q);
    const shifted = probs.map((q) => Math.abs(-Math.log(q) - entropy));
    const order = argsortAscending(shifted);
    let cum = 0;
    let lastInd = 0;
    for (const i of order) { cum += probs[i]; if (cum < mass) lastInd++; else break; }
    const cutoff = shifted[order[Math.min(lastInd, order.length - 1)]];
    return order.filter((i, j) => j >= minTokensToKeep && shifted[i] > cutoff);
  }));
}

/** Epsilon sampling: drop tokens with probability < epsilon, keeping the min_tokens_to_keep best. */
export function epsilonCutoff(epsilon: number, minTokensToKeep = 1): LogitsProcessor {
  return named('EpsilonLogitsWarper', (_ids, scores) => filterRows(scores, (row) => {
    const probs = softmaxRow(row);
    const kth = kthLargest(row, minTokensToKeep);
    return Array.from(probs.keys()).filter((i) => probs[i] < epsilon && row[i] < kth);
  }));
}

/** Eta sampling: epsilon sampling with the cutoff min(ε, √ε·e^(−H)) from the row's entropy H. */
export function etaCutoff(epsilon: number, minTokensToKeep = 1): LogitsProcessor {
  return named('EtaLogitsWarper', (_ids, scores) => filterRows(scores, (row) => {
    const probs = softmaxRow(row);
    let entropy = 0;
    for (const q of probs) if (q > 0) entropy -= q * Math.log(q);
    const eta = Math.min(epsilon, Math.sqrt(epsilon) * Math.exp(-entropy));
    const kth = kthLargest(row, minTokensToKeep);
    return Array.from(probs.keys()).filter((i) => probs[i] < eta && row[i] < kth);
  }));
}
