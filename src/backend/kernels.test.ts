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
