/** The degeneracy report on a model built so that its mode is empty while greedy search is not (methods.md §6.5). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../backend/index.js';
import { TableLM } from '../../test/support/table_model.js';
import { degeneracyReport } from './degeneracy.js';

await initBackend();
const EOS = 0;

/** p(EOS | x) = 0.3, but token 1 is likelier (0.4); after it the mass spreads thin until EOS is forced at length 4. */
function next(prefix: number[]): number[] {
  const g = prefix.length - 1; // the prompt is one token
  if (g === 0) return [0.3, 0.4, 0.1, 0.1, 0.1].map(Math.log);
  if (g >= 4) return [1, 0, 0, 0, 0].map(Math.log);
  return [0.01, 0.2475, 0.2475, 0.2475, 0.2475].map(Math.log);
}

test('greedy is non-empty, the exact mode is the empty output (proven), and every strategy is reported', async () => {
  const model = new TableLM(5, next, EOS);
  const before = tf.memory().numTensors;
  const rows = await degeneracyReport(model, [[4], [3]], { maxNewTokens: 6, eosTokenIds: [EOS], beams: [2], samples: 3, exact: { ms: 10000 }, seed: 1 });
  assert.deepEqual(rows.map((r) => r.name), ['greedy', 'beam 2', 'sampling ×3', 'exact mode']);
  const by = Object.fromEntries(rows.map((r) => [r.name, r]));
  assert.equal(by.greedy.stats.emptyShare, 0);
  assert.equal(by.greedy.outputs[0].tokens.length, 5, 'four tokens, then the forced EOS');
  // greedy's log-probability by hand: 0.4 · 0.2475³ · 1
  assert.ok(Math.abs(by.greedy.outputs[0].logprob - Math.log(0.4 * 0.2475 ** 3)) < 1e-4);
  assert.equal(by['exact mode'].stats.emptyShare, 1);
  assert.equal(by['exact mode'].proven, 2);
  assert.ok(Math.abs(by['exact mode'].outputs[0].logprob - Math.log(0.3)) < 1e-6);
  assert.ok(by['exact mode'].stats.meanLogprob > by.greedy.stats.meanLogprob, 'the mode is more probable than greedy and yet empty');
  assert.equal(by['sampling ×3'].outputs.length, 6);
  assert.equal(tf.memory().numTensors, before);
});
