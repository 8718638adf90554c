/**
 * The thesis's point that high likelihood is not quality, made runnable: decode the same prompts with
 * greedy search, beam search at several widths, ancestral sampling, the exact mode, and (given an
 * attribute classifier) conditional beam search, and report each strategy's empty share, repetition,
 * length and log-probability (analysis.ts). Every log-probability is the raw model's, before processors.
 */
import { degeneracyStats, type DegeneracyStats, type ScoredOutput } from './analysis.js';
import type { AttributeScorer } from './conditional/classifier.js';
import { generate } from './generate.js';
import { exactModeSearch } from './search/exact.js';
import type { CausalLM } from '../models/types.js';

/** Which strategies to compare. */
export interface DegeneracyOptions {
  maxNewTokens: number;
  eosTokenIds: number[];
  padTokenId?: number;
  /** Beam widths to try (default [2, 4, 8]). */
  beams?: number[];
  /** Ancestral samples per prompt (temperature 1, no truncation; default 4; 0 skips). */
  samples?: number;
  seed?: number;
  /** Exact mode search per prompt, with this budget (omit to skip). */
  exact?: { nodes?: number; ms?: number };
  /** Conditional beam search with this classifier (omit to skip). */
  conditional?: { classifier: AttributeScorer; weight?: number; numBeams?: number };
  /** n of the repeated-n-gram rate (default 4). */
  n?: number;
  signal?: AbortSignal;
  /** Called as each strategy finishes. */
  onStrategy?: (name: string) => void;
}

/** One strategy's outputs and statistics. */
export interface DegeneracyRow {
  name: string;
  stats: DegeneracyStats;
  outputs: ScoredOutput[];
  /** Exact search only: prompts whose mode was proven. */
  proven?: number;
}

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

/** Run every strategy over the prompts (token ids) and collect degeneracy statistics. */
export async function degeneracyReport(model: CausalLM, prompts: number[][], o: DegeneracyOptions): Promise<DegeneracyRow[]> {
  const base = { max_new_tokens: o.maxNewTokens, eos_token_id: o.eosTokenIds, pad_token_id: o.padTokenId ?? o.eosTokenIds[0], output_scores: true, signal: o.signal };
  const rows: DegeneracyRow[] = [];
  const add = (name: string, outputs: ScoredOutput[], proven?: number) => {
    rows.push({ name, stats: degeneracyStats(outputs, { n: o.n, eosTokenIds: o.eosTokenIds }), outputs, ...(proven === undefined ? {} : { proven }) });
    o.onStrategy?.(name);
  };
  const scored = (r: { newTokens: number[][]; tokenLogprobs?: number[][] }) => r.newTokens.map((tokens, i) => ({ tokens, logprob: sum(r.tokenLogprobs![i]) }));

  add('greedy', scored(await generate(model, prompts, base)));
  for (const k of o.beams ?? [2, 4, 8]) add(`beam ${k}`, scored(await generate(model, prompts, { ...base, num_beams: k })));
  const samples = o.samples ?? 4;
  if (samples > 0) add(`sampling ×${samples}`, scored(await generate(model, prompts, { ...base, do_sample: true, top_k: 0, num_return_sequences: samples, seed: o.seed ?? 0 })));
  if (o.exact) {
    const outs: ScoredOutput[] = [];
    let proven = 0;
    for (const p of prompts) {
      const r = await exactModeSearch(model, p, { eosTokenIds: o.eosTokenIds, maxNewTokens: o.maxNewTokens, budget: o.exact, signal: o.signal });
      if (r.provenOptimal) proven++;
      if (r.tokens) outs.push({ tokens: r.tokens, logprob: r.logprob });
    }
    add('exact mode', outs, proven);
  }
  if (o.conditional) {
    const k = o.conditional.numBeams ?? 4;
    const r = await generate(model, prompts, { ...base, num_beams: k, conditional: { classifier: o.conditional.classifier, weight: o.conditional.weight } });
    add(`conditional beam ${k}`, scored(r));
  }
  return rows;
}
