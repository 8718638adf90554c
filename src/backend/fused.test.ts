/**
 * The fused ops: with the native kernels against their composed TF.js form (the form used without the
 * addon), values and gradients, on wasm and cpu; plus hand-computed references (float64 JS) for the
 * loss and GELU, and bit-identity of AdamW's update. Native parts are skipped when the addon is absent.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { adamwUpdate, dropoutFused, fusedLinear, geluTanh, layerNorm, softmaxCrossEntropy } from './fused.js';
import { rmsNorm, rotary, siluMul } from './fused_llama.js';
import { initBackend } from './index.js';
import { loadAddon } from './native/addon.js';
import { disableNativeKernels, enableNativeKernels } from './native/register.js';
import { Rng } from './rng.js';

const loaded = loadAddon();
const skip = loaded.addon ? false : `native addon not available: ${loaded.reason}`;
const rng = new Rng(77);
const arr = (n: number, std = 1) => rng.normalArray(n, std);

/** fn with the composed ops, then with the native kernels; tensors must not leak either way. */
async function bothWays(backend: 'wasm' | 'cpu', fn: () => Float32Array[]): Promise<{ plain: Float32Array[]; native: Float32Array[] }> {
  await initBackend({ backend, native: false });
  disableNativeKernels();
  const before = tf.memory().numTensors;
  const plain = fn();
  assert.equal(tf.memory().numTensors, before, 'composed run leaked tensors');
  assert.ok(enableNativeKernels().enabled);
  const native = fn();
  assert.equal(tf.memory().numTensors, before, 'native run leaked tensors');
  return { plain, native };
}

function close(a: ArrayLike<number>, b: ArrayLike<number>, tol: number, what: string): void {
  assert.equal(a.length, b.length, `${what}: lengths`);
  for (let i = 0; i < a.length; i++) {
    if (!(Math.abs(a[i] - b[i]) <= tol * (1 + Math.abs(b[i])))) assert.fail(`${what}: element ${i}: ${a[i]} vs ${b[i]}`);
  }
}

const data = (ts: tf.Tensor[]) => ts.map((t) => t.dataSync() as Float32Array);

for (const backend of ['wasm', 'cpu'] as const) {
  test(`layerNorm on ${backend}: native equals the composed form, values and gradients`, { skip }, async () => {
    await initBackend({ backend });
    for (const shape of [[3, 5], [2, 7, 768], [1, 1], [4, 33]]) {
      const D = shape[shape.length - 1];
      const n = shape.reduce((p, d) => p * d, 1);
      const x = tf.tensor(arr(n, 3), shape);
      const g = tf.tensor(arr(D), [D]);
      const b = tf.tensor(arr(D), [D]);
      const w = tf.tensor(arr(n), shape);
      const run = () => tf.tidy(() => {
        const f = (xx: tf.Tensor, gg: tf.Tensor, bb: tf.Tensor) => tf.sum(tf.mul(layerNorm(xx, gg, bb, 1e-5), w));
        return data([layerNorm(x, g, b, 1e-5), ...tf.grads(f)([x, g, b])]);
      });
      const { plain, native } = await bothWays(backend, run);
      ['y', 'dx', 'dgamma', 'dbeta'].forEach((what, i) => close(native[i], plain[i], 2e-5, `${what} ${shape}`));
      tf.dispose([x, g, b, w]);
    }
  });

  test(`rmsNorm, rotary and siluMul on ${backend}: native equals the composed form (TF.js autodiff for the gradients)`, { skip }, async () => {
    await initBackend({ backend });
    for (const shape of [[3, 5], [2, 7, 64], [1, 1], [0, 4]]) {
      const n = shape.reduce((p, d) => p * d, 1);
      const D = shape[shape.length - 1];
      const x = tf.tensor(arr(n, 2), shape), w = tf.tensor(arr(D), [D]), u = tf.tensor(arr(n), shape), r = tf.tensor(arr(n), shape);
      const run = () => tf.tidy(() => {
        const loss = (xx: tf.Tensor, ww: tf.Tensor) => tf.sum(tf.mul(rmsNorm(xx, ww, 1e-6), r));
        const swi = (g: tf.Tensor, uu: tf.Tensor) => tf.sum(tf.mul(siluMul(g, uu), r));
        return data([rmsNorm(x, w, 1e-6), ...tf.grads(loss)([x, w]), siluMul(x, u), ...tf.grads(swi)([x, u])]);
      });
      const { plain, native } = await bothWays(backend, run);
      ['rms y', 'rms dx', 'rms dw', 'silu·up', 'd gate', 'd up'].forEach((what, i) => close(native[i], plain[i], 2e-5, `${what} ${shape}`));
      tf.dispose([x, w, u, r]);
    }
    // Rotary: per-row tables ([B, 1, T, Dh]) and shared ones ([1, 1, T, Dh]), 1 and 3 heads.
    for (const [B, H, T, Dh, tb] of [[2, 3, 4, 8, 2], [1, 1, 5, 2, 1], [2, 3, 1, 16, 1]]) {
      const x = tf.tensor(arr(B * H * T * Dh), [B, H, T, Dh]);
      const angle = tf.tensor(arr(tb * T * Dh, 3), [tb, 1, T, Dh]);
      const cos = tf.cos(angle), sin = tf.sin(angle), r = tf.tensor(arr(B * H * T * Dh), [B, H, T, Dh]);
      const run = () => tf.tidy(() => data([rotary(x, cos, sin), tf.grad((xx: tf.Tensor) => tf.sum(tf.mul(rotary(xx, cos, sin), r)))(x)]));
      const { plain, native } = await bothWays(backend, run);
      ['rotary', 'rotary dx'].forEach((what, i) => close(native[i], plain[i], 1e-6, `${what} ${[B, H, T, Dh, tb]}`));
      tf.dispose([x, angle, cos, sin, r]);
    }
  });

  test(`fusedLinear on ${backend}: one kernel equal to tf.fused.matMul, values and gradients, both layouts, with and without bias`, { skip }, async () => {
    await initBackend({ backend });
    for (const [lead, K, N] of [[[2, 3], 5, 7], [[1, 1], 768, 300], [[4], 33, 1], [[], 6, 4], [[0, 2], 3, 5]] as [number[], number, number][]) {
      for (const transposeW of [false, true]) {
        for (const withBias of [true, false]) {
          const rows = lead.reduce((p, d) => p * d, 1);
          const x = tf.tensor(arr(rows * K), [...lead, K]);
          const w = tf.tensor(arr(K * N), transposeW ? [N, K] : [K, N]);
          const b = withBias ? tf.tensor(arr(N), [N]) : undefined;
          const r = tf.tensor(arr(rows * N), [...lead, N]);
          // The reference: TF.js's own fused matMul over the 2-D view (what Linear ran before).
          const ref = (xx: tf.Tensor, ww: tf.Tensor, bb?: tf.Tensor) => tf.fused.matMul({ a: xx.reshape([-1, K]), b: ww, transposeB: transposeW, bias: bb }).reshape([...lead, N]);
          const run = (f: typeof ref) => () => tf.tidy(() => {
            const loss = (...t: tf.Tensor[]) => tf.sum(tf.mul(f(t[0], t[1], t[2]), r));
            return data([f(x, w, b), ...tf.grads(loss)(b ? [x, w, b] : [x, w])]);
          });
          await initBackend({ backend, native: true });
          const before = tf.memory().numTensors;
          const got = run((xx, ww, bb) => fusedLinear(xx, ww, bb, transposeW)!)();
          const want = run(ref)();
          assert.equal(tf.memory().numTensors, before, 'leaked tensors');
          const what = `lead [${lead}] K ${K} N ${N} transposeW ${transposeW} bias ${withBias}`;
          assert.equal(got.length, want.length, what);
          got.forEach((g, i) => close(g, want[i], 1e-5, `${['y', 'dx', 'dw', 'db'][i]} ${what}`));
          tf.dispose([x, w, r, ...(b ? [b] : [])]);
        }
      }
    }
    disableNativeKernels();
    const x = tf.ones([2, 3]);
    assert.equal(fusedLinear(x, tf.ones([3, 4]), undefined, false), undefined, 'without the kernel the caller composes');
    x.dispose();
    assert.ok(enableNativeKernels().enabled);
  });

  test(`geluTanh on ${backend}: native equals the composed form and the formula, values and gradient`, { skip }, async () => {
    await initBackend({ backend });
    const xs = Float32Array.from({ length: 2001 }, (_, i) => (i - 1000) / 100);
    const x = tf.tensor1d(xs);
    const run = () => tf.tidy(() => data([geluTanh(x), tf.grad((t: tf.Tensor) => tf.sum(geluTanh(t)))(x)]));
    const { plain, native } = await bothWays(backend, run);
    close(native[0], plain[0], 1e-6, 'gelu');
    close(native[1], plain[1], 1e-5, 'gelu gradient');
    const c = Math.sqrt(2 / Math.PI);
    close(native[0], Array.from(xs, (v) => 0.5 * v * (1 + Math.tanh(c * (v + 0.044715 * v ** 3)))), 1e-6, 'gelu formula');
    x.dispose();
  });

  test(`softmaxCrossEntropy on ${backend}: native equals the composed form and float64, ignored rows give 0`, { skip }, async () => {
    await initBackend({ backend });
    const [N, V] = [6, 1001];
    const lv = arr(N * V, 4);
    const targets = [3, 0, -100, 1000, 517, -1];
    const logits = tf.tensor2d(lv, [N, V]);
    const t = tf.tensor1d(targets, 'int32');
    const w = tf.tensor1d(arr(N));
    const run = () => tf.tidy(() => data([softmaxCrossEntropy(logits, t), tf.grad((l: tf.Tensor) => tf.sum(tf.mul(softmaxCrossEntropy(l, t), w)))(logits)]));
    const { plain, native } = await bothWays(backend, run);
    close(native[0], plain[0], 1e-5, 'nll');
    close(native[1], plain[1], 1e-5, 'dlogits');
    const wv = w.dataSync();
    for (let r = 0; r < N; r++) {
      const row = Array.from(lv.subarray(r * V, (r + 1) * V));
      const mx = Math.max(...row);
      const lse = mx + Math.log(row.reduce((s, v) => s + Math.exp(v - mx), 0));
      const want = targets[r] >= 0 ? lse - row[targets[r]] : 0;
      close([native[0][r]], [want], 1e-5, `row ${r} nll`);
      const grad = row.map((v, j) => (targets[r] >= 0 ? wv[r] * (Math.exp(v - lse) - (j === targets[r] ? 1 : 0)) : 0));
      close(native[1].subarray(r * V, (r + 1) * V), grad, 1e-5, `row ${r} gradient`);
    }
    tf.dispose([logits, t, w]);
  });

  test(`dropoutFused on ${backend}: bit-identical to tf.dropout with the same seed, values and gradient`, { skip }, async () => {
    await initBackend({ backend });
    const x = tf.tensor(arr(3 * 257), [3, 257]);
    const w = tf.tensor(arr(3 * 257), [3, 257]);
    for (const rate of [0.1, 0.5]) {
      const run = () => tf.tidy(() => data([dropoutFused(x, rate, 42), tf.grad((t: tf.Tensor) => tf.sum(tf.mul(dropoutFused(t, rate, 42), w)))(x)]));
      const { plain, native } = await bothWays(backend, run);
      native.forEach((t, i) => assert.deepEqual(t, plain[i], `output ${i}, rate ${rate}`));
      const kept = native[0].filter((v) => v !== 0).length / native[0].length;
      assert.ok(Math.abs(kept - (1 - rate)) < 0.1, `kept fraction ${kept}`);
    }
    tf.dispose([x, w]);
  });

  test(`adamwUpdate on ${backend}: the native kernel is bit-identical to the composed form`, { skip }, async () => {
    await initBackend({ backend });
    const n = 10007;
    const p = tf.tensor1d(arr(n));
    const m = tf.tensor1d(arr(n, 0.01));
    const v = tf.tensor1d(Float32Array.from(arr(n, 0.001), Math.abs));
    const g = tf.tensor1d(arr(n, 0.1));
    for (const weightDecay of [0, 0.01]) {
      const c = { lr: 3e-4, weightDecay, beta1: 0.9, beta2: 0.999, eps: 1e-8, bc2Sqrt: Math.sqrt(1 - 0.999 ** 3), stepSize: 3e-4 / (1 - 0.9 ** 3) };
      const { plain, native } = await bothWays(backend, () => tf.tidy(() => data(adamwUpdate(p, m, v, g, c))));
      native.forEach((x, i) => assert.deepEqual(x, plain[i], `output ${i}, weight decay ${weightDecay}`));
    }
    tf.dispose([p, m, v, g]);
  });
}

test('layerNorm gradients do not depend on the thread count (bit-identical with 1 and 2 threads)', { skip }, async () => {
  await initBackend({ backend: 'wasm' });
  const x = tf.tensor(arr(300 * 64), [300, 64]);
  const g = tf.tensor(arr(64), [64]);
  const b = tf.tensor(arr(64), [64]);
  const run = () => tf.tidy(() => data(tf.grads((xx: tf.Tensor, gg: tf.Tensor, bb: tf.Tensor) => tf.sum(tf.square(layerNorm(xx, gg, bb, 1e-5))))([x, g, b])));
  enableNativeKernels({ threads: 1 });
  const one = run();
  enableNativeKernels({ threads: 2 });
  const two = run();
  one.forEach((t, i) => assert.deepEqual(t, two[i]));
  tf.dispose([x, g, b]);
});
