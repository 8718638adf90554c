/**
 * Shared-prefix scoring: log-probabilities of many candidate continuations of one cached prefix, in
 * batched forward passes that never write the candidates into the prefix's cache (methods.md §1; the
 * author's llama-haiku `_attention_with_no_cache_update`). Attending to [prefix keys; own keys] is what
 * that formulation computes; here the prefix cache [1, …] is tiled to the batch because tf.matMul needs
 * equal batch dimensions, and the extended cache each pass returns is simply dropped. Candidates of
 * different lengths are right-padded: under the causal mask a real token never sees the padding after it.
 */
import * as tf from '@tensorflow/tfjs-core';
import { tidy } from '../backend/memory.js';
import { ShapeError } from '../errors.js';
import { cacheLength, type KVCache } from '../nn/attention.js';
import type { CausalLM } from '../models/types.js';

/** A cached prefix to score continuations of. */
export interface SharedPrefix {
  /** Per layer [1, Hkv, P, Dh]; read, never modified or disposed. */
  cache: KVCache;
  /** [1, V] (or [V]) logits for the token after the prefix: they score each candidate's first token. */
  lastLogits: tf.Tensor;
  /** Position id of the first candidate token (default P, the cache length). */
  position?: number;
}

/** Options of {@link continuationLogProbs}. */
export interface ContinuationOptions {
  /** Candidates per forward pass (memory grows with batch × prefix length); default 16. */
  batchSize?: number;
  /** Token id written into padding (any valid id; default 0). */
  padId?: number;
}

/**
 * log p(c[t] | prefix, c[<t]) for every token t of every candidate c, scored in batches that share the
 * prefix; the prefix cache is left exactly as it was. Empty candidates give [].
 */
export async function continuationLogProbs(model: CausalLM, prefix: SharedPrefix, candidates: number[][], opts: ContinuationOptions = {}): Promise<number[][]> {
  const batchSize = opts.batchSize ?? 16;
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new ShapeError(`batchSize must be a positive integer, got ${batchSize}`);
  const P = cacheLength(prefix.cache);
  if (P > 0 && (prefix.cache[0].key.shape as number[])[0] !== 1) throw new ShapeError(`the shared prefix cache must have batch 1, found [${prefix.cache[0].key.shape.join(', ')}]`, 'pass the cache of a single sequence');
  const V = model.dims().vocab;
  if (prefix.lastLogits.size !== V) throw new ShapeError(`lastLogits has ${prefix.lastLogits.size} values, the vocabulary has ${V}`, 'pass the logits of the prefix\'s last token, shape [1, V]');
  const start = prefix.position ?? P;
  const out: number[][] = candidates.map(() => []);
  const rows = candidates.flatMap((c, i) => (c.length > 0 ? [i] : []));
  for (let b = 0; b < rows.length; b += batchSize) {
    const chunk = rows.slice(b, b + batchSize);
    const picked = scoreChunk(model, prefix, P, start, V, chunk.map((i) => candidates[i]), opts.padId ?? 0);
    const values = (await picked.array()) as number[][];
    picked.dispose();
    chunk.forEach((i, r) => (out[i] = values[r].slice(0, candidates[i].length)));
  }
  return out;
}

/** [B, T] log-probs of the (right-padded) candidates. */
function scoreChunk(model: CausalLM, prefix: SharedPrefix, P: number, start: number, V: number, cands: number[][], padId: number): tf.Tensor {
  const B = cands.length;
  const T = Math.max(...cands.map((c) => c.length));
  const ids = cands.map((c) => [...c, ...new Array<number>(T - c.length).fill(padId)]);
  const positions = ids.map(() => Array.from({ length: T }, (_, t) => start + t));
  return tidy(() => {
    const cache = P > 0 ? prefix.cache.map((l) => ({ key: tf.tile(l.key, [B, 1, 1, 1]), value: tf.tile(l.value, [B, 1, 1, 1]) })) : undefined;
    // The last candidate position predicts nothing we score, so it is not fed.
    const first = tf.tile(prefix.lastLogits.reshape([1, 1, V]), [B, 1, 1]);
    let logits = first;
    if (T > 1) {
      const fed = model.forward(ids.map((r) => r.slice(0, T - 1)), { cache, positionIds: positions.map((r) => r.slice(0, T - 1)) });
      logits = tf.concat([first, fed.logits], 1);
    }
    const lp = tf.logSoftmax(logits.reshape([B * T, V])).reshape([B * T * V]);
    const flat = ids.flatMap((row, b) => row.map((id, t) => (b * T + t) * V + id));
    return tf.gather(lp, tf.tensor1d(flat, 'int32')).reshape([B, T]);
  });
}
