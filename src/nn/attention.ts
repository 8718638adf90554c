/**
 * Attention written with matMul (tf.einsum has no gradient), the KV cache as a plain value, and the
 * masks HF builds: causal within the new tokens, plus a padding mask over past + new positions.
 * Shapes: B batch, H query heads, Hkv key/value heads, T new tokens, S past length, Dh head size.
 */
import * as tf from '@tensorflow/tfjs-core';
import { fusedAttention, fusedAttentionPacked } from '../backend/fused.js';
import type { Rng } from '../backend/rng.js';
import { dropout } from './layers.js';

/** One layer's cached keys and values, each [B, Hkv, S, Dh]. */
export interface LayerKV {
  key: tf.Tensor;
  value: tf.Tensor;
}

/** Per-layer cache; a value passed into forward and returned, never state inside a model. */
export type KVCache = LayerKV[];

/** Past length of a cache (0 when absent). */
export function cacheLength(cache?: KVCache): number {
  return cache && cache.length ? (cache[0].key.shape as number[])[2] : 0;
}

/** Large negative added to masked scores; finite so fully masked rows give no NaN. */
export const MASK_VALUE = -1e9;

/**
 * Additive attention bias [B, 1, T, S+T]: 0 where a query may look, MASK_VALUE elsewhere.
 * @param attentionMask [B, S+T] with 1 for real tokens and 0 for padding (optional)
 * @param causal whether new token i may see new tokens j > i (decoders: yes; encoders: no)
 */
export function attentionBias(batch: number, newLen: number, pastLen: number, attentionMask: tf.Tensor | undefined, causal: boolean): tf.Tensor | undefined {
  if (!attentionMask && (!causal || newLen === 1)) return undefined;
  return tf.tidy(() => {
    const total = pastLen + newLen;
    // The causal part is built in JS: a handful of broadcasting TF.js ops cost ~10 ms on wasm.
    let bias: tf.Tensor | undefined;
    if (causal) {
      const values = new Float32Array(newLen * total);
      for (let i = 0; i < newLen; i++) values.fill(MASK_VALUE, i * total + pastLen + i + 1, (i + 1) * total);
      bias = tf.tensor(values, [1, 1, newLen, total]);
    }
    if (attentionMask) {
      const pad = tf.mul(tf.cast(tf.logicalNot(tf.cast(attentionMask, 'bool')), 'float32'), MASK_VALUE).reshape([batch, 1, 1, total]);
      bias = bias ? tf.minimum(bias, pad) : tf.tile(pad, [1, 1, newLen, 1]);
    }
    return bias!;
  });
}

/**
 * softmax(q kᵀ · scale + bias) v with grouped-query heads: query head h reads key/value head
 * floor(h / (H / Hkv)), done by folding the group into the query-time axis so k and v are never copied.
 * @param q [B, H, T, Dh]; @param k,v [B, Hkv, S, Dh]; @param bias [B|1, 1, T, S] additive
 * @param drop dropout on the attention probabilities (HF's attn_pdrop / attention_probs_dropout_prob), training only
 * @returns [B, H, T, Dh]
 */
export function scaledDotProductAttention(q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, bias: tf.Tensor | undefined, scale: number, drop?: { rate: number; training?: boolean; rng?: Rng }): tf.Tensor {
  return tf.tidy(() => {
    const [B, H, T, Dh] = q.shape as number[];
    const [, Hkv, S] = k.shape as number[];
    const group = H / Hkv;
    const qg = group === 1 ? q : q.reshape([B, Hkv, group * T, Dh]);
    let scores = tf.mul(tf.matMul(qg, k, false, true), scale); // [B, Hkv, group*T, S]
    if (bias) {
      const b5 = bias.reshape([(bias.shape as number[])[0], 1, 1, T, S]);
      scores = tf.add(scores.reshape([B, Hkv, group, T, S]), b5).reshape([B, Hkv, group * T, S]);
    }
    const probs = drop ? dropout(tf.softmax(scores, -1), drop.rate, drop) : tf.softmax(scores, -1);
    return tf.matMul(probs, v).reshape([B, H, T, Dh]);
  });
}

/** [B, T, H·Dh] → [B, H, T, Dh] */
export function splitHeads(x: tf.Tensor, heads: number, headDim: number): tf.Tensor {
  const [B, T] = x.shape as number[];
  return tf.tidy(() => x.reshape([B, T, heads, headDim]).transpose([0, 2, 1, 3]));
}

/** [B, H, T, Dh] → [B, T, H·Dh] */
export function mergeHeads(x: tf.Tensor): tf.Tensor {
  const [B, H, T, Dh] = x.shape as number[];
  return tf.tidy(() => x.transpose([0, 2, 1, 3]).reshape([B, T, H * Dh]));
}

/**
 * Append new keys/values [B, Hkv, T, Dh] to a layer's cache along the time axis (a new value; inputs
 * untouched), after adding `delta` (HSO's kvDelta, same shape) to them when given.
 */
export function appendKV(past: LayerKV | undefined, key: tf.Tensor, value: tf.Tensor, delta?: LayerKV): LayerKV {
  if (delta) {
    key = tf.add(key, delta.key);
    value = tf.add(value, delta.value);
  }
  if (!past) return { key, value };
  return { key: tf.concat([past.key, key], 2), value: tf.concat([past.value, value], 2) };
}

/**
 * A decoder layer's attention with its cache: the new keys and values (plus `delta`) appended to `past`,
 * then attention, heads merged. One native kernel when the backend has it and no attention dropout is
 * active; otherwise {@link appendKV}, {@link scaledDotProductAttention} and {@link mergeHeads}.
 * @param q [B, H, T, Dh] @param k,v [B, Hkv, T, Dh] @param bias [B|1, 1, T, S+T] additive, or none
 * @returns [[B, T, H·Dh], the layer's cache of S+T positions]
 */
export function attendWithCache(q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, past: LayerKV | undefined, bias: tf.Tensor | undefined, scale: number, drop?: { rate: number; training?: boolean; rng?: Rng }, delta?: LayerKV): [tf.Tensor, LayerKV] {
  if (!(drop?.training && drop.rate > 0)) {
    const fused = tf.tidy(() => {
      const key = delta ? tf.add(k, delta.key) : k;
      const value = delta ? tf.add(v, delta.value) : v;
      return fusedAttention(q, key, value, past?.key, past?.value, bias, scale) ?? [];
    });
    if (fused.length) return [fused[0], { key: fused[1], value: fused[2] }];
  }
  const [out, key, value] = tf.tidy(() => {
    const kv = appendKV(past, k, v, delta);
    return [mergeHeads(scaledDotProductAttention(q, kv.key, kv.value, bias, scale, drop)), kv.key, kv.value];
  });
  return [out, { key, value }];
}

/**
 * {@link attendWithCache} for a fused projection qkv [B, T, (H + 2 Hkv)·Dh] (per token: the query heads,
 * then the key heads, then the value heads — GPT-2's `c_attn`), read in place by the native kernel.
 */
export function attendPackedWithCache(qkv: tf.Tensor, heads: number, kvHeads: number, past: LayerKV | undefined, bias: tf.Tensor | undefined, scale: number, drop?: { rate: number; training?: boolean; rng?: Rng }, delta?: LayerKV): [tf.Tensor, LayerKV] {
  if (!delta && !(drop?.training && drop.rate > 0)) {
    const fused = fusedAttentionPacked(qkv, heads, kvHeads, past?.key, past?.value, bias, scale);
    if (fused) return [fused[0], { key: fused[1], value: fused[2] }];
  }
  const Dh = (qkv.shape[2] as number) / (heads + 2 * kvHeads);
  const [q, k, v] = tf.tidy(() => {
    const [q, k, v] = tf.split(qkv, [heads * Dh, kvHeads * Dh, kvHeads * Dh], -1);
    return [splitHeads(q, heads, Dh), splitHeads(k, kvHeads, Dh), splitHeads(v, kvHeads, Dh)];
  });
  const res = attendWithCache(q, k, v, past, bias, scale, drop, delta);
  // k and v may be the returned cache itself (no past, no delta, composed path): keep those.
  tf.dispose([q, k, v].filter((t) => t !== res[1].key && t !== res[1].value));
  return res;
}
