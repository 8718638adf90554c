/**
 * Operations on values laid out like a KV cache (per layer {key, value}, each [B, Hkv, S, Dh], time on
 * axis 2): HSO keeps its Adam moments in this layout, so appends and evictions are the same calls for the
 * cache and for the moments. Every function returns new tensors and leaves its inputs alone.
 */
import * as tf from '@tensorflow/tfjs-core';
import { tidy } from '../../backend/memory.js';
import type { KVCache } from '../../nn/attention.js';

/** Apply `fn` to every key and value (and the matching ones of `others`), keeping the layout. */
export function mapSlots(a: KVCache, fn: (t: tf.Tensor, ...rest: tf.Tensor[]) => tf.Tensor, ...others: KVCache[]): KVCache {
  return tidy(() => a.map((l, i) => ({ key: fn(l.key, ...others.map((o) => o[i].key)), value: fn(l.value, ...others.map((o) => o[i].value)) })));
}

/** Number of time slots (0 for an empty cache). */
export function slotCount(c: KVCache | undefined): number {
  return c && c.length ? (c[0].key.shape as number[])[2] : 0;
}

/** `a` followed by `b` along time; either may be undefined or empty. */
export function concatSlots(a: KVCache | undefined, b: KVCache | undefined): KVCache {
  if (!slotCount(a)) return b ? mapSlots(b, (t) => t.clone()) : [];
  if (!slotCount(b)) return mapSlots(a!, (t) => t.clone());
  return mapSlots(a!, (x, y) => tf.concat([x, y], 2), b!);
}

/** Slots [start, start + len) (len default: to the end). */
export function sliceSlots(c: KVCache, start: number, len = slotCount(c) - start): KVCache {
  return mapSlots(c, (t) => t.slice([0, 0, start, 0], [-1, -1, len, -1]));
}

/** Zeros of the same layout. */
export function zerosLikeSlots(c: KVCache): KVCache {
  return mapSlots(c, (t) => tf.zerosLike(t));
}

/** Zeros shaped [B, Hkv, T, Dh] for each of `layers` layers. */
export function zeroSlots(layers: number, shape: number[]): KVCache {
  return tidy(() => Array.from({ length: layers }, () => ({ key: tf.zeros(shape), value: tf.zeros(shape) })));
}

/** Flatten to [k0, v0, k1, v1, …] (the order tf.grads takes variables in). */
export function flattenSlots(c: KVCache): tf.Tensor[] {
  return c.flatMap((l) => [l.key, l.value]);
}

/** Inverse of {@link flattenSlots}. */
export function unflattenSlots(ts: tf.Tensor[]): KVCache {
  const out: KVCache = [];
  for (let i = 0; i < ts.length; i += 2) out.push({ key: ts[i], value: ts[i + 1] });
  return out;
}
