/**
 * Rotary embedding against references written here in plain JS: the RoPE definition (rotate each pair
 * (x_i, x_{i+d/2}) by m·θ_i), linear scaling as divided positions, and Llama 3.1's scaling from its
 * published piecewise rule, plus values PyTorch computes for HF's float32 formulas.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../backend/index.js';
import { Rng } from '../../backend/rng.js';
import { applyRotary, defaultInvFreq, llama3InvFreq, ropeInvFreq, rotaryTables } from './rope.js';

await initBackend();

function close(a: ArrayLike<number>, b: ArrayLike<number>, tol: number, what: string): void {
  assert.equal(a.length, b.length, `${what}: lengths`);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]) / Math.max(1e-30, Math.abs(b[i])));
  assert.ok(worst <= tol, `${what}: max relative error ${worst} > ${tol}`);
}

test('default inverse frequencies are base^(-2i/d)', () => {
  const want = [0, 1, 2, 3, 4, 5, 6, 7].map((i) => Math.pow(500000, -(2 * i) / 16));
  close(defaultInvFreq(16, 500000), want, 3e-7, 'theta_i');
  // PyTorch's float32 result of HF's formula for dim 8, base 10000 (bit for bit)
  assert.deepEqual([...defaultInvFreq(8, 10000)], [1.0, 0.10000000149011612, 0.009999999776482582, 0.0010000000474974513]);
});

test('applyRotary rotates every pair (x_i, x_{i+d/2}) by position·θ_i, per row positions', () => {
  const [B, H, T, D] = [2, 3, 4, 8];
  const base = 10000;
  const rng = new Rng(7);
  const xs = rng.normalArray(B * H * T * D);
  const positions = [[0, 1, 2, 3], [-1, 5, 17, 40]]; // per-row, negative (left pad) and far positions
  const got = tf.tidy(() => applyRotary(tf.tensor4d(xs, [B, H, T, D]), rotaryTables(defaultInvFreq(D, base), tf.tensor2d(positions, [B, T], 'int32'))).dataSync());
  const want = new Float64Array(xs.length);
  for (let b = 0; b < B; b++) for (let h = 0; h < H; h++) for (let t = 0; t < T; t++) {
    const o = ((b * H + h) * T + t) * D;
    for (let i = 0; i < D / 2; i++) {
      const angle = positions[b][t] * Math.pow(base, -(2 * i) / D);
      const [x1, x2] = [xs[o + i], xs[o + i + D / 2]];
      want[o + i] = x1 * Math.cos(angle) - x2 * Math.sin(angle);
      want[o + i + D / 2] = x2 * Math.cos(angle) + x1 * Math.sin(angle);
    }
  }
  let worst = 0;
  for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]));
  assert.ok(worst < 2e-5, `max |Δ| = ${worst}`);
});

test('linear scaling equals positions divided by the factor', () => {
  const inv = defaultInvFreq(8, 10000);
  const scaled = ropeInvFreq(8, 10000, { rope_type: 'linear', factor: 4 });
  close(scaled, [...inv].map((f) => f / 4), 1e-7, 'inv_freq / factor');
  const pos = [[0, 1, 2, 3, 9, 30]];
  const [a, b] = tf.tidy(() => {
    const t1 = rotaryTables(scaled, tf.tensor2d(pos, [1, 6], 'int32'));
    const t2 = rotaryTables(inv, tf.tensor2d(pos.map((r) => r.map((p) => p / 4)), [1, 6], 'float32'));
    return [tf.concat([t1.cos, t1.sin]).dataSync(), tf.concat([t2.cos, t2.sin]).dataSync()];
  });
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  assert.ok(worst < 1e-6, `max |Δ| = ${worst}`);
});

test('llama3 scaling: kept, divided and interpolated bands', () => {
  // dim 8, base 1e4 → wavelengths 2π, 62.8, 628, 6283; with original context 64 and factors (1, 4):
  // below 64/4 = 16 kept, above 64/1 = 64 divided by 32, 62.8 interpolated.
  const s = { factor: 32, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 64 };
  const got = llama3InvFreq(defaultInvFreq(8, 10000), s);
  // Meta's `apply_scaling` rule in double precision
  const want = [0, 1, 2, 3].map((i) => {
    const f = Math.pow(10000, -(2 * i) / 8);
    const wavelen = (2 * Math.PI) / f;
    if (wavelen < 64 / 4) return f;
    if (wavelen > 64 / 1) return f / 32;
    const smooth = (64 / wavelen - 1) / (4 - 1);
    return (1 - smooth) * (f / 32) + smooth * f;
  });
  close(got, want, 1e-6, 'llama3 inv_freq');
  // By hand: band 1 has smooth = (64/62.8319 − 1)/3 = 0.0062, so 0.1·(0.9938/32 + 0.0062) ≈ 0.003725.
  assert.ok(Math.abs(got[1] - 0.003725) < 1e-6);
  // PyTorch's float32 values of HF's `_compute_llama3_parameters` for the same case (bit for bit)
  assert.deepEqual([...got], [1.0, 0.00372535502538085, 0.0003124999930150807, 3.125000148429535e-5]);
  // Llama 3.1's own setting leaves short wavelengths alone
  const real = llama3InvFreq(defaultInvFreq(128, 500000), { factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 });
  assert.equal(real[0], 1);
});

test('rotaryTables leaks nothing', () => {
  const inv = defaultInvFreq(8, 10000);
  const pos = tf.tensor2d([[0, 1, 2]], [1, 3], 'int32');
  const before = tf.memory().numTensors;
  for (let i = 0; i < 5; i++) {
    const t = rotaryTables(inv, pos);
    tf.dispose([t.cos, t.sin]);
  }
  assert.equal(tf.memory().numTensors, before);
  pos.dispose();
});
