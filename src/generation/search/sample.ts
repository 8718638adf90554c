/**
 * Multinomial sampling (HF `GenerationMixin._sample` with do_sample=True): each row draws its next token
 * from the softmax of its processed scores by inverse CDF, with a seeded stream per row, so one seed gives
 * the same text run after run, and a row's draws do not depend on the rows after it.
 */
import { Rng } from '../../backend/rng.js';
import type { CausalLM } from '../../models/types.js';
import { softmaxRow } from '../processors/rows.js';
import type { GenerateOutput, StrategyOptions } from '../types.js';
import { decodeLoop } from './greedy.js';

/** Sampling options: a seed (default 0) or a stream of your own. */
export interface SampleOptions extends StrategyOptions {
  seed?: number;
  /** Parent stream; row r draws from its r-th `split()`. Overrides `seed`. */
  rng?: Rng;
}

/** Draw an index from the distribution given by `scores` (logits), using one uniform number `u` in [0, 1). */
export function drawFromScores(scores: Float32Array, u: number): number {
  const probs = softmaxRow(scores);
  let cum = 0;
  let last = -1;
  for (let i = 0; i < probs.length; i++) {
    if (probs[i] <= 0) continue;
    cum += probs[i];
    last = i;
    if (u < cum) return i;
  }
  // Rounding left the total a hair below u: the last token with mass takes it.
  return last;
}

/** Sample each row's continuation. */
export function sample(model: CausalLM, prompts: number[][], opts: SampleOptions): Promise<GenerateOutput> {
  const root = opts.rng ?? new Rng(opts.seed ?? 0);
  const streams = prompts.map(() => root.split());
  return decodeLoop(model, prompts, opts, (row, r) => drawFromScores(row, streams[r].random()));
}
