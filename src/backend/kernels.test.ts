/** Our added kernels against the cpu backend's own implementation, including through gradients. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from './index.js';
import { Rng } from './rng.js';

async function onBackend<T>(name: 'wasm' | 'cpu', fn: () => T): Promise<T> {
  await initBackend({ backend: name });
  return fn();
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

test('UnsortedSegmentSum on wasm equals cpu, including out-of-range ids, empty input and int32', async () => {
  const rng = new Rng(3);
  const cases: { n: number; inner: number[]; segs: number; dtype: 'float32' | 'int32' }[] = [
    { n: 7, inner: [5], segs: 4, dtype: 'float32' },
    { n: 13, inner: [2, 3], segs: 9, dtype: 'float32' },
    { n: 0, inner: [3], segs: 2, dtype: 'float32' },
    { n: 6, inner: [4], segs: 3, dtype: 'int32' },
  ];
  for (const c of cases) {
    const size = c.n * c.inner.reduce((a, b) => a * b, 1);
    const xs = Array.from({ length: size }, () => (c.dtype === 'int32' ? rng.int(10) : rng.normal()));
    const ids = Array.from({ length: c.n }, () => rng.int(c.segs + 2) - 1); // includes -1 and segs (dropped)
    const run = () => tf.tidy(() => tf.unsortedSegmentSum(tf.tensor(xs, [c.n, ...c.inner], c.dtype), tf.tensor1d(ids, 'int32'), c.segs).dataSync());
    const cpu = Array.from(await onBackend('cpu', run));
    const wasm = Array.from(await onBackend('wasm', run));
    assert.ok(maxAbsDiff(cpu, wasm) <= (c.dtype === "int32" ? 0 : 1e-5), JSON.stringify(c));
    // Hand check of one segment: the sum of the rows with that id.
    const inner = c.inner.reduce((a, b) => a * b, 1);
    for (let s = 0; s < c.segs; s++) {
      const expect = new Array(inner).fill(0);
      ids.forEach((id, i) => { if (id === s) for (let j = 0; j < inner; j++) expect[j] += xs[i * inner + j]; });
      assert.ok(maxAbsDiff(wasm.slice(s * inner, (s + 1) * inner), expect) < 1e-5);
    }
  }
});

test('the gradient of an embedding lookup works on wasm and equals cpu', async () => {
  const rng = new Rng(5);
  const table = rng.normalArray(10 * 4);
  const ids = [1, 2, 1, 9, 0, 1];
  const weights = rng.normalArray(ids.length * 4);
  const run = () => tf.tidy(() => {
    const w = tf.tensor(weights, [ids.length, 4]);
    const g = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(tf.gather(t, tf.tensor1d(ids, 'int32')), w)))(tf.tensor(table, [10, 4]));
    return g.dataSync();
  });
  const cpu = await onBackend('cpu', run);
  const wasm = await onBackend('wasm', run);
  assert.ok(maxAbsDiff(cpu, wasm) < 1e-6);
  // d/dtable[r] = sum of the weight rows that looked up r
  const row1 = [0, 1, 2, 3].map((j) => weights[0 * 4 + j] + weights[2 * 4 + j] + weights[5 * 4 + j]);
  assert.ok(maxAbsDiff(Array.from(wasm.slice(4, 8)), row1) < 1e-5);
  assert.deepEqual(Array.from(wasm.slice(12, 16)), [0, 0, 0, 0]);
});

test('Identity on wasm shares memory: a clone is the same buffer and outlives the original', async () => {
  await initBackend({ backend: 'wasm' });
  const x = tf.tensor([1, 2, 3, 4], [2, 2]);
  const before = tf.memory().numTensors;
  const y = tf.clone(x);
  assert.equal(y.dataId, x.dataId);
  assert.equal(tf.memory().numTensors, before + 1);
  x.dispose();
  assert.deepEqual(Array.from(y.dataSync()), [1, 2, 3, 4]);
  y.dispose();
  assert.equal(tf.memory().numTensors, before - 1);
});

test('GatherV2, SplitV, Concat and order-preserving Transpose on wasm equal cpu (axes, dtypes, empty, bad index)', async () => {
  const rng = new Rng(11);
  const shapes = [[5, 7], [3, 4, 6], [2, 1, 3, 5], [0, 3]];
  for (const shape of shapes) {
    const n = shape.reduce((a, b) => a * b, 1);
    const vals = Array.from({ length: n }, () => rng.normal());
    for (const dtype of ['float32', 'int32', 'bool'] as const) {
      const data = dtype === 'float32' ? vals : vals.map((v) => (dtype === 'bool' ? (v > 0 ? 1 : 0) : Math.round(v * 10)));
      for (let axis = 0; axis < shape.length; axis++) {
        const ids = Array.from({ length: 4 }, () => rng.int(Math.max(1, shape[axis])));
        const sizes = shape[axis] >= 2 ? [1, shape[axis] - 1] : [shape[axis]];
        const perm = shape.map((_, i) => i).reverse();
        const run = () => tf.tidy(() => {
          const x = tf.tensor(data, shape, dtype);
          const out: number[][] = [];
          if (shape[axis] > 0) out.push(Array.from(tf.gather(x, tf.tensor1d(ids, 'int32'), axis).dataSync()));
          for (const t of tf.split(x, sizes, axis)) out.push([...t.shape, ...Array.from(t.dataSync())]);
          out.push(Array.from(tf.transpose(x.reshape([...shape, 1]), [...shape.map((_, i) => i)].concat(shape.length)).dataSync()));
          out.push(Array.from(tf.transpose(x, perm).dataSync()));
          const other = tf.tensor(data.slice(0, n), shape, dtype);
          const empty = tf.zeros(shape.map((d, i) => (i === axis ? 0 : d)), dtype);
          out.push(Array.from(tf.concat([x, empty, other, x], axis).dataSync()));
          return out;
        });
        const cpu = await onBackend('cpu', run);
        const wasm = await onBackend('wasm', run);
        assert.deepEqual(wasm, cpu, JSON.stringify({ shape, dtype, axis }));
      }
    }
  }
  await initBackend({ backend: 'wasm' });
  assert.throws(() => tf.tidy(() => tf.gather(tf.ones([3, 2]), tf.tensor1d([3], 'int32'))), /index value 3/);
});
