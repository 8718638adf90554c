/**
 * parseLlamaConfig: HF's defaults (`configuration_llama.py`), real config.json shapes (Llama 2, Llama 3.2,
 * transformers v5 `rope_parameters`), and the invariants it must refuse.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, UnsupportedError } from '../../errors.js';
import { llamaDims, parseLlamaConfig } from './config.js';

test('HF defaults fill an almost empty config', () => {
  const c = parseLlamaConfig({ model_type: 'llama' });
  assert.equal(c.vocab_size, 32000);
  assert.equal(c.hidden_size, 4096);
  assert.equal(c.intermediate_size, 11008);
  assert.equal(c.num_hidden_layers, 32);
  assert.equal(c.num_attention_heads, 32);
  assert.equal(c.num_key_value_heads, 32);
  assert.equal(c.head_dim, 128);
  assert.equal(c.hidden_act, 'silu');
  assert.equal(c.max_position_embeddings, 2048);
  assert.equal(c.initializer_range, 0.02);
  assert.equal(c.rms_norm_eps, 1e-6);
  assert.equal(c.tie_word_embeddings, false);
  assert.equal(c.rope_theta, 10000);
  assert.equal(c.rope_scaling, null);
  assert.equal(c.attention_bias, false);
  assert.equal(c.attention_dropout, 0);
  assert.equal(c.mlp_bias, false);
  assert.equal(c.pretraining_tp, 1);
  assert.equal(c.bos_token_id, 1);
  assert.equal(c.eos_token_id, 2);
  assert.equal(c.pad_token_id, null);
});

test('a Llama 3.2 1B config.json: head_dim, GQA, llama3 rope, tied, eos list, extra keys kept', () => {
  const c = parseLlamaConfig({
    architectures: ['LlamaForCausalLM'], attention_bias: false, attention_dropout: 0.0, bos_token_id: 128000, eos_token_id: [128001, 128008, 128009],
    head_dim: 64, hidden_act: 'silu', hidden_size: 2048, initializer_range: 0.02, intermediate_size: 8192, max_position_embeddings: 131072,
    mlp_bias: false, model_type: 'llama', num_attention_heads: 32, num_hidden_layers: 16, num_key_value_heads: 8, pretraining_tp: 1,
    rms_norm_eps: 1e-5, rope_scaling: { factor: 32.0, high_freq_factor: 4.0, low_freq_factor: 1.0, original_max_position_embeddings: 8192, rope_type: 'llama3' },
    rope_theta: 500000.0, tie_word_embeddings: true, torch_dtype: 'bfloat16', use_cache: true, vocab_size: 128256,
  });
  assert.deepEqual(c.rope_scaling, { rope_type: 'llama3', factor: 32, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 });
  assert.deepEqual(c.eos_token_id, [128001, 128008, 128009]);
  assert.equal(c.torch_dtype, 'bfloat16');
  assert.deepEqual(llamaDims(c), { layers: 16, hidden: 2048, heads: 32, kvHeads: 8, headDim: 64, vocab: 128256, maxPositions: Infinity });
});

test('rope_scaling spellings: legacy "type", "rope_type", "default", and v5 rope_parameters', () => {
  assert.deepEqual(parseLlamaConfig({ model_type: 'llama', rope_scaling: { type: 'linear', factor: 2.0 } }).rope_scaling, { rope_type: 'linear', factor: 2 });
  assert.deepEqual(parseLlamaConfig({ model_type: 'llama', rope_scaling: { rope_type: 'linear', factor: 4 } }).rope_scaling, { rope_type: 'linear', factor: 4 });
  assert.deepEqual(parseLlamaConfig({ model_type: 'llama', rope_scaling: { rope_type: 'default' } }).rope_scaling, { rope_type: 'default' });
  const v5 = parseLlamaConfig({ model_type: 'llama', rope_parameters: { rope_type: 'linear', rope_theta: 500000, factor: 2 } });
  assert.equal(v5.rope_theta, 500000);
  assert.deepEqual(v5.rope_scaling, { rope_type: 'linear', factor: 2 });
  assert.equal(parseLlamaConfig({ model_type: 'llama', rope_parameters: { rope_type: 'default', rope_theta: 1e6 } }).rope_theta, 1e6);
});

test('pretraining_tp > 1 is accepted (same math, sliced in HF)', () => {
  assert.equal(parseLlamaConfig({ model_type: 'llama', pretraining_tp: 2 }).pretraining_tp, 2);
});

test('bad configs fail with the field named', () => {
  const bad = (raw: Record<string, unknown>, cls: typeof ConfigError | typeof UnsupportedError, re: RegExp) => assert.throws(() => parseLlamaConfig({ model_type: 'llama', ...raw }), (e: Error) => e instanceof cls && re.test(e.message));
  assert.throws(() => parseLlamaConfig({ model_type: 'mistral' }), (e: Error) => e instanceof ConfigError && /'llama'.*"mistral"/.test(e.message));
  bad({ hidden_size: 30, num_attention_heads: 4 }, ConfigError, /hidden_size \(30\) must be divisible by num_attention_heads \(4\)/);
  bad({ num_attention_heads: 4, num_key_value_heads: 3, hidden_size: 32 }, ConfigError, /num_attention_heads \(4\) must be divisible by num_key_value_heads \(3\)/);
  bad({ head_dim: 7 }, ConfigError, /head_dim \(7\) must be even/);
  bad({ vocab_size: 0 }, ConfigError, /vocab_size/);
  bad({ hidden_size: '32' }, ConfigError, /hidden_size/);
  bad({ rope_scaling: { type: 'dynamic', factor: 2 } }, UnsupportedError, /"dynamic".*\n.*default, linear, llama3/);
  bad({ rope_scaling: { rope_type: 'yarn', factor: 2 } }, UnsupportedError, /yarn/);
  bad({ rope_scaling: { type: 'linear' } }, ConfigError, /'linear' needs a positive number 'factor'/);
  bad({ rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4 } }, ConfigError, /original_max_position_embeddings/);
  bad({ rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 4, high_freq_factor: 1, original_max_position_embeddings: 8192 } }, ConfigError, /high_freq_factor/);
  bad({ rope_scaling: { rope_type: 'linear', type: 'dynamic', factor: 2 } }, ConfigError, /both/);
  bad({ rope_scaling: 2 }, ConfigError, /rope_scaling/);
  bad({ partial_rotary_factor: 0.5 }, UnsupportedError, /partial_rotary_factor/);
  bad({ attention_dropout: 1.5 }, ConfigError, /attention_dropout/);
  bad({ pretraining_tp: 0 }, ConfigError, /pretraining_tp/);
});
