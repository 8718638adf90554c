/**
 * Helpers every architecture shares: reading typed fields from config.json with HF's defaults,
 * turning user ids into validated int32 tensors, and renaming views over checkpoint tensors.
 */
import * as tf from '@tensorflow/tfjs-core';
import { ConfigError, ShapeError } from '../errors.js';
import type { KVCache, LayerKV } from '../nn/attention.js';
import { matMulWT } from '../nn/layers.js';
import type { TensorSource } from '../nn/module.js';
import type { Ids } from './types.js';

/** A config.json object as parsed. */
export type RawConfig = Record<string, unknown>;

/** Read a number field, falling back to HF's default; `undefined` default makes it required. */
export function num(cfg: RawConfig, key: string, dflt?: number, modelType = String(cfg.model_type)): number {
  const v = cfg[key];
  if (v === undefined || v === null) {
    if (dflt === undefined) throw new ConfigError(`config.json (${modelType}) is missing the field '${key}'`, `add "${key}": <number> to config.json`);
    return dflt;
  }
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new ConfigError(`config.json (${modelType}) field '${key}' must be a number, found ${JSON.stringify(v)}`);
  return v;
}

/** Read a positive integer field. */
export function posInt(cfg: RawConfig, key: string, dflt?: number): number {
  const v = num(cfg, key, dflt);
  if (!Number.isInteger(v) || v <= 0) throw new ConfigError(`config.json (${String(cfg.model_type)}) field '${key}' must be a positive integer, found ${v}`);
  return v;
}

/** Read a string field with a default. */
export function str(cfg: RawConfig, key: string, dflt: string): string {
  const v = cfg[key];
  if (v === undefined || v === null) return dflt;
  if (typeof v !== 'string') throw new ConfigError(`config.json (${String(cfg.model_type)}) field '${key}' must be a string, found ${JSON.stringify(v)}`);
  return v;
}

/** Read a boolean field with a default. */
export function bool(cfg: RawConfig, key: string, dflt: boolean): boolean {
  const v = cfg[key];
  if (v === undefined || v === null) return dflt;
  if (typeof v !== 'boolean') throw new ConfigError(`config.json (${String(cfg.model_type)}) field '${key}' must be true or false, found ${JSON.stringify(v)}`);
  return v;
}

/** Fail unless `a` divides by `b`, naming both fields. */
export function divisible(modelType: string, aKey: string, a: number, bKey: string, b: number): void {
  if (a % b !== 0) throw new ConfigError(`config.json (${modelType}): ${aKey} (${a}) must be divisible by ${bKey} (${b})`);
}

function shapeOf(ids: Ids): number[] {
  if (ids instanceof tf.Tensor) return ids.shape as number[];
  const rows = ids.length;
  const cols = rows ? ids[0].length : 0;
  for (const r of ids) if (r.length !== cols) throw new ShapeError(`input ids must be a rectangular [B, T] array; row lengths differ (${cols} vs ${r.length})`, 'pad the batch (tokenizer.batchEncode with padding) or pass one sequence at a time');
  return [rows, cols];
}

/**
 * Ids as an int32 [B, T] tensor the caller owns, after checking rank and (when `vocab` is given)
 * that every id lies in [0, vocab).
 */
export function idsTensor(ids: Ids, what: string, vocab?: number): tf.Tensor {
  const shape = shapeOf(ids);
  if (shape.length !== 2) throw new ShapeError(`${what} must have shape [batch, length], found [${shape.join(', ')}]`, 'wrap a single sequence as [[...ids]]');
  if (shape[0] === 0 || shape[1] === 0) throw new ShapeError(`${what} is empty (shape [${shape.join(', ')}])`, 'pass at least one token per sequence');
  const t = ids instanceof tf.Tensor ? (ids.dtype === 'int32' ? ids.clone() : tf.cast(ids, 'int32')) : tf.tensor2d(ids, shape as [number, number], 'int32');
  if (vocab !== undefined) {
    const vals = t.dataSync();
    for (let i = 0; i < vals.length; i++) {
      const v = vals[i];
      if (!(v >= 0 && v < vocab)) {
        t.dispose();
        throw new ShapeError(`${what} contains id ${v} at flat index ${i}, outside the vocabulary [0, ${vocab})`, 'check that the tokenizer belongs to this model');
      }
    }
  }
  return t;
}

/** A view of a TensorSource under new names: `rename` maps a checkpoint key to ours, or null to drop it. */
export function renamedSource(src: TensorSource, rename: (key: string) => string | null): TensorSource {
  const toSrc = new Map<string, string>();
  for (const k of src.keys()) {
    const ours = rename(k);
    if (ours !== null && !toSrc.has(ours)) toSrc.set(ours, k);
  }
  return {
    keys: () => [...toSrc.keys()],
    shape: (k) => src.shape(toSrc.get(k)!),
    read: (k) => src.read(toSrc.get(k)!),
  };
}

/** How a family's checkpoint keys relate to ours (HF's `base_model_prefix` logic). */
export interface KeyRules {
  /** e.g. 'transformer', 'bert', 'roberta', 'model' */
  basePrefix: string;
  /** Key prefixes that belong to heads (e.g. 'lm_head.', 'cls.'). */
  headPrefixes: string[];
  /** Keys that are buffers or tied copies, never parameters (e.g. GPT-2's `attn.bias` mask). */
  dropped: RegExp[];
}

/**
 * Map a checkpoint key to our name, as HF's `from_pretrained` does: a headed model accepts a bare base
 * checkpoint (prefix added), a base model accepts a headed checkpoint (prefix stripped, heads dropped).
 */
export function hfKeyMapper(rules: KeyRules, headed: boolean): (key: string) => string | null {
  const pre = `${rules.basePrefix}.`;
  return (key) => {
    if (rules.dropped.some((r) => r.test(key))) return null;
    const isHead = rules.headPrefixes.some((h) => key.startsWith(h));
    if (headed) return key.startsWith(pre) || isHead ? key : pre + key;
    if (isHead) return null;
    return key.startsWith(pre) ? key.slice(pre.length) : key;
  };
}

/**
 * Check HSO's kvDelta against the new keys it will be added to: one {key, value} per layer, each
 * exactly [B, Hkv, T, Dh].
 */
export function checkKvDelta(kvDelta: LayerKV[] | undefined, layers: number, expected: number[]): void {
  if (!kvDelta) return;
  if (kvDelta.length !== layers) throw new ShapeError(`kvDelta has ${kvDelta.length} layers, the model has ${layers}`, 'pass one {key, value} offset per layer');
  kvDelta.forEach((d, i) => {
    for (const [name, t] of [['key', d.key], ['value', d.value]] as const) {
      const shape = t.shape as number[];
      if (shape.length !== expected.length || shape.some((n, j) => n !== expected[j])) {
        throw new ShapeError(`kvDelta[${i}].${name} has shape [${shape.join(', ')}], expected [${expected.join(', ')}] (batch, kv heads, new tokens, head size)`, 'give one offset per new token, shaped like the keys the layer computes for them');
      }
    }
  });
}

/** The decoder stack's result: final residual stream, the extended cache, and (when asked) each layer's input. */
export interface StackOutput {
  x: tf.Tensor;
  cache: KVCache;
  hidden: tf.Tensor[];
}

/**
 * Run decoder layers in order, threading each layer's slice of the cache (the one place where per-layer
 * hooks enter: `step` receives the layer index, with which models pick that layer's kvDelta).
 */
export function runDecoderLayers<L>(x: tf.Tensor, layers: L[], step: (layer: L, x: tf.Tensor, past: LayerKV | undefined, index: number) => [tf.Tensor, LayerKV], cache: KVCache | undefined, returnHidden: boolean | undefined): StackOutput {
  const hidden: tf.Tensor[] = [];
  const next: KVCache = [];
  layers.forEach((layer, i) => {
    if (returnHidden) hidden.push(x);
    const [y, kv] = step(layer, x, cache?.[i], i);
    next.push(kv);
    x = y;
  });
  return { x, cache: next, hidden };
}

/**
 * A decoder's LM head: hidden states [B, T, D] against a [V, D] weight (tied embeddings or `lm_head`),
 * over the last `keep` positions (HF's `logits_to_keep`; 0: all of them) → [B, min(keep, T), V].
 */
export function lmHeadLogits(hidden: tf.Tensor, weight: tf.Tensor, keep = 0): tf.Tensor {
  if (!Number.isInteger(keep) || keep < 0) throw new ShapeError(`logitsToKeep must be a whole number >= 0, got ${keep}`, 'pass 1 for the last position only, or 0 for every position');
  const [B, T, D] = hidden.shape as number[];
  const n = keep === 0 ? T : Math.min(keep, T);
  const kept = n === T ? hidden : hidden.slice([0, T - n, 0], [B, n, D]);
  return matMulWT(kept.reshape([B * n, D]), weight).reshape([B, n, weight.shape[0]]);
}
