/**
 * SlotAdam against a slow reference that keys every slot by its absolute stream position in a Map and
 * applies torch's Adam by hand in float64: after appends, updates and evictions in any order, each
 * surviving slot holds its own value, moments and count (per-slot and global bias correction).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../backend/index.js';
import { disposeAll } from '../../backend/memory.js';
import { Rng } from '../../backend/rng.js';
import type { KVCache } from '../../nn/attention.js';
import { SlotAdam } from './slot_adam.js';

await initBackend();

const L = 2, H = 2, Dh = 3;
const W = H * Dh; // numbers per (layer, key|value, position)

interface RefSlot { p: number[][]; m: number[][]; v: number[][]; c: number }

/** [1, H, T, Dh] tensors from per-position vectors (index [pos][layer*2 + kv][h*Dh + d]). */
function toCache(rows: number[][][]): KVCache {
  const T = rows.length;
  return Array.from({ length: L }, (_, l) => {
    const make = (kv: number) => {
      const a = new Float32Array(H * T * Dh);
      rows.forEach((r, t) => { for (let h = 0; h < H; h++) for (let d = 0; d < Dh; d++) a[(h * T + t) * Dh + d] = r[2 * l + kv][h * Dh + d]; });
      return tf.tensor(a, [1, H, T, Dh]);
    };
    return { key: make(0), value: make(1) };
  });
}

/** Inverse of toCache. */
function fromCache(c: KVCache): number[][][] {
  const T = (c[0].key.shape as number[])[2];
  const per = c.flatMap((l) => [l.key.dataSync(), l.value.dataSync()]);
  return Array.from({ length: T }, (_, t) => per.map((a) => Array.from({ length: W }, (_, j) => a[(Math.floor(j / Dh) * T + t) * Dh + (j % Dh)])));
}

function randomRows(rng: Rng, T: number, scale: number): number[][][] {
  return Array.from({ length: T }, () => Array.from({ length: 2 * L }, () => Array.from(rng.normalArray(W, scale))));
}

for (const biasCorrection of ['per-slot', 'global'] as const) {
  test(`moments follow their slots through appends, updates and evictions (${biasCorrection} bias correction)`, () => {
    const before = tf.memory().numTensors;
    const o = { lr: 0.05, beta1: 0.8, beta2: 0.95, eps: 1e-6 };
    const adam = new SlotAdam({ ...o, biasCorrection });
    const ref = new Map<number, RefSlot>();
    let nextPos = 0;
    let updates = 0;
    const rng = new Rng(biasCorrection === 'global' ? 2 : 1);
    const live = () => [...ref.keys()].sort((a, b) => a - b);
    const ops: [string, number][] = [['append', 3], ['step', 0], ['step', 0], ['append', 2], ['step', 0], ['evict', 2], ['step', 0], ['append', 4], ['evict', 1], ['step', 0], ['step', 0], ['evict', 3], ['step', 0], ['append', 1], ['step', 0], ['evict', 0], ['step', 0]];
    for (const [op, n] of ops) {
      if (op === 'append') {
        const rows = randomRows(rng, n, 1);
        adam.append(toCache(rows));
        for (const r of rows) ref.set(nextPos++, { p: r.map((x) => x.slice()), m: r.map(() => new Array(W).fill(0)), v: r.map(() => new Array(W).fill(0)), c: 0 });
      } else if (op === 'evict') {
        adam.evictOldest(n);
        for (const pos of live().slice(0, n)) ref.delete(pos);
      } else {
        const g = randomRows(rng, ref.size, 2);
        const gc = toCache(g);
        adam.step(gc);
        disposeAll(gc);
        updates++;
        live().forEach((pos, t) => {
          const s = ref.get(pos)!;
          s.c++;
          const c = biasCorrection === 'global' ? updates : s.c;
          for (let k = 0; k < 2 * L; k++) for (let j = 0; j < W; j++) {
            const gj = g[t][k][j];
            s.m[k][j] = o.beta1 * s.m[k][j] + (1 - o.beta1) * gj;
            s.v[k][j] = o.beta2 * s.v[k][j] + (1 - o.beta2) * gj * gj;
            s.p[k][j] -= (o.lr / (1 - o.beta1 ** c)) * s.m[k][j] / (Math.sqrt(s.v[k][j]) / Math.sqrt(1 - o.beta2 ** c) + o.eps);
          }
        });
      }
      assert.equal(adam.length, ref.size);
      assert.deepEqual([...adam.steps], live().map((p) => ref.get(p)!.c));
      if (ref.size === 0) continue;
      const got = { p: fromCache(adam.params), m: fromCache(adam.moments.m), v: fromCache(adam.moments.v) };
      live().forEach((pos, t) => {
        const s = ref.get(pos)!;
        for (const which of ['p', 'm', 'v'] as const) for (let k = 0; k < 2 * L; k++) for (let j = 0; j < W; j++) {
          const want = s[which][k][j];
          const have = got[which][t][k][j];
          assert.ok(Math.abs(want - have) <= 1e-5 * Math.max(1, Math.abs(want)), `after ${op} ${n}: slot at stream position ${pos}, ${which}[${k}][${j}] = ${have}, reference ${want}`);
        }
      });
    }
    assert.equal(adam.globalStep, updates);
    adam.dispose();
    assert.equal(tf.memory().numTensors, before);
  });
}

test('addToTail shifts only the newest slots; take hands the values over and frees the moments', () => {
  const before = tf.memory().numTensors;
  const adam = new SlotAdam({ lr: 0.1 });
  const rows = randomRows(new Rng(3), 4, 1);
  adam.append(toCache(rows));
  const off = randomRows(new Rng(4), 2, 1);
  const offC = toCache(off);
  adam.addToTail(offC);
  disposeAll(offC);
  const got = fromCache(adam.params);
  got.forEach((r, t) => r.forEach((vec, k) => vec.forEach((x, j) => {
    const want = rows[t][k][j] + (t >= 2 ? off[t - 2][k][j] : 0);
    assert.ok(Math.abs(x - want) < 1e-6);
  })));
  assert.deepEqual([...adam.steps], [0, 0, 0, 0]);
  const taken = adam.take();
  assert.equal(adam.length, 0);
  assert.equal(tf.memory().numTensors, before + 2 * L);
  disposeAll(taken);
  adam.dispose();
  assert.equal(tf.memory().numTensors, before);
});

test('bad settings are refused with the fix', () => {
  assert.throws(() => new SlotAdam({ lr: -1 }), /learning rate/);
  assert.throws(() => new SlotAdam({ beta1: 1 }), /beta1 must lie in \[0, 1\)/);
  assert.throws(() => new SlotAdam({ eps: 0 }), /eps must be > 0/);
  assert.throws(() => new SlotAdam({ biasCorrection: 'x' as 'global' }), /per-slot' or 'global'/);
});
