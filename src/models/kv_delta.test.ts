/**
 * HSO's kvDelta hook on GPT-2 and Llama (grouped-query, rotary): a zero delta changes no bit; a delta is
 * exactly an offset on the keys/values the returned cache stores (rotated keys for Llama); and its
 * gradient is the gradient with respect to those cache entries, checked against tf.grads taken with
 * respect to a plain cache tensor perturbed without the hook.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../backend/index.js';
import { disposeAll } from '../backend/memory.js';
import { Rng } from '../backend/rng.js';
import { ShapeError } from '../errors.js';
import type { KVCache } from '../nn/attention.js';
import { parseGPT2Config } from './gpt2/config.js';
import { GPT2LMHeadModel } from './gpt2/model.js';
import { parseLlamaConfig } from './llama/config.js';
import { LlamaForCausalLM } from './llama/model.js';
import type { CausalLM } from './types.js';

await initBackend();

const models: [string, () => CausalLM][] = [
  ['gpt2', () => new GPT2LMHeadModel(parseGPT2Config({ model_type: 'gpt2', vocab_size: 41, n_positions: 32, n_embd: 32, n_layer: 2, n_head: 4, initializer_range: 0.2 }), 3)],
  ['llama', () => new LlamaForCausalLM(parseLlamaConfig({ model_type: 'llama', vocab_size: 41, hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 64, initializer_range: 0.2 }), 3)],
];

const PREFIX = [[1, 2, 3]];
const X = [[4, 5, 6, 7]];
const Y = [[8, 9, 10]];

function randomDelta(m: CausalLM, T: number, rng: Rng, where: (layer: number, t: number) => boolean): KVCache {
  const { layers, kvHeads, headDim } = m.dims();
  return Array.from({ length: layers }, (_, l) => {
    const make = () => {
      const a = rng.normalArray(kvHeads * T * headDim, 0.5);
      for (let h = 0; h < kvHeads; h++) for (let t = 0; t < T; t++) if (!where(l, t)) a.fill(0, (h * T + t) * headDim, (h * T + t + 1) * headDim);
      return tf.tensor(a, [1, kvHeads, T, headDim]);
    };
    return { key: make(), value: make() };
  });
}

function logLik(logits: tf.Tensor, targets: number[]): tf.Scalar {
  return tf.tidy(() => {
    const [, T, V] = logits.shape as number[];
    const lp = tf.logSoftmax(logits.reshape([T, V]));
    return tf.sum(tf.mul(lp, tf.oneHot(tf.tensor1d(targets, 'int32'), V))) as tf.Scalar;
  });
}

function maxDiff(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]);
}

for (const [name, build] of models) {
  test(`${name}: kvDelta = 0 gives bit-identical logits and cache`, () => {
    const m = build();
    const prefix = m.forward(PREFIX);
    const plain = m.forward(X, { cache: prefix.cache });
    const zeros = randomDelta(m, 4, new Rng(1), () => false);
    const hooked = m.forward(X, { cache: prefix.cache, kvDelta: zeros });
    assert.deepEqual(Array.from(hooked.logits.dataSync()), Array.from(plain.logits.dataSync()));
    plain.cache.forEach((l, i) => {
      assert.deepEqual(Array.from(hooked.cache[i].key.dataSync()), Array.from(l.key.dataSync()));
      assert.deepEqual(Array.from(hooked.cache[i].value.dataSync()), Array.from(l.value.dataSync()));
    });
    disposeAll([prefix, plain, zeros, hooked]);
    m.dispose();
  });

  test(`${name}: a delta is an offset on the stored keys/values; later tokens see exactly the perturbed cache`, () => {
    const m = build();
    const L = m.dims().layers;
    const prefix = m.forward(PREFIX);
    const plain = m.forward(X, { cache: prefix.cache });
    // Deltas that cannot reach other cached states: the last layer's (a lower layer's delta also moves the
    // states its token, and later tokens, compute in the layers above — that is the hook's meaning).
    for (const where of [(l: number) => l === L - 1, (l: number, t: number) => l === L - 1 && t === 1]) {
      const d = randomDelta(m, 4, new Rng(2), where);
      const hooked = m.forward(X, { cache: prefix.cache, kvDelta: d });
      const byHand = plain.cache.map((l, i) => ({
        key: tf.concat([prefix.cache[i].key, tf.add(l.key.slice([0, 0, 3, 0], [-1, -1, 4, -1]), d[i].key)], 2),
        value: tf.concat([prefix.cache[i].value, tf.add(l.value.slice([0, 0, 3, 0], [-1, -1, 4, -1]), d[i].value)], 2),
      }));
      byHand.forEach((l, i) => {
        assert.ok(maxDiff(hooked.cache[i].key, l.key) < 1e-6, `layer ${i} keys`);
        assert.ok(maxDiff(hooked.cache[i].value, l.value) < 1e-6, `layer ${i} values`);
      });
      const a = m.forward(Y, { cache: hooked.cache });
      const b = m.forward(Y, { cache: byHand });
      assert.ok(maxDiff(a.logits, b.logits) < 1e-5);
      disposeAll([d, hooked, byHand, a, b]);
    }
    disposeAll([prefix, plain]);
    m.dispose();
  });

  test(`${name}: d loss / d kvDelta equals d loss / d (cache entries of those tokens)`, () => {
    const m = build();
    const L = m.dims().layers;
    const prefix = m.forward(PREFIX);
    const plain = m.forward(X, { cache: prefix.cache });
    const zeros = randomDelta(m, 4, new Rng(1), () => false);
    // Through the hook: a loss on Y as a function of the deltas on X's keys/values.
    const viaDelta = tf.grads((...ds: tf.Tensor[]) => {
      const kv = ds.length / 2;
      const c = m.forward(X, { cache: prefix.cache, kvDelta: Array.from({ length: kv }, (_, i) => ({ key: ds[2 * i], value: ds[2 * i + 1] })) }).cache;
      return logLik(m.forward(Y, { cache: c }).logits, [9, 10, 11]);
    })(zeros.flatMap((l) => [l.key, l.value]));
    // Without the hook: the same loss as a function of the cache tensors themselves.
    const viaCache = tf.grads((...cs: tf.Tensor[]) => logLik(m.forward(Y, { cache: Array.from({ length: L }, (_, i) => ({ key: cs[2 * i], value: cs[2 * i + 1] })) }).logits, [9, 10, 11]))(plain.cache.flatMap((l) => [l.key, l.value]));
    for (let i = 0; i < 2 * L; i++) {
      const fromCache = viaCache[i].slice([0, 0, 3, 0], [-1, -1, 4, -1]); // X's slots (after the 3 prefix slots)
      // The last layer's slots reach Y only as cache entries; a lower layer's also through X's own upper states.
      if (Math.floor(i / 2) === L - 1) assert.ok(maxDiff(viaDelta[i], fromCache) < 1e-5, `grad ${i}`);
      else assert.ok(maxDiff(viaDelta[i], fromCache) > 1e-4, `grad ${i} includes the path through X's upper layers`);
      assert.ok(tf.tidy(() => tf.max(tf.abs(fromCache)).dataSync()[0]) > 1e-4, 'the gradient is not trivially zero');
      fromCache.dispose();
    }
    disposeAll([prefix, plain, zeros, viaDelta, viaCache]);
    m.dispose();
  });

  test(`${name}: kvDelta of the wrong shape fails with a ShapeError, leaking nothing`, () => {
    const m = build();
    const before = tf.memory().numTensors;
    const short = randomDelta(m, 3, new Rng(1), () => true);
    assert.throws(() => m.forward(X, { kvDelta: short }), (e: Error) => e instanceof ShapeError && /kvDelta\[0\]\.key has shape \[1, \d+, 3, 8\], expected \[1, \d+, 4, 8\]/.test(e.message));
    assert.throws(() => m.forward(X, { kvDelta: short.slice(1) }), (e: Error) => e instanceof ShapeError && /kvDelta has 1 layers/.test(e.message));
    disposeAll(short);
    assert.equal(tf.memory().numTensors, before);
    m.dispose();
  });
}
