/**
 * Beam search with Hugging Face's semantics: the vectorised `GenerationMixin._beam_search` of
 * transformers/generation/utils.py (the 2025 refactor, HF PR #35802, with its sticky early-stop flag), which
 * replaced `BeamSearchScorer` / `BeamHypotheses` (generation/beam_search.py, read at 4e7bd11f); methods.md §7.2.
 *
 * Per step: log_softmax(logits) → processors (on log-probs) → + each beam's running sum (float32) → the top
 * max(2, 1 + n_eos)·num_beams candidates over [num_beams·V] per prompt. A candidate that ends (EOS, a
 * stopping criterion, or max_new_tokens reached) enters the prompt's n-best list only if its rank is
 * < num_beams; the first num_beams candidates that do not end become the next beams, and the cache is
 * reordered by a gather (selectRows), never recomputed. Only beam 0 is live at the first step (the others
 * start at −1e9). Finished score = sum_logprobs / generated_len ** length_penalty, generated_len counting
 * the new tokens with the EOS. Stopping rules: beam_hyps.ts.
 *
 * Rank bonus (attribute-conditional beam search, methods.md §5.3): an optional [N, V] term b(z, v) added to
 * each candidate's ranking score — never to its LM log-probability, which alone is accumulated, reported as
 * `sequenceScores` and returned per token. A live candidate ranks by lmSum(z) + lp(v|z) + b(z, v), where the
 * bonus is the current step's (not summed over steps). A finished hypothesis ranks by
 * lmSum / generated_len ** length_penalty + b(z, v) at its last step — the length penalty applies to the LM
 * part only — and that is what the n-best list compares, evicts by and sorts by (`rankScores`). The
 * early-stopping bound of a live beam is likewise its penalised sum plus its current bonus. Without a bonus
 * every one of these is exactly HF's.
 *
 * Where HF versions differ we follow the current one: the early-stopping bound uses the best live beam (the
 * scorer used the best of all candidates, EOS ones included); at max_new_tokens only the top num_beams
 * candidates join the list (the scorer's finalize added the num_beams live beams, which could rank lower);
 * an EOS hypothesis keeps the EOS it ended on (the scorer re-appended eos_token_id[0]). Scorers from before
 * `decoder_prompt_len` (2023) divided by the prompt + generated length without the EOS.
 */
import * as tf from '@tensorflow/tfjs-core';
import { tidy } from '../../backend/memory.js';
import { ConfigError, ShapeError } from '../../errors.js';
import type { CausalLM } from '../../models/types.js';
import { applyProcessors } from '../processors/index.js';
import { advance, disposeState, prefill, selectRows, type DecoderState } from '../state.js';
import { aborted, yieldToEventLoop } from '../stopping.js';
import type { GenerateOutput, StrategyOptions } from '../types.js';
import { BeamHypotheses, lengthPenalised, type FinishReason, type Hypothesis } from './beam_hyps.js';

/**
 * Extra ranking term for every row and next token: [N, V] (N = prompts · num_beams, rows grouped by prompt:
 * prompt i owns rows i·num_beams …), or undefined for none this step. `rowIds[r]` holds row r's real tokens
 * so far (its prompt without padding, then the generated ones); `state.hidden` holds the rows' last hidden
 * states unless `keepHidden` is false. The search disposes the returned tensor.
 */
export type RankBonus = (state: DecoderState, rowIds: number[][]) => tf.Tensor | undefined;

/** Beam-search options (HF names: num_beams, length_penalty, early_stopping, num_return_sequences). */
export interface BeamOptions extends StrategyOptions {
  numBeams: number;
  lengthPenalty: number;
  earlyStopping: boolean | 'never';
  numReturnSequences: number;
  rankBonus?: RankBonus;
  /** Keep each row's last hidden state in `state.hidden` for the rank bonus (default: when `rankBonus` is set). */
  keepHidden?: boolean;
}

/** Beam-search output: `sequenceScores` always, and the ranking scores the n-best list compared. */
export interface BeamSearchOutput extends GenerateOutput {
  sequenceScores: number[];
  /** Equal to `sequenceScores` without a rank bonus. */
  rankScores: number[];
}

/** HF's initial score of the beams that are not live at the first step. */
const DEAD = -1e9;

interface Beam {
  tokens: number[];
  lmSum: number;
  bonus: number;
  logprobs?: number[];
}

/** One of a prompt's top candidates after a step. */
interface Cand {
  src: number;
  token: number;
  lmSum: number;
  bonus: number;
  logprob: number;
}

function validate(opts: BeamOptions): void {
  const int = (v: number, min: number) => Number.isInteger(v) && v >= min;
  if (!int(opts.numBeams, 1)) throw new ConfigError(`num_beams must be an integer ≥ 1, found ${opts.numBeams}`);
  if (!int(opts.numReturnSequences, 1) || opts.numReturnSequences > opts.numBeams) {
    throw new ConfigError(`num_return_sequences must be an integer in [1, num_beams = ${opts.numBeams}], found ${opts.numReturnSequences}`,
      'beam search returns at most num_beams hypotheses per prompt: raise num_beams or lower num_return_sequences');
  }
  if (!Number.isFinite(opts.lengthPenalty)) throw new ConfigError(`length_penalty must be a finite number, found ${opts.lengthPenalty}`);
  if (opts.earlyStopping !== true && opts.earlyStopping !== false && opts.earlyStopping !== 'never') {
    throw new ConfigError(`early_stopping must be true, false or "never", found ${JSON.stringify(opts.earlyStopping)}`);
  }
  if (!int(opts.maxNewTokens, 0)) throw new ConfigError(`max_new_tokens must be an integer ≥ 0, found ${opts.maxNewTokens}`);
}

/** Scores of one step: top candidates per prompt, read back to the host. Frees everything it makes. */
async function topCandidates(state: DecoderState, beams: Beam[][], opts: BeamOptions, kTop: number): Promise<Cand[][]> {
  const B = beams.length;
  const K = opts.numBeams;
  const V = state.logits.shape[1] as number;
  const rows = beams.flat();
  const bonus = opts.rankBonus?.(state, state.ids);
  try {
    if (bonus && (bonus.rank !== 2 || bonus.shape[0] !== B * K || bonus.shape[1] !== V)) {
      throw new ShapeError(`beam search: rank bonus has shape [${bonus.shape.join(', ')}], expected [${B * K}, ${V}] (rows × vocabulary)`);
    }
    const t = tidy(() => {
      const processed = applyProcessors(opts.processors, state.ids, tf.logSoftmax(state.logits));
      // float32 running sums, as HF adds them; −1e9 + lp stays −1e9 for the dead beams.
      const acc = tf.add(processed, tf.tensor2d(rows.map((b) => b.lmSum), [B * K, 1]));
      const rank = bonus ? tf.add(acc, bonus) : acc;
      const { values, indices } = tf.topk(tf.reshape(rank, [B, K * V]), kTop);
      // Flat indices: tfjs-backend-wasm's gather with batchDims = 1 returns wrong rows (seen in 4.x).
      const flat = tf.add(indices, tf.mul(tf.range(0, B, 1, 'int32'), tf.scalar(K * V, 'int32')).expandDims(1));
      const pick = (x: tf.Tensor) => tf.gather(tf.reshape(x, [-1]), flat);
      return { values, indices, lm: bonus ? pick(acc) : undefined, bonus: bonus ? pick(bonus) : undefined, lp: opts.outputScores ? pick(processed) : undefined };
    });
    try {
      const [values, indices, lm, bn, lp] = await Promise.all([t.values.data(), t.indices.data(), t.lm?.data(), t.bonus?.data(), t.lp?.data()]);
      return beams.map((_, b) => Array.from({ length: kTop }, (_, j) => {
        const i = b * kTop + j;
        const lmSum = lm ? lm[i] : values[i];
        return { src: Math.floor(indices[i] / V), token: indices[i] % V, lmSum, bonus: bn ? bn[i] : 0, logprob: lp ? lp[i] : NaN };
      }));
    } finally {
      tf.dispose([t.values, t.indices, t.lm, t.bonus, t.lp].filter((x): x is tf.Tensor => x !== undefined));
    }
  } finally {
    bonus?.dispose();
  }
}

/** Which candidates a stopping criterion ends (evaluated on the candidate sequences, as HF does). */
function stoppedBy(opts: BeamOptions, state: DecoderState, beams: Beam[][], cands: Cand[][], active: boolean[]): boolean[][] {
  const hit = cands.map((c) => c.map(() => false));
  if (opts.stopping.length === 0) return hit;
  const K = opts.numBeams;
  const where: [number, number][] = [];
  const ids: number[][] = [];
  const news: number[][] = [];
  cands.forEach((list, b) => {
    if (!active[b]) return;
    list.forEach((c, j) => {
      where.push([b, j]);
      ids.push([...state.ids[b * K + c.src], c.token]);
      news.push([...beams[b][c.src].tokens, c.token]);
    });
  });
  for (const crit of opts.stopping) {
    crit(ids, news).forEach((s, i) => { if (s) hit[where[i][0]][where[i][1]] = true; });
  }
  return hit;
}

function hypothesis(beam: Beam, c: Cand | undefined, reason: FinishReason, lengthPenalty: number): Hypothesis {
  const tokens = c ? [...beam.tokens, c.token] : beam.tokens;
  const lmSum = c ? c.lmSum : beam.lmSum;
  const bonus = c ? c.bonus : beam.bonus;
  const score = lengthPenalised(lmSum, tokens.length, lengthPenalty);
  const h: Hypothesis = { tokens, lmSum, score, rank: tokens.length === 0 ? 0 : score + bonus, reason };
  if (beam.logprobs) h.logprobs = c ? [...beam.logprobs, c.logprob] : beam.logprobs;
  return h;
}

/**
 * Beam search over `prompts` (each decoded as in HF's `generate(num_beams=…)`, alone or batched); returns
 * the best `numReturnSequences` hypotheses per prompt, best first. On abort, the live beams join the lists
 * (finishReason 'abort') and the best so far are returned.
 */
export async function beamSearch(model: CausalLM, prompts: number[][], opts: BeamOptions): Promise<BeamSearchOutput> {
  validate(opts);
  const B = prompts.length;
  const K = opts.numBeams;
  const lp = opts.lengthPenalty;
  const eos = new Set(opts.eosTokenIds);
  const hidden = opts.keepHidden ?? opts.rankBonus !== undefined;
  const lists = prompts.map(() => new BeamHypotheses(K, lp, opts.earlyStopping, opts.maxNewTokens));
  const done = prompts.map(() => false);
  let beams: Beam[][] = prompts.map(() => Array.from({ length: K }, (_, k) => {
    const beam: Beam = { tokens: [], lmSum: k === 0 ? 0 : DEAD, bonus: 0 };
    if (opts.outputScores) beam.logprobs = [];
    return beam;
  }));
  let stoppedByAbort = false;
  let state: DecoderState | undefined;
  try {
    stoppedByAbort = aborted(opts.signal);
    if (opts.maxNewTokens > 0 && !stoppedByAbort) {
      state = prefill(model, prompts, opts.padTokenId, { hidden });
      // One prefill per prompt; its beams start as copies (HF expands the prompt num_beams times instead).
      state = selectRows(state, prompts.flatMap((_, b) => Array<number>(K).fill(b)));
    }
    for (let g = 0; state && g < opts.maxNewTokens; g++) {
      if ((stoppedByAbort = aborted(opts.signal))) break;
      const last = g + 1 === opts.maxNewTokens;
      const V = state.logits.shape[1] as number;
      const kTop = Math.min(Math.max(2, 1 + eos.size) * K, K * V);
      const active = done.map((d) => !d);
      const cands = await topCandidates(state, beams, opts, kTop);
      const stops = stoppedBy(opts, state, beams, cands, active);
      const next: { beam: Beam; src: number; token: number }[][] = [];
      let anyContinues = false;
      cands.forEach((list, b) => {
        const chosen: { beam: Beam; src: number; token: number }[] = [];
        if (!active[b]) {
          beams[b].forEach((beam, k) => chosen.push({ beam, src: k, token: opts.padTokenId }));
          next.push(chosen);
          return;
        }
        const ended: Cand[] = [];
        list.forEach((c, j) => {
          const isEos = eos.has(c.token);
          if (isEos || stops[b][j] || last) {
            if (j < K) lists[b].add(hypothesis(beams[b][c.src], c, isEos ? 'eos' : stops[b][j] ? 'stop' : 'length', lp));
            ended.push(c);
          } else if (chosen.length < K) {
            chosen.push({ beam: extend(beams[b][c.src], c), src: c.src, token: c.token });
          }
        });
        if (chosen.length > 0) anyContinues = true;
        // Too few candidates go on (stopping criteria ended most): HF fills with ended ones pushed down by 1e9.
        for (const c of ended) {
          if (chosen.length >= K || last) break;
          chosen.push({ beam: extend(beams[b][c.src], { ...c, lmSum: Math.fround(c.lmSum + DEAD) }), src: c.src, token: c.token });
        }
        next.push(chosen);
        if (!last) done[b] = lists[b].isDone(chosen.map((x) => x.beam), g + 1);
      });
      opts.onStep?.(next.flatMap((chosen, b) => (active[b] ? (last ? cands[b].slice(0, K).map((c) => c.token) : chosen.map((x) => x.token)) : Array<number>(K).fill(-1))));
      if (last) {
        beams = beams.map(() => []);
        break;
      }
      beams = next.map((chosen) => chosen.map((x) => x.beam));
      if (done.every(Boolean) || !anyContinues) break;
      if ((stoppedByAbort = aborted(opts.signal))) break;
      const src = next.flatMap((chosen, b) => chosen.map((x) => b * K + x.src));
      state = selectRows(state, src);
      state = advance(model, state, next.flatMap((chosen) => chosen.map((x) => x.token)), { hidden });
      await yieldToEventLoop();
    }
  } finally {
    if (state) disposeState(state);
  }
  if (stoppedByAbort || opts.maxNewTokens === 0) {
    lists.forEach((list, b) => {
      if (!done[b]) for (const beam of beams[b]) list.add(hypothesis(beam, undefined, stoppedByAbort ? 'abort' : 'length', lp));
    });
  }
  return collect(prompts, lists, opts);
}

function extend(beam: Beam, c: Cand): Beam {
  const next: Beam = { tokens: [...beam.tokens, c.token], lmSum: c.lmSum, bonus: c.bonus };
  if (beam.logprobs) next.logprobs = [...beam.logprobs, c.logprob];
  return next;
}

/** The best `numReturnSequences` hypotheses of every prompt, batch-major. */
function collect(prompts: number[][], lists: BeamHypotheses[], opts: BeamOptions): BeamSearchOutput {
  const out: BeamSearchOutput = { sequences: [], newTokens: [], finishReason: [], sequenceScores: [], rankScores: [] };
  if (opts.outputScores) out.tokenLogprobs = [];
  lists.forEach((list, b) => {
    const best = list.sorted().slice(0, opts.numReturnSequences);
    if (best.length < opts.numReturnSequences) {
      throw new Error(`beam search: prompt ${b} ended with ${best.length} hypotheses for num_return_sequences = ${opts.numReturnSequences}`);
    }
    for (const h of best) {
      out.sequences.push([...prompts[b], ...h.tokens]);
      out.newTokens.push(h.tokens);
      out.finishReason.push(h.reason);
      out.sequenceScores.push(h.score);
      out.rankScores.push(h.rank);
      out.tokenLogprobs?.push(h.logprobs ?? []);
    }
  });
  return out;
}
