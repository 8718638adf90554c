/**
 * Greedy search against an independent reference: argmax of `model.forward(all ids)` recomputed from
 * scratch at every step (no cache) on a tiny random GPT-2; a left-padded batch against each prompt alone;
 * EOS, abort and output_scores on a table model whose distributions are known.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../backend/index.js';
import { disposeAll, tidy } from '../../backend/memory.js';
import { buildModel, type CausalLM } from '../../models/registry.js';
import type { DecoderForwardOptions, DecoderOutput, Ids } from '../../models/types.js';
import { TableLM as LeakyTableLM, logs } from '../../../test/support/table_model.js';
import { temperature } from '../processors/index.js';
import type { StrategyOptions } from '../types.js';
import { argmax, greedySearch } from './greedy.js';

await initBackend();

/** test/support's TableLM leaves reshape intermediates behind; tidy them so leak counts see only ours. */
class TableLM extends LeakyTableLM {
  override forward(inputIds: Ids, opts: DecoderForwardOptions = {}): DecoderOutput {
    return tidy(() => super.forward(inputIds, opts));
  }
}

function tinyGpt2(): CausalLM {
  return buildModel({ model_type: 'gpt2', vocab_size: 50, n_positions: 64, n_embd: 32, n_layer: 2, n_head: 4 }, 'causal-lm', 3).model as unknown as CausalLM;
}

function opts(over: Partial<StrategyOptions> = {}): StrategyOptions {
  return { maxNewTokens: 10, eosTokenIds: [], padTokenId: 0, processors: [], stopping: [], ...over };
}

/** Reference: recompute the whole sequence each step, take the argmax of the last position. */
function recomputeGreedy(model: CausalLM, prompt: number[], n: number): { tokens: number[]; logprobs: number[] } {
  const ids = prompt.slice();
  const logprobs: number[] = [];
  for (let i = 0; i < n; i++) {
    const out = model.forward([ids]);
    const last = tidy(() => out.logits.slice([0, ids.length - 1, 0], [1, 1, -1]).reshape([-1]));
    const row = last.dataSync() as Float32Array;
    const t = argmax(row);
    const lse = tidy(() => tf.logSumExp(last)).dataSync()[0];
    logprobs.push(row[t] - lse);
    disposeAll([out, last]);
    ids.push(t);
  }
  return { tokens: ids.slice(prompt.length), logprobs };
}

test('greedy with the cache equals greedy by full recomputation (tiny GPT-2)', async () => {
  const model = tinyGpt2();
  for (const prompt of [[1, 2, 3], [7], [4, 4, 9, 12, 30]]) {
    const ref = recomputeGreedy(model, prompt, 12);
    const before = tf.memory().numTensors;
    const out = await greedySearch(model, [prompt], opts({ maxNewTokens: 12, outputScores: true }));
    assert.equal(tf.memory().numTensors, before, 'greedy leaked tensors');
    assert.deepEqual(out.newTokens[0], ref.tokens);
    assert.deepEqual(out.sequences[0], [...prompt, ...ref.tokens]);
    assert.deepEqual(out.finishReason, ['length']);
    out.tokenLogprobs![0].forEach((lp, i) => assert.ok(Math.abs(lp - ref.logprobs[i]) < 1e-4, `logprob ${i}: ${lp} vs ${ref.logprobs[i]}`));
  }
  model.dispose();
});

test('a left-padded batch gives each prompt its single result', async () => {
  const model = tinyGpt2();
  const prompts = [[5, 6, 7, 8, 9, 10], [11], [20, 21, 22]];
  const alone: number[][] = [];
  for (const p of prompts) alone.push((await greedySearch(model, [p], opts())).newTokens[0]);
  const before = tf.memory().numTensors;
  const batch = await greedySearch(model, prompts, opts());
  assert.equal(tf.memory().numTensors, before);
  assert.deepEqual(batch.newTokens, alone);
  assert.deepEqual(batch.sequences, prompts.map((p, i) => [...p, ...alone[i]]));
  model.dispose();
});

// V = 5, EOS = 4. After prompt [1] the table says 2, 2, EOS; after prompt [3] it always says 3.
const EOS = 4;
function scripted(prefix: number[]): number[] {
  const p = [0.05, 0.05, 0.05, 0.05, 0.05];
  if (prefix[0] === 1) p[prefix.length >= 3 ? EOS : 2] = 0.8;
  else p[3] = 0.8;
  return logs(p);
}

test('EOS stops a row, which is then fed padding and keeps its output; the batch stops when all rows are done', async () => {
  const model = new TableLM(5, scripted, EOS);
  const steps: number[][] = [];
  const before = tf.memory().numTensors;
  const out = await greedySearch(model, [[1], [3]], opts({ maxNewTokens: 5, eosTokenIds: [EOS], padTokenId: 0, onStep: (t) => steps.push(t) }));
  assert.equal(tf.memory().numTensors, before);
  assert.deepEqual(out.newTokens, [[2, 2, EOS], [3, 3, 3, 3, 3]]);
  assert.deepEqual(out.sequences, [[1, 2, 2, EOS], [3, 3, 3, 3, 3, 3]]);
  assert.deepEqual(out.finishReason, ['eos', 'length']);
  assert.deepEqual(steps, [[2, 3], [2, 3], [EOS, 3], [-1, 3], [-1, 3]]);
  // Both rows done after three steps: no fourth forward.
  const both = new TableLM(5, (p) => scripted([1, ...p.slice(1)]), EOS);
  const short = await greedySearch(both, [[1], [1, 0]], opts({ maxNewTokens: 8, eosTokenIds: [EOS] }));
  assert.deepEqual(short.finishReason, ['eos', 'eos']);
  assert.equal(both.calls, 3, 'prefill + two advances');
});

test('several EOS ids; stopping criteria end a row with finishReason stop; processors apply', async () => {
  const model = new TableLM(5, scripted, EOS);
  const out = await greedySearch(model, [[1], [3]], opts({ maxNewTokens: 6, eosTokenIds: [2, EOS] }));
  assert.deepEqual(out.newTokens, [[2], [3, 3, 3, 3, 3, 3]]);
  assert.deepEqual(out.finishReason, ['eos', 'length']);
  const stop = await greedySearch(model, [[1], [3]], opts({ maxNewTokens: 6, stopping: [(_ids, nt) => nt.map((r) => r.length === 2)] }));
  assert.deepEqual(stop.newTokens, [[2, 2], [3, 3]]);
  assert.deepEqual(stop.finishReason, ['stop', 'stop']);
  // output_scores are log-softmax of the processed scores: with temperature 0.5, p ∝ p_table².
  const scored = await greedySearch(model, [[3]], opts({ maxNewTokens: 1, processors: [temperature(0.5)], outputScores: true }));
  const expected = Math.log(0.8 ** 2 / (0.8 ** 2 + 4 * 0.05 ** 2));
  assert.ok(Math.abs(scored.tokenLogprobs![0][0] - expected) < 1e-5);
});

test('abort stops within one step, returns what exists with finishReason abort, and leaks nothing', async () => {
  const model = tinyGpt2();
  const before = tf.memory().numTensors;
  const ctrl = new AbortController();
  let steps = 0;
  const out = await greedySearch(model, [[1, 2], [3]], opts({ maxNewTokens: 40, signal: ctrl.signal, onStep: () => { if (++steps === 3) ctrl.abort(); } }));
  assert.equal(tf.memory().numTensors, before);
  assert.deepEqual(out.newTokens.map((t) => t.length), [3, 3]);
  assert.deepEqual(out.finishReason, ['abort', 'abort']);
  // A timer-driven abort gets its turn between steps.
  const timed = new AbortController();
  setTimeout(() => timed.abort(), 5);
  const t0 = Date.now();
  const late = await greedySearch(model, [[1, 2]], opts({ maxNewTokens: 60, signal: timed.signal, processors: [(_i, s) => { const until = Date.now() + 2; while (Date.now() < until); return s.clone(); }] }));
  assert.ok(Date.now() - t0 < 100, 'abort took too long');
  assert.equal(late.finishReason[0], 'abort');
  assert.ok(late.newTokens[0].length < 60);
  // Already aborted: nothing runs.
  const pre = await greedySearch(model, [[1, 2]], opts({ signal: AbortSignal.abort() }));
  assert.deepEqual(pre, { sequences: [[1, 2]], newTokens: [[]], finishReason: ['abort'] });
  assert.equal(tf.memory().numTensors, before);
  model.dispose();
});

test('a row whose every token is banned is an error, and the state is still freed', async () => {
  const model = new TableLM(5, scripted, EOS);
  const before = tf.memory().numTensors;
  await assert.rejects(greedySearch(model, [[1]], opts({ processors: [(_i, s) => tf.fill(s.shape, -Infinity)] })), /every token of row 0 was banned/);
  assert.equal(tf.memory().numTensors, before);
});
