/**
 * Streaming perplexity with and without HSO, against independent references: tokenLogProbs for one
 * window; a slow re-implementation of the whole algorithm (slots in a Map keyed by stream position,
 * gradients from plain tf.grads, Adam by hand in float64, eviction by position) for windows, moments and
 * evictions; learning rate 0 against plain streaming, bit for bit; no peeking; one step helping the next
 * window on a repeated text; and a flat tensor count over a long stream.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../backend/index.js';
import { disposeAll } from '../../backend/memory.js';
import { Rng } from '../../backend/rng.js';
import { tokenLogProbs } from '../../generation/score.js';
import type { KVCache } from '../../nn/attention.js';
import { buildModel } from '../../models/registry.js';
import type { CausalLM } from '../../models/types.js';
import { HsoStream, streamingPerplexity } from './perplexity.js';

await initBackend();

const GPT2 = { model_type: 'gpt2', vocab_size: 29, n_positions: 32, n_embd: 16, n_layer: 2, n_head: 2, initializer_range: 0.3 };
const LLAMA = { model_type: 'llama', vocab_size: 29, hidden_size: 16, intermediate_size: 32, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, initializer_range: 0.3 };
const build = (cfg: Record<string, unknown>, seed = 5) => buildModel(cfg, 'causal-lm', seed).model as unknown as CausalLM;
const randomIds = (n: number, seed: number, V = 29) => {
  const rng = new Rng(seed);
  return Array.from({ length: n }, () => rng.int(V));
};

test('plain streaming with one window equals tokenLogProbs; lr 0 HSO equals plain streaming bit for bit', async () => {
  for (const cfg of [GPT2, LLAMA]) {
    const m = build(cfg);
    const ids = randomIds(30, 1);
    const whole = await streamingPerplexity(m, ids, { window: 29 });
    assert.deepEqual(whole.logProbs, await tokenLogProbs(m, ids));
    assert.equal(whole.windows, 1);
    for (const hso of [{ updateCurrentWindow: false, steps: 1 }, { updateCurrentWindow: true, steps: 1 }, { updateCurrentWindow: true, steps: 2, biasCorrection: 'global' as const }]) {
      const opts = { window: 5, maxCache: 12 };
      const plain = await streamingPerplexity(m, ids, opts);
      const zero = await streamingPerplexity(m, ids, { ...opts, hso: { ...hso, lr: 0 } });
      assert.deepEqual(zero.logProbs, plain.logProbs, `${String(cfg.model_type)} ${JSON.stringify(hso)}`);
      assert.equal(zero.nll, plain.nll);
      assert.equal(plain.tokens, 29);
      assert.ok(Math.abs(plain.perplexity - Math.exp(plain.nll / 29)) < 1e-12);
    }
    m.dispose();
  }
});

// ---- the slow reference: every slot keyed by its stream position --------------------------------------

interface Slot { kv: number[][]; m: number[][]; v: number[][]; c: number }

function toCache(slots: Slot[], L: number, H: number, Dh: number): KVCache {
  const T = slots.length;
  return Array.from({ length: L }, (_, l) => {
    const make = (k: number) => {
      const a = new Float32Array(H * T * Dh);
      slots.forEach((s, t) => { for (let h = 0; h < H; h++) for (let d = 0; d < Dh; d++) a[(h * T + t) * Dh + d] = s.kv[2 * l + k][h * Dh + d]; });
      return tf.tensor(a, [1, H, T, Dh]);
    };
    return { key: make(0), value: make(1) };
  });
}

/** [pos][layer*2 + k][h*Dh + d] from tensors [1, H, T, Dh], positions t0.. */
function rowsOf(ts: tf.Tensor[], t0: number, T: number, H: number, Dh: number): number[][][] {
  const data = ts.map((t) => t.dataSync());
  const S = (ts[0].shape as number[])[2];
  return Array.from({ length: T }, (_, t) => data.map((a) => Array.from({ length: H * Dh }, (_, j) => a[(Math.floor(j / Dh) * S + t0 + t) * Dh + (j % Dh)])));
}

function logProbsByHand(logits: tf.Tensor, targets: number[]): number[] {
  const [, T, V] = logits.shape as number[];
  const a = logits.dataSync();
  return targets.map((y, t) => {
    const row = Array.from(a.subarray(t * V, (t + 1) * V));
    const mx = Math.max(...row);
    return row[y] - (mx + Math.log(row.reduce((s, x) => s + Math.exp(x - mx), 0)));
  });
}

interface RefOptions { window: number; maxCache: number; lr: number; beta1: number; beta2: number; eps: number; update: boolean; absolute: boolean }

async function referenceStream(m: CausalLM, ids: number[], o: RefOptions): Promise<{ logProbs: number[]; slots: Map<number, Slot> }> {
  const { layers: L, kvHeads: H, headDim: Dh } = m.dims();
  const slots = new Map<number, Slot>();
  const logProbs: number[] = [];
  const live = () => [...slots.keys()].sort((a, b) => a - b);
  const nll = (logits: tf.Tensor, targets: number[]) => tf.tidy(() => {
    const lp = tf.logSoftmax(logits.reshape([targets.length, -1]));
    return tf.neg(tf.sum(tf.mul(lp, tf.oneHot(tf.tensor1d(targets, 'int32'), lp.shape[1] as number))));
  });
  for (let start = 0; start < ids.length - 1; start += o.window) {
    const inputs = ids.slice(start, Math.min(start + o.window, ids.length - 1));
    const targets = ids.slice(start + 1, start + 1 + inputs.length);
    const T = inputs.length;
    const order = live();
    const S = order.length;
    const positionIds = [inputs.map((_, t) => (o.absolute ? start : S) + t)];
    const past = S ? toCache(order.map((p) => slots.get(p)!), L, H, Dh) : undefined;
    // Score and read the window's states with a plain forward pass.
    const out = m.forward([inputs], { cache: past, positionIds });
    logProbs.push(...logProbsByHand(out.logits, targets));
    const fresh = rowsOf(out.cache.flatMap((l) => [l.key, l.value]), S, T, H, Dh);
    for (let t = 0; t < T; t++) slots.set(start + t, { kv: fresh[t], m: fresh[t].map((r) => r.map(() => 0)), v: fresh[t].map((r) => r.map(() => 0)), c: 0 });
    // Gradients of the window loss w.r.t. the old slots (and a zero offset on the new ones).
    const zeros = Array.from({ length: 2 * L }, () => tf.zeros([1, H, T, Dh]));
    const vars = [...(past ? past.flatMap((l) => [l.key, l.value]) : []), ...(o.update ? zeros : [])];
    const updated = o.update ? [...order, ...inputs.map((_, t) => start + t)] : order;
    if (vars.length) {
      const n = past ? 2 * L : 0;
      const grads = tf.grads((...vs: tf.Tensor[]) => {
        const pair = (a: tf.Tensor[]) => Array.from({ length: L }, (_, l) => ({ key: a[2 * l], value: a[2 * l + 1] }));
        return nll(m.forward([inputs], { cache: past ? pair(vs.slice(0, n)) : undefined, kvDelta: o.update ? pair(vs.slice(n)) : undefined, positionIds }).logits, targets);
      })(vars);
      const gRows = [...(past ? rowsOf(grads.slice(0, n), 0, S, H, Dh) : []), ...(o.update ? rowsOf(grads.slice(n), 0, T, H, Dh) : [])];
      updated.forEach((p, i) => {
        const s = slots.get(p)!;
        s.c++;
        s.kv.forEach((vec, k) => vec.forEach((_, j) => {
          const g = gRows[i][k][j];
          s.m[k][j] = o.beta1 * s.m[k][j] + (1 - o.beta1) * g;
          s.v[k][j] = o.beta2 * s.v[k][j] + (1 - o.beta2) * g * g;
          vec[j] -= (o.lr / (1 - o.beta1 ** s.c)) * s.m[k][j] / (Math.sqrt(s.v[k][j]) / Math.sqrt(1 - o.beta2 ** s.c) + o.eps);
        }));
      });
      disposeAll(grads);
    }
    disposeAll([out, zeros, past]);
    for (const p of live().slice(0, Math.max(0, slots.size - o.maxCache))) slots.delete(p);
  }
  return { logProbs, slots };
}

test('HSO streaming matches the slow per-position reference: scores, cached values, moments and counts after evictions', async () => {
  for (const [cfg, absolute] of [[GPT2, false], [LLAMA, true]] as const) {
    for (const update of [false, true]) {
      const m = build(cfg, 9);
      const ids = randomIds(27, 4);
      const o = { window: 4, maxCache: 7, lr: 0.05, beta1: 0.9, beta2: 0.99, eps: 1e-8, update, absolute };
      const ref = await referenceStream(m, ids, o);
      const stream = new HsoStream(m, { window: 4, maxCache: 7, hso: { lr: o.lr, beta1: o.beta1, beta2: o.beta2, eps: o.eps, updateCurrentWindow: update } });
      assert.equal(stream.settings.positions, absolute ? 'absolute' : 'cache');
      const got: number[] = [];
      for (let s = 0; s < ids.length - 1; s += 4) got.push(...(await stream.feed(ids.slice(s, Math.min(s + 4, ids.length - 1)), ids.slice(s + 1, Math.min(s + 5, ids.length)))));
      const what = `${String(cfg.model_type)} update=${update}`;
      got.forEach((x, i) => assert.ok(Math.abs(x - ref.logProbs[i]) < 1e-4, `${what}: token ${i + 1}: ${x} vs reference ${ref.logProbs[i]}`));
      const adam = stream.optimiser!;
      const order = [...ref.slots.keys()].sort((a, b) => a - b);
      assert.deepEqual(order, [19, 20, 21, 22, 23, 24, 25]);
      assert.deepEqual([...adam.steps], order.map((p) => ref.slots.get(p)!.c), `${what}: per-slot counts`);
      const { kvHeads: H, headDim: Dh } = m.dims();
      const flat = (c: KVCache) => rowsOf(c.flatMap((l) => [l.key, l.value]), 0, order.length, H, Dh);
      const [p, mm, vv] = [flat(adam.params), flat(adam.moments.m), flat(adam.moments.v)];
      order.forEach((pos, t) => {
        const s = ref.slots.get(pos)!;
        for (const [mine, theirs, name] of [[p, s.kv, 'value'], [mm, s.m, 'm'], [vv, s.v, 'v']] as const) {
          theirs.forEach((vec, k) => vec.forEach((want, j) => assert.ok(Math.abs(mine[t][k][j] - want) < 1e-4 * Math.max(1, Math.abs(want)), `${what}: slot ${pos} ${name}[${k}][${j}] ${mine[t][k][j]} vs ${want}`)));
        }
      });
      stream.dispose();
      m.dispose();
    }
  }
});

test('no peeking, and one HSO step lowers the loss on the next window of a repeated text', async () => {
  const m = build(GPT2, 21);
  const pattern = randomIds(8, 7);
  const ids = [...pattern, ...pattern, ...pattern, pattern[0]];
  const perWindow = (lps: number[]) => [0, 1, 2].map((w) => -lps.slice(8 * w, 8 * w + 8).reduce((a, b) => a + b, 0));
  const plain = perWindow((await streamingPerplexity(m, ids, { window: 8 })).logProbs);
  const hso = perWindow((await streamingPerplexity(m, ids, { window: 8, hso: { lr: 0.1 } })).logProbs);
  // Window 0 has no cache and window 1 is scored before its step: both exactly as without HSO.
  assert.equal(hso[0], plain[0]);
  assert.equal(hso[1], plain[1]);
  assert.ok(hso[2] < plain[2] - 0.2, `next-window loss ${hso[2]} should fall below ${plain[2]}`);
  m.dispose();
});

test('the tensor count stays flat over a long stream (cache, moments, counts)', async () => {
  const m = build(LLAMA, 3);
  const ids = randomIds(161, 8);
  const before = tf.memory().numTensors;
  const seen: number[] = [];
  const r = await streamingPerplexity(m, ids, { window: 8, maxCache: 24, hso: { updateCurrentWindow: true, steps: 2 }, onWindow: (w) => { if (w.cacheLength === 24) seen.push(tf.memory().numTensors); } });
  assert.equal(r.windows, 20);
  assert.ok(seen.length >= 15);
  assert.ok(seen.every((n) => n === seen[0]), `tensor counts ${seen.join(' ')}`);
  assert.equal(tf.memory().numTensors, before);
  m.dispose();
});

test('settings are checked: GPT-2 positions must fit, window and steps positive', async () => {
  const m = build(GPT2);
  await assert.rejects(streamingPerplexity(m, randomIds(10, 1), { window: 8, maxCache: 30 }), /maxCache \(30\) \+ window \(8\) exceeds the model's 32 positions/);
  await assert.rejects(streamingPerplexity(m, randomIds(10, 1), { window: 0 }), /window must be a positive integer/);
  await assert.rejects(streamingPerplexity(m, randomIds(10, 1), { window: 8, hso: { steps: 0 } }), /steps per window/);
  await assert.rejects(streamingPerplexity(m, randomIds(10, 1)), /window \(64\) exceeds the model's 32 positions/);
  await assert.rejects(streamingPerplexity(m, randomIds(40, 1), { positions: 'absolute', window: 8 }), /exceed the model's 32 positions/);
  await assert.rejects(streamingPerplexity(m, [1]), /at least 2 tokens/);
  m.dispose();
});
