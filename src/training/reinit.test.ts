/**
 * Re-initialising the top K blocks: exactly those parameters change (checked against a perturbed copy),
 * the new values follow HF's `_init_weights` (biases 0, norm weights 1, weights N(0, σ) with GPT-2's
 * c_proj at σ/√(2·n_layer)), and the draws are a function of the seed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../backend/index.js';
import { Rng } from '../backend/rng.js';
import type { Module } from '../nn/module.js';
import { buildModel } from '../models/registry.js';
import { layerIndex } from './freeze.js';
import { parseFinetuneMode, prepareFinetune } from './modes.js';
import { reinitTopLayers } from './reinit.js';

await initBackend();

const GPT2 = { model_type: 'gpt2', vocab_size: 40, n_positions: 16, n_embd: 32, n_layer: 3, n_head: 2, initializer_range: 0.2, pad_token_id: 0 };

/** Build a classifier and move every parameter off its initial value, as a pretrained model would be. */
function perturbed(config: Record<string, unknown>): Module {
  const m = buildModel(config, 'sequence-classification', 1).model;
  const rng = new Rng(99);
  for (const [, v] of m.namedParameters()) {
    const t = tf.tidy(() => tf.add(v, tf.tensor(rng.normalArray(v.size, 0.5), v.shape)));
    v.assign(t);
    t.dispose();
  }
  return m;
}

function snapshot(m: Module): Map<string, Float32Array> {
  return new Map([...m.namedParameters()].map(([n, v]) => [n, v.dataSync().slice() as Float32Array]));
}

function std(a: Float32Array): number {
  const mean = a.reduce((s, x) => s + x, 0) / a.length;
  return Math.sqrt(a.reduce((s, x) => s + (x - mean) ** 2, 0) / a.length);
}

test('gpt2: reinit-top:2 changes exactly blocks 1 and 2, with HF init values', () => {
  const m = perturbed(GPT2);
  const before = snapshot(m);
  const names = reinitTopLayers(m, 2, { seed: 7 });
  const after = snapshot(m);
  const changed = [...after].filter(([n, v]) => !before.get(n)!.every((x, i) => x === v[i])).map(([n]) => n).sort();
  const want = [...before.keys()].filter((n) => (layerIndex(n) ?? -1) >= 1).sort();
  assert.deepEqual(changed, want);
  assert.deepEqual([...names].sort(), want);
  for (const i of [1, 2]) {
    const p = (s: string) => after.get(`transformer.h.${i}.${s}`)!;
    for (const b of ['ln_1.bias', 'ln_2.bias', 'attn.c_attn.bias', 'attn.c_proj.bias', 'mlp.c_fc.bias', 'mlp.c_proj.bias']) assert.ok(p(b).every((x) => x === 0), b);
    for (const w of ['ln_1.weight', 'ln_2.weight']) assert.ok(p(w).every((x) => x === 1), w);
    for (const [w, s] of [['attn.c_attn.weight', 0.2], ['mlp.c_fc.weight', 0.2], ['attn.c_proj.weight', 0.2 / Math.sqrt(6)], ['mlp.c_proj.weight', 0.2 / Math.sqrt(6)]] as [string, number][]) {
      const got = std(p(w));
      assert.ok(Math.abs(got / s - 1) < 0.1, `${w}: std ${got}, expected ${s}`);
    }
  }
  m.dispose();
});

test('re-initialisation is seeded: same seed, same weights; another seed, other weights', () => {
  const [a, b, c] = [perturbed(GPT2), perturbed(GPT2), perturbed(GPT2)];
  reinitTopLayers(a, 1, { seed: 3 });
  reinitTopLayers(b, 1, { seed: 3 });
  reinitTopLayers(c, 1, { seed: 4 });
  const [sa, sb, sc] = [snapshot(a), snapshot(b), snapshot(c)];
  for (const [n, v] of sa) assert.deepEqual(v, sb.get(n), n);
  assert.notDeepEqual(sa.get('transformer.h.2.attn.c_attn.weight'), sc.get('transformer.h.2.attn.c_attn.weight'));
  [a, b, c].forEach((m) => m.dispose());
});

test('bert: the pooler is re-drawn with the top block unless pooler: false', () => {
  const cfg = { model_type: 'bert', vocab_size: 40, hidden_size: 16, num_hidden_layers: 2, num_attention_heads: 2, intermediate_size: 24, max_position_embeddings: 16 };
  for (const pooler of [true, false]) {
    const m = perturbed(cfg);
    const before = snapshot(m);
    reinitTopLayers(m, 1, { seed: 1, pooler });
    const after = snapshot(m);
    const changed = [...after].filter(([n, v]) => !before.get(n)!.every((x, i) => x === v[i])).map(([n]) => n).sort();
    const want = [...before.keys()].filter((n) => n.startsWith('bert.encoder.layer.1.') || (pooler && n.startsWith('bert.pooler.'))).sort();
    assert.deepEqual(changed, want, `pooler ${pooler}`);
    assert.ok(after.get('bert.encoder.layer.1.output.LayerNorm.weight')!.every((x) => x === 1));
    m.dispose();
  }
});

test('llama: RMSNorm weights return to 1; the mode reinit-top:K runs through prepareFinetune', () => {
  const m = perturbed({ model_type: 'llama', vocab_size: 40, hidden_size: 16, intermediate_size: 24, num_hidden_layers: 2, num_attention_heads: 2, max_position_embeddings: 16, pad_token_id: 0 });
  const before = snapshot(m);
  const setup = prepareFinetune(m, parseFinetuneMode('reinit-top:1'), { seed: 5 });
  const after = snapshot(m);
  assert.deepEqual([...setup.reinitialized!].sort(), [...before.keys()].filter((n) => n.startsWith('model.layers.1.')).sort());
  assert.ok(after.get('model.layers.1.input_layernorm.weight')!.every((x) => x === 1));
  assert.deepEqual(after.get('model.layers.0.input_layernorm.weight'), before.get('model.layers.0.input_layernorm.weight'));
  assert.deepEqual(after.get('score.weight'), before.get('score.weight'));
  assert.ok([...setup.policies.values()].every((p) => p.trainable && p.lrScale === 1));
  m.dispose();
});
