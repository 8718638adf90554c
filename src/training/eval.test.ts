/**
 * Evaluation against direct computations: the sliding-window perplexity equals token-by-token scoring
 * with each token's window context (disjoint windows, overlapping windows, stride 1 on a text that fits);
 * pseudo-perplexity equals a brute-force loop of one forward pass per masked token; F1 and accuracy equal
 * hand-computed confusion matrices (scikit-learn's definitions).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../backend/index.js';
import type { CausalLM, EncoderModel } from '../models/types.js';
import { disposeAll } from '../backend/memory.js';
import type { SequenceClassifier } from '../models/classification.js';
import { buildModel } from '../models/registry.js';
import { classificationMetrics, evaluateCausalLm, evaluateClassifier, f1Score, pseudoPerplexity, slidingWindowPerplexity } from './eval.js';
import { BERT_CONFIG, logSoftmax, tinyBertMlm, tinyGpt2 } from './tiny_fixture.test.js';

/** log p(ids[t] | ids[from..t)) with the model run on exactly that context. */
function direct(model: CausalLM, ids: number[], t: number, from: number): number {
  const logits = tf.tidy(() => model.forward([ids.slice(from, t)]).logits.squeeze([0]));
  const rows = logits.arraySync() as number[][];
  logits.dispose();
  return logSoftmax(rows[rows.length - 1])[ids[t]];
}

function ppl(model: CausalLM, ids: number[], contextStart: Map<number, number>): { nll: number; n: number } {
  let nll = 0;
  for (const [t, from] of contextStart) nll -= direct(model, ids, t, from);
  return { nll: nll / contextStart.size, n: contextStart.size };
}

const IDS = [256, 72, 101, 108, 108, 111, 32, 119, 111, 114, 108, 100]; // 12 tokens

test('sliding window, stride = window: disjoint windows, each window\'s first token unscored', async () => {
  await initBackend();
  const model = tinyGpt2(7);
  // Windows [0,4) [4,8) [8,12): token t is scored from its window's start, except window starts.
  const ctx = new Map<number, number>();
  for (let t = 1; t < 12; t++) if (t % 4 !== 0) ctx.set(t, Math.floor(t / 4) * 4);
  const want = ppl(model, IDS, ctx);
  const got = await slidingWindowPerplexity(model, IDS, { maxLength: 4, stride: 4 });
  assert.equal(got.tokens, 9);
  assert.equal(got.windows, 3);
  assert.ok(Math.abs(got.nll - want.nll) < 1e-5, `${got.nll} vs ${want.nll}`);
  assert.ok(Math.abs(got.perplexity - Math.exp(want.nll)) < 1e-4);
  model.dispose();
});

test('sliding window with overlap (window 4, stride 2): each token once, with the context of its window', async () => {
  await initBackend();
  const model = tinyGpt2(8);
  const ids = IDS.slice(0, 11);
  // Windows: [0,4) scores 1-3; [2,6) scores 4-5; [4,8) 6-7; [6,10) 8-9; [8,11) 10 (then the text ends).
  const ctx = new Map<number, number>([[1, 0], [2, 0], [3, 0], [4, 2], [5, 2], [6, 4], [7, 4], [8, 6], [9, 6], [10, 8]]);
  const want = ppl(model, ids, ctx);
  const got = await slidingWindowPerplexity(model, ids, { maxLength: 4, stride: 2 });
  assert.equal(got.tokens, 10);
  assert.equal(got.windows, 5);
  assert.ok(Math.abs(got.nll - want.nll) < 1e-5, `${got.nll} vs ${want.nll}`);
  model.dispose();
});

test('sliding window, stride 1, text within the window = full-context token-by-token scoring', async () => {
  await initBackend();
  const model = tinyGpt2(9);
  const ids = IDS.slice(0, 7);
  const ctx = new Map<number, number>(Array.from({ length: 6 }, (_, i) => [i + 1, 0]));
  const want = ppl(model, ids, ctx);
  const got = await slidingWindowPerplexity(model, ids, { maxLength: 8, stride: 1 });
  assert.equal(got.tokens, 6);
  assert.ok(Math.abs(got.nll - want.nll) < 1e-5);
  const before = tf.memory().numTensors;
  await slidingWindowPerplexity(model, ids, { maxLength: 4, stride: 1 });
  assert.equal(tf.memory().numTensors, before, 'no leaked tensors');
  await assert.rejects(slidingWindowPerplexity(model, ids, { maxLength: 4, stride: 5 }), /stride must be an integer in \[1, 4\]/);
  await assert.rejects(slidingWindowPerplexity(model, ids, { maxLength: 100, stride: 5 }), /exceeds the model's context of 64/);
  model.dispose();
});

test('causal-LM evaluation over batches = token-weighted mean NLL, by hand', async () => {
  await initBackend();
  const model = tinyGpt2(10);
  const a = [72, 101, 108, 108];
  const b = [111, 32, 119];
  const want = -([1, 2, 3].reduce((s, t) => s + direct(model, a, t, 0), 0) + [1, 2].reduce((s, t) => s + direct(model, b, t, 0), 0)) / 5;
  const got = await evaluateCausalLm(model, [
    { inputIds: [a], attentionMask: [[1, 1, 1, 1]], tokenLabels: [a] },
    { inputIds: [b], attentionMask: [[1, 1, 1]], tokenLabels: [b] },
  ]);
  assert.equal(got.tokens, 5);
  assert.ok(Math.abs(got.loss - want) < 1e-5);
  assert.ok(Math.abs(got.perplexity - Math.exp(want)) < 1e-4);
  const before = tf.memory().numTensors;
  await evaluateCausalLm(model, [{ inputIds: [a, [...b, 0]], attentionMask: [[1, 1, 1, 1], [1, 1, 1, 0]], tokenLabels: [a, [...b, -100]] }]);
  assert.equal(tf.memory().numTensors, before, 'no leaked tensors');
  model.dispose();
});

test('pseudo-perplexity = brute force: one forward pass per masked token', async () => {
  await initBackend();
  const model: EncoderModel = tinyBertMlm(11);
  const rows = [[2, 5, 9, 14, 3], [2, 20, 7, 3]];
  const special = [0, 1, 2, 3, 4];
  let pll = 0;
  let n = 0;
  for (const row of rows) {
    for (let t = 0; t < row.length; t++) {
      if (special.includes(row[t])) continue;
      const masked = row.map((id, j) => (j === t ? 4 : id));
      const logits = tf.tidy(() => model.forward([masked]).logits!.squeeze([0]));
      pll += logSoftmax((logits.arraySync() as number[][])[t])[row[t]];
      logits.dispose();
      n += 1;
    }
  }
  for (const batchSize of [1, 2, 16]) {
    const got = await pseudoPerplexity(model, rows, { maskTokenId: 4, specialIds: special, batchSize });
    assert.equal(got.tokens, 5);
    assert.ok(Math.abs(got.pseudoLogLikelihood - pll) < 1e-4, `batch ${batchSize}: ${got.pseudoLogLikelihood} vs ${pll}`);
    assert.ok(Math.abs(got.pseudoPerplexity - Math.exp(-pll / n)) < 1e-4);
  }
  const before = tf.memory().numTensors;
  await pseudoPerplexity(model, rows, { maskTokenId: 4, specialIds: special, batchSize: 3 });
  assert.equal(tf.memory().numTensors, before, 'no leaked tensors');
  model.dispose();
});

test('F1 and accuracy from hand-computed confusion matrices', () => {
  // Binary: TP 3 (idx 0,1,2), FP 1 (idx 3), FN 2 (idx 4,5), TN 2 → F1 = 6 / (6 + 1 + 2) = 2/3.
  const p = [1, 1, 1, 1, 0, 0, 0, 0];
  const y = [1, 1, 1, 0, 1, 1, 0, 0];
  assert.ok(Math.abs(f1Score(p, y, 'binary') - 2 / 3) < 1e-12);
  assert.deepEqual(classificationMetrics(p, y, 2), { accuracy: 5 / 8, f1: f1Score(p, y, 'binary') });
  // Three classes. Confusion (rows = true, cols = predicted):
  //   true 0: [2, 1, 0]   true 1: [0, 1, 1]   true 2: [1, 0, 2]
  // class 0: TP 2, FP 1, FN 1 → 4/6; class 1: TP 1, FP 1, FN 1 → 2/4; class 2: TP 2, FP 1, FN 1 → 4/6.
  const y3 = [0, 0, 0, 1, 1, 2, 2, 2];
  const p3 = [0, 0, 1, 1, 2, 0, 2, 2];
  const macro = (4 / 6 + 2 / 4 + 4 / 6) / 3;
  assert.ok(Math.abs(f1Score(p3, y3, 'macro') - macro) < 1e-12);
  const m3 = classificationMetrics(p3, y3, 3);
  assert.equal(m3.accuracy, 5 / 8);
  assert.ok(Math.abs(m3.f1 - macro) < 1e-12);
  // No positive predicted or present: binary F1 is 0 (scikit-learn's zero_division default).
  assert.equal(f1Score([0, 0], [0, 0], 'binary'), 0);
  // Macro over classes present in labels or predictions only (class 2 of 4 never appears).
  assert.equal(f1Score([0, 1, 3], [0, 1, 3], 'macro'), 1);
  // -100 labels are skipped.
  assert.deepEqual(classificationMetrics([1, 0, 1], [1, -100, 0], 2), { accuracy: 0.5, f1: 2 / 3 });
});

test('classifier evaluation: loss averaged per example over uneven batches, accuracy and F1 of the argmax, by hand', async () => {
  await initBackend();
  const model = buildModel({ ...BERT_CONFIG, num_labels: 2 }, 'sequence-classification', 12).model as unknown as SequenceClassifier;
  const rows = [[2, 5, 6, 3], [2, 7, 3, 0], [2, 9, 9, 3]];
  const masks = [[1, 1, 1, 1], [1, 1, 1, 0], [1, 1, 1, 1]];
  const labels = [1, 0, 0];
  const out = model.forward(rows, { attentionMask: masks });
  const L = out.logits.arraySync() as number[][];
  disposeAll(out);
  const loss = -labels.reduce((s, y, i) => s + logSoftmax(L[i])[y], 0) / 3;
  const preds = L.map((r) => (r[1] > r[0] ? 1 : 0));
  const batches = [
    { inputIds: rows.slice(0, 2), attentionMask: masks.slice(0, 2), labels: labels.slice(0, 2) },
    { inputIds: rows.slice(2), attentionMask: masks.slice(2), labels: labels.slice(2) },
  ];
  const before = tf.memory().numTensors;
  const got = await evaluateClassifier(model, batches);
  assert.equal(tf.memory().numTensors, before, 'no leaked tensors');
  assert.equal(got.examples, 3);
  assert.ok(Math.abs(got.loss - loss) < 1e-5, `${got.loss} vs ${loss}`);
  assert.equal(got.accuracy, preds.filter((p, i) => p === labels[i]).length / 3);
  assert.equal(got.f1, f1Score(preds, labels, 'binary'));
  model.dispose();
});
