/**
 * Exact mode search (methods.md §5.2; Stahlberg & Byrne 2019, Yoshida, Goyal & Gimpel 2024): the most
 * probable complete sequence argmax_y log p(y | x), and its conditional variants — minimum length, exact
 * length, "any constraint on the output", one mode per length, and the empty-mode check.
 *
 * Scores are the model's own log-probabilities: the length rules restrict which sequences count, they do
 * not renormalise (unlike HF's min_new_tokens processor). So the result is the mode of p(y | x, A) for the
 * event A, i.e. the constrained argmax of p(y | x) (methods.md §6.3). No logits processors are applied.
 *
 * Tokens: results list the generated tokens with the EOS that ends them, as GenerateOutput.newTokens does;
 * the empty output is `[eos]`. `maxNewTokens` counts that EOS, as in HF.
 */
import * as tf from '@tensorflow/tfjs-core';
import { ConfigError, ShapeError } from '../../errors.js';
import type { CausalLM } from '../../models/types.js';
import { tokenLogProbs } from '../score.js';
import { branchAndBound, type SearchBudget, type SearchControl, type SearchRules, type StopReason } from './branch_bound.js';

export type { SearchBudget, StopReason } from './branch_bound.js';

/** Options of exactModeSearch. */
export interface ExactOptions {
  /** Most tokens generated, EOS included (so content ≤ maxNewTokens − 1). Defaults to exactLength + 1. */
  maxNewTokens?: number;
  /** Any of these ends a sequence (at least one). */
  eosTokenIds: number[];
  /** EOS is not allowed before this many content tokens (the Stahlberg & Byrne minimum-length mode). */
  minNewTokens?: number;
  /** Length-conditional mode: EOS allowed only after exactly this many content tokens. */
  exactLength?: number;
  /** Only complete outputs (EOS included) it accepts can be the result: the mode conditioned on it. */
  accept?: (tokens: number[]) => boolean;
  /** γ0: return only sequences scoring strictly above it (null tokens when none does). */
  initialBound?: number;
  /**
   * A complete sequence (EOS included, e.g. a beam-search output) that starts as the incumbent. Without
   * one, the search's first dive follows the greedy path, so it starts from a bound at least as tight as
   * greedy decoding's without a separate greedy pass.
   */
  initial?: number[];
  /** Node and time limits; when one runs out the best so far is returned with provenOptimal false. */
  budget?: SearchBudget;
  /** Siblings scored in one batched forward (default 8). */
  batchSize?: number;
  /** Aborting stops within one node; the best so far is returned with stopReason 'abort'. */
  signal?: AbortSignal;
}

/** Result of exactModeSearch. */
export interface ExactResult {
  /** The best complete sequence found (generated tokens, EOS last), or null when none beat the bound. */
  tokens: number[] | null;
  /** Its log p(tokens | prompt) (float64 sum of float32 log-softmax terms); −Infinity when tokens is null. */
  logprob: number;
  /** True when the search finished: no sequence allowed by the options scores higher. */
  provenOptimal: boolean;
  stopReason: StopReason;
  nodesExpanded: number;
  ms: number;
}

/** Options of modesByLength (the length rules come from `maxNewTokens` and `minNewTokens`). */
export type ByLengthOptions = Omit<ExactOptions, 'exactLength' | 'initialBound' | 'initial'>;

/** One mode per content length 0..maxNewTokens − 1. */
export interface ByLengthResult {
  /** modes[ℓ]: the best complete sequence with ℓ content tokens (null below minNewTokens or when none exists). */
  modes: ({ tokens: number[]; logprob: number } | null)[];
  /** True when every entry is proven optimal for its length. */
  provenOptimal: boolean;
  stopReason: StopReason;
  nodesExpanded: number;
  ms: number;
}

/** Options of emptyModeCheck. */
export type EmptyCheckOptions = Pick<ExactOptions, 'maxNewTokens' | 'budget' | 'batchSize' | 'signal'>;

/** Result of emptyModeCheck. */
export interface EmptyModeResult {
  /** Is the best sequence found the empty output? (proven only when provenOptimal) */
  empty: boolean;
  /** Probability of the empty output, Σ over EOS ids of p(eos | prompt). */
  pEmpty: number;
  /** The mode found (`[eos]` when empty) and its log-probability. */
  tokens: number[];
  logprob: number;
  provenOptimal: boolean;
  stopReason: StopReason;
  nodesExpanded: number;
  ms: number;
}

function isCount(v: unknown, min: number): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= min;
}

/** Validate the options and derive the length rules (content lengths at which EOS may come). */
function rulesFor(model: CausalLM, prompt: number[], opts: ExactOptions): SearchRules {
  const { vocab, maxPositions } = model.dims();
  if (prompt.length === 0) throw new ShapeError('exact search: the prompt has no tokens', 'start it with the BOS token');
  const eos = opts.eosTokenIds;
  if (!Array.isArray(eos) || eos.length === 0) throw new ConfigError('exact search: eosTokenIds is empty', 'pass the model\'s eos_token_id(s); a complete sequence must end in one');
  const badEos = eos.filter((e) => !isCount(e, 0) || e >= vocab);
  if (badEos.length > 0) throw new ConfigError(`exact search: eosTokenIds ${JSON.stringify(badEos)} are not token ids of a vocabulary of ${vocab}`, `use ids in 0..${vocab - 1}`);
  const L = opts.exactLength;
  if (L !== undefined && !isCount(L, 0)) throw new ConfigError(`exact search: exactLength must be an integer >= 0, got ${L}`);
  const maxNew = opts.maxNewTokens ?? (L !== undefined ? L + 1 : undefined);
  if (!isCount(maxNew, 1)) throw new ConfigError(`exact search: maxNewTokens must be an integer >= 1, got ${maxNew}`, 'a length bound is required (or give exactLength)');
  if (L !== undefined && L + 1 > maxNew) throw new ConfigError(`exact search: exactLength ${L} needs maxNewTokens >= ${L + 1} (the EOS counts), got ${maxNew}`, 'raise maxNewTokens or omit it');
  const minNew = opts.minNewTokens ?? 0;
  if (!isCount(minNew, 0) || minNew > maxNew - 1) throw new ConfigError(`exact search: minNewTokens must be an integer in 0..${maxNew - 1} (maxNewTokens − 1), got ${minNew}`);
  if (L !== undefined && minNew > L) throw new ConfigError(`exact search: minNewTokens ${minNew} exceeds exactLength ${L}: no sequence is allowed`);
  if (prompt.length + maxNew - 1 > maxPositions) {
    throw new ConfigError(`exact search: a ${prompt.length}-token prompt plus maxNewTokens ${maxNew} exceeds the model's context of ${maxPositions}`, `use maxNewTokens <= ${maxPositions - prompt.length + 1}`);
  }
  const bs = opts.batchSize;
  if (bs !== undefined && !isCount(bs, 1)) throw new ConfigError(`exact search: batchSize must be an integer >= 1, got ${bs}`);
  for (const k of ['nodes', 'ms'] as const) {
    const v = opts.budget?.[k];
    if (v !== undefined && !(typeof v === 'number' && v >= 0)) throw new ConfigError(`exact search: budget.${k} must be a number >= 0, got ${v}`);
  }
  const maxDepth = L ?? maxNew - 1;
  return {
    maxDepth,
    eosTokenIds: eos.slice(),
    eosAllowed: (d) => d >= minNew && (L === undefined || d === L),
    accept: opts.accept,
  };
}

function control(opts: ExactOptions): SearchControl {
  return { batchSize: opts.batchSize, budget: opts.budget, signal: opts.signal };
}

/** log p(seq | prompt) by one uncached forward (for a supplied initial sequence). */
async function scoreSequence(model: CausalLM, prompt: number[], seq: number[]): Promise<number> {
  const lps = await tokenLogProbs(model, [...prompt, ...seq]);
  return lps.slice(lps.length - seq.length).reduce((a, b) => a + b, 0);
}

/** Is `seq` a complete sequence the rules allow? (its content, its single final EOS, its length) */
function checkInitial(seq: number[], rules: SearchRules): void {
  const eos = new Set(rules.eosTokenIds);
  const depth = seq.length - 1;
  const problem = seq.length === 0 || !eos.has(seq[depth]) ? 'it does not end with an EOS id'
    : seq.slice(0, depth).some((t) => eos.has(t)) ? 'it has an EOS before its end'
    : depth > rules.maxDepth || !rules.eosAllowed(depth) ? `its length ${depth} is not allowed by maxNewTokens/minNewTokens/exactLength`
    : rules.accept && !rules.accept(seq) ? 'accept() rejects it' : null;
  if (problem) throw new ConfigError(`exact search: initial sequence ${JSON.stringify(seq)} is not a valid output: ${problem}`, 'pass a complete output (generated tokens ending in EOS) that satisfies the options, or omit it');
}

/** The most probable complete sequence (ending in EOS) under the options, by depth-first branch-and-bound. */
export async function exactModeSearch(model: CausalLM, prompt: number[], opts: ExactOptions): Promise<ExactResult> {
  const rules = rulesFor(model, prompt, opts);
  let gamma = opts.initialBound ?? -Infinity;
  let best: { tokens: number[]; logprob: number } | null = null;
  if (opts.initial) {
    checkInitial(opts.initial, rules);
    const lp = await scoreSequence(model, prompt, opts.initial);
    if (lp > gamma) {
      gamma = lp;
      best = { tokens: opts.initial.slice(), logprob: lp };
    }
  }
  const bounds = {
    bound: () => gamma,
    beats: (_d: number, logprob: number) => logprob > gamma,
    offer: (_d: number, logprob: number, tokens: number[]) => {
      gamma = logprob;
      best = { tokens, logprob };
    },
  };
  const stats = await branchAndBound(model, prompt, rules, bounds, control(opts));
  const found = best as { tokens: number[]; logprob: number } | null;
  return { tokens: found?.tokens ?? null, logprob: found?.logprob ?? -Infinity, ...stats };
}

/**
 * The mode of every content length 0..maxNewTokens − 1 in one search: γ[ℓ] per length, an EOS at depth t
 * updates γ[t], and a prefix at depth t survives while it beats min_{ℓ ≥ t} γ[ℓ] (methods.md §5.2).
 */
export async function modesByLength(model: CausalLM, prompt: number[], opts: ByLengthOptions): Promise<ByLengthResult> {
  const rules = rulesFor(model, prompt, opts);
  const minNew = opts.minNewTokens ?? 0;
  const Lmax = rules.maxDepth;
  const gamma = Array.from({ length: Lmax + 1 }, (_, l) => (l < minNew ? Infinity : -Infinity));
  const modes: ByLengthResult['modes'] = gamma.map(() => null);
  const bounds = {
    bound: (d: number) => {
      let m = Infinity;
      for (let l = d; l <= Lmax; l++) if (gamma[l] < m) m = gamma[l];
      return m;
    },
    beats: (d: number, logprob: number) => logprob > gamma[d],
    offer: (d: number, logprob: number, tokens: number[]) => {
      gamma[d] = logprob;
      modes[d] = { tokens, logprob };
    },
  };
  const stats = await branchAndBound(model, prompt, rules, bounds, control(opts));
  return { modes, ...stats };
}

/**
 * Is the mode the empty output? Starts from γ0 = log p(EOS | prompt) (the best EOS id) and searches for
 * anything better (methods.md §5.2's cheap diagnostic); the tight start usually makes this fast.
 * `maxNewTokens` defaults to 200 (where the paper's evaluations stopped) or what the context allows.
 */
export async function emptyModeCheck(model: CausalLM, prompt: number[], eosTokenIds: number[], opts: EmptyCheckOptions = {}): Promise<EmptyModeResult> {
  const maxNewTokens = opts.maxNewTokens ?? Math.max(1, Math.min(200, model.dims().maxPositions - prompt.length + 1));
  rulesFor(model, prompt, { ...opts, maxNewTokens, eosTokenIds });
  const first = await nextLogProbs(model, prompt);
  let e0 = eosTokenIds[0];
  for (const e of eosTokenIds) if (first[e] > first[e0]) e0 = e;
  const pEmpty = eosTokenIds.reduce((a, e) => a + Math.exp(first[e]), 0);
  const found = await exactModeSearch(model, prompt, { ...opts, maxNewTokens, eosTokenIds, initialBound: first[e0] });
  const { stopReason, provenOptimal, nodesExpanded, ms } = found;
  if (found.tokens === null) return { empty: true, pEmpty, tokens: [e0], logprob: first[e0], provenOptimal, stopReason, nodesExpanded, ms };
  return { empty: found.tokens.length === 1, pEmpty, tokens: found.tokens, logprob: found.logprob, provenOptimal, stopReason, nodesExpanded, ms };
}

/** log p(· | prompt) for the first generated token, as float64 numbers. */
async function nextLogProbs(model: CausalLM, prompt: number[]): Promise<number[]> {
  const lp = tf.tidy(() => {
    const out = model.forward([prompt], { logitsToKeep: 1 });
    return tf.logSoftmax(out.logits.slice([0, (out.logits.shape[1] as number) - 1, 0], [1, 1, -1]).reshape([-1]));
  });
  try {
    return Array.from(await lp.data());
  } finally {
    lp.dispose();
  }
}
