/**
 * The decoder state every search strategy shares: a left-padded batch of rows, its KV cache (a value,
 * reordered by gathering on the batch axis), attention mask, next position per row, and the logits for
 * each row's next token. Each function returns a new state and disposes the one it was given.
 */
import * as tf from '@tensorflow/tfjs-core';
import { disposeAll, tidy } from '../backend/memory.js';
import { ShapeError } from '../errors.js';
import type { KVCache } from '../nn/attention.js';
import type { CausalLM } from '../models/types.js';

/** One step of a batch of N rows. */
export interface DecoderState {
  /** Per layer [N, Hkv, S, Dh]. */
  cache: KVCache;
  /** [N][S]: 1 for real tokens, 0 for left padding. */
  mask: number[][];
  /** Position id of each row's next token. */
  nextPos: number[];
  /** [N, V] logits for each row's next token (float32). */
  logits: tf.Tensor;
  /** Each row's real tokens so far (no padding). */
  ids: number[][];
}

/**
 * Run the prompts (left-padded to one length) through the model.
 * Position ids count real tokens only (HF generate's cumsum(mask) − 1), so padding changes nothing.
 */
export function prefill(model: CausalLM, prompts: number[][], padId = 0): DecoderState {
  if (prompts.length === 0) throw new ShapeError('no prompts to decode');
  const T = Math.max(...prompts.map((p) => p.length));
  if (prompts.some((p) => p.length === 0)) throw new ShapeError('a prompt has no tokens', 'start it with the BOS token (generate does so when the tokenizer has one)');
  const ids = prompts.map((p) => [...Array(T - p.length).fill(padId), ...p]);
  const mask = prompts.map((p) => [...Array(T - p.length).fill(0), ...Array(p.length).fill(1)]);
  const positions = prompts.map((p) => [...Array(T - p.length).fill(0), ...p.map((_, i) => i)]);
  const padded = prompts.some((p) => p.length < T);
  const out = model.forward(ids, padded ? { attentionMask: mask, positionIds: positions } : {});
  const logits = tidy(() => out.logits.slice([0, T - 1, 0], [-1, 1, -1]).squeeze([1]));
  out.logits.dispose();
  disposeAll(out.hidden);
  return { cache: out.cache, mask, nextPos: prompts.map((p) => p.length), logits, ids: prompts.map((p) => p.slice()) };
}

/** Feed one token per row; the old state is disposed. */
export function advance(model: CausalLM, state: DecoderState, tokens: number[]): DecoderState {
  if (tokens.length !== state.ids.length) throw new ShapeError(`advance: ${tokens.length} tokens for ${state.ids.length} rows`);
  const mask = state.mask.map((r) => [...r, 1]);
  const padded = mask.some((r) => r[0] === 0);
  const out = model.forward(tokens.map((t) => [t]), padded ? { cache: state.cache, attentionMask: mask, positionIds: state.nextPos.map((p) => [p]) } : { cache: state.cache });
  const logits = tidy(() => out.logits.squeeze([1]));
  out.logits.dispose();
  disposeAll(out.hidden);
  disposeAll([state.cache, state.logits]);
  return { cache: out.cache, mask, nextPos: state.nextPos.map((p) => p + 1), logits, ids: state.ids.map((r, i) => [...r, tokens[i]]) };
}

/** Keep rows `rows` (repeats allowed: beam search's reorder), gathering the cache on the batch axis. */
export function selectRows(state: DecoderState, rows: number[]): DecoderState {
  const idx = tf.tensor1d(rows, 'int32');
  const gathered = tidy(() => ({
    cache: state.cache.map((l) => ({ key: tf.gather(l.key, idx), value: tf.gather(l.value, idx) })),
    logits: tf.gather(state.logits, idx),
  }));
  idx.dispose();
  disposeAll([state.cache, state.logits]);
  return { cache: gathered.cache, logits: gathered.logits, mask: rows.map((r) => state.mask[r].slice()), nextPos: rows.map((r) => state.nextPos[r]), ids: rows.map((r) => state.ids[r].slice()) };
}

/** Free the tensors of a state. */
export function disposeState(state: DecoderState): void {
  disposeAll([state.cache, state.logits]);
}
