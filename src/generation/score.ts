/**
 * Scoring text under a model: per-token log-probabilities from a causal LM (each token given the ones
 * before it), and the top candidates for each mask position of a masked LM (HF's fill-mask pipeline).
 */
import * as tf from '@tensorflow/tfjs-core';
import { disposeAll } from '../backend/memory.js';
import { ShapeError } from '../errors.js';
import type { CausalLM, EncoderModel } from '../models/types.js';

/** log p(ids[t] | ids[<t]) for t = 1..n−1 (the first token has no context, so no score). */
export async function tokenLogProbs(model: CausalLM, ids: number[]): Promise<number[]> {
  if (ids.length < 2) throw new ShapeError(`scoring needs at least 2 tokens (a context and a token), got ${ids.length}`, 'score a longer text, or prepend the BOS token');
  const max = model.dims().maxPositions;
  if (ids.length > max) throw new ShapeError(`text of ${ids.length} tokens exceeds the model's context of ${max}`, 'shorten the text (sliding-window perplexity handles long texts)');
  const picked = tf.tidy(() => {
    const out = model.forward([ids.slice(0, -1)]);
    const lp = tf.logSoftmax(out.logits.squeeze([0]));
    disposeAll(out.cache);
    const targets = tf.tensor1d(ids.slice(1), 'int32');
    return tf.sum(tf.mul(lp, tf.oneHot(targets, lp.shape[1] as number)), 1);
  });
  const values = Array.from(await picked.data());
  picked.dispose();
  return values;
}

/** One candidate for a masked position. */
export interface MaskCandidate {
  tokenId: number;
  /** Softmax probability at that position. */
  score: number;
}

/** For each position holding `maskId`, the `topK` most probable tokens, most probable first. */
export async function fillMaskIds(model: EncoderModel, ids: number[], maskId: number, topK = 5): Promise<{ position: number; candidates: MaskCandidate[] }[]> {
  const positions = ids.flatMap((v, i) => (v === maskId ? [i] : []));
  if (positions.length === 0) throw new ShapeError('the text has no mask token', 'put the tokenizer\'s mask token (for example [MASK] or <mask>) where a word should be predicted');
  if (!Number.isInteger(topK) || topK < 1) throw new ShapeError(`topK must be a positive integer, got ${topK}`);
  const [values, indices] = tf.tidy(() => {
    const out = model.forward([ids]);
    if (!out.logits) throw new ShapeError('this model has no masked-LM head', 'load it with AutoModelForMaskedLM (a *ForMaskedLM checkpoint)');
    const rows = tf.gather(out.logits.squeeze([0]), tf.tensor1d(positions, 'int32'));
    const k = Math.min(topK, rows.shape[1] as number);
    const { values: v, indices: i } = tf.topk(tf.softmax(rows), k);
    return [v, i];
  });
  const [vs, is] = [await values.array() as number[][], await indices.array() as number[][]];
  disposeAll([values, indices]);
  return positions.map((position, r) => ({ position, candidates: is[r].map((tokenId, j) => ({ tokenId, score: vs[r][j] })) }));
}
