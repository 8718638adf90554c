import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../backend/index.js';
import { Rng } from '../../backend/rng.js';
import { mapSource, type Module } from '../../nn/module.js';
import { renamedSource } from '../common.js';
import { bertForMaskedLMKeyRules, bertKeyMapper, bertKeyRules, renameLegacy, robertaForMaskedLMKeyRules, robertaKeyRules } from './checkpoint.js';
import { parseBertConfig } from './config.js';
import { BertForMaskedLM, RobertaForMaskedLM } from './heads.js';
import { BertModel, RobertaModel } from './model.js';

await initBackend();

const TINY = { vocab_size: 100, hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 4, intermediate_size: 64, max_position_embeddings: 18 };
const bertCfg = parseBertConfig({ model_type: 'bert', ...TINY });
const robertaCfg = parseBertConfig({ model_type: 'roberta', ...TINY, type_vocab_size: 1 });

/** Encoder key names as HF's modeling_bert.py lays them out, with `ln` the LayerNorm suffixes. */
function encoderKeys(prefix: string, layers: number, ln: [string, string]): string[] {
  const norm = (p: string) => ln.map((s) => `${p}.LayerNorm.${s}`);
  const wb = (p: string) => [`${p}.weight`, `${p}.bias`];
  const keys = [`${prefix}embeddings.word_embeddings.weight`, `${prefix}embeddings.position_embeddings.weight`, `${prefix}embeddings.token_type_embeddings.weight`, ...norm(`${prefix}embeddings`)];
  for (let i = 0; i < layers; i++) {
    const l = `${prefix}encoder.layer.${i}`;
    keys.push(...wb(`${l}.attention.self.query`), ...wb(`${l}.attention.self.key`), ...wb(`${l}.attention.self.value`));
    keys.push(...wb(`${l}.attention.output.dense`), ...norm(`${l}.attention.output`));
    keys.push(...wb(`${l}.intermediate.dense`), ...wb(`${l}.output.dense`), ...norm(`${l}.output`));
  }
  return keys;
}

/** bert-base-uncased's pytorch_model.bin (BertForPreTraining, TF-converted: gamma/beta), with `layers` layers. */
function bertBaseUncasedKeys(layers: number): string[] {
  return [
    ...encoderKeys('bert.', layers, ['gamma', 'beta']),
    'bert.pooler.dense.weight', 'bert.pooler.dense.bias',
    'cls.predictions.bias', 'cls.predictions.transform.dense.weight', 'cls.predictions.transform.dense.bias',
    'cls.predictions.transform.LayerNorm.gamma', 'cls.predictions.transform.LayerNorm.beta',
    'cls.predictions.decoder.weight', 'cls.seq_relationship.weight', 'cls.seq_relationship.bias',
  ];
}

/** roberta-base's checkpoint (RobertaForMaskedLM with a pooler and the position_ids buffer). */
function robertaBaseKeys(layers: number): string[] {
  return [
    ...encoderKeys('roberta.', layers, ['weight', 'bias']), 'roberta.embeddings.position_ids',
    'roberta.pooler.dense.weight', 'roberta.pooler.dense.bias',
    'lm_head.bias', 'lm_head.dense.weight', 'lm_head.dense.bias', 'lm_head.layer_norm.weight', 'lm_head.layer_norm.bias',
    'lm_head.decoder.weight', 'lm_head.decoder.bias',
  ];
}

const names = (m: Module) => [...m.namedParameters()].map(([n]) => n).sort();
const mapped = (keys: string[], f: (k: string) => string | null) => [...new Set(keys.map(f).filter((k): k is string => k !== null))].sort();

test('renameLegacy turns TF LayerNorm gamma/beta into weight/bias and nothing else', () => {
  assert.equal(renameLegacy('bert.embeddings.LayerNorm.gamma'), 'bert.embeddings.LayerNorm.weight');
  assert.equal(renameLegacy('cls.predictions.transform.LayerNorm.beta'), 'cls.predictions.transform.LayerNorm.bias');
  assert.equal(renameLegacy('encoder.layer.0.output.LayerNorm.weight'), 'encoder.layer.0.output.LayerNorm.weight');
  assert.equal(renameLegacy('some.gamma'), 'some.gamma');
});

test('bert-base-uncased keys map exactly onto BertForMaskedLM and BertModel', () => {
  const keys = bertBaseUncasedKeys(2);
  const mlm = new BertForMaskedLM(bertCfg);
  const base = new BertModel(bertCfg);
  assert.deepEqual(mapped(keys, bertKeyMapper(bertForMaskedLMKeyRules, true)), names(mlm));
  assert.deepEqual(mapped(keys, bertKeyMapper(bertKeyRules, false)), names(base));
  // A bare BertModel file (no prefix, modern names, position_ids buffer) loads into BertModel as is.
  const bare = [...encoderKeys('', 2, ['weight', 'bias']), 'embeddings.position_ids', 'pooler.dense.weight', 'pooler.dense.bias'];
  assert.deepEqual(mapped(bare, bertKeyMapper(bertKeyRules, false)), names(base));
  // …and into the masked-LM model as its `bert.` part (the head then is missing, as in HF).
  assert.deepEqual(mapped(bare, bertKeyMapper(bertForMaskedLMKeyRules, true)), names(mlm).filter((n) => n.startsWith('bert.')));
  mlm.dispose();
  base.dispose();
});

test('roberta-base keys map exactly onto RobertaForMaskedLM and RobertaModel', () => {
  const keys = robertaBaseKeys(2);
  const mlm = new RobertaForMaskedLM(robertaCfg);
  const base = new RobertaModel(robertaCfg);
  assert.deepEqual(mapped(keys, bertKeyMapper(robertaForMaskedLMKeyRules, true)), names(mlm));
  assert.deepEqual(mapped(keys, bertKeyMapper(robertaKeyRules, false)), names(base));
  mlm.dispose();
  base.dispose();
});

test('a legacy BERT checkpoint loads strictly, values landing under the renamed keys', () => {
  const src = new BertForMaskedLM(bertCfg, 1);
  const pool = new BertModel(bertCfg, 2);
  const rng = new Rng(9);
  const file = new Map<string, tf.Tensor>();
  const legacy = (k: string) => k.replace(/LayerNorm\.weight$/, 'LayerNorm.gamma').replace(/LayerNorm\.bias$/, 'LayerNorm.beta');
  for (const [k, v] of src.namedParameters()) file.set(legacy(k), tf.tensor(rng.normalArray(v.size), v.shape));
  for (const [k, v] of pool.pooler!.namedParameters('bert.pooler.')) file.set(k, v.clone());
  file.set('cls.predictions.decoder.weight', file.get('bert.embeddings.word_embeddings.weight')!.clone());
  file.set('cls.seq_relationship.weight', tf.zeros([2, 32]));
  file.set('cls.seq_relationship.bias', tf.zeros([2]));
  const dst = new BertForMaskedLM(bertCfg, 3);
  dst.loadStateDict(renamedSource(mapSource(file), bertKeyMapper(bertForMaskedLMKeyRules, true)));
  const got = dst.cls.predictions.transformer.LayerNorm.weight.dataSync();
  assert.deepEqual(Array.from(got), Array.from(file.get('cls.predictions.transform.LayerNorm.gamma')!.dataSync()));
  const base = new BertModel(bertCfg, 4);
  base.loadStateDict(renamedSource(mapSource(file), bertKeyMapper(bertKeyRules, false)));
  assert.deepEqual(Array.from(base.pooler!.dense.weight.dataSync()), Array.from(pool.pooler!.dense.weight.dataSync()));
  assert.deepEqual(Array.from(base.embeddings.LayerNorm.bias.dataSync()), Array.from(file.get('bert.embeddings.LayerNorm.beta')!.dataSync()));
  for (const t of file.values()) t.dispose();
  for (const m of [src, pool, dst, base]) m.dispose();
});
