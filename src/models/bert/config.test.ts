import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, UnsupportedError } from '../../errors.js';
import { bertDims, maxSequenceLength, parseBertConfig } from './config.js';

// config.json of bert-base-uncased and roberta-base as published (field values from the HF model cards).
const BERT_BASE_UNCASED = {
  architectures: ['BertForMaskedLM'],
  attention_probs_dropout_prob: 0.1,
  gradient_checkpointing: false,
  hidden_act: 'gelu',
  hidden_dropout_prob: 0.1,
  hidden_size: 768,
  initializer_range: 0.02,
  intermediate_size: 3072,
  layer_norm_eps: 1e-12,
  max_position_embeddings: 512,
  model_type: 'bert',
  num_attention_heads: 12,
  num_hidden_layers: 12,
  pad_token_id: 0,
  position_embedding_type: 'absolute',
  transformers_version: '4.6.0.dev0',
  type_vocab_size: 2,
  use_cache: true,
  vocab_size: 30522,
};
const ROBERTA_BASE = {
  architectures: ['RobertaForMaskedLM'],
  attention_probs_dropout_prob: 0.1,
  bos_token_id: 0,
  eos_token_id: 2,
  hidden_act: 'gelu',
  hidden_dropout_prob: 0.1,
  hidden_size: 768,
  initializer_range: 0.02,
  intermediate_size: 3072,
  layer_norm_eps: 1e-5,
  max_position_embeddings: 514,
  model_type: 'roberta',
  num_attention_heads: 12,
  num_hidden_layers: 12,
  pad_token_id: 1,
  type_vocab_size: 1,
  vocab_size: 50265,
};

test('bert-base-uncased config parses to its own values and keeps extra keys', () => {
  const c = parseBertConfig(BERT_BASE_UNCASED);
  assert.equal(c.hidden_size, 768);
  assert.equal(c.pad_token_id, 0);
  assert.equal(c.bos_token_id, null);
  assert.equal(c.classifier_dropout, null);
  assert.deepEqual(c.architectures, ['BertForMaskedLM']);
  assert.deepEqual(bertDims(c), { layers: 12, hidden: 768, heads: 12, kvHeads: 12, headDim: 64, vocab: 30522, maxPositions: 512 });
});

test('roberta-base config: 514 positions leave 512 usable tokens', () => {
  const c = parseBertConfig(ROBERTA_BASE);
  assert.equal(c.layer_norm_eps, 1e-5);
  assert.equal(c.type_vocab_size, 1);
  assert.equal(maxSequenceLength(c), 512);
  assert.equal(bertDims(c).maxPositions, 512);
});

test('defaults follow HF BertConfig / RobertaConfig', () => {
  const b = parseBertConfig({ model_type: 'bert' });
  assert.deepEqual(
    [b.vocab_size, b.hidden_size, b.num_hidden_layers, b.num_attention_heads, b.intermediate_size, b.hidden_act, b.hidden_dropout_prob, b.attention_probs_dropout_prob, b.max_position_embeddings, b.type_vocab_size, b.initializer_range, b.layer_norm_eps, b.pad_token_id, b.position_embedding_type],
    [30522, 768, 12, 12, 3072, 'gelu', 0.1, 0.1, 512, 2, 0.02, 1e-12, 0, 'absolute'],
  );
  const r = parseBertConfig({ model_type: 'roberta' });
  assert.deepEqual([r.vocab_size, r.pad_token_id, r.bos_token_id, r.eos_token_id, r.max_position_embeddings, r.type_vocab_size], [50265, 1, 0, 2, 512, 2]);
});

test('invalid or unsupported configs fail with the field named', () => {
  const cases: [Record<string, unknown>, typeof ConfigError | typeof UnsupportedError, RegExp][] = [
    [{ model_type: 'gpt2' }, ConfigError, /model_type/],
    [{ model_type: 'bert', hidden_size: 30, num_attention_heads: 4 }, ConfigError, /hidden_size \(30\) must be divisible by num_attention_heads \(4\)/],
    [{ model_type: 'bert', position_embedding_type: 'relative_key' }, UnsupportedError, /relative_key/],
    [{ model_type: 'bert', is_decoder: true }, UnsupportedError, /is_decoder/],
    [{ model_type: 'roberta', add_cross_attention: true }, UnsupportedError, /add_cross_attention/],
    [{ model_type: 'bert', tie_word_embeddings: false }, UnsupportedError, /tie_word_embeddings/],
    [{ model_type: 'bert', hidden_act: 'mish' }, UnsupportedError, /hidden_act 'mish'/],
    [{ model_type: 'bert', vocab_size: 10, pad_token_id: 10 }, ConfigError, /pad_token_id \(10\) must be below vocab_size \(10\)/],
    [{ model_type: 'roberta', pad_token_id: null }, ConfigError, /pad_token_id/],
    [{ model_type: 'roberta', max_position_embeddings: 2 }, ConfigError, /max_position_embeddings/],
    [{ model_type: 'bert', hidden_dropout_prob: 1.5 }, ConfigError, /hidden_dropout_prob/],
    [{ model_type: 'bert', num_hidden_layers: 0 }, ConfigError, /num_hidden_layers/],
    [{ model_type: 'bert', layer_norm_eps: 0 }, ConfigError, /layer_norm_eps/],
  ];
  for (const [raw, cls, msg] of cases) {
    assert.throws(() => parseBertConfig(raw), (e: Error) => e instanceof cls && msg.test(e.message), JSON.stringify(raw));
  }
});
