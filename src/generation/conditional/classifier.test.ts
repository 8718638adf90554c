/**
 * The next-token attribute head: its [N, V] scores against a plain-JS evaluation of the formula in the
 * file header, bit-exact save → load round trips (built-in and custom attributes), config validation,
 * the labellers on hand-written cases, and no leaked tensors.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../backend/index.js';
import { Rng } from '../../backend/rng.js';
import { ConfigError } from '../../errors.js';
import { attributeFromSpec, customAttribute, exactLength, hasNoRepeatedNgram, minLength, noRepeatNgram, nonEmpty } from './attributes.js';
import { AttributeClassifier, parseClassifierConfig, type ClassifierConfig } from './classifier.js';
import { loadClassifier, saveClassifier } from './files.js';

await initBackend();

const config = (over: Partial<ClassifierConfig> = {}): ClassifierConfig => ({
  model_type: 'attribute_classifier', design: 'next-token', hidden_size: 6, inner_size: 4, vocab_size: 5,
  length_buckets: 3, eos_token_ids: [0], attribute: { kind: 'min-length', length: 2 }, ...over,
});

async function params(m: AttributeClassifier): Promise<Map<string, { shape: number[]; data: Float32Array }>> {
  const out = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const [k, v] of m.namedParameters()) out.set(k, { shape: v.shape.slice(), data: (await v.data()) as Float32Array });
  return out;
}

test('labellers on hand-written outputs', () => {
  assert.equal(nonEmpty().label([]), false);
  assert.equal(nonEmpty().label([3]), true);
  assert.deepEqual([[], [1], [1, 2], [1, 2, 3]].map((t) => minLength(2).label(t)), [false, false, true, true]);
  assert.deepEqual([[], [1], [1, 2], [1, 2, 3]].map((t) => exactLength(2).label(t)), [false, false, true, false]);
  assert.equal(hasNoRepeatedNgram([1, 2, 3, 1, 2], 2), false); // "1 2" twice
  assert.equal(hasNoRepeatedNgram([1, 2, 3, 1, 3], 2), true);
  assert.equal(hasNoRepeatedNgram([1, 2, 1], 1), false);
  assert.equal(noRepeatNgram(3).label([4, 4, 4, 4]), false); // overlapping "4 4 4"
  assert.equal(noRepeatNgram(3).label([4, 4, 4]), true);
  assert.throws(() => noRepeatNgram(0), ConfigError);
  assert.throws(() => attributeFromSpec({ kind: 'shiny' } as never), /unknown attribute kind "shiny"/);
  assert.equal(attributeFromSpec({ kind: 'custom', name: 'x' }), undefined);
});

test('scores equal a plain-JS evaluation of out·tanh(dense·h + length[|z|]) + bias, through logSigmoid', async () => {
  const clf = new AttributeClassifier(config(), 11);
  const rng = new Rng(5);
  const N = 3;
  const h = Array.from({ length: N }, () => Array.from(rng.normalArray(6)));
  const outputs = [[], [4, 4], [1, 2, 3, 4, 1]]; // lengths 0, 2, 5 → buckets 0, 2, 2 (clamped)
  const p = await params(clf);
  const W = p.get('dense.weight')!.data, b = p.get('dense.bias')!.data, E = p.get('length.weight')!.data;
  const O = p.get('out.weight')!.data, c = p.get('out.bias')!.data;
  assert.deepEqual([...p.keys()], ['dense.weight', 'dense.bias', 'length.weight', 'out.weight', 'out.bias']);
  const before = tf.memory().numTensors;
  const hidden = tf.tensor2d(h);
  const lq = clf.scoreNext({ hidden, outputs });
  const got = (await lq.array()) as number[][];
  tf.dispose([hidden, lq]);
  assert.equal(tf.memory().numTensors, before);
  for (let n = 0; n < N; n++) {
    const bucket = Math.min(outputs[n].length, 2);
    const u = Array.from({ length: 4 }, (_, k) => Math.tanh(b[k] + E[bucket * 4 + k] + h[n].reduce((s, x, d) => s + W[k * 6 + d] * x, 0)));
    for (let v = 0; v < 5; v++) {
      const logit = c[v] + u.reduce((s, x, k) => s + O[v * 4 + k] * x, 0);
      const want = -Math.log1p(Math.exp(-logit));
      assert.ok(Math.abs(got[n][v] - want) < 1e-5, `row ${n} token ${v}: ${got[n][v]} vs ${want}`);
    }
  }
  assert.throws(() => clf.scoreNext({ outputs }), /hidden states/);
  clf.dispose();
});

test('save → load is bit-exact and keeps the attribute (custom functions are passed again)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'clf-'));
  try {
    for (const cfg of [config(), config({ length_buckets: 0, attribute: { kind: 'custom', name: 'ends-with-3' } })]) {
      const label = (t: number[]) => t[t.length - 1] === 3;
      const attr = cfg.attribute.kind === 'custom' ? customAttribute('ends-with-3', label) : undefined;
      const a = new AttributeClassifier(cfg, 21, attr);
      a.config.training = { epochs: 3 };
      await saveClassifier(a, dir);
      const json = JSON.parse(readFileSync(join(dir, 'attribute_classifier.json'), 'utf8'));
      assert.equal(json.model_type, 'attribute_classifier');
      assert.deepEqual(json.attribute, cfg.attribute);
      const before = tf.memory().numTensors;
      const b = loadClassifier(dir, cfg.attribute.kind === 'custom' ? { label } : {});
      assert.equal(tf.memory().numTensors - before, [...a.namedParameters()].length);
      const pa = await params(a), pb = await params(b);
      assert.deepEqual([...pb.keys()], [...pa.keys()]);
      for (const [k, v] of pa) {
        assert.deepEqual(pb.get(k)!.shape, v.shape);
        assert.deepEqual(new Uint32Array(pb.get(k)!.data.buffer.slice(0)), new Uint32Array(v.data.buffer.slice(0)), k);
      }
      assert.deepEqual(b.config, a.config);
      assert.deepEqual(b.attribute!.spec, cfg.attribute);
      assert.equal(b.attribute!.label([1, 3]), true);
      assert.equal(b.attribute!.label([3]), cfg.attribute.kind === 'custom');
      if (cfg.attribute.kind === 'custom') {
        const c = loadClassifier(dir);
        assert.equal(c.attribute, undefined, 'a custom attribute loaded without its function');
        c.dispose();
      }
      a.dispose();
      b.dispose();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('bad or missing classifier files fail with a hint', () => {
  assert.throws(() => parseClassifierConfig({ ...config(), model_type: 'gpt2' }), /model_type must be "attribute_classifier"/);
  assert.throws(() => parseClassifierConfig({ ...config(), eos_token_ids: [9] }), /outside vocab_size 5/);
  assert.throws(() => parseClassifierConfig({ ...config(), inner_size: 0 }), /inner_size/);
  assert.throws(() => loadClassifier(join(tmpdir(), 'no-such-classifier-folder')), /HINT: train one first/);
});
