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
  /** [N, D] final (normed) hidden state at each row's last token, when asked for (attribute classifiers). */
  hidden?: tf.Tensor;
}

/** Options for prefill / advance. */
export interface StateOptions {
  /** Keep the last token's final hidden state in `state.hidden`. */
  hidden?: boolean;
}

function lastHidden(hidden: tf.Tensor[] | undefined, t: number): tf.Tensor | undefined {
  if (!hidden) return undefined;
  const h = hidden[hidden.length - 1];
  return tidy(() => h.slice([0, t, 0], [-1, 1, -1]).squeeze([1]));
}

/**
 * Run the prompts (left-padded to one length) through the model.
 * Position ids count real tokens only (HF generate's cumsum(mask) − 1), so padding changes nothing.
 */
export function prefill(model: CausalLM, prompts: number[][], padId = 0, opts: StateOptions = {}): DecoderState {
  if (prompts.length === 0) throw new ShapeError('no prompts to decode');
  const T = Math.max(...prompts.map((p) => p.length));
  if (prompts.some((p) => p.length === 0)) throw new ShapeError('a prompt has no tokens', 'start it with the BOS token (generate does so when the tokenizer has one)');
  const ids = prompts.map((p) => [...Array(T - p.length).fill(padId), ...p]);
  const mask = prompts.map((p) => [...Array(T - p.length).fill(0), ...Array(p.length).fill(1)]);
  const positions = prompts.map((p) => [...Array(T - p.length).fill(0), ...p.map((_, i) => i)]);
  const padded = prompts.some((p) => p.length < T);
  // Only the last position's logits are needed (HF generate's logits_to_keep = 1); a model that ignores
  // the option returns them all, and the last row is taken either way.
  const common = { returnHidden: opts.hidden, logitsToKeep: 1 };
  const out = model.forward(ids, padded ? { ...common, attentionMask: mask, positionIds: positions } : common);
  const kept = out.logits.shape[1] as number;
  const logits = tidy(() => out.logits.slice([0, kept - 1, 0], [-1, 1, -1]).squeeze([1]));
  const hidden = lastHidden(out.hidden, T - 1);
  out.logits.dispose();
  disposeAll(out.hidden);
  const state: DecoderState = { cache: out.cache, mask, nextPos: prompts.map((p) => p.length), logits, ids: prompts.map((p) => p.slice()) };
  if (hidden) state.hidden = hidden;
  return state;
}

/** Feed one token per row; the old state is disposed. */
export function advance(model: CausalLM, state: DecoderState, tokens: number[], opts: StateOptions = {}): DecoderState {
  if (tokens.length !== state.ids.length) throw new ShapeError(`advance: ${tokens.length} tokens for ${state.ids.length} rows`);
  const mask = state.mask.map((r) => [...r, 1]);
  const padded = mask.some((r) => r[0] === 0);
  const common = { cache: state.cache, returnHidden: opts.hidden };
  const out = model.forward(tokens.map((t) => [t]), padded ? { ...common, attentionMask: mask, positionIds: state.nextPos.map((p) => [p]) } : common);
  const logits = tidy(() => out.logits.squeeze([1]));
  const hidden = lastHidden(out.hidden, 0);
  out.logits.dispose();
  disposeAll(out.hidden);
  disposeState(state);
  const next: DecoderState = { cache: out.cache, mask, nextPos: state.nextPos.map((p) => p + 1), logits, ids: state.ids.map((r, i) => [...r, tokens[i]]) };
  if (hidden) next.hidden = hidden;
  return next;
}

/** Keep rows `rows` (repeats allowed: beam search's reorder), gathering the cache on the batch axis. */
export function selectRows(state: DecoderState, rows: number[]): DecoderState {
  const idx = tf.tensor1d(rows, 'int32');
  const gathered = tidy(() => ({
    cache: state.cache.map((l) => ({ key: tf.gather(l.key, idx), value: tf.gather(l.value, idx) })),
    logits: tf.gather(state.logits, idx),
    hidden: state.hidden ? tf.gather(state.hidden, idx) : undefined,
  }));
  idx.dispose();
  disposeState(state);
  const next: DecoderState = { cache: gathered.cache, logits: gathered.logits, mask: rows.map((r) => state.mask[r].slice()), nextPos: rows.map((r) => state.nextPos[r]), ids: rows.map((r) => state.ids[r].slice()) };
  if (gathered.hidden) next.hidden = gathered.hidden;
  return next;
}

/** Free the tensors of a state. */
export function disposeState(state: DecoderState): void {
  disposeAll([state.cache, state.logits, state.hidden]);
}
