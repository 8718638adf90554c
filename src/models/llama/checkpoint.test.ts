/**
 * llamaKeyRules with hfKeyMapper: old `rotary_emb.inv_freq` buffers and a tied `lm_head.weight` are
 * dropped, bare and headed checkpoints load into either class, and a saved state dict loads back.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../backend/index.js';
import { CheckpointError } from '../../errors.js';
import { mapSource } from '../../nn/module.js';
import { hfKeyMapper, renamedSource } from '../common.js';
import { llamaKeyRules } from './checkpoint.js';
import { parseLlamaConfig } from './config.js';
import { LlamaForCausalLM, LlamaModel } from './model.js';

await initBackend();
const base = { model_type: 'llama', vocab_size: 50, hidden_size: 16, intermediate_size: 32, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2 };

test('key mapping: buffers dropped, lm_head kept only when untied, prefixes added or stripped', () => {
  const untiedHeaded = hfKeyMapper(llamaKeyRules({ tie_word_embeddings: false }), true);
  const tiedHeaded = hfKeyMapper(llamaKeyRules({ tie_word_embeddings: true }), true);
  const bare = hfKeyMapper(llamaKeyRules({ tie_word_embeddings: false }), false);
  assert.equal(untiedHeaded('model.layers.0.self_attn.rotary_emb.inv_freq'), null);
  assert.equal(untiedHeaded('lm_head.weight'), 'lm_head.weight');
  assert.equal(tiedHeaded('lm_head.weight'), null);
  assert.equal(untiedHeaded('layers.1.mlp.up_proj.weight'), 'model.layers.1.mlp.up_proj.weight');
  assert.equal(untiedHeaded('model.norm.weight'), 'model.norm.weight');
  assert.equal(bare('model.norm.weight'), 'norm.weight');
  assert.equal(bare('lm_head.weight'), null);
  assert.equal(bare('layers.0.self_attn.rotary_emb.inv_freq'), null);
});

function checkpointOf(m: LlamaForCausalLM, extra: Record<string, tf.Tensor> = {}): Map<string, tf.Tensor> {
  const map = new Map<string, tf.Tensor>();
  for (const [k, v] of m.namedParameters()) map.set(k, v.clone());
  for (const [k, v] of Object.entries(extra)) map.set(k, v);
  return map;
}

test('an old tied checkpoint (inv_freq buffers, lm_head copy) loads; values and logits carry over', () => {
  const cfg = parseLlamaConfig({ ...base, tie_word_embeddings: true });
  const src = new LlamaForCausalLM(cfg, 1);
  const map = checkpointOf(src, {
    'model.layers.0.self_attn.rotary_emb.inv_freq': tf.ones([2]),
    'model.layers.1.self_attn.rotary_emb.inv_freq': tf.ones([2]),
    'lm_head.weight': src.model.embed_tokens.weight.clone(),
  });
  const dst = new LlamaForCausalLM(cfg, 2);
  dst.loadStateDict(renamedSource(mapSource(map), hfKeyMapper(llamaKeyRules(cfg), true)));
  const [a, b] = [src.forward([[1, 2, 3]]), dst.forward([[1, 2, 3]])];
  assert.equal(tf.tidy(() => tf.max(tf.abs(tf.sub(a.logits, b.logits))).dataSync()[0]), 0);
  tf.dispose([a.logits, b.logits, ...a.cache.flatMap((l) => [l.key, l.value]), ...b.cache.flatMap((l) => [l.key, l.value])]);
  tf.dispose([...map.values()]);
  src.dispose();
  dst.dispose();
});

test('an untied checkpoint without lm_head fails strictly, naming the key; a headed one loads into the bare model', () => {
  const cfg = parseLlamaConfig(base);
  const src = new LlamaForCausalLM(cfg, 3);
  const map = checkpointOf(src);
  const rules = llamaKeyRules(cfg);
  const noHead = new Map([...map].filter(([k]) => k !== 'lm_head.weight'));
  const dst = new LlamaForCausalLM(cfg, 4);
  assert.throws(() => dst.loadStateDict(renamedSource(mapSource(noHead), hfKeyMapper(rules, true))), (e: Error) => e instanceof CheckpointError && /missing \(1\): lm_head\.weight/.test(e.message));
  const bare = new LlamaModel(cfg, 5);
  bare.loadStateDict(renamedSource(mapSource(map), hfKeyMapper(rules, false)));
  assert.deepEqual(bare.norm.weight.dataSync(), src.model.norm.weight.dataSync());
  tf.dispose([...map.values()]);
  for (const m of [src, dst, bare]) m.dispose();
});
