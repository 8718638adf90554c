/**
 * The HSO window gradient: the loss-with-auxiliary-outputs trick gives bit-identical gradients to tf.grads
 * of the loss alone and the same log-probs and new states as a plain forward pass; the gradient with
 * respect to the cache (and to a kvDelta on the window's own states) matches central finite differences
 * on a tiny GPT-2 and a tiny Llama.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../backend/index.js';
import { disposeAll } from '../../backend/memory.js';
import { buildModel } from '../../models/registry.js';
import type { CausalLM } from '../../models/types.js';
import { lossGradsWithAux, pickLogProbs } from './grad.js';
import { flattenSlots, sliceSlots, unflattenSlots, zeroSlots } from './slots.js';

await initBackend();

const tiny: [string, Record<string, unknown>][] = [
  ['gpt2', { model_type: 'gpt2', vocab_size: 37, n_positions: 32, n_embd: 16, n_layer: 2, n_head: 2, initializer_range: 0.3 }],
  ['llama', { model_type: 'llama', vocab_size: 37, hidden_size: 16, intermediate_size: 32, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, initializer_range: 0.3 }],
];

const PREFIX = [3, 1, 4, 1, 5];
const INPUTS = [9, 2, 6, 5];
const TARGETS = [2, 6, 5, 3];

/** − Σ log p(target) from logits, by hand in float64 (the reference loss). */
function nllByHand(logits: tf.Tensor, targets: number[]): number {
  const [, T, V] = logits.shape as number[];
  const a = logits.dataSync();
  let nll = 0;
  for (let t = 0; t < T; t++) {
    const row = Array.from(a.subarray(t * V, (t + 1) * V));
    const mx = Math.max(...row);
    const lse = mx + Math.log(row.reduce((s, x) => s + Math.exp(x - mx), 0));
    nll -= row[targets[t]] - lse;
  }
  return nll;
}

for (const [name, cfg] of tiny) {
  test(`${name}: window gradient w.r.t. the cache and the window's own kvDelta matches central finite differences`, async () => {
    const m = buildModel(cfg, 'causal-lm', 11).model as unknown as CausalLM;
    const { layers: L, kvHeads, headDim } = m.dims();
    const pos = [INPUTS.map((_, t) => PREFIX.length + t)];
    const prefix = m.forward([PREFIX]);
    const zeros = zeroSlots(L, [1, kvHeads, INPUTS.length, headDim]);
    const xs = [...flattenSlots(prefix.cache), ...flattenSlots(zeros)];
    const before = tf.memory().numTensors;
    const lossOf = (ts: tf.Tensor[]) => m.forward([INPUTS], { cache: unflattenSlots(ts.slice(0, 2 * L)), kvDelta: unflattenSlots(ts.slice(2 * L)), positionIds: pos });
    const S = PREFIX.length;
    const r = await lossGradsWithAux((ts) => {
      const out = lossOf(ts);
      const lp = pickLogProbs(out.logits, [TARGETS]).reshape([INPUTS.length]);
      return { loss: tf.neg(tf.sum(lp)), aux: [lp, ...flattenSlots(sliceSlots(out.cache, S))] };
    }, xs, [[INPUTS.length], ...new Array<number[]>(2 * L).fill([1, kvHeads, INPUTS.length, headDim])]);

    // 1. Same gradients, bit for bit, as differentiating the loss alone.
    const alone = tf.grads((...ts: tf.Tensor[]) => tf.neg(tf.sum(pickLogProbs(lossOf(ts).logits, [TARGETS]))))(xs);
    alone.forEach((g, i) => assert.deepEqual(Array.from(r.grads[i].dataSync()), Array.from(g.dataSync()), `gradient ${i}`));
    // 2. The auxiliary outputs are the plain forward pass's log-probs and new states.
    const plain = m.forward([INPUTS], { cache: prefix.cache, positionIds: pos });
    const lpPlain = pickLogProbs(plain.logits, [TARGETS]);
    assert.deepEqual(Array.from(r.aux[0].dataSync()), Array.from(lpPlain.dataSync()));
    assert.ok(Math.abs(r.loss - nllByHand(plain.logits, TARGETS)) < 1e-4);
    const fresh = sliceSlots(plain.cache, S);
    flattenSlots(fresh).forEach((t, i) => assert.deepEqual(Array.from(r.aux[1 + i].dataSync()), Array.from(t.dataSync()), `new state ${i}`));
    disposeAll([alone, plain, lpPlain, fresh]);

    // 3. Central finite differences of the hand-computed loss at a spread of coordinates.
    const h = 1e-2;
    for (let i = 0; i < xs.length; i++) {
      const base = xs[i].dataSync().slice();
      const g = r.grads[i].dataSync();
      for (const idx of [0, Math.floor(base.length / 2) + 1, base.length - 2]) {
        const at = (d: number) => {
          const copy = base.slice();
          copy[idx] += d;
          const moved = xs.map((x, j) => (j === i ? tf.tensor(copy, x.shape) : x));
          const out = lossOf(moved);
          const v = nllByHand(out.logits, TARGETS);
          disposeAll([moved[i], out]);
          return v;
        };
        const fd = (at(h) - at(-h)) / (2 * h);
        assert.ok(Math.abs(fd - g[idx]) < 2e-3 * Math.max(1, Math.abs(g[idx])), `${i < 2 * L ? 'cache' : 'kvDelta'} tensor ${i}[${idx}]: autodiff ${g[idx]}, finite difference ${fd}`);
      }
    }
    disposeAll([r.grads, r.aux]);
    assert.equal(tf.memory().numTensors, before);
    disposeAll([prefix, zeros]);
    m.dispose();
  });
}
