/**
 * Exact mode search against brute-force enumeration of every complete sequence, computed in float64
 * straight from the table (TableLM) or by uncached full forwards (tiny GPT-2) — never by the search.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../backend/index.js';
import { Rng } from '../../backend/rng.js';
import { ConfigError } from '../../errors.js';
import { buildModel, type CausalLM } from '../../models/registry.js';
import { tokenLogProbs } from '../score.js';
import { tidy } from '../../backend/memory.js';
import type { DecoderForwardOptions, DecoderOutput, Ids } from '../../models/types.js';
import { TableLM as LeakyTableLM, logs, type NextFn } from '../../../test/support/table_model.js';
import { emptyModeCheck, exactModeSearch, modesByLength } from './exact.js';

await initBackend();

/** test/support's TableLM leaves its reshape intermediates behind; tidy them so leak counts see only ours. */
class TableLM extends LeakyTableLM {
  override forward(inputIds: Ids, opts: DecoderForwardOptions = {}): DecoderOutput {
    return tidy(() => super.forward(inputIds, opts));
  }
}

interface Cand {
  tokens: number[];
  lp: number;
}

/** Next-token log-probs that are a seeded pseudo-random function of the prefix. */
function randomTable(seed: number, V: number, eos: number[], sharp = 1.5, eosShift = -0.5): NextFn {
  const memo = new Map<string, number[]>();
  return (prefix) => {
    const key = prefix.join(',');
    const hit = memo.get(key);
    if (hit) return hit;
    let h = seed * 7919 + 17;
    for (const t of prefix) h = (Math.imul(h, 31) + t + 1) | 0;
    const rng = new Rng(h);
    const z = Array.from({ length: V }, (_, v) => rng.normal() * sharp + (eos.includes(v) ? eosShift : 0));
    const m = Math.max(...z);
    const lse = m + Math.log(z.reduce((a, x) => a + Math.exp(x - m), 0));
    const lp = z.map((x) => x - lse);
    memo.set(key, lp);
    return lp;
  };
}

/** Every complete output (content of length 0..maxContent over non-EOS tokens, then one EOS), float64. */
function enumerate(next: NextFn, prompt: number[], V: number, eos: number[], maxContent: number): Cand[] {
  const out: Cand[] = [];
  const walk = (content: number[], lp: number): void => {
    const dist = next([...prompt, ...content]);
    for (const e of eos) out.push({ tokens: [...content, e], lp: lp + dist[e] });
    if (content.length === maxContent) return;
    for (let v = 0; v < V; v++) if (!eos.includes(v)) walk([...content, v], lp + dist[v]);
  };
  walk([], 0);
  return out;
}

/** The search found the best candidate (any of the near-tied best when two are within float32 noise). */
function assertIsMode(r: { tokens: number[] | null; logprob: number }, cands: Cand[], what: string): void {
  const sorted = [...cands].sort((a, b) => b.lp - a.lp);
  const best = sorted[0];
  assert.ok(r.tokens, `${what}: no sequence found`);
  const mine = cands.find((c) => c.tokens.join() === (r.tokens as number[]).join());
  assert.ok(mine, `${what}: result ${JSON.stringify(r.tokens)} is not an allowed sequence`);
  assert.ok(Math.abs(r.logprob - mine.lp) < 1e-4, `${what}: reported logprob ${r.logprob} vs true ${mine.lp}`);
  assert.ok(mine.lp >= best.lp - 1e-4, `${what}: found ${JSON.stringify(r.tokens)} (${mine.lp}), best is ${JSON.stringify(best.tokens)} (${best.lp})`);
  if (sorted.length < 2 || best.lp - sorted[1].lp > 1e-4) assert.deepEqual(r.tokens, best.tokens, what);
}

/** Greedy decoding straight from the table (argmax over all tokens, lowest id on ties). */
function greedyFromTable(next: NextFn, prompt: number[], eos: number[], maxNew: number): number[] {
  const out: number[] = [];
  while (out.length < maxNew) {
    const d = next([...prompt, ...out]);
    const v = d.indexOf(Math.max(...d));
    out.push(v);
    if (eos.includes(v)) break;
  }
  return out;
}

const CONFIGS = [
  { V: 3, L: 4, eos: [0] },
  { V: 4, L: 5, eos: [0] },
  { V: 4, L: 4, eos: [0, 3] },
];
const SEEDS = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];
const PROMPT = [1];

async function leakFree<T>(fn: () => Promise<T>): Promise<T> {
  const before = tf.memory().numTensors;
  const r = await fn();
  assert.equal(tf.memory().numTensors, before, 'tensors leaked');
  return r;
}

test('unconditional exact mode equals brute force on random tables (batch sizes 1 and 8)', async () => {
  let nonEmpty = 0;
  let beatsGreedy = 0;
  for (const { V, L, eos } of CONFIGS) {
    for (const seed of SEEDS) {
      const next = randomTable(seed, V, eos);
      const cands = enumerate(next, PROMPT, V, eos, L);
      for (const batchSize of [1, 8]) {
        const r = await leakFree(() => exactModeSearch(new TableLM(V, next), PROMPT, { maxNewTokens: L + 1, eosTokenIds: eos, batchSize }));
        assertIsMode(r, cands, `V=${V} L=${L} seed=${seed} batch=${batchSize}`);
        assert.equal(r.provenOptimal, true);
        assert.equal(r.stopReason, 'done');
        if (batchSize === 1 && r.tokens && r.tokens.length > 1) nonEmpty++;
        if (batchSize === 1 && r.tokens?.join() !== greedyFromTable(next, PROMPT, eos, L + 1).join()) beatsGreedy++;
      }
    }
  }
  // The cases are not all trivial: some modes are non-empty and some differ from greedy decoding.
  assert.ok(nonEmpty > 0, 'every mode was empty');
  assert.ok(beatsGreedy > 0, 'greedy found every mode');
});

test('minNewTokens, exactLength and accept: the constrained mode equals brute force over the allowed set', async () => {
  const accept = (t: number[]): boolean => t.length > 2 && t.slice(0, -1).every((v, i, a) => i === 0 || v !== a[i - 1]);
  for (const { V, L, eos } of CONFIGS) {
    for (const seed of SEEDS) {
      const next = randomTable(seed, V, eos);
      const cands = enumerate(next, PROMPT, V, eos, L);
      const model = new TableLM(V, next);
      const tag = `V=${V} L=${L} seed=${seed}`;
      const rMin = await leakFree(() => exactModeSearch(model, PROMPT, { maxNewTokens: L + 1, eosTokenIds: eos, minNewTokens: 2 }));
      assertIsMode(rMin, cands.filter((c) => c.tokens.length - 1 >= 2), `${tag} minNewTokens=2`);
      for (const len of [0, 3, L]) {
        const rLen = await leakFree(() => exactModeSearch(model, PROMPT, { eosTokenIds: eos, exactLength: len, batchSize: 3 }));
        assertIsMode(rLen, cands.filter((c) => c.tokens.length - 1 === len), `${tag} exactLength=${len}`);
      }
      const rAcc = await leakFree(() => exactModeSearch(model, PROMPT, { maxNewTokens: L + 1, eosTokenIds: eos, accept }));
      assertIsMode(rAcc, cands.filter((c) => accept(c.tokens)), `${tag} accept`);
      assert.ok(rAcc.provenOptimal);
    }
  }
});

test('modesByLength gives the brute-force mode of every length, with minNewTokens leaving short ones null', async () => {
  for (const { V, L, eos } of CONFIGS) {
    for (const seed of SEEDS) {
      const next = randomTable(seed, V, eos);
      const cands = enumerate(next, PROMPT, V, eos, L);
      const r = await leakFree(() => modesByLength(new TableLM(V, next), PROMPT, { maxNewTokens: L + 1, eosTokenIds: eos }));
      assert.equal(r.modes.length, L + 1);
      assert.ok(r.provenOptimal);
      for (let len = 0; len <= L; len++) {
        assertIsMode(r.modes[len] as { tokens: number[]; logprob: number }, cands.filter((c) => c.tokens.length - 1 === len), `V=${V} seed=${seed} length ${len}`);
      }
      const rMin = await leakFree(() => modesByLength(new TableLM(V, next), PROMPT, { maxNewTokens: L + 1, eosTokenIds: eos, minNewTokens: 2 }));
      assert.equal(rMin.modes[0], null);
      assert.equal(rMin.modes[1], null);
      for (let len = 2; len <= L; len++) assert.deepEqual(rMin.modes[len]?.tokens, r.modes[len]?.tokens);
    }
  }
});

/** methods.md §6.5 Demo 2 as a table: p(EOS | start) = 0.3, clean strings of exactly 8 symbols. */
function contaminated(n = 8): NextFn {
  return (prefix) => {
    const d = prefix.length - 1; // the prompt is one token
    if (d === 0) return logs([0.3, 0.42, 0.28]);
    if (d < n) return logs([0, 0.6, 0.4]);
    return logs([1, 0, 0]);
  };
}

test('a contaminated model: the exact mode is empty, greedy is not, and the length-conditional mode is clean', async () => {
  const next = contaminated();
  const model = new TableLM(3, next);
  const clean = [1, 1, 1, 1, 1, 1, 1, 1, 0];
  const cleanLp = Math.log(0.42) + 7 * Math.log(0.6);
  assert.deepEqual(greedyFromTable(next, [2], [0], 12), clean);
  const r = await leakFree(() => exactModeSearch(model, [2], { maxNewTokens: 12, eosTokenIds: [0] }));
  assert.deepEqual(r.tokens, [0]);
  assert.ok(Math.abs(r.logprob - Math.log(0.3)) < 1e-6);
  assert.ok(r.provenOptimal);
  const rLen = await leakFree(() => exactModeSearch(model, [2], { exactLength: 8, eosTokenIds: [0] }));
  assert.deepEqual(rLen.tokens, clean);
  assert.ok(Math.abs(rLen.logprob - cleanLp) < 1e-5);
  const rNonEmpty = await leakFree(() => exactModeSearch(model, [2], { maxNewTokens: 12, eosTokenIds: [0], accept: (t) => t.length > 1 }));
  assert.deepEqual(rNonEmpty.tokens, clean);
  const check = await leakFree(() => emptyModeCheck(model, [2], [0], { maxNewTokens: 12 }));
  assert.equal(check.empty, true);
  assert.ok(check.provenOptimal);
  assert.ok(Math.abs(check.pEmpty - 0.3) < 1e-6);
  assert.deepEqual(check.tokens, [0]);
});

test('emptyModeCheck agrees with brute force on random tables', async () => {
  for (const seed of SEEDS) {
    for (const eosShift of [1, -2]) {
      const next = randomTable(seed, 4, [0, 3], 1.5, eosShift);
      const cands = enumerate(next, PROMPT, 4, [0, 3], 4).sort((a, b) => b.lp - a.lp);
      const r = await leakFree(() => emptyModeCheck(new TableLM(4, next), PROMPT, [0, 3], { maxNewTokens: 5 }));
      assert.equal(r.empty, cands[0].tokens.length === 1, `seed ${seed} shift ${eosShift}`);
      assert.ok(Math.abs(r.pEmpty - (Math.exp(next(PROMPT)[0]) + Math.exp(next(PROMPT)[3]))) < 1e-6);
      assert.ok(Math.abs(r.logprob - cands[0].lp) < 1e-4);
    }
  }
});

test('tiny GPT-2 (V = 6, EOS 0): exact modes equal brute force scored by uncached forwards', async () => {
  for (const seed of [0, 1]) {
    const { model } = buildModel({ model_type: 'gpt2', vocab_size: 6, n_positions: 16, n_embd: 32, n_layer: 2, n_head: 4, initializer_range: 0.5 }, 'causal-lm', seed);
    const lm = model as CausalLM;
    const prompt = [3, 5];
    const cands: Cand[] = [];
    const walk = async (content: number[]): Promise<void> => {
      const seq = [...content, 0];
      const lps = await tokenLogProbs(lm, [...prompt, ...seq]);
      cands.push({ tokens: seq, lp: lps.slice(-seq.length).reduce((a, b) => a + b, 0) });
      if (content.length < 3) for (let v = 1; v < 6; v++) await walk([...content, v]);
    };
    await walk([]);
    assert.equal(cands.length, 1 + 5 + 25 + 125);
    const r = await leakFree(() => exactModeSearch(lm, prompt, { maxNewTokens: 4, eosTokenIds: [0] }));
    assertIsMode(r, cands, `gpt2 seed ${seed}`);
    for (const len of [1, 2, 3]) {
      const rl = await leakFree(() => exactModeSearch(lm, prompt, { exactLength: len, eosTokenIds: [0] }));
      assertIsMode(rl, cands.filter((c) => c.tokens.length - 1 === len), `gpt2 seed ${seed} exactLength ${len}`);
    }
    const rMin = await leakFree(() => exactModeSearch(lm, prompt, { maxNewTokens: 4, eosTokenIds: [0], minNewTokens: 2 }));
    assertIsMode(rMin, cands.filter((c) => c.tokens.length - 1 >= 2), `gpt2 seed ${seed} minNewTokens 2`);
    const byLen = await leakFree(() => modesByLength(lm, prompt, { maxNewTokens: 4, eosTokenIds: [0] }));
    for (let len = 0; len <= 3; len++) assertIsMode(byLen.modes[len] as { tokens: number[]; logprob: number }, cands.filter((c) => c.tokens.length - 1 === len), `gpt2 byLength ${len}`);
  }
});

test('near ties are decided exactly: the bound has no slack', async () => {
  // Complete outputs: [0] .30, [1,0] .324 (greedy's, found first), [1,1,0] .036, [2,0] and [2,1,0] .0068,
  // [2,2,0] .3264 — the mode, only 0.0074 nats above greedy's output.
  const table: Record<string, number[]> = { '1': [0.3, 0.36, 0.34], '1,1': [0.9, 0.1, 0], '1,2': [0.02, 0.02, 0.96] };
  const model = new TableLM(3, (p) => logs(table[p.join()] ?? [1, 0, 0]));
  const r = await leakFree(() => exactModeSearch(model, [1], { maxNewTokens: 4, eosTokenIds: [0] }));
  assert.deepEqual([r.tokens, r.provenOptimal], [[2, 2, 0], true]);
  assert.ok(Math.abs(r.logprob - Math.log(0.3264)) < 1e-6);
  const byLen = await leakFree(() => modesByLength(model, [1], { maxNewTokens: 3, eosTokenIds: [0] }));
  assert.deepEqual(byLen.modes.map((m) => m?.tokens), [[0], [1, 0], [2, 2, 0]]);
});

test('pruning: on a peaked table far fewer nodes are expanded than there are prefixes', async () => {
  const V = 4;
  const L = 6;
  const next = randomTable(11, V, [0], 4, 0);
  const prefixes = Array.from({ length: L + 1 }, (_, d) => 3 ** d).reduce((a, b) => a + b, 0);
  const r = await leakFree(() => exactModeSearch(new TableLM(V, next), PROMPT, { maxNewTokens: L + 1, eosTokenIds: [0] }));
  assertIsMode(r, enumerate(next, PROMPT, V, [0], L), 'peaked');
  assert.ok(r.nodesExpanded < prefixes / 4, `${r.nodesExpanded} expansions of ${prefixes} prefixes`);
});

test('budgets, initial sequence and initial bound: honest provenOptimal', async () => {
  const V = 4;
  const L = 5;
  const next = randomTable(3, V, [0], 1.5, -1.5);
  const cands = enumerate(next, PROMPT, V, [0], L).sort((a, b) => b.lp - a.lp);
  const model = new TableLM(V, next);
  const opts = { maxNewTokens: L + 1, eosTokenIds: [0] };
  const full = await exactModeSearch(model, PROMPT, opts);
  assert.ok(full.nodesExpanded > 3);
  const cut = await leakFree(() => exactModeSearch(model, PROMPT, { ...opts, budget: { nodes: 3 } }));
  assert.equal(cut.provenOptimal, false);
  assert.equal(cut.stopReason, 'budget');
  assert.equal(cut.nodesExpanded, 3);
  const valid = cands.find((c) => c.tokens.join() === cut.tokens?.join());
  assert.ok(valid, 'budget result is a complete sequence');
  assert.ok(Math.abs(valid.lp - cut.logprob) < 1e-4);
  const none = await leakFree(() => exactModeSearch(model, PROMPT, { ...opts, budget: { ms: 0 } }));
  assert.deepEqual([none.tokens, none.provenOptimal, none.nodesExpanded], [null, false, 0]);
  const second = cands[1];
  const fromInit = await leakFree(() => exactModeSearch(model, PROMPT, { ...opts, initial: second.tokens, budget: { ms: 0 } }));
  assert.deepEqual(fromInit.tokens, second.tokens);
  assert.ok(Math.abs(fromInit.logprob - second.lp) < 1e-4);
  const improved = await leakFree(() => exactModeSearch(model, PROMPT, { ...opts, initial: second.tokens }));
  assertIsMode(improved, cands, 'from initial');
  assert.ok(improved.nodesExpanded <= full.nodesExpanded);
  const above = await leakFree(() => exactModeSearch(model, PROMPT, { ...opts, initialBound: cands[0].lp + 0.01 }));
  assert.deepEqual([above.tokens, above.logprob, above.provenOptimal], [null, -Infinity, true]);
  const below = await leakFree(() => exactModeSearch(model, PROMPT, { ...opts, initialBound: cands[0].lp - 0.01 }));
  assertIsMode(below, cands, 'initialBound below the mode');
  assert.ok(below.nodesExpanded <= full.nodesExpanded);
});

test('abort, throwing models and throwing accept leave no tensors; bad options are ConfigErrors', async () => {
  const V = 4;
  const next = randomTable(5, V, [0], 0.3, -3);
  const opts = { maxNewTokens: 7, eosTokenIds: [0] };
  const pre = new AbortController();
  pre.abort();
  const r0 = await leakFree(() => exactModeSearch(new TableLM(V, next), PROMPT, { ...opts, signal: pre.signal }));
  assert.deepEqual([r0.stopReason, r0.provenOptimal, r0.nodesExpanded], ['abort', false, 0]);
  const mid = new AbortController();
  let calls = 0;
  const aborting = new TableLM(V, (p) => {
    if (++calls === 40) mid.abort();
    return next(p);
  });
  const r1 = await leakFree(() => exactModeSearch(aborting, PROMPT, { ...opts, signal: mid.signal }));
  assert.equal(r1.stopReason, 'abort');
  assert.equal(r1.provenOptimal, false);
  assert.ok(r1.tokens && r1.tokens[r1.tokens.length - 1] === 0);
  let n = 0;
  const failing = new TableLM(V, (p) => {
    if (++n === 30) throw new Error('table broke');
    return next(p);
  });
  const before = tf.memory().numTensors;
  await assert.rejects(exactModeSearch(failing, PROMPT, opts), /table broke/);
  await assert.rejects(modesByLength(new TableLM(V, next), PROMPT, { ...opts, accept: (t) => { if (t.length > 3) throw new Error('judge broke'); return true; } }), /judge broke/);
  assert.equal(tf.memory().numTensors, before, 'tensors leaked on throw');
  const m = new TableLM(V, next);
  await assert.rejects(exactModeSearch(m, PROMPT, { maxNewTokens: 4, eosTokenIds: [] }), ConfigError);
  await assert.rejects(exactModeSearch(m, PROMPT, { maxNewTokens: 4, eosTokenIds: [9] }), ConfigError);
  await assert.rejects(exactModeSearch(m, PROMPT, { maxNewTokens: 4, eosTokenIds: [0], exactLength: 4 }), /exactLength 4 needs maxNewTokens >= 5/);
  await assert.rejects(exactModeSearch(m, PROMPT, { maxNewTokens: 4, eosTokenIds: [0], initial: [1, 2] }), /does not end with an EOS/);
  await assert.rejects(exactModeSearch(m, PROMPT, { maxNewTokens: 4, eosTokenIds: [0], minNewTokens: 2, initial: [1, 0] }), /length 1 is not allowed/);
  assert.equal(tf.memory().numTensors, before);
});
