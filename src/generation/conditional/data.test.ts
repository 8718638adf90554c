/**
 * Classifier data and training against exact enumeration on a small table LM: the sampled labels match
 * the model's true attribute rates, and the trained head's predictions approach the exact conditional
 * probabilities p(a | x, z + v) while its loss decreases. No tensors leak.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../backend/index.js';
import type { DecoderForwardOptions, DecoderOutput, Ids } from '../../models/types.js';
import { TableLM } from '../../../test/support/table_model.js';
import { minLength, nonEmpty, type Attribute } from './attributes.js';
import { collectExamples, trainClassifier } from './data.js';

await initBackend();

const EOS = 0;
const PROMPT = [1];
/** p(next | generated part g): EOS certain after 3 tokens; otherwise it depends on the last token. */
function dist(g: number[]): number[] {
  if (g.length >= 3) return [1, 0, 0, 0];
  if (g.length === 0) return [0.4, 0.3, 0.2, 0.1];
  return ({ 1: [0.5, 0.2, 0.2, 0.1], 2: [0.2, 0.3, 0.3, 0.2], 3: [0.1, 0.3, 0.3, 0.3] } as Record<number, number[]>)[g[g.length - 1]];
}

/** TableLM that also returns a hidden state: a one-hot code of the whole prefix (D slots). */
class HiddenTableLM extends TableLM {
  private readonly codes = new Map<string, number>();
  constructor(readonly D: number) {
    super(4, (p) => dist(p.slice(PROMPT.length)).map(Math.log), EOS);
  }
  override dims() {
    return { ...super.dims(), hidden: this.D };
  }
  override forward(inputIds: Ids, opts: DecoderForwardOptions = {}): DecoderOutput {
    // tidy: TableLM leaves its reshape inputs behind, which would hide real leaks from the checks here.
    const out = tf.tidy(() => super.forward(inputIds, opts) as unknown as tf.TensorContainer) as unknown as DecoderOutput;
    if (!opts.returnHidden) return out;
    const key = out.cache[0].key;
    const all = (key.dataSync() as Float32Array).reduce<number[][]>((rows, v, i) => {
      const S = key.shape[2] as number;
      if (i % S === 0) rows.push([]);
      rows[rows.length - 1].push(v);
      return rows;
    }, []);
    const T = out.logits.shape[1] as number;
    const rows = all.map((slots) => Array.from({ length: T }, (_, t) => {
      const prefix = slots.slice(0, slots.length - T + t + 1).filter((v) => v >= 0).join(',');
      if (!this.codes.has(prefix)) this.codes.set(prefix, this.codes.size);
      const h = new Array(this.D).fill(0);
      h[this.codes.get(prefix)! % this.D] = 1;
      return h;
    }));
    const hidden = tf.tensor3d(rows);
    return { ...out, hidden: [hidden.clone(), hidden] };
  }
}

/** Exact P(attribute | generated prefix g), enumerating every completion. */
function exactRate(g: number[], a: Attribute): number {
  const p = dist(g);
  let total = 0;
  p.forEach((pv, v) => {
    if (pv === 0) return;
    total += pv * (v === EOS ? (a.label(g) ? 1 : 0) : exactRate([...g, v], a));
  });
  return total;
}

const sampleOpts = { samplesPerPrompt: 3000, maxNewTokens: 6, eosTokenIds: [EOS], seed: 7, batchSize: 500 };

test('sampled labels match the exact attribute rates; every prefix is one example', async () => {
  const model = new HiddenTableLM(64);
  const before = tf.memory().numTensors;
  const ex = await collectExamples(model, [PROMPT], minLength(2), sampleOpts);
  assert.equal(tf.memory().numTensors, before);
  assert.equal(ex.outputs.length, 3000);
  assert.equal(ex.count, ex.outputs.reduce((n, o) => n + o.length + 1, 0)); // every output ends in EOS here
  const rate = ex.outputLabels.filter(Boolean).length / 3000;
  const truth = exactRate([], minLength(2)); // 0.3·0.5 + 0.2·0.8 + 0.1·0.9 = 0.4
  assert.ok(Math.abs(truth - 0.4) < 1e-12);
  assert.ok(Math.abs(rate - truth) < 4 * Math.sqrt(truth * (1 - truth) / 3000), `rate ${rate} vs ${truth}`);
  const empty = ex.outputs.filter((o) => o.length === 0).length / 3000;
  assert.ok(Math.abs(empty - 0.4) < 0.04, `empty share ${empty}`);
  // Same seed → same samples, whatever the batch size.
  const again = await collectExamples(model, [PROMPT], minLength(2), { ...sampleOpts, batchSize: 77 });
  assert.deepEqual(again.outputs, ex.outputs);
});

/** q(a | x, [] + v) for every v, from the trained head at the empty prefix. */
async function headAtEmpty(model: HiddenTableLM, clf: { scoreNext: (c: { hidden?: tf.Tensor; outputs: number[][] }) => tf.Tensor }): Promise<number[]> {
  const out = model.forward([PROMPT], { returnHidden: true });
  const h = out.hidden![1].squeeze([1]);
  const lq = clf.scoreNext({ hidden: h, outputs: [[]] });
  const q = Array.from(await lq.data()).map(Math.exp);
  tf.dispose([out.logits, out.cache[0].key, out.cache[0].value, ...out.hidden!, h, lq]);
  return q;
}

for (const [name, attr] of [['non-empty', nonEmpty()], ['length ≥ 2', minLength(2)]] as [string, Attribute][]) {
  test(`trained head (${name}) approaches the exact p(a | x, z + v) at the empty prefix; loss decreases`, async () => {
    const model = new HiddenTableLM(64);
    const ex = await collectExamples(model, [PROMPT], attr, sampleOpts);
    const before = tf.memory().numTensors;
    const steps: number[] = [];
    const { classifier, losses } = await trainClassifier(ex, attr, { vocab: 4, eosTokenIds: [EOS] }, {
      seed: 3, epochs: 40, innerSize: 16, learningRate: 0.01, batchSize: 256, onProgress: (p) => steps.push(p.step),
    });
    assert.equal(tf.memory().numTensors - before, [...classifier.namedParameters()].length); // only the head's own variables
    assert.ok(losses[losses.length - 1] < losses[0] - 0.05, `losses ${losses.map((l) => l.toFixed(3)).join(' ')}`);
    assert.deepEqual(steps, steps.map((_, i) => i + 1));
    const q = await headAtEmpty(model, classifier);
    const p0 = dist([]);
    const exact = p0.map((_, v) => (v === EOS ? (attr.label([]) ? 1 : 0) : exactRate([v], attr)));
    // Marginal at the empty prefix: Σ_v p(v | x) q(a | x, v) against the exact rate under the model.
    const predicted = p0.reduce((s, pv, v) => s + pv * q[v], 0);
    assert.ok(Math.abs(predicted - exactRate([], attr)) < 0.04, `${name}: predicted ${predicted} vs exact ${exactRate([], attr)}`);
    q.forEach((qv, v) => assert.ok(Math.abs(qv - exact[v]) < 0.07, `${name}: q(a | v=${v}) = ${qv}, exact ${exact[v]}`));
    classifier.dispose();
    assert.equal(tf.memory().numTensors, before);
  });
}

test('bad sampling options are rejected by name', async () => {
  const model = new HiddenTableLM(8);
  await assert.rejects(collectExamples(model, [PROMPT], nonEmpty(), { ...sampleOpts, eosTokenIds: [] }), /eosTokenIds/);
  await assert.rejects(collectExamples(model, [PROMPT], nonEmpty(), { ...sampleOpts, samplesPerPrompt: 0 }), /samplesPerPrompt/);
  await assert.rejects(collectExamples(model, [], nonEmpty(), sampleOpts), /no prompts/);
});
