/**
 * ACBS against independent references: λ = 0 (and a classifier that is certain everywhere) equals plain
 * beam search; on table LMs whose beam-search output is empty, ACBS with an exact oracle for p(a | x, z)
 * (computed by enumerating the table) never returns an empty output, and with a beam wide enough to be
 * exhaustive it returns the brute-force conditional mode. A tiny GPT-2 runs the whole path: sample, train
 * a head, search, with no leaked tensors.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generate } from '../generate.js';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../backend/index.js';
import { Rng } from '../../backend/rng.js';
import { buildModel } from '../../models/registry.js';
import type { CausalLM, DecoderForwardOptions, DecoderOutput, Ids } from '../../models/types.js';
import { beamSearch } from '../search/beam.js';
import { TableLM } from '../../../test/support/table_model.js';
import { minLength, noRepeatNgram, nonEmpty, type Attribute } from './attributes.js';
import { conditionalBeamSearch } from './acbs.js';
import { AttributeClassifier, type AttributeScorer, type ScoreContext } from './classifier.js';
import { trainAttributeClassifier } from './data.js';

await initBackend();

const EOS = 0;
const V = 5;
const PROMPT = [1];
const DEPTH = 3; // max_new_tokens: longer outputs are cut here

/**
 * p(next | generated g): p(EOS | x) = 0.4 and 0.15 for each other token, then seeded random rows with every
 * probability in [1/12, 3/7]. Every non-empty output then has a mean log-probability below log 0.4, so the
 * empty output wins beam search for any length penalty in [0, 1].
 */
function table(seed: number): (g: number[]) => number[] {
  return (g) => {
    if (g.length === 0) return [0.4, 0.15, 0.15, 0.15, 0.15];
    const rng = new Rng(seed * 7919 + g.reduce((h, v) => h * 7 + v + 1, 0));
    const w = Array.from({ length: V }, () => 0.5 + rng.random());
    const s = w.reduce((a, b) => a + b, 0);
    return w.map((x) => x / s);
  };
}

/** TableLM whose helper tensors are freed (the support class leaves its reshape inputs behind). */
class CleanTableLM extends TableLM {
  constructor(readonly dist: (g: number[]) => number[]) {
    super(V, (p) => dist(p.slice(PROMPT.length)).map(Math.log), EOS);
  }
  override forward(ids: Ids, opts: DecoderForwardOptions = {}): DecoderOutput {
    return tf.tidy(() => super.forward(ids, opts) as unknown as tf.TensorContainer) as unknown as DecoderOutput;
  }
}

/** Exact P(attribute | generated prefix g) by enumerating every completion (cut at DEPTH tokens). */
function exactRate(dist: (g: number[]) => number[], g: number[], a: Attribute): number {
  if (g.length === DEPTH) return a.label(g) ? 1 : 0;
  return dist(g).reduce((s, p, v) => s + p * (v === EOS ? (a.label(g) ? 1 : 0) : exactRate(dist, [...g, v], a)), 0);
}

/** The oracle classifier: log p(a | x, z + v) from the table itself (no hidden states needed). */
function oracle(dist: (g: number[]) => number[], a: Attribute): AttributeScorer {
  return {
    usesHidden: false,
    attribute: a,
    scoreNext: (ctx: ScoreContext) => tf.tensor2d(ctx.outputs.map((z) => Array.from({ length: V }, (_, v) =>
      Math.log(v === EOS ? (a.label(z) ? 1 : 0) : exactRate(dist, [...z, v], a))))),
  };
}

/** Every output beam search can return (ended by EOS, or cut at DEPTH tokens) with its log-probability. */
function enumerate(dist: (g: number[]) => number[], g: number[] = [], lp = 0): { tokens: number[]; lp: number }[] {
  if (g.length === DEPTH) return [{ tokens: g, lp }];
  return dist(g).flatMap((p, v) => (v === EOS ? [{ tokens: [...g, EOS], lp: lp + Math.log(p) }] : enumerate(dist, [...g, v], lp + Math.log(p))));
}

/** The output without its final EOS. */
const body = (t: number[]) => (t[t.length - 1] === EOS ? t.slice(0, -1) : t);

const beamBase = { maxNewTokens: DEPTH, eosTokenIds: [EOS], padTokenId: EOS, processors: [], stopping: [] };
const beamOpts = (numBeams: number, over: Record<string, unknown> = {}) => ({ ...beamBase, numBeams, lengthPenalty: 1, earlyStopping: false as boolean | 'never', numReturnSequences: numBeams, ...over });

test('λ = 0, and a classifier certain of the attribute everywhere, equal plain beam search', async () => {
  for (const seed of [1, 2, 3]) {
    const model = new CleanTableLM(table(seed));
    for (const o of [beamOpts(2), beamOpts(3, { lengthPenalty: 0, earlyStopping: 'never' }), beamOpts(2, { earlyStopping: true, numReturnSequences: 1 })]) {
      const plain = await beamSearch(model, [PROMPT, [2, 1]], o);
      const zero = await conditionalBeamSearch(model, [PROMPT, [2, 1]], { ...o, classifier: oracle(model.dist, nonEmpty()), weight: 0 });
      assert.deepEqual(zero.sequences, plain.sequences);
      assert.deepEqual(zero.sequenceScores, plain.sequenceScores);
      const certain: AttributeScorer = { usesHidden: false, scoreNext: (c) => tf.zeros([c.outputs.length, V]) };
      const sure = await conditionalBeamSearch(model, [PROMPT, [2, 1]], { ...o, classifier: certain, weight: 1 });
      assert.deepEqual(sure.sequences, plain.sequences);
      assert.deepEqual(sure.sequenceScores, plain.sequenceScores);
    }
  }
});

test('beam search returns the empty output on these tables; ACBS with "non-empty" never does', async () => {
  for (const seed of [1, 2, 3, 4, 5]) {
    const model = new CleanTableLM(table(seed));
    for (const o of [beamOpts(1), beamOpts(2), beamOpts(2, { lengthPenalty: 0.5 }), beamOpts(3, { lengthPenalty: 0, earlyStopping: 'never' })]) {
      const plain = await beamSearch(model, [PROMPT], o);
      assert.deepEqual(plain.newTokens[0], [EOS], `seed ${seed}: beam search's best output should be empty`);
      const before = tf.memory().numTensors;
      const out = await conditionalBeamSearch(model, [PROMPT], { ...o, classifier: oracle(model.dist, nonEmpty()), weight: 1 });
      assert.equal(tf.memory().numTensors, before);
      for (const g of out.newTokens) assert.ok(body(g).length > 0, `seed ${seed}: ACBS returned ${JSON.stringify(g)}`);
      assert.deepEqual(out.attributeHolds, out.newTokens.map(() => true));
      assert.deepEqual(out.classifierLogprobs, out.newTokens.map(() => 0));
    }
  }
});

for (const [name, attr] of [['non-empty', nonEmpty()], ['length ≥ 2', minLength(2)]] as [string, Attribute][]) {
  test(`exhaustive ACBS (${name}, exact oracle) returns the brute-force conditional mode`, async () => {
    for (const seed of [1, 2, 3, 4]) {
      const model = new CleanTableLM(table(seed));
      const all = enumerate(model.dist);
      const ok = all.filter((y) => attr.label(body(y.tokens))).sort((a, b) => b.lp - a.lp);
      const numBeams = all.length; // wide enough to keep every prefix: no search error
      const out = await conditionalBeamSearch(model, [PROMPT], {
        ...beamOpts(numBeams, { lengthPenalty: 0, earlyStopping: 'never', numReturnSequences: 3 }), classifier: oracle(model.dist, attr), weight: 1,
      });
      assert.deepEqual(out.newTokens[0], ok[0].tokens, `seed ${seed}`);
      for (let k = 0; k < 3; k++) {
        assert.deepEqual(out.newTokens[k], ok[k].tokens, `seed ${seed}, rank ${k}`);
        assert.ok(Math.abs(out.lmLogprobs[k] - ok[k].lp) < 1e-5, `lm ${out.lmLogprobs[k]} vs ${ok[k].lp}`);
        assert.ok(Math.abs(out.sequenceScores![k] - ok[k].lp) < 1e-5, `score ${out.sequenceScores![k]} vs ${ok[k].lp}`);
      }
    }
  });
}

test('an uninformed head (q ≡ 1) plus the exact verdict on complete outputs, cut ones included, finds the exhaustive conditional mode', async () => {
  const attr = noRepeatNgram(1); // no token twice: only the verdict on complete outputs can enforce it here
  const blind: AttributeScorer = { usesHidden: false, attribute: attr, scoreNext: (c) => tf.zeros([c.outputs.length, V]) };
  for (const seed of [1, 2, 3]) {
    const model = new CleanTableLM(table(seed));
    const all = enumerate(model.dist);
    const ok = all.filter((y) => attr.label(body(y.tokens))).sort((a, b) => b.lp - a.lp);
    const out = await conditionalBeamSearch(model, [PROMPT], {
      ...beamOpts(all.length, { lengthPenalty: 0, earlyStopping: 'never', numReturnSequences: 3 }), classifier: blind,
    });
    assert.deepEqual(out.newTokens, ok.slice(0, 3).map((y) => y.tokens), `seed ${seed}`);
    assert.deepEqual(out.classifierLogprobs, [0, 0, 0]);
    // A narrow beam led by a blind head can end with every beam rejected; the rejected ones rank last and
    // are flagged (rank −∞, classifier term −∞, attributeHolds false), never ranked above an accepted one.
    const small = await conditionalBeamSearch(model, [PROMPT], { ...beamOpts(2), classifier: blind });
    assert.equal(small.attributeHolds![0], true, `seed ${seed}: ${JSON.stringify(small.newTokens)}`);
    small.newTokens.forEach((g, k) => {
      assert.equal(small.attributeHolds![k], attr.label(body(g)));
      assert.equal(small.classifierLogprobs[k], small.attributeHolds![k] ? 0 : -Infinity);
      assert.equal(small.rankScores[k] === -Infinity, !small.attributeHolds![k]);
    });
  }
});

test('errors and aborts free everything: a head on a model without hidden states, an abort mid-search', async () => {
  const model = new CleanTableLM(table(1));
  const head = new AttributeClassifier({
    model_type: 'attribute_classifier', design: 'next-token', hidden_size: 1, inner_size: 2, vocab_size: V,
    length_buckets: 0, eos_token_ids: [EOS], attribute: { kind: 'non-empty' },
  }, 1);
  const before = tf.memory().numTensors;
  await assert.rejects(conditionalBeamSearch(model, [PROMPT], { ...beamOpts(2), classifier: head }), /needs the LM's hidden states/);
  assert.equal(tf.memory().numTensors, before);
  await assert.rejects(conditionalBeamSearch(model, [PROMPT], { ...beamOpts(2), classifier: head, weight: -1 }), /weight must be a finite number ≥ 0/);
  const wrong = new AttributeClassifier({ ...head.config, vocab_size: V + 1 }, 1);
  await assert.rejects(conditionalBeamSearch(model, [PROMPT], { ...beamOpts(2), classifier: wrong }), /expects vocabulary 6/);
  wrong.dispose();
  const ctrl = new AbortController();
  let steps = 0;
  const out = await conditionalBeamSearch(model, [PROMPT], {
    ...beamOpts(2), classifier: oracle(model.dist, nonEmpty()), signal: ctrl.signal, onStep: () => { if (++steps === 1) ctrl.abort(); },
  });
  assert.ok(out.finishReason.includes('abort'));
  assert.equal(tf.memory().numTensors, before);
  head.dispose();
});

test('tiny GPT-2: sample, train a "length ≥ 3" head, and run ACBS end to end without leaks', async () => {
  const { model } = buildModel({ model_type: 'gpt2', vocab_size: 50, n_positions: 64, n_embd: 32, n_layer: 2, n_head: 4, eos_token_id: 0, bos_token_id: 0 }, 'causal-lm', 5);
  const lm = model as unknown as CausalLM;
  const prompts = [[0, 5, 9], [0, 17], [0, 3, 3, 8]];
  const attr = minLength(3);
  const progress: number[] = [];
  const { classifier, losses, examples } = await trainAttributeClassifier(lm, prompts, attr, {
    samplesPerPrompt: 20, maxNewTokens: 6, eosTokenIds: [0], seed: 1, epochs: 5, innerSize: 16, onProgress: (p) => progress.push(p.loss),
  });
  assert.equal(examples.outputs.length, 60);
  assert.equal(losses.length, 5);
  assert.ok(progress.length >= 5 && progress.every(Number.isFinite));
  const opts = { ...beamOpts(3), maxNewTokens: 6, eosTokenIds: [0], padTokenId: 0 };
  const before = tf.memory().numTensors;
  for (let i = 0; i < 2; i++) {
    const out = await conditionalBeamSearch(lm, prompts, { ...opts, classifier, weight: 1 });
    assert.equal(out.sequences.length, 9);
    assert.equal(out.lmLogprobs.length, 9);
    assert.ok(out.lmLogprobs.every((x) => Number.isFinite(x) && x < 0));
    assert.ok(out.classifierLogprobs.every((x) => x <= 0));
    out.newTokens.forEach((g, k) => {
      const y = g[g.length - 1] === 0 ? g.slice(0, -1) : g;
      if (g[g.length - 1] === 0) assert.ok(y.length >= 3, `finished output ${k} is shorter than 3: ${JSON.stringify(g)}`);
      assert.equal(out.attributeHolds![k], y.length >= 3);
      // The reported terms are the ones the search ranked by: rank = LM score + λ·classifier term.
      assert.ok(Math.abs(out.rankScores[k] - out.sequenceScores[k] - out.classifierLogprobs[k]) < 1e-4, `row ${k}`);
      // lengthPenalty 1: the LM score is the mean log-probability per generated token.
      assert.ok(Math.abs(out.sequenceScores[k] - out.lmLogprobs[k] / g.length) < 1e-4, `row ${k}`);
    });
    assert.equal(tf.memory().numTensors, before);
  }
  const plain = await beamSearch(lm, prompts, opts);
  const zero = await conditionalBeamSearch(lm, prompts, { ...opts, classifier, weight: 0 });
  assert.deepEqual(zero.sequences, plain.sequences);
  assert.deepEqual(zero.sequenceScores, plain.sequenceScores);
  classifier.dispose();
  model.dispose();
});

test('generate() dispatches the conditional option: λ = 0 equals num_beams beam search; "non-empty" never returns the empty output', async () => {
  const model = new CleanTableLM(table(2));
  const common = { max_new_tokens: DEPTH, eos_token_id: EOS, pad_token_id: EOS, num_beams: 2, num_return_sequences: 2 };
  const plain = await generate(model, [PROMPT], common);
  assert.deepEqual(plain.newTokens[0], [EOS], 'the plain beam output is empty');
  const zero = await generate(model, [PROMPT], { ...common, conditional: { classifier: oracle(model.dist, nonEmpty()), weight: 0 } });
  assert.deepEqual(zero.newTokens, plain.newTokens);
  assert.deepEqual(zero.sequenceScores, plain.sequenceScores);
  const cond = await generate(model, [PROMPT], { ...common, conditional: { classifier: oracle(model.dist, nonEmpty()), weight: 1 } });
  for (const g of cond.newTokens) assert.ok(body(g).length > 0, JSON.stringify(g));
  await assert.rejects(generate(model, [PROMPT], { ...common, conditional: { weight: 1 } as never }), /conditional must be \{classifier/);
});
