/**
 * Each logits processor on a hand-written 4- or 5-token vector, against values worked out by hand from HF's
 * definitions (logits_process.py), and buildProcessors' order against HF's `_get_logits_processor`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../backend/index.js';
import { GENERATION_DEFAULTS, type GenerationConfig } from '../config.js';
import type { LogitsProcessor } from '../types.js';
import {
  applyProcessors, badWords, bannedNgramTokens, buildProcessors, epsilonCutoff, etaCutoff, minLength, minNewTokens,
  minP, named, noRepeatNgram, repetitionPenalty, temperature, topK, topP, typical,
} from './index.js';

const NEG = -Infinity;

function run(p: LogitsProcessor, ids: number[][], scores: number[][]): number[][] {
  const before = tf.memory().numTensors;
  const input = tf.tensor2d(scores);
  const out = p(ids, input);
  const values = out.arraySync() as number[][];
  input.dispose();
  out.dispose();
  assert.equal(tf.memory().numTensors, before, 'processor leaked tensors');
  return values;
}

function close(actual: number[][], expected: number[][]): void {
  assert.equal(actual.length, expected.length);
  actual.forEach((row, r) => row.forEach((v, i) => {
    const e = expected[r][i];
    if (e === NEG) assert.equal(v, NEG, `[${r}][${i}] expected -inf, found ${v}`);
    else assert.ok(Math.abs(v - e) < 1e-5, `[${r}][${i}] expected ${e}, found ${v}`);
  }));
}

/** Which entries survive (not −∞). */
function kept(rows: number[][]): number[][] {
  return rows.map((row) => row.flatMap((v, i) => (v === NEG ? [] : [i])));
}

const logs = (p: number[]): number[] => p.map(Math.log);

test('setup', async () => { await initBackend(); });

test('repetition penalty divides positive and multiplies negative scores of tokens in the row, once', () => {
  // Tokens 0 (score 2 → 1) and 1 (score −2 → −4) occur (0 twice: penalised once); 2, 3, 4 untouched.
  close(run(repetitionPenalty(2), [[0, 1, 0]], [[2, -2, 1, -1, 0.5]]), [[1, -4, 1, -1, 0.5]]);
  // Penalty < 1 rewards: 2 / 0.5 = 4, −1 · 0.5 = −0.5.
  close(run(repetitionPenalty(0.5), [[0], [3]], [[2, 1, 0, -1], [2, 1, 0, -1]]), [[4, 1, 0, -1], [2, 1, 0, -0.5]]);
});

test('temperature divides the scores', () => {
  close(run(temperature(0.5), [[0]], [[2, -1, 0, 1]]), [[4, -2, 0, 2]]);
});

test('top-k keeps the k best and every token tied with the k-th', () => {
  assert.deepEqual(kept(run(topK(2), [[0]], [[1, 3, 3, 2]])), [[1, 2]]);
  assert.deepEqual(kept(run(topK(2), [[0]], [[3, 2, 2, 1]])), [[0, 1, 2]]);
  assert.deepEqual(kept(run(topK(1, 3), [[0]], [[4, 3, 2, 1]])), [[0, 1, 2]]);
  assert.deepEqual(kept(run(topK(10), [[0]], [[4, 3, 2, 1]])), [[0, 1, 2, 3]]);
});

test('top-p keeps the smallest most-probable set with mass >= p, boundary token included', () => {
  const s = [logs([0.5, 0.3, 0.15, 0.05])];
  // Ascending cumulative mass: 0.05, 0.20, 0.50, 1.00. p = 0.75 drops mass <= 0.25 → {0.05, 0.15};
  // the boundary token 0.3 stays (0.5 alone < 0.75). Kept scores are unchanged.
  close(run(topP(0.75), [[0]], s), [[s[0][0], s[0][1], NEG, NEG]]);
  assert.deepEqual(kept(run(topP(0.55), [[0]], s)), [[0, 1]]);
  assert.deepEqual(kept(run(topP(0.96), [[0]], s)), [[0, 1, 2, 3]]);
  // p = 0.1 would keep only the top token; min_tokens_to_keep = 3 keeps three.
  assert.deepEqual(kept(run(topP(0.1), [[0]], s)), [[0]]);
  assert.deepEqual(kept(run(topP(0.1, 3), [[0]], s)), [[0, 1, 2]]);
  assert.deepEqual(kept(run(topP(1), [[0]], s)), [[0, 1, 2, 3]]);
});

test('typical keeps the most typical tokens until the mass is reached', () => {
  // p = [.4 .3 .2 .1]: H = 1.27985; |−ln p − H| = [.3636 .0759 .3296 1.0227]; typical order 1, 2, 0, 3 with
  // cumulative mass .3, .5, .9, 1. mass .6: two entries below .6 → cutoff at the 3rd (token 0) → drop 3.
  const s = [logs([0.4, 0.3, 0.2, 0.1])];
  assert.deepEqual(kept(run(typical(0.6), [[0]], s)), [[0, 1, 2]]);
  // mass .4: cutoff at the 2nd (token 2) → the most probable token 0 is dropped.
  assert.deepEqual(kept(run(typical(0.4), [[0]], s)), [[1, 2]]);
  assert.deepEqual(kept(run(typical(0.2), [[0]], s)), [[1]]);
  assert.deepEqual(kept(run(typical(0.2, 2), [[0]], s)), [[1, 2]]);
});

test('min-p drops tokens below min_p times the top probability', () => {
  const s = [logs([0.5, 0.3, 0.15, 0.05])];
  assert.deepEqual(kept(run(minP(0.2), [[0]], s)), [[0, 1, 2]]); // threshold 0.1
  assert.deepEqual(kept(run(minP(0.7), [[0]], s)), [[0]]); // threshold 0.35
  assert.deepEqual(kept(run(minP(0.7, 2), [[0]], s)), [[0, 1]]);
});

test('epsilon cutoff drops probabilities below epsilon, keeping min_tokens_to_keep', () => {
  const s = [logs([0.5, 0.3, 0.15, 0.05])];
  assert.deepEqual(kept(run(epsilonCutoff(0.1), [[0]], s)), [[0, 1, 2]]);
  assert.deepEqual(kept(run(epsilonCutoff(0.6), [[0]], s)), [[0]]);
  assert.deepEqual(kept(run(epsilonCutoff(0.6, 2), [[0]], s)), [[0, 1]]);
});

test('eta cutoff uses min(eps, sqrt(eps)·exp(−H))', () => {
  const s = [logs([0.4, 0.3, 0.2, 0.1])];
  // H = 1.27985: eps .2 → eta = min(.2, .44721·.27808 = .12436) → drop 0.1.
  assert.deepEqual(kept(run(etaCutoff(0.2), [[0]], s)), [[0, 1, 2]]);
  // eps .05 → eta = .05: nothing is below it.
  assert.deepEqual(kept(run(etaCutoff(0.05), [[0]], s)), [[0, 1, 2, 3]]);
});

test('no_repeat_ngram bans tokens that would complete an n-gram already in the row', () => {
  assert.deepEqual(bannedNgramTokens([1, 2, 3, 1, 2], 3), [3]);
  assert.deepEqual(bannedNgramTokens([1, 2, 3, 1, 2], 2), [3]);
  assert.deepEqual(bannedNgramTokens([1, 2, 1], 2), [2]);
  assert.deepEqual(bannedNgramTokens([1, 2], 3), []);
  assert.deepEqual(bannedNgramTokens([4, 4], 2), [4]);
  // n = 1 bans every token already present.
  assert.deepEqual(bannedNgramTokens([0, 2, 0], 1).sort(), [0, 0, 2]);
  close(run(noRepeatNgram(2), [[1, 2, 1], [0, 3]], [[0, 0, 0, 0, 0], [0, 0, 0, 0, 0]]), [[0, 0, NEG, 0, 0], [0, 0, 0, 0, 0]]);
});

test('bad words: single tokens always, longer ones when the row ends with their prefix; a lone EOS is never banned', () => {
  const p = badWords([[3], [1, 4], [2, 0], [0]], [0]);
  const rows = run(p, [[1], [2, 1], [0, 2]], [[0, 0, 0, 0, 0], [0, 0, 0, 0, 0], [0, 0, 0, 0, 0]]);
  // Row 0 [1]: [1, 4] is longer than the row (HF skips it). Row 1 ends with 1 → 4. Row 2 ends with 2 → 0.
  assert.deepEqual(kept(rows), [[0, 1, 2, 4], [0, 1, 2], [1, 2, 4]]);
});

test('min_length and min_new_tokens mask every EOS id until reached', () => {
  const zeros = [[0, 0, 0, 0, 0]];
  assert.deepEqual(kept(run(minLength(3, [1, 4]), [[0, 0]], zeros)), [[0, 2, 3]]);
  assert.deepEqual(kept(run(minLength(3, [1, 4]), [[0, 0, 0]], zeros)), [[0, 1, 2, 3, 4]]);
  // Prompt of 2, one new token so far (< 2): EOS 3 and 4 banned; with two new tokens, free.
  assert.deepEqual(kept(run(minNewTokens([2], 2, [3, 4]), [[5, 6, 7]], zeros)), [[0, 1, 2]]);
  assert.deepEqual(kept(run(minNewTokens([2], 2, [3, 4]), [[5, 6, 7, 8]], zeros)), [[0, 1, 2, 3, 4]]);
  // Two prompts (lengths 1 and 3), two rows each: rows 0, 1 belong to prompt 0; rows 2, 3 to prompt 1.
  const four = [0, 1, 2, 3].map(() => [0, 0, 0, 0, 0]);
  const r = run(minNewTokens([1, 3], 1, [4]), [[9, 9], [9], [9, 9, 9, 9], [9, 9, 9]], four);
  assert.deepEqual(kept(r), [[0, 1, 2, 3, 4], [0, 1, 2, 3], [0, 1, 2, 3, 4], [0, 1, 2, 3]]);
});

test('buildProcessors follows HF _get_logits_processor order; user processors go before the warpers', () => {
  const config: GenerationConfig = {
    ...GENERATION_DEFAULTS, do_sample: true, repetition_penalty: 1.2, no_repeat_ngram_size: 3, bad_words_ids: [[1]],
    min_length: 2, min_new_tokens: 1, temperature: 0.7, top_k: 10, top_p: 0.9, min_p: 0.05, typical_p: 0.9,
    epsilon_cutoff: 3e-4, eta_cutoff: 3e-4, eos_token_id: 0,
  };
  const mine = named('Mine', (_ids, s) => s.clone());
  const names = buildProcessors(config, { promptLengths: [3], eosTokenIds: [0], userProcessors: [mine] }).map((p) => p.name);
  assert.deepEqual(names, [
    'RepetitionPenaltyLogitsProcessor', 'NoRepeatNGramLogitsProcessor', 'NoBadWordsLogitsProcessor',
    'MinLengthLogitsProcessor', 'MinNewTokensLengthLogitsProcessor', 'Mine',
    'TemperatureLogitsWarper', 'TopKLogitsWarper', 'TopPLogitsWarper', 'MinPLogitsWarper', 'TypicalLogitsWarper',
    'EpsilonLogitsWarper', 'EtaLogitsWarper',
  ]);
  // Greedy: no warpers; HF defaults (top_k 50) add nothing either.
  const greedy = buildProcessors({ ...config, do_sample: false }, { promptLengths: [3], eosTokenIds: [0] }).map((p) => p.name);
  assert.equal(greedy.length, 5);
  assert.deepEqual(buildProcessors({ ...GENERATION_DEFAULTS, do_sample: true }, { promptLengths: [3], eosTokenIds: [] }).map((p) => p.name), ['TopKLogitsWarper']);
});

test('applyProcessors chains, frees intermediates and never the input', () => {
  const before = tf.memory().numTensors;
  const input = tf.tensor2d([[2, -2, 1, 0]]);
  const out = applyProcessors([repetitionPenalty(2), temperature(0.5), (_i, s) => s], [[0, 1]], input);
  close(out.arraySync() as number[][], [[2, -8, 2, 0]]);
  const same = applyProcessors([], [[0]], input);
  assert.notEqual(same, input);
  same.dispose();
  out.dispose();
  input.dispose();
  assert.equal(tf.memory().numTensors, before);
});
