/**
 * Sequence-classification heads: HF's label fields, decoder heads scoring the last real token (checked
 * against an independent computation from the base model's hidden states and `score.weight`), the
 * losses HF picks by problem_type (against hand-computed values), registry build / save / load.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../backend/index.js';
import { disposeAll } from '../backend/memory.js';
import { ConfigError, ShapeError } from '../errors.js';
import { classificationFields, sequenceClassificationLoss } from './classification.js';
import { GPT2ForSequenceClassification } from './gpt2/classification.js';
import { parseGPT2Config } from './gpt2/config.js';
import { LlamaForSequenceClassification } from './llama/classification.js';
import { parseLlamaConfig } from './llama/config.js';
import { fromPretrained, maxParamDiff } from './pretrained.js';
import { buildModel } from './registry.js';

await initBackend();

const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

const GPT2 = { model_type: 'gpt2', vocab_size: 60, n_positions: 16, n_embd: 16, n_layer: 2, n_head: 2, initializer_range: 0.2 };
const LLAMA = { model_type: 'llama', vocab_size: 60, hidden_size: 16, intermediate_size: 24, num_hidden_layers: 2, num_attention_heads: 2, num_key_value_heads: 1, max_position_embeddings: 32, initializer_range: 0.2 };

function decoders(extra: Record<string, unknown>) {
  const g = new GPT2ForSequenceClassification(parseGPT2Config({ ...GPT2, ...extra }), 3);
  const l = new LlamaForSequenceClassification(parseLlamaConfig({ ...LLAMA, ...extra }), 3);
  return [
    { name: 'gpt2', model: g, base: g.transformer, score: g.score.weight },
    { name: 'llama', model: l, base: l.model, score: l.score.weight },
  ];
}

/** logits[b][c] = Σ_d score[c][d] · h[b, last[b], d], from the base model's own forward. */
function byHand(base: { forward(ids: number[][], o: { attentionMask?: number[][] }): { lastHiddenState: tf.Tensor; cache: unknown } }, score: tf.Tensor, ids: number[][], mask: number[][] | undefined, last: number[]): number[][] {
  const out = base.forward(ids, { attentionMask: mask });
  const h = out.lastHiddenState.arraySync() as number[][][];
  const W = score.arraySync() as number[][];
  disposeAll(out);
  return last.map((t, b) => W.map((row) => row.reduce((s, w, d) => s + w * h[b][t][d], 0)));
}

function close(got: tf.Tensor, want: number[][], what: string, tol = 1e-5): void {
  const g = got.arraySync() as number[][];
  assert.deepEqual(got.shape, [want.length, want[0].length], `${what}: shape`);
  want.forEach((row, b) => row.forEach((v, c) => assert.ok(Math.abs(g[b][c] - v) <= tol, `${what}: [${b}][${c}] ${g[b][c]} vs ${v}`)));
}

test('label fields follow HF: id2label decides, else num_labels (default 2) with LABEL_i', () => {
  assert.deepEqual(classificationFields({ model_type: 'gpt2' }), { num_labels: 2, id2label: { 0: 'LABEL_0', 1: 'LABEL_1' }, label2id: { LABEL_0: 0, LABEL_1: 1 }, problem_type: null });
  assert.deepEqual(classificationFields({ model_type: 'bert', num_labels: 1 }).id2label, { 0: 'LABEL_0' });
  const f = classificationFields({ model_type: 'bert', id2label: { 1: 'pos', 0: 'neg' }, problem_type: 'multi_label_classification' });
  assert.deepEqual(f, { num_labels: 2, id2label: { 0: 'neg', 1: 'pos' }, label2id: { neg: 0, pos: 1 }, problem_type: 'multi_label_classification' });
  assert.throws(() => classificationFields({ id2label: { 0: 'a' }, num_labels: 3 }), ConfigError);
  assert.throws(() => classificationFields({ id2label: { 0: 'a', 2: 'b' } }), /0\.\.n-1/);
  assert.throws(() => classificationFields({ problem_type: 'ranking' }), /problem_type/);
  assert.throws(() => classificationFields({ num_labels: 0 }), /positive integer/);
});

test('decoder heads: HF names, score has no bias, logits [B, num_labels]', () => {
  for (const { name, model } of decoders({ num_labels: 3, pad_token_id: 0 })) {
    const names = [...model.namedParameters()].map(([n]) => n);
    assert.deepEqual(names.filter((n) => !n.startsWith(name === 'gpt2' ? 'transformer.' : 'model.')), ['score.weight'], name);
    assert.deepEqual(model.score.weight.shape, [3, 16]);
    assert.equal(model.numLabels, 3);
    model.dispose();
  }
});

test('decoder heads score the last real token: mask with right and left padding', () => {
  for (const { name, model, base, score } of decoders({ num_labels: 3, pad_token_id: 0 })) {
    const cases: [number[][], number[][], number[]][] = [
      [[[5, 6, 7, 8], [9, 10, 0, 0]], [[1, 1, 1, 1], [1, 1, 0, 0]], [3, 1]],
      [[[5, 6, 7, 8], [0, 0, 9, 10]], [[1, 1, 1, 1], [0, 0, 1, 1]], [3, 3]],
      [[[5, 6, 0, 0], [0, 0, 9, 10]], [[1, 1, 0, 0], [0, 0, 1, 1]], [1, 3]],
    ];
    for (const [ids, mask, last] of cases) {
      const out = model.forward(ids, { attentionMask: mask });
      close(out.logits, byHand(base, score, ids, mask, last), `${name} ${JSON.stringify(mask)}`);
      disposeAll(out);
    }
    model.dispose();
  }
});

test('without a mask, the last token is the rightmost one that is not pad_token_id (HF)', () => {
  for (const { name, model, base, score } of decoders({ num_labels: 2, pad_token_id: 0 })) {
    for (const [ids, last] of [[[[5, 6, 7, 8], [9, 10, 0, 0]], [3, 1]], [[[5, 6, 7, 8], [0, 0, 9, 10]], [3, 3]], [[[0, 0, 0, 0]], [0]]] as [number[][], number[]][]) {
      const out = model.forward(ids);
      close(out.logits, byHand(base, score, ids, undefined, last), `${name} ${JSON.stringify(ids)}`);
      disposeAll(out);
    }
    // A pad id that is also a real final token (GPT-2's eos): the mask says it is real, HF's rule skips it.
    const ids = [[5, 6, 7, 0]];
    const withMask = model.forward(ids, { attentionMask: [[1, 1, 1, 1]] });
    close(withMask.logits, byHand(base, score, ids, [[1, 1, 1, 1]], [3]), `${name} mask keeps a real pad-id token`);
    const noMask = model.forward(ids);
    close(noMask.logits, byHand(base, score, ids, undefined, [2]), `${name} HF rule without mask`);
    disposeAll([withMask, noMask]);
    model.dispose();
  }
});

test('without pad_token_id: one row takes its last token, a batch without a mask fails as in HF', () => {
  for (const { name, model, base, score } of decoders({ num_labels: 2 })) {
    const out = model.forward([[5, 6, 7]]);
    close(out.logits, byHand(base, score, [[5, 6, 7]], undefined, [2]), name);
    disposeAll(out);
    const before = tf.memory().numTensors;
    assert.throws(() => model.forward([[5, 6], [7, 8]]), /no pad_token_id/);
    assert.equal(tf.memory().numTensors, before, `${name}: no tensors leak on the error`);
    assert.throws(() => model.forward([[5, 6]], { tokenTypeIds: [[0, 0]] }), /token type ids/);
    model.dispose();
  }
});

test('regression head: num_labels = 1 gives [B, 1] logits and the MSE loss', () => {
  for (const { name, model } of decoders({ num_labels: 1, pad_token_id: 0 })) {
    assert.equal(model.problemType, null);
    const out = model.forward([[5, 6, 7], [8, 0, 0]], { attentionMask: [[1, 1, 1], [1, 0, 0]] });
    assert.deepEqual(out.logits.shape, [2, 1], name);
    const [a, b] = out.logits.dataSync();
    const loss = sequenceClassificationLoss(out.logits, tf.tensor1d([0.5, -1]), model.problemType);
    assert.ok(Math.abs(loss.dataSync()[0] - ((a - 0.5) ** 2 + (b + 1) ** 2) / 2) < 1e-6, name);
    disposeAll([out, loss]);
    model.dispose();
  }
});

test('losses by problem_type match hand computation; bad labels fail clearly', () => {
  const logits = tf.tensor2d([[1, 2, 0.5], [0, -1, 3]]);
  const lse = (r: number[]) => Math.log(r.reduce((s, v) => s + Math.exp(v), 0));
  const ce = sequenceClassificationLoss(logits, tf.tensor1d([1, 2], 'int32'), null);
  const wantCe = ((lse([1, 2, 0.5]) - 2) + (lse([0, -1, 3]) - 3)) / 2;
  assert.ok(Math.abs(ce.dataSync()[0] - wantCe) < 1e-6);
  const ign = sequenceClassificationLoss(logits, tf.tensor1d([-100, 2], 'int32'), null);
  assert.ok(Math.abs(ign.dataSync()[0] - (lse([0, -1, 3]) - 3)) < 1e-6, '-100 is skipped');
  const y = [[1, 0, 1], [0, 0, 1]];
  const x = [[1, 2, 0.5], [0, -1, 3]];
  let bce = 0;
  x.forEach((r, i) => r.forEach((v, j) => { const p = 1 / (1 + Math.exp(-v)); bce -= y[i][j] * Math.log(p) + (1 - y[i][j]) * Math.log(1 - p); }));
  const ml = sequenceClassificationLoss(logits, tf.tensor2d(y), null);
  assert.ok(Math.abs(ml.dataSync()[0] - bce / 6) < 1e-6);
  assert.throws(() => sequenceClassificationLoss(logits, tf.tensor1d([0, 3], 'int32'), null), ShapeError);
  assert.throws(() => sequenceClassificationLoss(logits, tf.tensor1d([0, 1, 2], 'int32'), null), /expected \[2\]/);
  disposeAll([logits, ce, ign, ml]);
});

test('registry builds every family as sequence-classification; save → load is bit-exact', async () => {
  const labels = { id2label: { 0: 'neg', 1: 'pos' } };
  const configs = [
    { ...GPT2, ...labels, pad_token_id: 0 },
    { ...LLAMA, ...labels },
    { model_type: 'bert', vocab_size: 60, hidden_size: 16, num_hidden_layers: 2, num_attention_heads: 2, intermediate_size: 24, max_position_embeddings: 16, ...labels },
    { model_type: 'roberta', vocab_size: 60, hidden_size: 16, num_hidden_layers: 2, num_attention_heads: 2, intermediate_size: 24, max_position_embeddings: 18, ...labels },
  ];
  for (const cfg of configs) {
    const { model, className } = buildModel(cfg, 'sequence-classification', 5);
    const dir = mkdtempSync(join(tmpdir(), 'makemost-cls-'));
    dirs.push(dir);
    await (model as GPT2ForSequenceClassification).save(dir);
    const written = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    assert.deepEqual(written.architectures, [className]);
    assert.deepEqual(written.id2label, { 0: 'neg', 1: 'pos' });
    assert.deepEqual(written.label2id, { neg: 0, pos: 1 });
    assert.equal(written.num_labels, undefined, 'HF derives num_labels from id2label');
    const back = await fromPretrained(dir, 'sequence-classification');
    assert.equal(maxParamDiff(model, back), 0, `${className} round trip`);
    assert.deepEqual([...back.namedParameters()].map(([n]) => n), [...model.namedParameters()].map(([n]) => n));
    model.dispose();
    back.dispose();
  }
});

test('a causal-LM checkpoint loads under a classifier: only the new head is missing', async () => {
  const { model } = buildModel({ ...GPT2, pad_token_id: 0 }, 'causal-lm', 8);
  const dir = mkdtempSync(join(tmpdir(), 'makemost-cls-'));
  dirs.push(dir);
  await (model as GPT2ForSequenceClassification).save(dir);
  // Strict loading accepts exactly the missing head (kept at its seeded init, as HF does) and reports it.
  let missing: string[] = [];
  const cls = (await fromPretrained(dir, 'sequence-classification', { onLoadReport: (r) => (missing = r.missing) })) as GPT2ForSequenceClassification;
  assert.deepEqual(missing, ['score.weight']);
  assert.equal(maxParamDiff((model as unknown as { transformer: GPT2ForSequenceClassification['transformer'] }).transformer, cls.transformer), 0);
  assert.ok(tf.tidy(() => tf.max(tf.abs(cls.score.weight)).dataSync()[0]) > 0, 'the head is drawn, not zero');
  model.dispose();
  cls.dispose();
});

test('classifier forwards leak no tensors', () => {
  for (const { name, model } of decoders({ num_labels: 2, pad_token_id: 0 })) {
    const run = () => disposeAll(model.forward([[5, 6, 7], [8, 9, 0]], { attentionMask: [[1, 1, 1], [1, 1, 0]] }));
    run();
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) run();
    assert.equal(tf.memory().numTensors, before, name);
    model.dispose();
  }
});
