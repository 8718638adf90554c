/**
 * The task losses against HF's definitions computed by hand from the model's logits in float64: causal
 * LM (shifted by one, padding and -100 ignored, one mean over all scored tokens of the batch), masked LM
 * (masked positions only) and classification (cross-entropy); no tensors leak.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../backend/index.js';
import { Rng } from '../backend/rng.js';
import { disposeAll } from '../backend/memory.js';
import { buildModel } from '../models/registry.js';
import type { SequenceClassifier } from '../models/classification.js';
import type { Batch } from './data_batches.js';
import { causalLmLoss, classificationLoss, maskedLmLoss, shiftLabels } from './losses.js';
import { BERT_CONFIG, logSoftmax, tinyBertMlm, tinyGpt2 } from './tiny_fixture.test.js';

const ctx = { training: true as const, rng: new Rng(0) };
const value = (t: tf.Scalar) => {
  const v = t.dataSync()[0];
  t.dispose();
  return v;
};

test('shiftLabels moves targets one step left and ends with -100', () => {
  assert.deepEqual(shiftLabels([[1, 2, 3], [4, -100, -100]]), [[2, 3, -100], [-100, -100, -100]]);
});

test('causal-LM loss = mean over every scored next token of the batch (pads and -100 skipped), by hand', async () => {
  await initBackend();
  const model = tinyGpt2(4);
  const rows = [[10, 20, 30, 40, 50], [60, 70, 80]];
  const batch: Batch = {
    inputIds: [rows[0], [...rows[1], 0, 0]],
    attentionMask: [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]],
    tokenLabels: [[10, 20, -100, 40, 50], [60, 70, 80, -100, -100]],
  };
  // Hand reference: each row alone (no padding), log p(next) where the next token's label is kept.
  let nll = 0;
  let n = 0;
  rows.forEach((row, b) => {
    const logits = tf.tidy(() => {
      const out = model.forward([row]);
      return out.logits.squeeze([0]);
    });
    const L = logits.arraySync() as number[][];
    logits.dispose();
    for (let t = 0; t + 1 < row.length; t++) {
      if (batch.tokenLabels![b][t + 1] === -100) continue;
      nll -= logSoftmax(L[t])[row[t + 1]];
      n += 1;
    }
  });
  assert.equal(n, 5, 'tokens 20, 40, 50 of row 0 and 70, 80 of row 1');
  const before = tf.memory().numTensors;
  const got = value(causalLmLoss(model, batch, ctx));
  assert.ok(Math.abs(got - nll / n) < 1e-5, `loss ${got} vs ${nll / n}`);
  assert.equal(tf.memory().numTensors, before);
  model.dispose();
});

test('masked-LM loss = mean cross-entropy at the labelled positions only, by hand', async () => {
  await initBackend();
  const model = tinyBertMlm(5);
  const batch: Batch = { inputIds: [[2, 4, 7, 3], [2, 9, 4, 3]], attentionMask: [[1, 1, 1, 1], [1, 1, 1, 1]], tokenLabels: [[-100, 6, -100, -100], [-100, -100, 12, -100]] };
  const logits = tf.tidy(() => model.forward(batch.inputIds).logits!);
  const L = logits.arraySync() as number[][][];
  logits.dispose();
  const want = -(logSoftmax(L[0][1])[6] + logSoftmax(L[1][2])[12]) / 2;
  const got = value(maskedLmLoss(model, batch, ctx));
  assert.ok(Math.abs(got - want) < 1e-5, `${got} vs ${want}`);
  model.dispose();
});

test('classification loss = mean cross-entropy of the head logits, by hand; gradients reach the head', async () => {
  await initBackend();
  const model = buildModel({ ...BERT_CONFIG, num_labels: 3 }, 'sequence-classification', 2).model as unknown as SequenceClassifier;
  const batch: Batch = { inputIds: [[2, 5, 6, 3], [2, 7, 3, 0]], attentionMask: [[1, 1, 1, 1], [1, 1, 1, 0]], labels: [2, 0] };
  const out = model.forward(batch.inputIds, { attentionMask: batch.attentionMask });
  const L = out.logits.arraySync() as number[][];
  disposeAll(out);
  const want = -(logSoftmax(L[0])[2] + logSoftmax(L[1])[0]) / 2;
  assert.ok(Math.abs(value(classificationLoss(model, batch, ctx)) - want) < 1e-5);
  const head = [...model.namedParameters()].filter(([n]) => n.startsWith('classifier.')).map(([, v]) => v);
  const { value: l, grads } = tf.variableGrads(() => classificationLoss(model, batch, ctx), head);
  assert.ok(Object.values(grads).every((g) => tf.tidy(() => tf.max(tf.abs(g)).dataSync()[0]) > 0));
  disposeAll([l, Object.values(grads)]);
  model.dispose();
});
