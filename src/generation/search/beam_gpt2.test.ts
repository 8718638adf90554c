/**
 * Beam search on a tiny seeded GPT-2: the cached, batched, left-padded search against a slow reference that
 * re-runs every full sequence through `model.forward` at every step (one prompt at a time, no cache, no
 * padding), per-token log-probabilities against full-sequence scoring, leaks, abort and errors.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../backend/index.js';
import { disposeAll } from '../../backend/memory.js';
import { buildModel, type CausalLM } from '../../models/registry.js';
import { tokenLogProbs } from '../score.js';
import { beamSearch, type BeamOptions } from './beam.js';

await initBackend();

const V = 50;
const { model: built } = buildModel({ model_type: 'gpt2', vocab_size: V, n_positions: 64, n_embd: 32, n_layer: 2, n_head: 4 }, 'causal-lm', 0);
const model = built as CausalLM;
// Sharpen the seeded random model (tied embeddings → larger logits) so candidates are not near-ties.
// A penalty on tokens already in the row (a processor reading `ids`) keeps it from repeating one token.
for (const [name, p] of model.namedParameters()) if (name === 'transformer.wte.weight') p.assign(tf.tidy(() => tf.mul(p, 4)));

let calls = 0;
const forward = model.forward.bind(model);
model.forward = (ids, o) => { calls++; return forward(ids, o); };

const prompts = [[7, 3, 11], [11, 5], [2, 7, 9, 4, 1, 30]];
const EOS = [28, 21];

/** −2 on every token the row already holds. */
function seenPenalty(ids: number[][], scores: tf.Tensor): tf.Tensor {
  const seen = ids.map((row) => Array.from({ length: V }, (_, v) => (row.includes(v) ? 2 : 0)));
  return tf.tidy(() => tf.sub(scores, tf.tensor2d(seen)));
}

function opts(o: Partial<BeamOptions> = {}): BeamOptions {
  return {
    maxNewTokens: 8, eosTokenIds: EOS, padTokenId: 0, processors: [seenPenalty], stopping: [], numBeams: 3, lengthPenalty: 1,
    earlyStopping: false, numReturnSequences: 2, ...o,
  };
}

interface RefHyp { tokens: number[]; score: number }

/** HF beam search for one prompt, written plainly: every step re-runs the full sequences, no cache. */
function slowBeam(prompt: number[], o: BeamOptions): RefHyp[] {
  const K = o.numBeams;
  const kTop = Math.max(2, 1 + o.eosTokenIds.length) * K;
  let beams = Array.from({ length: K }, (_, k) => ({ tokens: [] as number[], sum: k === 0 ? 0 : -1e9 }));
  const fin: RefHyp[] = [];
  const worst = () => Math.min(...fin.map((h) => h.score));
  const add = (h: RefHyp) => {
    if (fin.length < K || h.score > worst()) {
      fin.push(h);
      if (fin.length > K) fin.splice(fin.findIndex((x) => x.score === worst()), 1);
    }
  };
  for (let g = 0; g < o.maxNewTokens; g++) {
    const rows = beams.map((b) => [...prompt, ...b.tokens]);
    const lp = tf.tidy(() => {
      const out = model.forward(rows);
      disposeAll(out.cache);
      const T = rows[0].length;
      const scores = tf.logSoftmax(out.logits.slice([0, T - 1, 0], [-1, 1, -1]).squeeze([1]));
      return o.processors.reduce((s, p) => p(rows, s), scores).arraySync() as number[][];
    });
    const cands = beams.flatMap((b, k) => lp[k].map((x, v) => ({ k, v, sum: Math.fround(x + b.sum) })));
    cands.sort((a, b) => b.sum - a.sum);
    const next: typeof beams = [];
    const last = g + 1 === o.maxNewTokens;
    cands.slice(0, kTop).forEach((c, j) => {
      const tokens = [...beams[c.k].tokens, c.v];
      if (o.eosTokenIds.includes(c.v) || last) {
        if (j < K) add({ tokens, score: c.sum / tokens.length ** o.lengthPenalty });
      } else if (next.length < K) next.push({ tokens, sum: c.sum });
    });
    if (last) break;
    beams = next;
    if (fin.length === K) {
      if (o.earlyStopping === true) break;
      const den = o.earlyStopping === 'never' && o.lengthPenalty > 0 ? o.maxNewTokens : g + 1;
      if (worst() >= beams[0].sum / den ** o.lengthPenalty) break;
    }
  }
  return fin.sort((a, b) => b.score - a.score);
}

test('cached, batched, left-padded beam search equals a full-recompute reference run per prompt', async () => {
  const reasons = new Set<string>();
  for (const es of [false, true, 'never'] as const) {
    for (const lp of [1, 0, 2]) {
      const o = opts({ earlyStopping: es, lengthPenalty: lp });
      const out = await beamSearch(model, prompts, o);
      out.finishReason.forEach((r) => reasons.add(r));
      prompts.forEach((p, i) => {
        const ref = slowBeam(p, o).slice(0, 2);
        assert.deepEqual(out.newTokens.slice(2 * i, 2 * i + 2), ref.map((h) => h.tokens), `prompt ${i} es=${es} lp=${lp}`);
        ref.forEach((h, j) => assert.ok(Math.abs(out.sequenceScores[2 * i + j] - h.score) < 1e-4, `score ${i},${j}`));
      });
    }
  }
  assert.deepEqual([...reasons].sort(), ['eos', 'length'], 'both endings occur');
});

test('batched equals alone; per-token log-probs equal full-sequence scoring; one forward per step', async () => {
  const o = opts({ numBeams: 4, numReturnSequences: 3, earlyStopping: 'never', outputScores: true });
  calls = 0;
  let steps = 0;
  const batched = await beamSearch(model, prompts, { ...o, onStep: () => { steps++; } });
  assert.equal(calls, steps);
  for (const [i, p] of prompts.entries()) {
    const alone = await beamSearch(model, [p], o);
    assert.deepEqual(batched.newTokens.slice(3 * i, 3 * i + 3), alone.newTokens);
    alone.sequenceScores.forEach((s, j) => assert.ok(Math.abs(batched.sequenceScores[3 * i + j] - s) < 1e-5));
  }
  for (const [r, seq] of batched.sequences.entries()) {
    const P = prompts[Math.floor(r / 3)].length;
    // The model's log-probability of each new token (full forward), minus the processor's penalty.
    const full = (await tokenLogProbs(model, seq)).slice(P - 1).map((x, t) => x - (seq.slice(0, P + t).includes(seq[P + t]) ? 2 : 0));
    batched.tokenLogprobs![r].forEach((x, t) => assert.ok(Math.abs(x - full[t]) < 1e-4, `row ${r} token ${t}`));
    const sum = full.reduce((a, x) => a + x, 0);
    assert.ok(Math.abs(batched.sequenceScores[r] - sum / full.length) < 1e-4);
  }
});

test('no leaked tensors, with a rank bonus reading hidden states too', async () => {
  await beamSearch(model, prompts, opts());
  const before = tf.memory().numTensors;
  for (let i = 0; i < 2; i++) {
    await beamSearch(model, prompts, opts({ outputScores: true }));
    await beamSearch(model, prompts, opts({
      rankBonus: (state) => {
        assert.equal(state.hidden?.shape[0], state.ids.length);
        return tf.zeros(state.logits.shape);
      },
    }));
  }
  assert.equal(tf.memory().numTensors, before);
});

test('abort stops within one step, returns the best so far, leaks nothing', async () => {
  const before = tf.memory().numTensors;
  const ctl = new AbortController();
  calls = 0;
  let steps = 0;
  const out = await beamSearch(model, prompts, opts({ maxNewTokens: 20, earlyStopping: 'never', signal: ctl.signal, onStep: () => { if (++steps === 2) ctl.abort(); } }));
  assert.equal(calls, 2, 'no forward after the abort');
  assert.ok(out.finishReason.includes('abort'));
  out.newTokens.forEach((t, i) => assert.ok(t.length <= 2 && (out.finishReason[i] !== 'abort' || t.length === 2)));
  assert.equal(out.sequences.length, prompts.length * 2);
  assert.equal(tf.memory().numTensors, before);
  // Already aborted: no model call, the prompts come back.
  calls = 0;
  const pre = await beamSearch(model, prompts, opts({ signal: AbortSignal.abort() }));
  assert.equal(calls, 0);
  assert.deepEqual(pre.sequences, prompts.flatMap((p) => [p, p]));
  assert.deepEqual(pre.finishReason, Array(6).fill('abort'));
  assert.equal(tf.memory().numTensors, before);
});

test('a throwing processor or a mis-shaped rank bonus propagates and frees everything', async () => {
  const before = tf.memory().numTensors;
  let n = 0;
  const boom = (_ids: number[][], s: tf.Tensor) => { if (++n === 3) throw new Error('boom'); return s.clone(); };
  await assert.rejects(beamSearch(model, prompts, opts({ processors: [boom] })), /boom/);
  await assert.rejects(beamSearch(model, prompts, opts({ rankBonus: () => tf.zeros([1, V]) })), /rank bonus has shape \[1, 50\], expected \[9, 50\]/);
  assert.equal(tf.memory().numTensors, before);
});
