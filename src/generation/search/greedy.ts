/**
 * Greedy search, and the token-by-token loop greedy search and sampling share (HF `GenerationMixin._sample`,
 * which serves both): process the scores, pick one token per row, stop rows on EOS / stopping criteria /
 * length, feed finished rows the pad token, and stop when every row is done.
 */
import type * as tf from '@tensorflow/tfjs-core';
import { ConfigError } from '../../errors.js';
import type { CausalLM } from '../../models/types.js';
import { applyProcessors } from '../processors/index.js';
import { advance, disposeState, prefill, type DecoderState } from '../state.js';
import { aborted, eosCriterion, yieldToEventLoop } from '../stopping.js';
import type { GenerateOutput, StrategyOptions } from '../types.js';

/** Picks row `r`'s next token from its processed scores (length V). */
export type TokenPicker = (scores: Float32Array, r: number) => number;

type Reason = GenerateOutput['finishReason'][number];

/** log-softmax of `row` at `token`, in float64. */
export function logProbAt(row: Float32Array, token: number): number {
  let max = -Infinity;
  for (const x of row) if (x > max) max = x;
  let sum = 0;
  for (const x of row) sum += Math.exp(x - max);
  return row[token] - max - Math.log(sum);
}

/** Index of the highest score; the first one on ties (torch.argmax). */
export function argmax(row: Float32Array): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i] > row[best]) best = i;
  return best;
}

/**
 * Decode `prompts` token by token with the cache, choosing each token with `pick`. Returns what exists
 * when the signal fires (finishReason 'abort'); frees every tensor it made, also on error.
 */
export async function decodeLoop(model: CausalLM, prompts: number[][], opts: StrategyOptions, pick: TokenPicker): Promise<GenerateOutput> {
  const N = prompts.length;
  const newTokens: number[][] = prompts.map(() => []);
  const reasons: (Reason | undefined)[] = prompts.map(() => undefined);
  const logprobs: number[][] | undefined = opts.outputScores ? prompts.map(() => []) : undefined;
  const isEos = eosCriterion(opts.eosTokenIds);
  let state: DecoderState | undefined;
  try {
    for (let step = 0; step < opts.maxNewTokens; step++) {
      if (aborted(opts.signal)) break;
      state = state ? advance(model, state, newTokens.map((t) => (t.length < step ? opts.padTokenId : t[step - 1]))) : prefill(model, prompts, opts.padTokenId);
      if (step > 0) await yieldToEventLoop();
      if (aborted(opts.signal)) break;
      const rows = prompts.map((p, i) => [...p, ...newTokens[i]]);
      const scores: tf.Tensor = applyProcessors(opts.processors, rows, state.logits);
      let data: Float32Array;
      try {
        data = (await scores.data()) as Float32Array;
      } finally {
        scores.dispose();
      }
      const V = data.length / N;
      const chosen = prompts.map((_, r) => {
        if (reasons[r]) return -1;
        const row = data.subarray(r * V, (r + 1) * V);
        if (row.every((x) => x === -Infinity)) {
          throw new ConfigError(`generation: every token of row ${r} was banned at step ${step}`, 'loosen bad_words_ids / no_repeat_ngram_size / min_new_tokens, or check your own logits_processor');
        }
        const token = pick(row, r);
        logprobs?.[r].push(logProbAt(row, token));
        return token;
      });
      chosen.forEach((t, r) => { if (t >= 0) newTokens[r].push(t); });
      opts.onStep?.(chosen);
      const live = chosen.map((t) => t >= 0);
      const eos = isEos(rows, newTokens);
      const ids = prompts.map((p, i) => [...p, ...newTokens[i]]);
      const stops = opts.stopping.map((s) => s(ids, newTokens));
      for (let r = 0; r < N; r++) {
        if (!live[r]) continue;
        if (eos[r]) reasons[r] = 'eos';
        else if (stops.some((s) => s[r])) reasons[r] = 'stop';
        else if (newTokens[r].length >= opts.maxNewTokens) reasons[r] = 'length';
      }
      if (reasons.every((x) => x !== undefined)) break;
    }
  } finally {
    if (state) disposeState(state);
  }
  const out: GenerateOutput = {
    sequences: prompts.map((p, i) => [...p, ...newTokens[i]]),
    newTokens,
    finishReason: reasons.map((x) => x ?? (aborted(opts.signal) ? 'abort' : 'length')),
  };
  if (logprobs) out.tokenLogprobs = logprobs;
  return out;
}

/** Greedy search: the most probable token (after the processors) at every step. */
export function greedySearch(model: CausalLM, prompts: number[][], opts: StrategyOptions): Promise<GenerateOutput> {
  return decodeLoop(model, prompts, opts, argmax);
}
