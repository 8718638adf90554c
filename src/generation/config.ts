/**
 * GenerationConfig: HF's `generation_config.json` options (snake_case, HF defaults) and the checks that
 * reject every option we would otherwise ignore or misread (STYLE habit 5). Follows
 * transformers/generation/configuration_utils.py (`GenerationConfig.__init__`, `validate`) and the
 * length checks of `generate` (`_prepare_generated_length`, `_validate_generated_length`).
 */
import { ConfigError, UnsupportedError } from '../errors.js';
import type { ModelDims } from '../models/types.js';

/** Beam search stopping rule: true, false (HF's heuristic) or 'never' (canonical beam search). */
export type EarlyStopping = boolean | 'never';

/** The generation options we implement, with HF's names and meanings. */
export interface GenerationConfig {
  /** Tokens to generate at most; overrides `max_length` when set. */
  max_new_tokens?: number;
  /** Prompt + new tokens at most (HF default 20); the longest prompt counts, as HF's padded length does. */
  max_length: number;
  /** Tokens to generate before any EOS may end a row. */
  min_new_tokens?: number;
  /** Prompt + new tokens before any EOS may end a row (each row's own prompt length). */
  min_length: number;
  /** Seconds after which every row stops ('stop'). */
  max_time?: number;
  /** Sample (true) or pick the most probable token (false). */
  do_sample: boolean;
  temperature: number;
  /** 0 turns top-k off (HF default 50). */
  top_k: number;
  top_p: number;
  typical_p: number;
  min_p?: number;
  epsilon_cutoff: number;
  eta_cutoff: number;
  repetition_penalty: number;
  no_repeat_ngram_size: number;
  /** Token sequences that may not be generated (one id: never; several: never as the completion). */
  bad_words_ids?: number[][];
  num_beams: number;
  length_penalty: number;
  early_stopping: EarlyStopping;
  num_return_sequences: number;
  eos_token_id?: number | number[];
  pad_token_id?: number;
  bos_token_id?: number;
  /** Generation stops once the new text contains one of these (needs a tokenizer). */
  stop_strings?: string | string[];
  /** Seed of the sampling stream (our addition; default 0, so sampling is reproducible by default). */
  seed?: number;
  /** Return each generated token's log-probability under the processed distribution. */
  output_scores: boolean;
  /** Attribute-conditional beam search options (validated by src/generation/conditional). */
  conditional?: object;
}

/** What a user may pass: any subset of the config. */
export type GenerationOptions = Partial<GenerationConfig>;

/** HF's defaults (GenerationConfig.__init__). */
export const GENERATION_DEFAULTS: Readonly<GenerationConfig> = Object.freeze({
  max_length: 20, min_length: 0, do_sample: false, temperature: 1.0, top_k: 50, top_p: 1.0, typical_p: 1.0,
  epsilon_cutoff: 0.0, eta_cutoff: 0.0, repetition_penalty: 1.0, no_repeat_ngram_size: 0, num_beams: 1,
  length_penalty: 1.0, early_stopping: false, num_return_sequences: 1, output_scores: false,
});

const OPTIONAL_KEYS = ['max_new_tokens', 'min_new_tokens', 'max_time', 'min_p', 'bad_words_ids', 'eos_token_id',
  'pad_token_id', 'bos_token_id', 'stop_strings', 'seed', 'conditional'] as const;

/** Every option name we implement. */
export const GENERATION_KEYS: readonly string[] = [...Object.keys(GENERATION_DEFAULTS), ...OPTIONAL_KEYS];

/**
 * HF options we do not implement, with the value at which they have no effect: accepted at that value
 * (generation_config.json files often spell them out), rejected otherwise.
 */
const NO_OP_HF_KEYS: Record<string, unknown> = {
  use_cache: true, num_beam_groups: 1, diversity_penalty: 0, penalty_alpha: null, encoder_repetition_penalty: 1,
  encoder_no_repeat_ngram_size: 0, renormalize_logits: false, remove_invalid_values: false, force_words_ids: null,
  constraints: null, forced_bos_token_id: null, forced_eos_token_id: null, suppress_tokens: null,
  begin_suppress_tokens: null, sequence_bias: null, exponential_decay_length_penalty: null, guidance_scale: null,
  output_attentions: false, output_hidden_states: false, output_logits: null, return_dict_in_generate: false,
  low_memory: null, token_healing: false, watermarking_config: null, cache_implementation: null,
  prompt_lookup_num_tokens: null, assistant_early_exit: null, dola_layers: null, top_h: null,
  decoder_start_token_id: null,
};
const METADATA_KEYS = new Set(['transformers_version', '_from_model_config', '_commit_hash', '_original_object_hash']);
/** Options that only act when sampling, with the value at which they do nothing (HF validate() §1). */
const SAMPLING_NO_OP: Record<string, unknown> = { temperature: 1, top_k: 50, top_p: 1, typical_p: 1, min_p: undefined, epsilon_cutoff: 0, eta_cutoff: 0 };

/** Where the options come from (besides the user). */
export interface ResolveContext {
  /** The model's config.json: eos/pad/bos token ids fall back to it. */
  modelConfig?: Record<string, unknown>;
  /** The checkpoint's generation_config.json, parsed. */
  generationConfigJson?: Record<string, unknown>;
  /** The model's dims: token ids are checked against `vocab`. */
  dims?: ModelDims;
  /** Other names the caller accepts beside the options (generate's tokenizer, signal…), for suggestions. */
  otherNames?: readonly string[];
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j];
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return row[b.length];
}

function closest(key: string, extra: readonly string[]): string {
  const norm = key.replace(/([a-z])([A-Z])/g, '$1_$2').toLowerCase().replace(/[-\s]/g, '_');
  const names = [...GENERATION_KEYS, ...extra];
  const scored = names.map((k) => ({ k, d: Math.min(editDistance(key, k), editDistance(norm, k)) })).sort((x, y) => x.d - y.d);
  const near = scored.filter((s) => s.d <= Math.max(2, Math.floor(key.length / 3))).slice(0, 3).map((s) => s.k);
  return near.length ? `did you mean ${near.join(' or ')}?` : `the options are: ${names.join(', ')}`;
}

/** Reject names we do not know, and HF options we do not implement when set to a value that would act. */
function checkNames(options: Record<string, unknown>, where: string, extra: readonly string[] = []): void {
  for (const [key, value] of Object.entries(options)) {
    if (GENERATION_KEYS.includes(key) || METADATA_KEYS.has(key) || value === undefined) continue;
    if (key in NO_OP_HF_KEYS) {
      const noOp = NO_OP_HF_KEYS[key];
      if (value === noOp || (noOp === null && value === null) || (key === 'guidance_scale' && value === 1)) continue;
      throw new UnsupportedError(`${where}: ${key} = ${JSON.stringify(value)} is not implemented`,
        `remove ${key}; supported decoding options are greedy, sampling (${Object.keys(SAMPLING_NO_OP).join(', ')}) and beam search (num_beams, length_penalty, early_stopping)`);
    }
    throw new ConfigError(`${where}: unknown generation option '${key}'`, closest(key, extra));
  }
}

function bad(name: string, expected: string, found: unknown, hint?: string): ConfigError {
  return new ConfigError(`generation option ${name}: expected ${expected}, found ${JSON.stringify(found)}`, hint);
}

function int(c: GenerationConfig, name: keyof GenerationConfig, min: number): void {
  const v = c[name];
  if (v === undefined) return;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min) throw bad(name, `an integer >= ${min}`, v);
}

function num(c: GenerationConfig, name: keyof GenerationConfig, ok: (v: number) => boolean, range: string, hint?: string): void {
  const v = c[name];
  if (v === undefined) return;
  if (typeof v !== 'number' || Number.isNaN(v) || !ok(v)) throw bad(name, `a number in ${range}`, v, hint);
}

function tokenIds(value: unknown, name: string, vocab: number): void {
  const ids = Array.isArray(value) ? value : [value];
  if (Array.isArray(value) && value.length === 0) throw bad(name, 'a token id or a non-empty list of them', value);
  for (const id of ids) {
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id >= vocab) throw bad(name, `token ids in [0, ${vocab})`, value);
  }
}

/** Check every option's type and range, and every contradiction between options. */
export function validate(config: GenerationConfig, dims?: ModelDims): void {
  const c = config;
  checkNames(c as unknown as Record<string, unknown>, 'generation options');
  const vocab = dims?.vocab ?? Number.MAX_SAFE_INTEGER;
  if (typeof c.do_sample !== 'boolean') throw bad('do_sample', 'true or false', c.do_sample);
  if (typeof c.output_scores !== 'boolean') throw bad('output_scores', 'true or false', c.output_scores);
  if (c.early_stopping !== true && c.early_stopping !== false && c.early_stopping !== 'never') throw bad('early_stopping', "true, false or 'never'", c.early_stopping);
  int(c, 'max_new_tokens', 1);
  int(c, 'max_length', 1);
  int(c, 'min_new_tokens', 0);
  int(c, 'min_length', 0);
  int(c, 'top_k', 0);
  int(c, 'no_repeat_ngram_size', 0);
  int(c, 'num_beams', 1);
  int(c, 'num_return_sequences', 1);
  num(c, 'max_time', (v) => v > 0, '(0, ∞)');
  num(c, 'temperature', (v) => v > 0 && Number.isFinite(v), '(0, ∞)', c.do_sample ? 'for greedy decoding set do_sample: false instead of temperature 0' : undefined);
  num(c, 'top_p', (v) => v > 0 && v <= 1, '(0, 1]');
  num(c, 'typical_p', (v) => v > 0 && v <= 1, '(0, 1]');
  num(c, 'min_p', (v) => v >= 0 && v <= 1, '[0, 1]');
  num(c, 'epsilon_cutoff', (v) => v >= 0 && v < 1, '[0, 1) (0 turns it off)');
  num(c, 'eta_cutoff', (v) => v >= 0 && v < 1, '[0, 1) (0 turns it off)');
  num(c, 'repetition_penalty', (v) => v > 0 && Number.isFinite(v), '(0, ∞) (1 turns it off)');
  num(c, 'length_penalty', Number.isFinite, '(−∞, ∞)');
  num(c, 'seed', Number.isFinite, '(−∞, ∞)');
  if (c.eos_token_id !== undefined) tokenIds(c.eos_token_id, 'eos_token_id', vocab);
  if (c.pad_token_id !== undefined) tokenIds(c.pad_token_id, 'pad_token_id', vocab);
  if (c.bos_token_id !== undefined) tokenIds(c.bos_token_id, 'bos_token_id', vocab);
  if (c.bad_words_ids !== undefined) {
    const b = c.bad_words_ids;
    if (!Array.isArray(b) || b.length === 0 || b.some((w) => !Array.isArray(w) || w.length === 0)) throw bad('bad_words_ids', 'a non-empty list of non-empty token-id lists, e.g. [[12], [40, 7]]', b);
    for (const w of b) tokenIds(w, 'bad_words_ids', vocab);
  }
  if (c.stop_strings !== undefined) {
    const s = Array.isArray(c.stop_strings) ? c.stop_strings : [c.stop_strings];
    if (s.length === 0 || s.some((x) => typeof x !== 'string' || x.length === 0)) throw bad('stop_strings', 'a non-empty string or a list of them', c.stop_strings);
  }
  if (c.conditional !== undefined && (c.conditional === null || typeof c.conditional !== 'object')) throw bad('conditional', 'an object ({classifier, weight})', c.conditional);
  if (c.num_beams > 1 && c.do_sample) {
    throw new UnsupportedError('num_beams > 1 with do_sample: true (beam sampling) is not implemented', 'use num_beams > 1 with do_sample: false (beam search), or num_beams: 1 with do_sample: true (sampling)');
  }
  if (c.num_beams > 1 && c.num_return_sequences > c.num_beams) {
    throw bad('num_return_sequences', `at most num_beams (${c.num_beams})`, c.num_return_sequences, `raise num_beams to ${c.num_return_sequences} or lower num_return_sequences`);
  }
  if (c.num_beams === 1 && !c.do_sample && c.num_return_sequences > 1) {
    throw bad('num_return_sequences', '1 for greedy decoding (it would return the same sequence)', c.num_return_sequences, 'set do_sample: true, or num_beams >= num_return_sequences');
  }
}

/** The user's own contradictions HF only warns about: options that act only in a mode not chosen. */
function checkModeOptions(user: Record<string, unknown>, c: GenerationConfig): void {
  if (!c.do_sample) {
    for (const [key, noOp] of Object.entries(SAMPLING_NO_OP)) {
      if (user[key] !== undefined && user[key] !== noOp) {
        throw new ConfigError(`generation option ${key} = ${JSON.stringify(user[key])} only acts when sampling, but do_sample is false`, `set do_sample: true, or remove ${key}`);
      }
    }
  }
  if (c.num_beams === 1) {
    if (user.length_penalty !== undefined && user.length_penalty !== 1) throw new ConfigError(`generation option length_penalty = ${JSON.stringify(user.length_penalty)} only acts in beam search, but num_beams is 1`, 'set num_beams > 1, or remove length_penalty');
    if (user.early_stopping !== undefined && user.early_stopping !== false) throw new ConfigError(`generation option early_stopping = ${JSON.stringify(user.early_stopping)} only acts in beam search, but num_beams is 1`, 'set num_beams > 1, or remove early_stopping');
  }
}

function plainObject(value: unknown, where: string): Record<string, unknown> {
  if (value === undefined) return {};
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new ConfigError(`${where}: expected an object of options, found ${JSON.stringify(value)}`);
  return value as Record<string, unknown>;
}

function pick(source: Record<string, unknown>): Partial<GenerationConfig> {
  const out: Record<string, unknown> = {};
  for (const key of GENERATION_KEYS) if (source[key] !== undefined && source[key] !== null) out[key] = source[key];
  return out as Partial<GenerationConfig>;
}

/**
 * HF's precedence: defaults ← generation_config.json ← user options; eos/pad/bos fall back to config.json.
 * Unknown names and contradictions are errors; the result is validated.
 */
export function resolveGenerationConfig(user: GenerationOptions = {}, ctx: ResolveContext = {}): GenerationConfig {
  const userObj = plainObject(user, 'generation options');
  const json = plainObject(ctx.generationConfigJson, 'generation_config.json');
  checkNames(json, 'generation_config.json');
  checkNames(userObj, 'generation options', ctx.otherNames);
  const model = ctx.modelConfig ?? {};
  const c: GenerationConfig = { ...GENERATION_DEFAULTS, ...pick(json), ...pick(userObj) };
  for (const key of ['eos_token_id', 'pad_token_id', 'bos_token_id'] as const) {
    const fallback = model[key];
    if (c[key] === undefined && fallback !== undefined && fallback !== null) (c as unknown as Record<string, unknown>)[key] = fallback;
  }
  checkModeOptions(userObj, c);
  validate(c, ctx.dims);
  return c;
}

/** The EOS ids as a list (empty: no EOS). */
export function eosIds(c: GenerationConfig): number[] {
  return c.eos_token_id === undefined ? [] : Array.isArray(c.eos_token_id) ? c.eos_token_id.slice() : [c.eos_token_id];
}

/**
 * Tokens to generate for prompts whose longest is `promptLength`: max_new_tokens, else max_length − prompt
 * (HF). Errors when there is no room, or when the model's context would be exceeded.
 */
export function maxNewTokensFor(c: GenerationConfig, promptLength: number, maxPositions = Infinity): number {
  let n = c.max_new_tokens;
  if (n === undefined) {
    n = c.max_length - promptLength;
    if (n < 1) throw new ConfigError(`generation option max_length = ${c.max_length} leaves no room: the prompt has ${promptLength} tokens`, `set max_new_tokens (tokens to generate after the prompt) instead of max_length`);
  }
  if (promptLength + n > maxPositions) {
    const which = c.max_new_tokens === undefined ? `max_length (${c.max_length})` : `max_new_tokens (${n})`;
    throw new ConfigError(`generation option ${which}: prompt (${promptLength} tokens) + ${n} new tokens exceeds the model's context of ${maxPositions} positions`,
      `set max_new_tokens <= ${Math.max(0, maxPositions - promptLength)}, or shorten the prompt`);
  }
  return n;
}
