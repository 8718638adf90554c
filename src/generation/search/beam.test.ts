/**
 * Beam search on table models: against brute-force enumeration of every sequence (scored in float64 with
 * HF's length-penalised formula, straight from the table), against hand-computed small cases (greedy vs
 * beam, the three early_stopping modes, the EOS rank rule, the rank bonus), and counting model calls.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../backend/index.js';
import { tidy } from '../../backend/memory.js';
import { Rng } from '../../backend/rng.js';
import { ConfigError } from '../../errors.js';
import type { DecoderForwardOptions, DecoderOutput, Ids } from '../../models/types.js';
import { TableLM as LeakyTableLM, logs, type NextFn } from '../../../test/support/table_model.js';
import { beamSearch, type BeamOptions, type BeamSearchOutput } from './beam.js';

await initBackend();

/** test/support's TableLM leaves reshape intermediates behind; tidy them so leak counts see only ours. */
class TableLM extends LeakyTableLM {
  override forward(inputIds: Ids, opts: DecoderForwardOptions = {}): DecoderOutput {
    return tidy(() => super.forward(inputIds, opts));
  }
}

/** Next-token log-probs: a seeded pseudo-random function of the prefix. */
function randomTable(seed: number, V: number): NextFn {
  return (prefix) => {
    let h = seed * 7919 + 17;
    for (const t of prefix) h = (Math.imul(h, 31) + t + 1) | 0;
    const rng = new Rng(h);
    const z = Array.from({ length: V }, () => rng.normal() * 1.2);
    const m = Math.max(...z);
    const lse = m + Math.log(z.reduce((a, x) => a + Math.exp(x - m), 0));
    return z.map((x) => x - lse);
  };
}

/** A table given by the generated tokens (prompt of length `P` excluded): key "1,2" → probabilities. */
function handTable(P: number, rows: Record<string, number[]>, fallback: number[]): NextFn {
  return (prefix) => logs(rows[prefix.slice(P).join(',')] ?? fallback);
}

function opts(o: Partial<BeamOptions> & { numBeams: number; maxNewTokens: number }): BeamOptions {
  return { eosTokenIds: [0], padTokenId: 0, processors: [], stopping: [], lengthPenalty: 1, earlyStopping: false, numReturnSequences: 1, ...o };
}

interface Ref { tokens: number[]; score: number; lps: number[]; reason: 'eos' | 'length' }

/** Every output of at most L new tokens: ended by EOS, or cut at L (then unfinished, with its own length). */
function enumerate(next: NextFn, prompt: number[], V: number, eos: number[], L: number, lp: number): Ref[] {
  const out: Ref[] = [];
  const walk = (gen: number[], lps: number[]) => {
    const dist = next([...prompt, ...gen]);
    for (let v = 0; v < V; v++) {
      const tokens = [...gen, v];
      const l = [...lps, dist[v]];
      const sum = l.reduce((a, x) => a + x, 0);
      if (eos.includes(v)) out.push({ tokens, score: sum / tokens.length ** lp, lps: l, reason: 'eos' });
      else if (tokens.length === L) out.push({ tokens, score: sum / L ** lp, lps: l, reason: 'length' });
      else walk(tokens, l);
    }
  };
  walk([], []);
  return out.sort((a, b) => b.score - a.score);
}

function close(a: number, b: number, tol = 2e-5): boolean {
  return Math.abs(a - b) <= tol * Math.max(1, Math.abs(b));
}

test('num_beams = V^L reproduces brute-force enumeration (length_penalty 1, 0, 2, −1; early_stopping false / "never")', async () => {
  const cases = [{ V: 3, L: 4, eos: [0] }, { V: 4, L: 3, eos: [0] }, { V: 4, L: 3, eos: [0, 3] }];
  for (const [ci, { V, L, eos }] of cases.entries()) {
    const next = randomTable(11 + ci, V);
    const prompt = [1, 2];
    const model = new TableLM(V, next);
    for (const lp of [1, 0, 2, -1]) {
      const ref = enumerate(next, prompt, V, eos, L, lp);
      const n = 6;
      for (let i = 0; i < n; i++) assert.ok(ref[i].score - ref[i + 1].score > 1e-4, `reference has a near-tie at ${i} (pick another seed)`);
      for (const earlyStopping of [false, 'never'] as const) {
        const out = await beamSearch(model, [prompt], opts({ numBeams: V ** L, maxNewTokens: L, eosTokenIds: eos, lengthPenalty: lp, earlyStopping, numReturnSequences: n, outputScores: true }));
        const what = `V=${V} L=${L} eos=${eos} lp=${lp} es=${earlyStopping}`;
        assert.deepEqual(out.newTokens, ref.slice(0, n).map((r) => r.tokens), what);
        assert.deepEqual(out.finishReason, ref.slice(0, n).map((r) => r.reason), what);
        out.sequenceScores.forEach((s, i) => assert.ok(close(s, ref[i].score), `${what}: score ${i} ${s} vs ${ref[i].score}`));
        assert.deepEqual(out.rankScores, out.sequenceScores);
        out.tokenLogprobs!.forEach((row, i) => row.forEach((x, t) => assert.ok(close(x, ref[i].lps[t]), `${what}: logprob ${i},${t}`)));
        out.sequences.forEach((s, i) => assert.deepEqual(s, [...prompt, ...ref[i].tokens]));
      }
    }
  }
});

// Tokens: 0 = EOS, 1 = A, 2 = B. Greedy takes A (0.5) then EOS (0.4): p = 0.2; beam search finds B EOS: 0.36.
const textbook = handTable(1, { '': [0.1, 0.5, 0.4], '1': [0.4, 0.35, 0.25], '2': [0.9, 0.05, 0.05] }, [0.6, 0.2, 0.2]);

test('the textbook case: 2 beams find B EOS (0.36) where greedy would take A EOS (0.2)', async () => {
  const model = new TableLM(3, textbook);
  for (const lp of [0, 1]) {
    const out = await beamSearch(model, [[1]], opts({ numBeams: 2, maxNewTokens: 3, lengthPenalty: lp, earlyStopping: true, numReturnSequences: 2 }));
    assert.deepEqual(out.newTokens, [[2, 0], [1, 0]]);
    assert.deepEqual(out.finishReason, ['eos', 'eos']);
    assert.ok(close(out.sequenceScores[0], Math.log(0.4 * 0.9) / 2 ** lp));
    assert.ok(close(out.sequenceScores[1], Math.log(0.5 * 0.4) / 2 ** lp));
  }
});

// Built so that the three early_stopping modes return three different answers (worked out in the comments).
const stopTable = handTable(1, {
  '': [0.4, 0.35, 0.25], // step 0: EOS ranks first → finished, score ln .4 = −0.916
  '1': [0.3, 0.6, 0.1], // step 1 ranks: AA .21, B·EOS .125 (kept: −1.040, list full), A·EOS .105 (rank 2: dropped), BA .075
  '2': [0.5, 0.3, 0.2],
  '1,1': [0.9, 0.06, 0.04], // step 2: AA·EOS .189 → −0.555 evicts B·EOS; live BAA .03375, BAB .015
  '2,1': [0.35, 0.45, 0.2],
  '2,1,1': [0.97, 0.02, 0.01], // step 3: BAA·EOS .0327 → −0.855 evicts EOS
}, [0.5, 0.3, 0.2]);

test('early_stopping: true stops when the list is full, false by the heuristic, "never" by the exact bound', async () => {
  const run = async (earlyStopping: boolean | 'never') => {
    const model = new TableLM(3, stopTable);
    const out = await beamSearch(model, [[1]], opts({ numBeams: 2, maxNewTokens: 4, earlyStopping, numReturnSequences: 2 }));
    return { out, calls: model.calls };
  };
  // true: full after step 1 although live AA (ln .21 / 2 = −0.78) beats the worst kept (−1.040).
  const t = await run(true);
  assert.deepEqual(t.out.newTokens, [[0], [2, 0]]);
  assert.ok(close(t.out.sequenceScores[0], Math.log(0.4)) && close(t.out.sequenceScores[1], Math.log(0.125) / 2));
  assert.equal(t.calls, 2);
  // false: after step 2 the best live sum at the current length, ln .03375 / 3 = −1.130, is below the worst −0.916.
  const f = await run(false);
  assert.deepEqual(f.out.newTokens, [[1, 1, 0], [0]]);
  assert.ok(close(f.out.sequenceScores[0], Math.log(0.189) / 3) && close(f.out.sequenceScores[1], Math.log(0.4)));
  assert.equal(f.calls, 3);
  // "never" (length_penalty > 0): bound at max_new_tokens, ln .03375 / 4 = −0.847 > −0.916, so it goes on and finds BAA·EOS.
  const nv = await run('never');
  assert.deepEqual(nv.out.newTokens, [[1, 1, 0], [2, 1, 1, 0]]);
  assert.ok(close(nv.out.sequenceScores[0], Math.log(0.189) / 3) && close(nv.out.sequenceScores[1], Math.log(0.25 * 0.3 * 0.45 * 0.97) / 4));
  assert.equal(nv.calls, 4);
});

test('an EOS candidate ranked ≥ num_beams never enters the list, even when it would win', async () => {
  // length_penalty −1 favours short outputs: [EOS] alone scores ln .11 = −2.207, every 2-token output < −3.6.
  const table = handTable(1, { '': [0.11, 0.45, 0.44] }, [0.3, 0.36, 0.34]);
  const model = new TableLM(3, table);
  const base = { maxNewTokens: 2, lengthPenalty: -1 };
  assert.deepEqual(enumerate(table, [1], 3, [0], 2, -1)[0].tokens, [0]);
  // 2 beams: EOS ranks 2 at the first step → dropped; the two best 2-token paths are cut at the length limit.
  const two = await beamSearch(model, [[1]], opts({ ...base, numBeams: 2, numReturnSequences: 2 }));
  assert.deepEqual(two.newTokens, [[1, 1], [2, 1]]);
  assert.deepEqual(two.finishReason, ['length', 'length']);
  assert.ok(close(two.sequenceScores[0], 2 * Math.log(0.45 * 0.36)) && close(two.sequenceScores[1], 2 * Math.log(0.44 * 0.36)));
  // 3 beams: EOS ranks 2 < 3 → kept, and it wins.
  const three = await beamSearch(model, [[1]], opts({ ...base, numBeams: 3, numReturnSequences: 3 }));
  assert.deepEqual(three.newTokens, [[0], [1, 1], [2, 1]]);
  assert.ok(close(three.sequenceScores[0], Math.log(0.11)));
});

test('rank bonus: steers the ranking, while sequenceScores stay the LM\'s; zero bonus is plain beam search', async () => {
  const model = new TableLM(3, textbook);
  const base = opts({ numBeams: 2, maxNewTokens: 2, lengthPenalty: 0, earlyStopping: true, numReturnSequences: 2, outputScores: true });
  const plain = await beamSearch(model, [[1]], base);
  const zero = await beamSearch(model, [[1]], { ...base, rankBonus: (state) => tf.zeros(state.logits.shape) });
  assert.deepEqual(zero, plain);
  // +3 for token A everywhere: step 1 ranks AA (ln .175 + 3) and BA (ln .02 + 3) above B·EOS (ln .36), both cut at length 2.
  const seen: number[][][] = [];
  const out: BeamSearchOutput = await beamSearch(model, [[1]], {
    ...base,
    rankBonus: (state, rowIds) => {
      seen.push(rowIds.map((r) => r.slice()));
      assert.ok(state.hidden === undefined || state.hidden.shape[0] === rowIds.length);
      return tf.tidy(() => tf.tile(tf.tensor2d([[0, 3, 0]]), [rowIds.length, 1]));
    },
  });
  assert.deepEqual(out.newTokens, [[1, 1], [2, 1]]);
  assert.ok(close(out.sequenceScores[0], Math.log(0.5 * 0.35)) && close(out.sequenceScores[1], Math.log(0.4 * 0.05)));
  assert.ok(close(out.rankScores[0], Math.log(0.5 * 0.35) + 3) && close(out.rankScores[1], Math.log(0.4 * 0.05) + 3));
  assert.ok(close(out.tokenLogprobs![0][1], Math.log(0.35)));
  // rowIds: each row's prompt then its generated tokens (beams A and B at the second step).
  assert.deepEqual(seen, [[[1], [1]], [[1, 1], [1, 2]]]);
});

test('batched prompts of different lengths give exactly what each gives alone; one model call per step', async () => {
  const V = 5;
  const next = randomTable(3, V);
  const prompts = [[1], [2, 3, 4], [3, 1]];
  const o = opts({ numBeams: 3, maxNewTokens: 5, eosTokenIds: [0], earlyStopping: 'never', numReturnSequences: 2, outputScores: true });
  const model = new TableLM(V, next);
  let steps = 0;
  const batched = await beamSearch(model, prompts, { ...o, onStep: (tokens) => { steps++; assert.equal(tokens.length, prompts.length * 3); } });
  // Prefill once, then one single-token step per beam row: the prefix is never recomputed.
  assert.equal(model.calls, steps);
  assert.equal(model.positions, prompts.length * 3 /* B·T, T = 3 */ + (steps - 1) * prompts.length * 3);
  for (const [i, p] of prompts.entries()) {
    const alone = await beamSearch(new TableLM(V, next), [p], o);
    assert.deepEqual(batched.sequences.slice(2 * i, 2 * i + 2), alone.sequences);
    assert.deepEqual(batched.sequenceScores.slice(2 * i, 2 * i + 2), alone.sequenceScores);
    assert.deepEqual(batched.tokenLogprobs!.slice(2 * i, 2 * i + 2), alone.tokenLogprobs);
  }
});

test('bad options name the option; max_new_tokens 0 returns the prompts; no leaked tensors', async () => {
  const model = new TableLM(3, textbook);
  await assert.rejects(beamSearch(model, [[1]], opts({ numBeams: 2, maxNewTokens: 2, numReturnSequences: 3 })), (e: Error) => e instanceof ConfigError && /num_return_sequences/.test(e.message));
  await assert.rejects(beamSearch(model, [[1]], opts({ numBeams: 0, maxNewTokens: 2 })), /num_beams/);
  await assert.rejects(beamSearch(model, [[1]], { ...opts({ numBeams: 2, maxNewTokens: 2 }), earlyStopping: 'sometimes' as never }), /early_stopping/);
  const zero = await beamSearch(model, [[1, 2]], opts({ numBeams: 2, maxNewTokens: 0, numReturnSequences: 2 }));
  assert.deepEqual(zero.sequences, [[1, 2], [1, 2]]);
  const before = tf.memory().numTensors;
  for (let i = 0; i < 2; i++) await beamSearch(model, [[1], [2, 1]], opts({ numBeams: 2, maxNewTokens: 3, outputScores: true }));
  assert.equal(tf.memory().numTensors, before);
});
