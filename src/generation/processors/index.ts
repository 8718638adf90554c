/**
 * The logits-processor list for a GenerationConfig, in HF's order (transformers/generation/utils.py,
 * `GenerationMixin._get_logits_processor`, read at commit 000034a44ef8): repetition_penalty,
 * no_repeat_ngram_size, bad_words_ids, min_length, min_new_tokens, then the user's processors (HF merges
 * custom processors there), then — only when sampling — temperature, top_k, top_p, min_p, typical_p,
 * epsilon_cutoff, eta_cutoff.
 */
import type * as tf from '@tensorflow/tfjs-core';
import type { GenerationConfig } from '../config.js';
import type { LogitsProcessor } from '../types.js';
import { badWords, minLength, minNewTokens } from './constraints.js';
import { noRepeatNgram, repetitionPenalty } from './penalties.js';
import { epsilonCutoff, etaCutoff, minP, temperature, topK, topP, typical } from './warpers.js';

export { badWords, minLength, minNewTokens } from './constraints.js';
export { bannedNgramTokens, noRepeatNgram, repetitionPenalty } from './penalties.js';
export { epsilonCutoff, etaCutoff, minP, temperature, topK, topP, typical } from './warpers.js';
export { named } from './rows.js';

/** What the processors need besides the config. */
export interface ProcessorContext {
  /** Length of each prompt (rows are grouped by prompt: samples or beams of prompt i are consecutive). */
  promptLengths: number[];
  /** Ids that end a row (min_length / min_new_tokens ban them; bad_words_ids never bans a lone EOS). */
  eosTokenIds: number[];
  /** The user's processors (HF's `logits_processor`), run after ours and before the sampling warpers. */
  userProcessors?: LogitsProcessor[];
}

/** Build the processors `config` asks for, in HF's order. */
export function buildProcessors(config: GenerationConfig, ctx: ProcessorContext): LogitsProcessor[] {
  const c = config;
  const eos = ctx.eosTokenIds;
  const list: LogitsProcessor[] = [];
  if (c.repetition_penalty !== 1) list.push(repetitionPenalty(c.repetition_penalty));
  if (c.no_repeat_ngram_size > 0) list.push(noRepeatNgram(c.no_repeat_ngram_size));
  if (c.bad_words_ids !== undefined) list.push(badWords(c.bad_words_ids, eos));
  if (c.min_length > 0 && eos.length > 0) list.push(minLength(c.min_length, eos));
  if (c.min_new_tokens !== undefined && c.min_new_tokens > 0 && eos.length > 0) list.push(minNewTokens(ctx.promptLengths, c.min_new_tokens, eos));
  list.push(...(ctx.userProcessors ?? []));
  if (c.do_sample) {
    // HF keeps len(eos) + 1 tokens in beam sampling; we reject beam sampling, so 1 here.
    const keep = 1;
    if (c.temperature !== 1) list.push(temperature(c.temperature));
    if (c.top_k !== 0) list.push(topK(c.top_k, keep));
    if (c.top_p < 1) list.push(topP(c.top_p, keep));
    if (c.min_p !== undefined) list.push(minP(c.min_p, keep));
    if (c.typical_p < 1) list.push(typical(c.typical_p, keep));
    if (c.epsilon_cutoff > 0 && c.epsilon_cutoff < 1) list.push(epsilonCutoff(c.epsilon_cutoff, keep));
    if (c.eta_cutoff > 0 && c.eta_cutoff < 1) list.push(etaCutoff(c.eta_cutoff, keep));
  }
  return list;
}

/**
 * Run `processors` in order on [N, V] `scores`; intermediates are freed, `scores` is not. The caller owns
 * the result (a copy when the list is empty).
 */
export function applyProcessors(processors: LogitsProcessor[], ids: number[][], scores: tf.Tensor): tf.Tensor {
  let cur = scores;
  for (const p of processors) {
    const next = p(ids, cur);
    if (cur !== scores && next !== cur) cur.dispose();
    cur = next;
  }
  return cur === scores ? scores.clone() : cur;
}
