/**
 * The native kernels against the backends' own kernels (wasm and cpu) on random shapes — every
 * transpose, batched and broadcast batches, odd and empty sizes — through gradients, and against an
 * independent JS reference where TF.js's own kernels cannot serve (general batch broadcasting).
 * Skipped, with the reason, when the addon is not built.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../index.js';
import { Rng } from '../rng.js';
import { loadAddon } from './addon.js';
import { disableNativeKernels, enableNativeKernels, nativeKernelsInfo } from './register.js';

const loaded = loadAddon();
// The addon is optional for users (no compiler, no kernels: these tests are skipped and say why), but CI
// sets MAKEMOST_REQUIRE_NATIVE=1 so that a build that silently failed turns these tests red.
const required = process.env.MAKEMOST_REQUIRE_NATIVE === '1';
const skip = loaded.addon || required ? false : `native addon not available: ${loaded.reason}`;

test('the native addon loads when it is required (MAKEMOST_REQUIRE_NATIVE=1)', { skip: required ? false : 'not required here' }, () => {
  assert.ok(loaded.addon, `native addon required but not available: ${'reason' in loaded ? loaded.reason : ''}`);
});
const BACKENDS = ['wasm', 'cpu'] as const;

/** fn's result with the backend's own kernels and with the native ones. */
async function bothWays(backend: 'wasm' | 'cpu', fn: () => Float32Array[]): Promise<{ plain: Float32Array[]; native: Float32Array[] }> {
  await initBackend({ backend, native: false });
  disableNativeKernels();
  const before = tf.memory().numTensors;
  const plain = fn();
  assert.equal(tf.memory().numTensors, before, 'plain run leaked tensors');
  assert.ok(enableNativeKernels().enabled);
  const native = fn();
  assert.equal(tf.memory().numTensors, before, 'native run leaked tensors');
  return { plain, native };
}

function close(a: Float32Array, b: Float32Array, tol: number, what: string): void {
  assert.equal(a.length, b.length, `${what}: lengths`);
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (!(d <= tol * (1 + Math.abs(b[i])))) assert.fail(`${what}: element ${i}: ${a[i]} vs ${b[i]} (|Δ| ${d} > ${tol})`);
  }
}

const rng = new Rng(2024);
const rand = (shape: number[]) => tf.tensor(rng.normalArray(shape.reduce((p, d) => p * d, 1)), shape);

interface Case { a: number[]; b: number[]; ta: boolean; tb: boolean }

/** Random cases: every transpose over odd sizes, batches, broadcasts, and empty dimensions ([2, 37, 700]: decoding's K-banded x·W, bands of 70 rows = 8-row, 4-row and single-row passes; M = 128, 9, 11: last slivers of 2, 3 and 5 rows). */
function cases(): Case[] {
  const out: Case[] = [];
  const sizes: [number, number, number][] = [[1, 1, 1], [1, 7, 5], [3, 1, 9], [5, 3, 1], [6, 16, 33], [7, 17, 300], [130, 70, 41], [2, 300, 4], [64, 1, 700], [4, 50, 260], [100, 40, 300], [2, 37, 700], [128, 20, 70], [9, 40, 50], [11, 33, 17]];
  for (const [m, n, k] of sizes) {
    for (const ta of [false, true]) {
      for (const tb of [false, true]) {
        const a2 = ta ? [k, m] : [m, k];
        const b2 = tb ? [n, k] : [k, n];
        out.push({ a: a2, b: b2, ta, tb });
        out.push({ a: [3, ...a2], b: [3, ...b2], ta, tb }); // batched
        out.push({ a: [2, 3, ...a2], b: b2, ta, tb }); // b broadcast (lower rank)
        out.push({ a: [1, ...a2], b: [4, ...b2], ta, tb }); // a broadcast (batch 1)
      }
    }
  }
  for (const [m, n, k] of [[0, 4, 3], [4, 0, 3], [4, 5, 0], [0, 0, 0]] as const) {
    out.push({ a: [m, k], b: [k, n], ta: false, tb: false });
    out.push({ a: [2, k, m], b: [2, n, k], ta: true, tb: true });
  }
  out.push({ a: [0, 3, 4], b: [0, 4, 5], ta: false, tb: false });
  return out;
}

for (const backend of BACKENDS) {
  test(`BatchMatMul on ${backend}: native equals the backend's own kernel on every transpose and batch layout`, { skip }, async () => {
    await initBackend({ backend });
    for (const c of cases()) {
      const a = rand(c.a);
      const b = rand(c.b);
      const { plain, native } = await bothWays(backend, () => [tf.tidy(() => tf.matMul(a, b, c.ta, c.tb).dataSync() as Float32Array)]);
      const k = c.ta ? c.a[c.a.length - 2] : c.a[c.a.length - 1];
      close(native[0], plain[0], 2e-6 * Math.sqrt(k + 1), JSON.stringify(c));
      tf.dispose([a, b]);
    }
  });

  // The reference is the unfused composition with the backend's own kernels: the wasm backend's own
  // _FusedMatMul is wrong when both operands are transposed (tfjs 4.22), which the native kernel is not.
  test(`_FusedMatMul on ${backend}: bias and activations equal matMul + bias + activation`, { skip }, async () => {
    await initBackend({ backend });
    const unfused: Record<string, (x: tf.Tensor) => tf.Tensor> = { linear: (x) => x, relu: tf.relu, relu6: tf.relu6, elu: tf.elu, sigmoid: tf.sigmoid, leakyrelu: (x) => tf.leakyRelu(x, 0.1) };
    for (const act of ['linear', 'relu', 'relu6', 'elu', 'sigmoid', 'leakyrelu'] as const) {
      for (const [a2, b2, ta, tb] of [[[5, 7], [7, 9], false, false], [[7, 5], [9, 7], true, true], [[1, 40], [33, 40], false, true], [[2, 3, 8], [8, 4], false, false]] as const) {
        const a = rand([...a2]);
        const b = rand([...b2]);
        const n = tb ? b2[0] : b2[1];
        const bias = rand([n]);
        const fused = () => [tf.tidy(() => tf.fused.matMul({ a, b, transposeA: ta, transposeB: tb, bias, activation: act, leakyreluAlpha: 0.1 }).dataSync() as Float32Array)];
        const composed = () => [tf.tidy(() => unfused[act](tf.add(tf.matMul(a, b, ta, tb), bias)).dataSync() as Float32Array)];
        const ref = (await bothWays(backend, composed)).plain;
        const { native } = await bothWays(backend, fused);
        close(native[0], ref[0], 1e-5, `${act} ${JSON.stringify([a2, b2, ta, tb])}`);
        tf.dispose([a, b, bias]);
      }
    }
  });

  // TF.js's BatchMatMul gradient does not reduce broadcast batch dimensions (on any backend), so the
  // gradient cases keep equal batches.
  test(`gradients through matMul on ${backend}: native equals the backend's own kernels`, { skip }, async () => {
    await initBackend({ backend });
    for (const c of [{ a: [4, 6], b: [6, 5], ta: false, tb: false }, { a: [2, 6, 4], b: [2, 5, 6], ta: true, tb: true }, { a: [3, 4, 6], b: [3, 5, 6], ta: false, tb: true }, { a: [3, 6, 1], b: [3, 6, 5], ta: true, tb: false }, { a: [130, 70], b: [33, 70], ta: false, tb: true }]) {
      const a = rand(c.a);
      const b = rand(c.b);
      const w = rand([...tf.broadcast_util.assertAndGetBroadcastShape(c.a.slice(0, -2), c.b.slice(0, -2)), c.ta ? c.a.at(-1)! : c.a.at(-2)!, c.tb ? c.b.at(-2)! : c.b.at(-1)!]);
      const run = () => tf.tidy(() => {
        const f = (x: tf.Tensor, y: tf.Tensor) => tf.sum(tf.mul(tf.tanh(tf.matMul(x, y, c.ta, c.tb)), w));
        const [ga, gb] = tf.grads(f)([a, b]);
        return [ga.dataSync() as Float32Array, gb.dataSync() as Float32Array];
      });
      const { plain, native } = await bothWays(backend, run);
      close(native[0], plain[0], 1e-5, `d/da ${JSON.stringify(c)}`);
      close(native[1], plain[1], 1e-5, `d/db ${JSON.stringify(c)}`);
      tf.dispose([a, b, w]);
    }
  });

  test(`gradients through fused matMul (bias, relu) on ${backend}: equal the unfused composition's`, { skip }, async () => {
    await initBackend({ backend });
    const a = rand([6, 9]);
    const b = rand([5, 9]);
    const bias = rand([5]);
    const grads = (f: (x: tf.Tensor, y: tf.Tensor, z: tf.Tensor) => tf.Tensor) => () => tf.tidy(() => tf.grads(f)([a, b, bias]).map((g) => g.dataSync() as Float32Array));
    const ref = (await bothWays(backend, grads((x, y, z) => tf.sum(tf.square(tf.relu(tf.add(tf.matMul(x, y, false, true), z))))))).plain;
    const { native } = await bothWays(backend, grads((x, y, z) => tf.sum(tf.square(tf.fused.matMul({ a: x, b: y, transposeB: true, bias: z, activation: 'relu' })))));
    ref.forEach((r, i) => close(native[i], r, 1e-5, `gradient ${i}`));
    tf.dispose([a, b, bias]);
  });

  test(`Tanh on ${backend}: native equals the backend's own kernel and Math.tanh`, { skip }, async () => {
    await initBackend({ backend });
    const xs = new Float32Array(4099);
    for (let i = 0; i < xs.length; i++) xs[i] = (i - 2049) / 128; // [-16, 16], including 0 and ±0.625
    const x = tf.tensor1d(xs);
    const { plain, native } = await bothWays(backend, () => [tf.tidy(() => tf.tanh(x).dataSync() as Float32Array)]);
    close(native[0], plain[0], 1e-6, 'tanh vs backend');
    close(native[0], Float32Array.from(xs, Math.tanh), 1e-6, 'tanh vs Math.tanh');
    const empty = await bothWays(backend, () => [tf.tidy(() => tf.tanh(tf.zeros([0, 3])).dataSync() as Float32Array)]);
    assert.equal(empty.native[0].length, 0);
    x.dispose();
  });
}

/** Reference product of one batch item pair, in float64. */
function refMatMul(a: Float32Array, b: Float32Array, m: number, n: number, k: number): Float64Array {
  const c = new Float64Array(m * n);
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) for (let p = 0; p < k; p++) c[i * n + j] += a[i * k + p] * b[p * n + j];
  return c;
}

test('general batch broadcasting ([2,1] x [1,3] batches) equals a float64 JS reference', { skip }, async () => {
  await initBackend({ backend: 'wasm' });
  assert.ok(enableNativeKernels().enabled);
  const [m, n, k] = [3, 4, 5];
  const a = rand([2, 1, m, k]);
  const b = rand([1, 3, k, n]);
  const got = tf.tidy(() => tf.matMul(a, b).dataSync());
  const av = a.dataSync() as Float32Array;
  const bv = b.dataSync() as Float32Array;
  for (let i = 0; i < 2; i++) {
    for (let j = 0; j < 3; j++) {
      const want = refMatMul(av.subarray(i * m * k, (i + 1) * m * k), bv.subarray(j * k * n, (j + 1) * k * n), m, n, k);
      close(Float32Array.from(got.subarray((i * 3 + j) * m * n, (i * 3 + j + 1) * m * n)), Float32Array.from(want), 1e-5, `item ${i},${j}`);
    }
  }
  tf.dispose([a, b]);
});

test('results do not depend on the thread count (bit-identical with 1 and 2 threads)', { skip }, async () => {
  await initBackend({ backend: 'wasm' });
  const a = rand([3, 130, 200]);
  const b = rand([200, 90]);
  const w = rand([90, 200]);
  const run = () => tf.tidy(() => [tf.matMul(a, b).dataSync(), tf.matMul(a, w, false, true).dataSync(), tf.matMul(a.slice([0, 0, 0], [1, 1, 200]).reshape([1, 200]), b).dataSync()]);
  enableNativeKernels({ threads: 1 });
  const one = run();
  enableNativeKernels({ threads: 2 });
  const two = run();
  one.forEach((x, i) => assert.deepEqual(x, two[i]));
  tf.dispose([a, b, w]);
});

test('the portable (non-AVX2) kernels agree with the backend too, attention and the Llama layer included (child process, MAKEMOST_NATIVE_ISA=generic)', { skip }, () => {
  const script = `
    import * as tf from '@tensorflow/tfjs-core';
    import { initBackend, nativeKernelsInfo } from ${JSON.stringify(new URL('../index.js', import.meta.url).href)};
    import { disableNativeKernels, enableNativeKernels } from ${JSON.stringify(new URL('./register.js', import.meta.url).href)};
    import { attendPackedWithCache } from ${JSON.stringify(new URL('../../nn/attention.js', import.meta.url).href)};
    import { parseLlamaConfig } from ${JSON.stringify(new URL('../../models/llama/config.js', import.meta.url).href)};
    import { LlamaForCausalLM } from ${JSON.stringify(new URL('../../models/llama/model.js', import.meta.url).href)};
    await initBackend({ backend: 'wasm' });
    const a = tf.randomNormal([37, 300], 0, 1, 'float32', 1), b = tf.randomNormal([45, 300], 0, 1, 'float32', 2);
    const x = tf.randomNormal([1000], 0, 3, 'float32', 3);
    // Attention over 20 new tokens (GEMM blocks) and 1 (dot products), with a cache of 5.
    const qkv = tf.randomNormal([1, 20, 4 * 16], 0, 1, 'float32', 4), qkv1 = tf.randomNormal([1, 1, 4 * 16], 0, 1, 'float32', 5);
    const pk = tf.randomNormal([1, 1, 5, 16], 0, 1, 'float32', 6), pv = tf.randomNormal([1, 1, 5, 16], 0, 1, 'float32', 7);
    const attend = (t, past) => tf.tidy(() => attendPackedWithCache(t, 2, 1, past, undefined, 0.25)[0].dataSync());
    // A Llama layer kernel (RMSNorm, rotary, SwiGLU) over 9 tokens with biases and grouped heads.
    const llama = new LlamaForCausalLM(parseLlamaConfig({ model_type: 'llama', vocab_size: 50, hidden_size: 32, intermediate_size: 40, num_hidden_layers: 1, num_attention_heads: 4, num_key_value_heads: 2, attention_bias: true, initializer_range: 0.3 }), 3);
    const run = () => [tf.matMul(a, b, false, true).dataSync(), tf.matMul(a.slice([0, 0], [2, 300]), b, false, true).dataSync(), tf.tanh(x).dataSync(),
      attend(qkv, undefined), attend(qkv1, { key: pk, value: pv }), tf.tidy(() => llama.forward([[1, 4, 9, 16, 25, 36, 49, 8, 2]]).logits.dataSync())];
    const isa = nativeKernelsInfo().isa;
    const fast = run();
    disableNativeKernels();
    const plain = run();
    const diff = fast.map((f, i) => f.reduce((m, v, j) => Math.max(m, Math.abs(v - plain[i][j])), 0));
    process.stdout.write(JSON.stringify({ isa, diff }));`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', env: { ...process.env, MAKEMOST_NATIVE: '1', MAKEMOST_NATIVE_ISA: 'generic' }, cwd: fileURLToPath(new URL('.', import.meta.url)) });
  assert.equal(r.status, 0, r.stderr);
  const { isa, diff } = JSON.parse(r.stdout) as { isa: string; diff: number[] };
  assert.equal(isa, 'generic');
  for (const d of diff) assert.ok(d < 1e-4, `max |Δ| ${d}`);
});

test('nativeKernelsInfo reports the kernels and the switch-off', { skip }, async () => {
  await initBackend({ backend: 'wasm', native: true });
  const on = nativeKernelsInfo();
  assert.ok(on.enabled && on.kernels.includes('BatchMatMul/wasm') && on.kernels.includes('BatchMatMul/cpu'));
  assert.ok(on.threads !== undefined && on.threads >= 1);
  await initBackend({ backend: 'wasm', native: false });
  assert.equal(nativeKernelsInfo().enabled, false);
  await initBackend({ backend: 'wasm', native: true });
  assert.equal(nativeKernelsInfo().enabled, true);
});

test('the wasm heap is advised for huge pages where Linux has them, and not with MAKEMOST_HUGE_PAGES=0', { skip }, async () => {
  await initBackend({ backend: 'wasm', native: true });
  const thp = '/sys/kernel/mm/transparent_hugepage/enabled';
  const available = process.platform === 'linux' && existsSync(thp) && !readFileSync(thp, 'utf8').includes('[never]');
  if (available) assert.equal(nativeKernelsInfo().hugePages, true);
  const addon = loadAddon().addon!;
  assert.equal(typeof addon.adviseHugePages(new Float32Array(16), 64), 'number');
  assert.throws(() => addon.adviseHugePages([1, 2] as unknown as Float32Array, 8), /typed array/);
  const script = `
    import { initBackend, nativeKernelsInfo } from ${JSON.stringify(new URL('../index.js', import.meta.url).href)};
    await initBackend({ backend: 'wasm' });
    process.stdout.write(JSON.stringify(nativeKernelsInfo()));`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', env: { ...process.env, MAKEMOST_NATIVE: '1', MAKEMOST_HUGE_PAGES: '0' } });
  assert.equal(r.status, 0, r.stderr);
  const off = JSON.parse(r.stdout) as { enabled: boolean; hugePages: boolean };
  assert.equal(off.enabled, true);
  assert.equal(off.hugePages, false);
});
