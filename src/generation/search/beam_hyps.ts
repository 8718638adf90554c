/**
 * The n-best list of finished hypotheses for one prompt in beam search: HF's `BeamHypotheses`
 * (transformers/generation/beam_search.py, read at 4e7bd11f) and the early-stopping heuristic of the
 * vectorised `_beam_search` (generation/utils.py `_check_early_stop_heuristic`). The list is keyed by a
 * hypothesis' ranking score, which equals HF's length-penalised score unless a rank bonus is in use
 * (beam.ts explains the bonus).
 */
import type { GenerateOutput } from '../types.js';

/** Why a hypothesis ended. */
export type FinishReason = GenerateOutput['finishReason'][number];

/** One finished (or cut) hypothesis. */
export interface Hypothesis {
  /** Generated tokens only (EOS included when it ended on one). */
  tokens: number[];
  /** Sum of the processed log-probabilities of `tokens` (float32 sums, as HF accumulates them). */
  lmSum: number;
  /** HF's `sequence_scores`: lmSum / tokens.length ** length_penalty, rounded to float32. */
  score: number;
  /** What the list compares: `score` plus the rank bonus of the hypothesis' last step (0 without one). */
  rank: number;
  /** Processed log-probability of each token, with output_scores. */
  logprobs?: number[];
  reason: FinishReason;
}

/** HF's finished score: sum_logprobs / generated_len ** length_penalty (float32). An empty output scores 0. */
export function lengthPenalised(lmSum: number, genLen: number, lengthPenalty: number): number {
  if (genLen === 0) return 0;
  return Math.fround(lmSum / genLen ** lengthPenalty);
}

/** A live beam as the stopping rule sees it. */
export interface LiveBeam {
  lmSum: number;
  /** Rank bonus of the beam's last step (0 without one). */
  bonus: number;
}

/** The n-best list of one prompt (capacity num_beams), with HF's eviction and stopping rules. */
export class BeamHypotheses {
  private readonly list: Hypothesis[] = [];

  constructor(
    readonly numBeams: number,
    readonly lengthPenalty: number,
    readonly earlyStopping: boolean | 'never',
    readonly maxNewTokens: number,
  ) {}

  get size(): number {
    return this.list.length;
  }

  /** The lowest ranking score kept (HF's `worst_score`; 1e9 while empty, as HF initialises it). */
  get worst(): number {
    return this.list.length === 0 ? 1e9 : Math.min(...this.list.map((h) => h.rank));
  }

  /**
   * Keep `h` if the list has room or it beats the worst; when the list overflows, the worst goes (on ties,
   * the one added first: HF sorts (score, index) pairs and deletes the first).
   */
  add(h: Hypothesis): boolean {
    if (this.list.length >= this.numBeams && !(h.rank > this.worst)) return false;
    this.list.push(h);
    if (this.list.length > this.numBeams) {
      let lo = 0;
      for (let i = 1; i < this.list.length; i++) if (this.list[i].rank < this.list[lo].rank) lo = i;
      this.list.splice(lo, 1);
    }
    return true;
  }

  /**
   * Whether no live beam can enter the list any more (checked after every step, `genLen` = tokens the live
   * beams now have). Full list required; then early_stopping true stops at once; false compares the worst
   * kept with the best live sum penalised at the current length (a heuristic when length_penalty > 0);
   * "never" with length_penalty > 0 penalises at max_new_tokens instead, the largest length reachable,
   * which is the exact bound. With a rank bonus, a live beam's bound adds its current bonus.
   */
  isDone(live: LiveBeam[], genLen: number): boolean {
    if (this.list.length < this.numBeams) return false;
    if (this.earlyStopping === true) return true;
    const den = this.earlyStopping === 'never' && this.lengthPenalty > 0 ? this.maxNewTokens : genLen;
    let best = -Infinity;
    for (const b of live) best = Math.max(best, b.lmSum / den ** this.lengthPenalty + b.bonus);
    return this.worst >= best;
  }

  /**
   * Best first. Ties go to the later-added hypothesis: HF's finalize sorts ascending (a stable sort) and
   * pops from the end.
   */
  sorted(): Hypothesis[] {
    return this.list.map((h, i) => ({ h, i })).sort((a, b) => (b.h.rank - a.h.rank) || (b.i - a.i)).map((x) => x.h);
  }
}
