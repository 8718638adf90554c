/**
 * attendWithCache: with the native attention kernel against the composed TF.js form (appendKV,
 * scaledDotProductAttention, mergeHeads — what runs without the addon), values and gradients, on wasm
 * and cpu, over grouped-query heads, with and without a cache and a padding or causal bias; plus a
 * float64 JS reference for one case. Native parts are skipped when the addon is absent.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../backend/index.js';
import { loadAddon } from '../backend/native/addon.js';
import { disableNativeKernels, enableNativeKernels } from '../backend/native/register.js';
import { Rng } from '../backend/rng.js';
import { attendPackedWithCache, attendWithCache, attentionBias, mergeHeads, scaledDotProductAttention, type LayerKV } from './attention.js';

const loaded = loadAddon();
const skip = loaded.addon ? false : `native addon not available: ${loaded.reason}`;

interface Case { B: number; H: number; Hkv: number; T: number; S: number; Dh: number; mask?: number[][]; causal: boolean }

const CASES: Case[] = [
  { B: 1, H: 3, Hkv: 3, T: 1, S: 0, Dh: 8, causal: true }, // first decoding step: no cache, no bias
  { B: 1, H: 4, Hkv: 4, T: 1, S: 9, Dh: 16, causal: true }, // a decoding step with a cache
  { B: 2, H: 4, Hkv: 2, T: 5, S: 0, Dh: 8, causal: true }, // grouped heads, causal prefill
  { B: 2, H: 6, Hkv: 2, T: 3, S: 4, Dh: 5, mask: [[0, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1, 1]], causal: true }, // left padding + cache
  { B: 2, H: 2, Hkv: 1, T: 4, S: 0, Dh: 7, mask: [[1, 1, 0, 0], [0, 0, 0, 0]], causal: false }, // encoder-style, a fully masked row
  { B: 1, H: 2, Hkv: 2, T: 12, S: 0, Dh: 64, causal: true }, // a prefill block: run as two GEMMs
  // 70 query rows: a 64-row GEMM block and a 6-row block of dot products; left padding and a cache.
  { B: 2, H: 4, Hkv: 2, T: 70, S: 3, Dh: 16, mask: [Array.from({ length: 73 }, (_, i) => (i < 5 ? 0 : 1)), Array.from({ length: 73 }, () => 1)], causal: true },
];

function inputs(c: Case, rng: Rng) {
  const rand = (shape: number[]) => tf.tensor(rng.normalArray(shape.reduce((p, d) => p * d, 1)), shape);
  const q = rand([c.B, c.H, c.T, c.Dh]);
  const k = rand([c.B, c.Hkv, c.T, c.Dh]);
  const v = rand([c.B, c.Hkv, c.T, c.Dh]);
  const past: LayerKV | undefined = c.S ? { key: rand([c.B, c.Hkv, c.S, c.Dh]), value: rand([c.B, c.Hkv, c.S, c.Dh]) } : undefined;
  const weights = [rand([c.B, c.T, c.H * c.Dh]), rand([c.B, c.Hkv, c.S + c.T, c.Dh]), rand([c.B, c.Hkv, c.S + c.T, c.Dh])];
  return { q, k, v, past, weights };
}

/** Outputs and the gradients of a weighted sum of all three outputs, as arrays. */
function run(c: Case, seed: number): Float32Array[] {
  const rng = new Rng(seed);
  const { q, k, v, past, weights } = inputs(c, rng);
  const mask = c.mask ? tf.tensor(c.mask, undefined, 'int32') : undefined;
  const bias = attentionBias(c.B, c.T, c.S, mask, c.causal);
  const scale = 1 / Math.sqrt(c.Dh);
  const xs = past ? [q, k, v, past.key, past.value] : [q, k, v];
  const f = (...t: tf.Tensor[]) => {
    const [a, kv] = attendWithCache(t[0], t[1], t[2], past ? { key: t[3], value: t[4] } : undefined, bias, scale);
    return tf.addN([tf.sum(tf.mul(a, weights[0])), tf.sum(tf.mul(kv.key, weights[1])), tf.sum(tf.mul(kv.value, weights[2]))]);
  };
  const [a, kv] = attendWithCache(q, k, v, past, bias, scale);
  const grads = tf.grads(f)(xs);
  const out = [a, kv.key, kv.value, ...grads].map((t) => t.dataSync() as Float32Array);
  tf.dispose([a, kv.key, kv.value, ...grads, ...xs, ...weights, ...(bias ? [bias] : []), ...(mask ? [mask] : [])]);
  return out;
}

function close(a: Float32Array, b: Float32Array, tol: number, what: string): void {
  assert.equal(a.length, b.length, `${what}: lengths`);
  for (let i = 0; i < a.length; i++) {
    if (!(Math.abs(a[i] - b[i]) <= tol * (1 + Math.abs(b[i])))) assert.fail(`${what}: element ${i}: ${a[i]} vs ${b[i]}`);
  }
}

/** Every case with the composed ops, then with the native kernel: equal outputs and gradients, no leaks. */
async function nativeEqualsComposed(backend: 'wasm' | 'cpu', fn: (c: Case, seed: number) => Float32Array[], names: string[]): Promise<void> {
  await initBackend({ backend, native: false });
  disableNativeKernels();
  CASES.forEach((c, i) => {
    const before = tf.memory().numTensors;
    const plain = fn(c, 100 + i);
    assert.equal(tf.memory().numTensors, before, 'composed run leaked tensors');
    assert.ok(enableNativeKernels().enabled);
    const fused = fn(c, 100 + i);
    assert.equal(tf.memory().numTensors, before, 'native run leaked tensors');
    disableNativeKernels();
    assert.equal(fused.length, plain.length);
    fused.forEach((x, j) => close(x, plain[j], 2e-5, `case ${i} ${names[j]}`));
  });
  await initBackend({ backend: 'wasm', native: true });
}

/** attendPackedWithCache's outputs and gradients (qkv, past keys, past values), as arrays. */
function runPacked(c: Case, seed: number): Float32Array[] {
  const rng = new Rng(seed);
  const rand = (shape: number[]) => tf.tensor(rng.normalArray(shape.reduce((p, d) => p * d, 1)), shape);
  const qkv = rand([c.B, c.T, (c.H + 2 * c.Hkv) * c.Dh]);
  const past = c.S ? [rand([c.B, c.Hkv, c.S, c.Dh]), rand([c.B, c.Hkv, c.S, c.Dh])] : [];
  const weights = [rand([c.B, c.T, c.H * c.Dh]), rand([c.B, c.Hkv, c.S + c.T, c.Dh]), rand([c.B, c.Hkv, c.S + c.T, c.Dh])];
  const mask = c.mask ? tf.tensor(c.mask, undefined, 'int32') : undefined;
  const bias = attentionBias(c.B, c.T, c.S, mask, c.causal);
  const attend = (t: tf.Tensor[]) => attendPackedWithCache(t[0], c.H, c.Hkv, c.S ? { key: t[1], value: t[2] } : undefined, bias, 0.2);
  const f = (...t: tf.Tensor[]) => {
    const [a, kv] = attend(t);
    return tf.addN([tf.sum(tf.mul(a, weights[0])), tf.sum(tf.mul(kv.key, weights[1])), tf.sum(tf.mul(kv.value, weights[2]))]);
  };
  const [a, kv] = attend([qkv, ...past]);
  const grads = tf.grads(f)([qkv, ...past]);
  const out = [a, kv.key, kv.value, ...grads].map((t) => t.dataSync() as Float32Array);
  tf.dispose([a, kv.key, kv.value, ...grads, qkv, ...past, ...weights, ...(bias ? [bias] : []), ...(mask ? [mask] : [])]);
  return out;
}

for (const backend of ['wasm', 'cpu'] as const) {
  test(`attendWithCache on ${backend}: the native kernel equals the composed form, values and gradients`, { skip }, () =>
    nativeEqualsComposed(backend, run, ['out', 'key', 'value', 'dq', 'dk', 'dv', 'dpastK', 'dpastV']));
  test(`attendPackedWithCache on ${backend}: the kernel reading the fused projection equals the composed form, values and gradients`, { skip }, () =>
    nativeEqualsComposed(backend, runPacked, ['out', 'key', 'value', 'dqkv', 'dpastK', 'dpastV']));
}

test('the native attention kernel against a float64 JS reference (grouped heads, cache, padding)', { skip }, async () => {
  await initBackend({ backend: 'wasm', native: true });
  const c = CASES[3];
  const rng = new Rng(7);
  const { q, k, v, past, weights } = inputs(c, rng);
  const mask = tf.tensor(c.mask!, undefined, 'int32');
  const bias = attentionBias(c.B, c.T, c.S, mask, true)!;
  const [a, kv] = attendWithCache(q, k, v, past, bias, 0.3);
  const [Q, K, V, PK, PV] = [q, k, v, past!.key, past!.value].map((t) => t.arraySync() as number[][][][]);
  const got = a.arraySync() as number[][][];
  const L = c.S + c.T;
  const G = c.H / c.Hkv;
  for (let b = 0; b < c.B; b++) {
    for (let h = 0; h < c.H; h++) {
      const g = Math.floor(h / G);
      const keys = [...PK[b][g], ...K[b][g]];
      const values = [...PV[b][g], ...V[b][g]];
      for (let t = 0; t < c.T; t++) {
        // Visible: real tokens (mask 1) at or before this query's position S + t.
        const s = keys.map((key, j) => (c.mask![b][j] && j <= c.S + t ? 0.3 * key.reduce((acc, x, d) => acc + x * Q[b][h][t][d], 0) : -Infinity));
        const mx = Math.max(...s);
        const e = s.map((x) => Math.exp(x - mx));
        const sum = e.reduce((x, y) => x + y, 0);
        for (let d = 0; d < c.Dh; d++) {
          const want = e.reduce((acc, p, j) => acc + (p / sum) * values[j][d], 0);
          const have = got[b][t][h * c.Dh + d];
          assert.ok(Math.abs(have - want) < 1e-5, `b${b} h${h} t${t} d${d}: ${have} vs ${want}`);
        }
      }
    }
  }
  // The returned cache is past ++ new along time, untouched.
  assert.deepEqual(kv.key.arraySync(), tf.tidy(() => tf.concat([past!.key, k], 2).arraySync()));
  assert.equal(kv.key.shape[2], L);
  tf.dispose([a, kv.key, kv.value, q, k, v, past!.key, past!.value, ...weights, bias, mask]);
});

test('attendWithCache adds kvDelta before caching, and uses the composed form under attention dropout', { skip }, async () => {
  await initBackend({ backend: 'wasm', native: true });
  const rng = new Rng(3);
  const c = CASES[1];
  const { q, k, v, past, weights } = inputs(c, rng);
  const delta = { key: tf.onesLike(k), value: tf.mul(tf.onesLike(v), 2) };
  const [a1, kv1] = attendWithCache(q, k, v, past, undefined, 0.25, undefined, delta);
  const [k2, v2] = [tf.add(k, 1), tf.add(v, 2)];
  const [a2, kv2] = attendWithCache(q, k2, v2, past, undefined, 0.25);
  close(a1.dataSync() as Float32Array, a2.dataSync() as Float32Array, 1e-6, 'delta out');
  close(kv1.value.dataSync() as Float32Array, kv2.value.dataSync() as Float32Array, 0, 'delta value');
  // Under attention dropout the composed form runs (the kernel has no dropout): same seed, same result.
  const drop = () => ({ rate: 0.5, training: true, rng: new Rng(1) });
  const [a3, kv3] = attendWithCache(q, k, v, past, undefined, 0.25, drop());
  const a4 = tf.tidy(() => mergeHeads(scaledDotProductAttention(q, tf.concat([past!.key, k], 2), tf.concat([past!.value, v], 2), undefined, 0.25, drop())));
  close(a3.dataSync() as Float32Array, a4.dataSync() as Float32Array, 0, 'dropout out');
  tf.dispose([a4]);
  tf.dispose([q, k, v, past!.key, past!.value, ...weights, delta.key, delta.value, k2, v2, a1, a2, a3, kv1.key, kv1.value, kv2.key, kv2.value, kv3.key, kv3.value]);
});
