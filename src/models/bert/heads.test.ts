import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../backend/index.js';
import { disposeAll } from '../../backend/memory.js';
import { Rng } from '../../backend/rng.js';
import { ConfigError } from '../../errors.js';
import { parseBertConfig } from './config.js';
import { BertForMaskedLM, RobertaForMaskedLM } from './heads.js';

await initBackend();

const TINY = { vocab_size: 100, hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 4, intermediate_size: 64, initializer_range: 0.2 };
const bertCfg = parseBertConfig({ model_type: 'bert', ...TINY, max_position_embeddings: 16 });
const robertaCfg = parseBertConfig({ model_type: 'roberta', ...TINY, max_position_embeddings: 18, type_vocab_size: 1 });

function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]);
}

test('masked-LM heads register HF names once: no pooler, no decoder copy', () => {
  const bert = [...new BertForMaskedLM(bertCfg).namedParameters()].map(([n]) => n);
  const heads = bert.filter((n) => n.startsWith('cls.')).sort();
  assert.deepEqual(heads, ['cls.predictions.bias', 'cls.predictions.transform.LayerNorm.bias', 'cls.predictions.transform.LayerNorm.weight', 'cls.predictions.transform.dense.bias', 'cls.predictions.transform.dense.weight']);
  assert.ok(bert.includes('bert.embeddings.word_embeddings.weight'));
  assert.ok(!bert.some((n) => n.includes('pooler') || n.includes('decoder')));
  const rob = [...new RobertaForMaskedLM(robertaCfg).namedParameters()].map(([n]) => n);
  assert.deepEqual(rob.filter((n) => n.startsWith('lm_head.')).sort(), ['lm_head.bias', 'lm_head.dense.bias', 'lm_head.dense.weight', 'lm_head.layer_norm.bias', 'lm_head.layer_norm.weight']);
  assert.ok(rob.includes('roberta.encoder.layer.1.output.LayerNorm.weight'));
  assert.ok(!rob.some((n) => n.includes('pooler') || n.includes('decoder')));
});

test('logits [B, T, V] are the transformed features times the tied word embeddings plus bias', () => {
  for (const m of [new BertForMaskedLM(bertCfg, 1), new RobertaForMaskedLM(robertaCfg, 1)]) {
    const bias = m instanceof BertForMaskedLM ? m.cls.predictions.bias : m.lm_head.bias;
    bias.assign(tf.tensor1d(new Rng(3).normalArray(100)));
    const out = m.forward([[0, 7, 8, 2], [0, 9, 2, 1]], { attentionMask: [[1, 1, 1, 1], [1, 1, 1, 0]], returnHidden: true });
    assert.deepEqual(out.logits!.shape, [2, 4, 100]);
    assert.deepEqual(out.lastHiddenState.shape, [2, 4, 32]);
    assert.equal(out.hidden!.length, 3);
    const h = m.head.transform(out.lastHiddenState);
    const hv = h.dataSync();
    const W = m.base.embeddings.word_embeddings.weight.dataSync();
    const bv = bias.dataSync();
    const got = out.logits!.dataSync();
    for (let r = 0; r < 8; r++) {
      for (let v = 0; v < 100; v++) {
        let s = bv[v];
        for (let i = 0; i < 32; i++) s += hv[r * 32 + i] * W[v * 32 + i];
        assert.ok(Math.abs(s - got[r * 100 + v]) < 1e-4, `${m.modelType} row ${r} token ${v}`);
      }
    }
    // Tied: changing the embedding matrix changes the decoder.
    const before = out.logits!.dataSync().slice();
    const w = m.base.embeddings.word_embeddings.weight;
    w.assign(tf.mul(w, 2));
    const again = m.forward([[0, 7, 8, 2], [0, 9, 2, 1]], { attentionMask: [[1, 1, 1, 1], [1, 1, 1, 0]] });
    assert.notDeepEqual(Array.from(again.logits!.dataSync()), Array.from(before));
    disposeAll([out, h, again]);
    m.dispose();
  }
});

test('RoBERTa head uses exact GELU and LayerNorm in that order', () => {
  const m = new RobertaForMaskedLM(robertaCfg, 2);
  const x = tf.tensor3d(new Rng(5).normalArray(32), [1, 1, 32]);
  const got = m.head.transform(x).dataSync();
  const xs = x.dataSync();
  const W = m.lm_head.dense.weight.dataSync();
  const erf = (z: number) => {
    // erf by the midpoint rule: independent of tf.erf and accurate to ~1e-8 at these arguments.
    let s = 0;
    const n = 2000;
    for (let k = 0; k < n; k++) {
      const t = ((k + 0.5) / n) * z;
      s += Math.exp(-t * t);
    }
    return (2 / Math.sqrt(Math.PI)) * s * (z / n);
  };
  const g = Array.from({ length: 32 }, (_, o) => {
    let s = 0;
    for (let i = 0; i < 32; i++) s += W[o * 32 + i] * xs[i];
    return 0.5 * s * (1 + erf(s / Math.SQRT2));
  });
  const mean = g.reduce((a, b) => a + b, 0) / 32;
  const variance = g.reduce((a, b) => a + (b - mean) ** 2, 0) / 32;
  g.forEach((v, o) => assert.ok(Math.abs((v - mean) / Math.sqrt(variance + robertaCfg.layer_norm_eps) - got[o]) < 1e-4, `feature ${o}`));
  x.dispose();
  m.dispose();
});

test('masked-LM logits are invariant to right padding and leak nothing', () => {
  for (const [m, pad] of [[new BertForMaskedLM(bertCfg, 3), 0], [new RobertaForMaskedLM(robertaCfg, 3), 1]] as const) {
    const alone = m.forward([[0, 30, 31, 2]]);
    const padded = m.forward([[0, 30, 31, 2, pad, pad]], { attentionMask: [[1, 1, 1, 1, 0, 0]] });
    const first = padded.logits!.slice([0, 0, 0], [1, 4, 100]);
    assert.ok(maxAbsDiff(first, alone.logits!) <= 1e-5);
    disposeAll([alone, padded, first]);
    const before = tf.memory().numTensors;
    for (let i = 0; i < 20; i++) disposeAll(m.forward([[0, 30, 31, 2, pad]], { attentionMask: [[1, 1, 1, 1, 0]], returnHidden: true }));
    assert.equal(tf.memory().numTensors, before);
    assert.deepEqual(m.dims().vocab, 100);
    m.dispose();
  }
});

test('heads reject a config of the other family', () => {
  assert.throws(() => new BertForMaskedLM(robertaCfg), ConfigError);
  assert.throws(() => new RobertaForMaskedLM(bertCfg), ConfigError);
});
