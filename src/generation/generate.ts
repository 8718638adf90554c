/**
 * generate(): HF's `GenerationMixin.generate` as a function over any CausalLM (models never import
 * generation). It resolves the options (defaults ← generation_config.json ← user), prepares the prompts,
 * builds the processors and stopping rules, and dispatches to greedy search, sampling or beam search.
 */
import { ConfigError, ShapeError, UnsupportedError } from '../errors.js';
import type { CausalLM } from '../models/types.js';
import { eosIds, maxNewTokensFor, resolveGenerationConfig, type GenerationConfig, type GenerationOptions } from './config.js';
import { buildProcessors } from './processors/index.js';
import { conditionalBeamSearch } from './conditional/acbs.js';
import type { AttributeScorer } from './conditional/classifier.js';
import { beamSearch } from './search/beam.js';
import { greedySearch } from './search/greedy.js';
import { sample } from './search/sample.js';
import { cutAtStopString, maxTimeCriterion, stopStringCriterion, type TokenDecoder } from './stopping.js';
import type { Streamer } from './streaming.js';
import type { GenerateOutput, LogitsProcessor, StoppingCriterion, StrategyOptions } from './types.js';

/** The tokenizer surface generate() uses (PreTrainedTokenizer has it). */
export interface GenerationTokenizer extends TokenDecoder {
  encode(text: string): { ids: number[] };
  readonly bosTokenId?: number;
}

/** generate()'s arguments besides the generation options (HF's other `generate` keyword arguments). */
export interface GenerateExtras {
  /** Needed for string prompts, stop_strings and `texts`. */
  tokenizer?: GenerationTokenizer;
  /** The checkpoint's generation_config.json (parsed); its values are the defaults the options override. */
  generation_config?: Record<string, unknown>;
  /** Your processors, run after ours and before the sampling warpers (HF's merge order). */
  logits_processor?: LogitsProcessor[];
  /** Your stopping rules (a row they stop ends with finishReason 'stop'). */
  stopping_criteria?: StoppingCriterion[];
  /** Receives the new tokens as they come (one prompt, no beams, as HF). */
  streamer?: Streamer;
  /** Stops within one step; the result holds what exists (finishReason 'abort'). */
  signal?: AbortSignal;
  /** Called after each step with each row's new token (−1 for finished rows). */
  onStep?: (tokens: number[]) => void;
  /** Drop special tokens from `texts` (default true). */
  skipSpecialTokens?: boolean;
}

/** Options of generate(): HF's generation options (snake_case) and the extras. */
export type GenerateOptions = GenerationOptions & GenerateExtras;

/** generate()'s result: the strategy's output, plus the new text of each sequence when a tokenizer was given. */
export interface GenerateResult extends GenerateOutput {
  /** Decoded new tokens (cut after a stop string), one per sequence. */
  texts?: string[];
  /** The options actually used. */
  config: GenerationConfig;
}

const EXTRA_KEYS = ['tokenizer', 'generation_config', 'logits_processor', 'stopping_criteria', 'streamer', 'signal', 'onStep', 'skipSpecialTokens'] as const;

function splitOptions(options: GenerateOptions): { user: GenerationOptions; extras: GenerateExtras } {
  const user: Record<string, unknown> = {};
  const extras: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(options)) ((EXTRA_KEYS as readonly string[]).includes(k) ? extras : user)[k] = v;
  return { user: user as GenerationOptions, extras: extras as GenerateExtras };
}

function toPrompts(inputs: number[][] | string | string[], tokenizer: GenerationTokenizer | undefined, vocab: number): number[][] {
  if (typeof inputs === 'string' || (Array.isArray(inputs) && inputs.length > 0 && inputs.every((x) => typeof x === 'string'))) {
    if (!tokenizer) throw new ConfigError('generate: text prompts need a tokenizer', 'pass { tokenizer } in the options, or pass token ids (number[][])');
    return (typeof inputs === 'string' ? [inputs] : (inputs as string[])).map((t) => tokenizer.encode(t).ids.slice());
  }
  if (!Array.isArray(inputs) || inputs.length === 0 || !inputs.every((row) => Array.isArray(row))) {
    throw new ShapeError(`generate: expected token ids as number[][] (one row per prompt) or text, found ${JSON.stringify(inputs)?.slice(0, 80)}`, 'wrap a single prompt as [ids]');
  }
  for (const row of inputs as number[][]) {
    if (row.some((id) => !Number.isInteger(id) || id < 0 || id >= vocab)) throw new ShapeError(`generate: prompt ids must be integers in [0, ${vocab}), found ${JSON.stringify(row).slice(0, 80)}`);
  }
  return (inputs as number[][]).map((row) => row.slice());
}

/** The `conditional` option: attribute-conditional beam search (ACBS) with a trained attribute classifier. */
export interface ConditionalOption {
  classifier: AttributeScorer;
  /** λ ≥ 0 in log p_LM + λ·log q(attribute | prefix); default 1. */
  weight?: number;
  done?: 'exact' | 'classifier';
}

function checkConditional(value: unknown, numBeams: number): ConditionalOption {
  const c = value as Partial<ConditionalOption> | null;
  if (!c || typeof c !== 'object' || !c.classifier || typeof (c.classifier as AttributeScorer).scoreNext !== 'function') {
    throw new ConfigError('generation option conditional must be {classifier, weight?}, with a classifier from trainAttributeClassifier or loadClassifier', 'see `makemost train-attribute-classifier`');
  }
  if (numBeams < 1) throw new ConfigError(`conditional beam search needs num_beams >= 1, found ${numBeams}`);
  return { classifier: c.classifier, weight: c.weight, done: c.done };
}

/**
 * Generate continuations of `inputs` (token-id rows, or text with `tokenizer`). Rows are returned
 * batch-major: prompt i's num_return_sequences results are consecutive.
 */
export async function generate(model: CausalLM, inputs: number[][] | string | string[], options: GenerateOptions = {}): Promise<GenerateResult> {
  const { user, extras } = splitOptions(options);
  const dims = model.dims();
  const config = resolveGenerationConfig(user, { modelConfig: model.config, generationConfigJson: extras.generation_config, dims, otherNames: EXTRA_KEYS });
  const conditional = config.conditional === undefined ? undefined : checkConditional(config.conditional, config.num_beams);
  const tokenizer = extras.tokenizer;
  const prompts = toPrompts(inputs, tokenizer, dims.vocab);
  const bos = config.bos_token_id ?? tokenizer?.bosTokenId;
  for (const row of prompts) {
    if (row.length > 0) continue;
    if (bos === undefined) throw new ShapeError('generate: a prompt is empty and neither the model nor the tokenizer has a BOS token to start from', 'give at least one prompt token, or set bos_token_id');
    row.push(bos);
  }
  const eos = eosIds(config);
  const padTokenId = config.pad_token_id ?? eos[0] ?? 0;
  const maxNewTokens = maxNewTokensFor(config, Math.max(...prompts.map((p) => p.length)), dims.maxPositions);
  const stopStrings = config.stop_strings === undefined ? [] : Array.isArray(config.stop_strings) ? config.stop_strings : [config.stop_strings];
  const stopping = [...(extras.stopping_criteria ?? [])];
  if (stopStrings.length) {
    if (!tokenizer) throw new ConfigError('generation option stop_strings needs a tokenizer to decode the new text', 'pass { tokenizer } in the options');
    stopping.push(stopStringCriterion(tokenizer, stopStrings));
  }
  if (config.max_time !== undefined) stopping.push(maxTimeCriterion(config.max_time));
  const streamer = extras.streamer;
  if (streamer && (prompts.length * config.num_return_sequences !== 1 || config.num_beams > 1)) {
    throw new ConfigError('generate: a streamer follows one sequence: one prompt, num_return_sequences 1, num_beams 1', 'generate the other prompts without a streamer');
  }
  const strategy: StrategyOptions = {
    maxNewTokens,
    eosTokenIds: eos,
    padTokenId,
    processors: buildProcessors(config, { promptLengths: prompts.map((p) => p.length), eosTokenIds: eos, userProcessors: extras.logits_processor }),
    stopping,
    outputScores: config.output_scores,
    signal: extras.signal,
    onStep: streamer || extras.onStep ? (tokens) => {
      if (streamer && tokens[0] >= 0) streamer.put([tokens[0]]);
      extras.onStep?.(tokens);
    } : undefined,
  };
  streamer?.start?.({ stopStrings });
  let out: GenerateOutput;
  if (conditional) {
    out = await conditionalBeamSearch(model, prompts, { ...strategy, numBeams: config.num_beams, lengthPenalty: config.length_penalty, earlyStopping: config.early_stopping, numReturnSequences: config.num_return_sequences, ...conditional });
  } else if (config.num_beams > 1) {
    out = await beamSearch(model, prompts, { ...strategy, numBeams: config.num_beams, lengthPenalty: config.length_penalty, earlyStopping: config.early_stopping, numReturnSequences: config.num_return_sequences });
  } else if (config.do_sample) {
    // HF's repeat_interleave: prompt i's samples are rows i·k … i·k + k − 1.
    const k = config.num_return_sequences;
    out = await sample(model, prompts.flatMap((p) => Array.from({ length: k }, () => p.slice())), { ...strategy, seed: config.seed });
  } else {
    out = await greedySearch(model, prompts, strategy);
  }
  streamer?.end();
  const result: GenerateResult = { ...out, config };
  if (tokenizer) {
    result.texts = out.newTokens.map((ids) => {
      const text = tokenizer.decode(ids, { skipSpecialTokens: extras.skipSpecialTokens ?? true });
      return stopStrings.length ? cutAtStopString(text, stopStrings) : text;
    });
  }
  return result;
}
