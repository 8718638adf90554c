import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../backend/index.js';
import { disposeAll } from '../../backend/memory.js';
import { Rng } from '../../backend/rng.js';
import { ConfigError, ShapeError } from '../../errors.js';
import { attentionBias } from '../../nn/attention.js';
import { parseBertConfig } from './config.js';
import { BertModel, RobertaModel, robertaPositionIds } from './model.js';

await initBackend();

// A larger initializer than HF's 0.02 makes attention peaked, so masking mistakes show in the outputs.
const TINY = { vocab_size: 100, hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 4, intermediate_size: 64, initializer_range: 0.2 };
const bertCfg = parseBertConfig({ model_type: 'bert', ...TINY, max_position_embeddings: 16, type_vocab_size: 2 });
const robertaCfg = parseBertConfig({ model_type: 'roberta', ...TINY, max_position_embeddings: 18, type_vocab_size: 1, pad_token_id: 1 });

function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]);
}

test('BertModel shapes: last hidden [B, T, D], pooler [B, D], L+1 hidden states', () => {
  const m = new BertModel(bertCfg, 1);
  const out = m.forward([[2, 3, 4, 5, 6], [7, 8, 9, 10, 11]], { returnHidden: true, tokenTypeIds: [[0, 0, 1, 1, 1], [0, 0, 0, 1, 1]] });
  assert.deepEqual(out.lastHiddenState.shape, [2, 5, 32]);
  assert.deepEqual(out.poolerOutput!.shape, [2, 32]);
  assert.equal(out.hidden!.length, 3);
  assert.equal(maxAbsDiff(out.hidden![2], out.lastHiddenState), 0);
  disposeAll(out);
  const noPool = new BertModel(bertCfg, 1, false);
  const o2 = noPool.forward([[2, 3]]);
  assert.equal(o2.poolerOutput, undefined);
  assert.equal(o2.hidden, undefined);
  disposeAll(o2);
  m.dispose();
  noPool.dispose();
});

test('pooler output is tanh(dense(first token))', () => {
  const m = new BertModel(bertCfg, 2);
  const out = m.forward([[5, 6, 7]]);
  const h = out.lastHiddenState.dataSync().slice(0, 32);
  const W = m.pooler!.dense.weight.dataSync();
  const b = m.pooler!.dense.bias!.dataSync();
  const got = out.poolerOutput!.dataSync();
  for (let o = 0; o < 32; o++) {
    let s = b[o];
    for (let i = 0; i < 32; i++) s += W[o * 32 + i] * h[i];
    assert.ok(Math.abs(Math.tanh(s) - got[o]) < 1e-5);
  }
  disposeAll(out);
  m.dispose();
});

test('no tensors leak across 20 forwards (bert and roberta, with mask and hidden states)', () => {
  for (const m of [new BertModel(bertCfg, 3), new RobertaModel(robertaCfg, 3)]) {
    const ids = [[0, 5, 6, 7, 2], [0, 8, 2, 1, 1]];
    const opts = { attentionMask: [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], returnHidden: true };
    disposeAll(m.forward(ids, opts));
    const before = tf.memory().numTensors;
    for (let i = 0; i < 20; i++) disposeAll(m.forward(ids, opts));
    assert.equal(tf.memory().numTensors, before);
    assert.throws(() => m.forward([[0, 500]]), ShapeError);
    assert.equal(tf.memory().numTensors, before, 'a rejected input leaks nothing');
    m.dispose();
  }
});

test('right padding with a mask leaves the real positions unchanged (bert, roberta)', () => {
  for (const [m, pad] of [[new BertModel(bertCfg, 4), 0], [new RobertaModel(robertaCfg, 4), 1]] as const) {
    const real = [0, 11, 12, 13, 2];
    const alone = m.forward([real]);
    const batch = m.forward([[...real, pad, pad, pad], [0, 20, 21, 22, 23, 24, 25, 2]], { attentionMask: [[1, 1, 1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1, 1, 1]] });
    const first = batch.lastHiddenState.slice([0, 0, 0], [1, 5, 32]);
    assert.ok(maxAbsDiff(first, alone.lastHiddenState) <= 1e-5, `${m.modelType} hidden`);
    const pooled = batch.poolerOutput!.slice([0, 0], [1, 32]);
    assert.ok(maxAbsDiff(pooled, alone.poolerOutput!) <= 1e-5, `${m.modelType} pooler`);
    // Without the mask the pads are attended to, so the check above is not vacuous.
    const unmasked = m.forward([[...real, pad, pad, pad]]);
    const u = unmasked.lastHiddenState.slice([0, 0, 0], [1, 5, 32]);
    assert.ok(maxAbsDiff(u, alone.lastHiddenState) > 1e-3, `${m.modelType} pads matter when unmasked`);
    disposeAll([alone, batch, first, pooled, unmasked, u]);
    m.dispose();
  }
});

test('RoBERTa position ids: real tokens count from padding_idx + 1, pads keep padding_idx', () => {
  const ids = tf.tensor2d([[0, 5, 6, 2, 1, 1], [0, 7, 1, 8, 2, 1]], [2, 6], 'int32');
  const pos = robertaPositionIds(ids, 1);
  assert.deepEqual(pos.arraySync(), [[2, 3, 4, 5, 1, 1], [2, 3, 1, 4, 5, 1]]);
  disposeAll([ids, pos]);

  const m = new RobertaModel(robertaCfg, 5);
  const x = [[0, 5, 6, 2, 1, 1]];
  const dflt = m.forward(x);
  const explicit = m.forward(x, { positionIds: [[2, 3, 4, 5, 1, 1]] });
  const bertStyle = m.forward(x, { positionIds: [[0, 1, 2, 3, 4, 5]] });
  assert.equal(maxAbsDiff(dflt.lastHiddenState, explicit.lastHiddenState), 0);
  assert.ok(maxAbsDiff(dflt.lastHiddenState, bertStyle.lastHiddenState) > 1e-3);
  disposeAll([dflt, explicit, bertStyle]);
  m.dispose();
});

test('padding rows of the embedding tables start at zero (HF _init_weights)', () => {
  const b = new BertModel(bertCfg, 6);
  const r = new RobertaModel(robertaCfg, 6);
  const row = (v: tf.Variable, i: number) => tf.tidy(() => tf.abs(v.slice([i, 0], [1, 32])).max().dataSync()[0]);
  assert.equal(row(b.embeddings.word_embeddings.weight, 0), 0);
  assert.ok(row(b.embeddings.position_embeddings.weight, 0) > 0, 'BERT positions have no padding row');
  assert.equal(row(r.embeddings.word_embeddings.weight, 1), 0);
  assert.equal(row(r.embeddings.position_embeddings.weight, 1), 0);
  b.dispose();
  r.dispose();
});

test('zero query/key weights give uniform attention: output is the mean of the unmasked values', () => {
  const m = new BertModel(bertCfg, 7);
  const att = m.encoder.layer.items[0].attention.self;
  for (const v of [att.query.weight, att.query.bias!, att.key.weight, att.key.bias!]) v.assign(tf.zerosLike(v));
  const [B, T, D] = [2, 5, 32];
  const xs = new Rng(11).normalArray(B * T * D);
  const maskRows = [[1, 1, 1, 1, 1], [1, 1, 0, 1, 0]];
  const x = tf.tensor3d(xs, [B, T, D]);
  const mask = tf.tensor2d(maskRows, [B, T], 'int32');
  const bias = attentionBias(B, T, 0, mask, false);
  const y = att.forward(x, bias, {}).dataSync();
  const W = att.value.weight.dataSync();
  const bv = att.value.bias!.dataSync();
  for (let b = 0; b < B; b++) {
    const keep = maskRows[b].flatMap((k, s) => (k ? [s] : []));
    for (let o = 0; o < D; o++) {
      let mean = 0;
      for (const s of keep) {
        let v = bv[o];
        for (let i = 0; i < D; i++) v += W[o * D + i] * xs[(b * T + s) * D + i];
        mean += v / keep.length;
      }
      for (let t = 0; t < T; t++) assert.ok(Math.abs(y[(b * T + t) * D + o] - mean) < 1e-5, `b${b} t${t} o${o}`);
    }
  }
  disposeAll([x, mask, bias]);
  m.dispose();
});

test('training mode applies dropout from the seeded stream', () => {
  const m = new BertModel(bertCfg, 8);
  const ids = [[0, 4, 5, 6], [0, 7, 8, 0]];
  const attentionMask = [[1, 1, 1, 1], [1, 1, 1, 0]];
  const evalOut = m.forward(ids, { attentionMask });
  const a = m.forward(ids, { attentionMask, training: true, rng: new Rng(1) });
  const b = m.forward(ids, { attentionMask, training: true, rng: new Rng(1) });
  assert.equal(maxAbsDiff(a.lastHiddenState, b.lastHiddenState), 0);
  assert.ok(maxAbsDiff(a.lastHiddenState, evalOut.lastHiddenState) > 1e-3);
  disposeAll([evalOut, a, b]);
  m.dispose();
});

test('dims() reports the shapes generic code needs', () => {
  const b = new BertModel(bertCfg);
  const r = new RobertaModel(robertaCfg);
  assert.deepEqual(b.dims(), { layers: 2, hidden: 32, heads: 4, kvHeads: 4, headDim: 8, vocab: 100, maxPositions: 16 });
  assert.deepEqual(r.dims(), { layers: 2, hidden: 32, heads: 4, kvHeads: 4, headDim: 8, vocab: 100, maxPositions: 16 });
  assert.equal(b.modelType, 'bert');
  assert.equal(r.modelType, 'roberta');
  b.dispose();
  r.dispose();
});

test('bad inputs fail with ShapeError naming the limit; wrong config family fails', () => {
  const b = new BertModel(bertCfg);
  const r = new RobertaModel(robertaCfg);
  const row = (n: number) => [Array.from({ length: n }, (_, i) => 3 + i)];
  assert.doesNotThrow(() => disposeAll(b.forward(row(16))));
  assert.throws(() => b.forward(row(17)), (e: Error) => e instanceof ShapeError && /17 tokens/.test(e.message) && /limit of 16/.test(e.message));
  assert.doesNotThrow(() => disposeAll(r.forward(row(16))));
  assert.throws(() => r.forward(row(17)), (e: Error) => e instanceof ShapeError && /limit of 16/.test(e.message) && /max_position_embeddings=18/.test(e.message));
  assert.throws(() => b.forward([[1, 100]]), (e: Error) => e instanceof ShapeError && /id 100/.test(e.message));
  assert.throws(() => b.forward([[1, -1]]), ShapeError);
  assert.throws(() => b.forward([[1, 2]], { tokenTypeIds: [[0, 2]] }), (e: Error) => e instanceof ShapeError && /token type ids/.test(e.message));
  assert.throws(() => b.forward([[1, 2]], { attentionMask: [[1, 1, 0]] }), (e: Error) => e instanceof ShapeError && /attention mask has shape \[1, 3\]/.test(e.message));
  assert.throws(() => b.forward([[1, 2]], { positionIds: [[0, 16]] }), ShapeError);
  assert.throws(() => b.forward([[1, 2], [3]]), ShapeError);
  assert.throws(() => new BertModel(robertaCfg), ConfigError);
  assert.throws(() => new RobertaModel(bertCfg), ConfigError);
  b.dispose();
  r.dispose();
});
