/**
 * Encoder classification heads against the PyTorch reference of HF's `BertForSequenceClassification` /
 * `RobertaForSequenceClassification` (test/support/reference.py): logits within 1e-4 for padded batches,
 * classification and regression; plus names, dropout semantics and leak checks.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../backend/index.js';
import { disposeAll } from '../../backend/memory.js';
import { Rng } from '../../backend/rng.js';
import { runReference } from '../../../test/support/torch_ref.js';
import { fromPretrained } from '../pretrained.js';
import { buildModel } from '../registry.js';
import type { SequenceClassifier } from '../classification.js';
import { BertForSequenceClassification, RobertaForSequenceClassification } from './classification.js';
import { parseBertConfig } from './config.js';

await initBackend();

const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

const V = 70;
const TINY = { vocab_size: V, hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 4, intermediate_size: 48, initializer_range: 0.2 };
const BERT = { model_type: 'bert', ...TINY, max_position_embeddings: 24 };
const ROBERTA = { model_type: 'roberta', ...TINY, max_position_embeddings: 26, type_vocab_size: 1, pad_token_id: 1 };

const CASES = [
  { name: 'bert, 3 labels', config: { ...BERT, num_labels: 3 } },
  { name: 'bert, regression', config: { ...BERT, num_labels: 1 } },
  { name: 'roberta, 4 labels', config: { ...ROBERTA, id2label: { 0: 'a', 1: 'b', 2: 'c', 3: 'd' } } },
  { name: 'roberta, regression', config: { ...ROBERTA, num_labels: 1 } },
];

for (const c of CASES) {
  test(`classification parity with PyTorch: ${c.name}`, async () => {
    const { model } = buildModel(c.config, 'sequence-classification', 11);
    const dir = mkdtempSync(join(tmpdir(), 'makemost-clsref-'));
    dirs.push(dir);
    await (model as SequenceClassifier & { save(d: string): Promise<void> }).save(dir);
    const rng = new Rng(c.name.length);
    const roberta = c.config.model_type === 'roberta';
    const low = roberta ? 3 : 0;
    const ids = [0, 1, 2].map(() => Array.from({ length: 6 }, () => low + rng.int(V - low)));
    const mask = [[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0], [1, 1, 1, 0, 0, 0]];
    if (roberta) ids.forEach((r, b) => r.forEach((_, t) => { if (!mask[b][t]) r[t] = 1; }));
    const tokenTypes = roberta ? undefined : ids.map((r) => r.map((_, t) => (t >= 3 ? 1 : 0)));
    const ref = await runReference(dir, { input_ids: ids, attention_mask: mask, ...(tokenTypes ? { token_type_ids: tokenTypes } : {}) });
    const loaded = (await fromPretrained(dir, 'sequence-classification')) as SequenceClassifier;
    const out = loaded.forward(ids, { attentionMask: mask, tokenTypeIds: tokenTypes });
    const labels = (c.config as { num_labels?: number }).num_labels ?? 4;
    assert.deepEqual(out.logits.shape, [3, labels]);
    assert.deepEqual(ref.logits!.shape, [3, labels]);
    const got = out.logits.dataSync();
    const worst = ref.logits!.data.reduce((w, v, i) => Math.max(w, Math.abs(v - got[i])), 0);
    assert.ok(worst <= 1e-4, `max |Δlogits| = ${worst}`);
    disposeAll(out);
    model.dispose();
    loaded.dispose();
  });
}

test('encoder heads keep HF names: classifier on the pooler (BERT), dense/out_proj without pooler (RoBERTa)', () => {
  const bert = new BertForSequenceClassification(parseBertConfig({ ...BERT, num_labels: 3 }));
  const bn = [...bert.namedParameters()].map(([n]) => n);
  assert.deepEqual(bn.filter((n) => !n.startsWith('bert.')), ['classifier.weight', 'classifier.bias']);
  assert.ok(bn.includes('bert.pooler.dense.weight'));
  assert.deepEqual(bert.classifier.weight.shape, [3, 32]);
  const rob = new RobertaForSequenceClassification(parseBertConfig({ ...ROBERTA, num_labels: 3 }));
  const rn = [...rob.namedParameters()].map(([n]) => n);
  assert.deepEqual(rn.filter((n) => !n.startsWith('roberta.')), ['classifier.dense.weight', 'classifier.dense.bias', 'classifier.out_proj.weight', 'classifier.out_proj.bias']);
  assert.ok(!rn.some((n) => n.includes('pooler')));
  bert.dispose();
  rob.dispose();
});

test('classifier dropout: off in eval, seeded in training; classifier_dropout acts on the head only', () => {
  const ids = [[2, 5, 9, 4]];
  for (const cfg of [BERT, ROBERTA]) {
    const m = buildModel({ ...cfg, num_labels: 2, hidden_dropout_prob: 0.3, attention_probs_dropout_prob: 0 }, 'sequence-classification', 4).model as SequenceClassifier;
    const ev = [m.forward(ids), m.forward(ids)];
    assert.deepEqual(Array.from(ev[0].logits.dataSync()), Array.from(ev[1].logits.dataSync()));
    const tr = [m.forward(ids, { training: true, rng: new Rng(1) }), m.forward(ids, { training: true, rng: new Rng(1) }), m.forward(ids, { training: true, rng: new Rng(2) })];
    assert.deepEqual(Array.from(tr[0].logits.dataSync()), Array.from(tr[1].logits.dataSync()), 'same seed, same masks');
    assert.notDeepEqual(Array.from(tr[0].logits.dataSync()), Array.from(tr[2].logits.dataSync()));
    assert.notDeepEqual(Array.from(tr[0].logits.dataSync()), Array.from(ev[0].logits.dataSync()));
    disposeAll([ev, tr]);
    m.dispose();
  }
  // With hidden dropout 0 everywhere but classifier_dropout 0.5, training differs from eval only through the head.
  const m = buildModel({ ...BERT, num_labels: 2, hidden_dropout_prob: 0, attention_probs_dropout_prob: 0, classifier_dropout: 0.5 }, 'sequence-classification', 4).model as BertForSequenceClassification;
  const a = m.forward(ids, { training: true, rng: new Rng(3) });
  const e = m.forward(ids);
  assert.notDeepEqual(Array.from(a.logits.dataSync()), Array.from(e.logits.dataSync()));
  assert.deepEqual(Array.from(a.lastHiddenState.dataSync()), Array.from(e.lastHiddenState.dataSync()));
  disposeAll([a, e]);
  m.dispose();
});

test('encoder classifier forwards leak no tensors', () => {
  const m = buildModel({ ...ROBERTA, num_labels: 2 }, 'sequence-classification', 1).model as SequenceClassifier;
  const run = () => disposeAll(m.forward([[0, 5, 6, 2], [0, 7, 2, 1]], { attentionMask: [[1, 1, 1, 1], [1, 1, 1, 0]] }));
  run();
  const before = tf.memory().numTensors;
  for (let i = 0; i < 3; i++) run();
  assert.equal(tf.memory().numTensors, before);
  m.dispose();
});
