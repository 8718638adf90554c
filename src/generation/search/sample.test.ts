/**
 * Sampling against known distributions: token frequencies from a fixed table fall within binomial
 * (4 sigma) and chi-square bounds, also after top-p renormalises; the same seed reproduces, another differs.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../backend/index.js';
import { tidy } from '../../backend/memory.js';
import { buildModel, type CausalLM } from '../../models/registry.js';
import type { DecoderForwardOptions, DecoderOutput, Ids } from '../../models/types.js';
import { TableLM as LeakyTableLM, logs } from '../../../test/support/table_model.js';
import { topP } from '../processors/index.js';
import type { StrategyOptions } from '../types.js';
import { drawFromScores, sample } from './sample.js';

await initBackend();

class TableLM extends LeakyTableLM {
  override forward(inputIds: Ids, opts: DecoderForwardOptions = {}): DecoderOutput {
    return tidy(() => super.forward(inputIds, opts));
  }
}

function opts(over: Partial<StrategyOptions> = {}): StrategyOptions {
  return { maxNewTokens: 4, eosTokenIds: [], padTokenId: 0, processors: [], stopping: [], ...over };
}

/** Counts must match `expected` probabilities: each within 4 sigma, and chi-square below the 0.999 quantile. */
function checkFrequencies(tokens: number[], expected: number[], chi2Limit: number): void {
  const n = tokens.length;
  const counts = expected.map((_, v) => tokens.filter((t) => t === v).length);
  let chi2 = 0;
  expected.forEach((p, v) => {
    if (p === 0) { assert.equal(counts[v], 0, `token ${v} has probability 0 but was drawn ${counts[v]} times`); return; }
    const sigma = Math.sqrt(n * p * (1 - p));
    assert.ok(Math.abs(counts[v] - n * p) <= 4 * sigma, `token ${v}: ${counts[v]} draws, expected ${n * p} ± ${4 * sigma}`);
    chi2 += (counts[v] - n * p) ** 2 / (n * p);
  });
  assert.ok(chi2 < chi2Limit, `chi-square ${chi2} >= ${chi2Limit}`);
}

test('drawFromScores is the inverse CDF of the softmax', () => {
  const s = Float32Array.from(logs([0.1, 0.2, 0.3, 0.4]));
  assert.equal(drawFromScores(s, 0), 0);
  assert.equal(drawFromScores(s, 0.09), 0);
  assert.equal(drawFromScores(s, 0.11), 1);
  assert.equal(drawFromScores(s, 0.31), 2);
  assert.equal(drawFromScores(s, 0.61), 3);
  assert.equal(drawFromScores(s, 0.999999), 3);
  assert.equal(drawFromScores(Float32Array.from([0, -Infinity, 0]), 0.7), 2);
});

test('4000 draws from a fixed distribution match it (binomial 4σ and chi-square, df 3)', async () => {
  const p = [0.1, 0.2, 0.3, 0.4];
  const model = new TableLM(4, () => logs(p));
  const before = tf.memory().numTensors;
  const out = await sample(model, Array.from({ length: 1000 }, () => [0]), { ...opts(), seed: 11 });
  assert.equal(tf.memory().numTensors, before);
  const tokens = out.newTokens.flat();
  assert.equal(tokens.length, 4000);
  checkFrequencies(tokens, p, 16.27); // chi-square 0.999 quantile, 3 degrees of freedom
});

test('sampling after top-p draws from the renormalised nucleus', async () => {
  // p = .1 .2 .3 .4, top_p .5: ascending mass .1, .3 are <= .5 → tokens 0 and 1 go; 2 and 3 renormalise to 3/7, 4/7.
  const model = new TableLM(4, () => logs([0.1, 0.2, 0.3, 0.4]));
  const out = await sample(model, Array.from({ length: 1000 }, () => [0]), { ...opts({ processors: [topP(0.5)] }), seed: 5 });
  checkFrequencies(out.newTokens.flat(), [0, 0, 3 / 7, 4 / 7], 10.83); // df 1
});

test('the same seed gives the same sample, run after run; another seed differs', async () => {
  const model = buildModel({ model_type: 'gpt2', vocab_size: 50, n_positions: 64, n_embd: 32, n_layer: 2, n_head: 4 }, 'causal-lm', 1).model as unknown as CausalLM;
  const run = (seed: number) => sample(model, [[1, 2, 3], [4]], { ...opts({ maxNewTokens: 20 }), seed });
  const a = await run(42);
  const b = await run(42);
  const c = await run(43);
  assert.deepEqual(a.newTokens, b.newTokens);
  assert.notDeepEqual(a.newTokens, c.newTokens);
  // Row 0 draws from its own stream: alone or followed by other rows, the same tokens.
  const alone = await sample(model, [[1, 2, 3]], { ...opts({ maxNewTokens: 20 }), seed: 42 });
  assert.deepEqual(alone.newTokens[0], a.newTokens[0]);
  model.dispose();
});
