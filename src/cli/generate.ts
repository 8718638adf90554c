/**
 * `makemost generate` and `makemost mode`: continue a prompt with any of HF's decoding options (every
 * GenerationConfig key is a flag), streaming to the terminal; or find the model's exact mode.
 */
import { readGenerationConfig } from '../io/hf_folder.js';
import { eosIds, GENERATION_KEYS, generate, generateStream, resolveGenerationConfig, type GenerateOptions } from '../generation/index.js';
import { exactModeSearch } from '../generation/search/exact.js';
import { fromPretrained } from '../models/pretrained.js';
import type { CausalLM } from '../models/types.js';
import { AutoTokenizer } from '../tokenizers/files.js';
import type { PreTrainedTokenizer } from '../tokenizers/tokenizer.js';
import { ConfigError } from '../errors.js';
import { fmt } from './format.js';

/** kebab-case flag name of an HF option (`max_new_tokens` → `max-new-tokens`). */
export const flagOf = (key: string): string => key.replace(/_/g, '-');

/** Parse a flag value: JSON where it parses (numbers, booleans, lists), else the string ('never'). */
export function parseValue(v: unknown): unknown {
  if (v === true || typeof v !== 'string') return v;
  try {
    return JSON.parse(v);
  } catch {
    return v;
  }
}

/** The HF generation options among commander's parsed flags (camelCase → snake_case). */
export function generationOptions(flags: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of GENERATION_KEYS) {
    const camel = key.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());
    if (flags[camel] !== undefined) out[key] = parseValue(flags[camel]);
  }
  return out;
}

/** A loaded causal LM with its tokenizer and generation_config.json. */
export interface Loaded {
  model: CausalLM;
  tokenizer: PreTrainedTokenizer;
  generationConfig?: Record<string, unknown>;
}

/** Load model, tokenizer and generation config from a folder. */
export async function loadCausal(dir: string): Promise<Loaded> {
  const tokenizer = await AutoTokenizer.fromPretrained(dir);
  const model = (await fromPretrained(dir, 'causal-lm')) as CausalLM;
  return { model, tokenizer, generationConfig: readGenerationConfig(dir) };
}

/** Generate and write the output; streams when there is one sequence and no beams. */
export async function runGenerate(l: Loaded, prompt: string, options: Record<string, unknown>, io: { write: (s: string) => void; json: boolean; signal?: AbortSignal }): Promise<void> {
  const opts: GenerateOptions = { ...options, tokenizer: l.tokenizer, generation_config: l.generationConfig, signal: io.signal };
  const streamable = !io.json && (options.num_beams ?? 1) === 1 && (options.num_return_sequences ?? 1) === 1;
  if (streamable) {
    io.write(prompt);
    for await (const piece of generateStream(l.model, l.tokenizer, prompt, { ...options, generation_config: l.generationConfig, signal: io.signal })) io.write(piece);
    io.write('\n');
    return;
  }
  const r = await generate(l.model, prompt, opts);
  if (io.json) {
    const { config, ...rest } = r;
    io.write(JSON.stringify({ prompt, ...rest, config }, null, 2) + '\n');
    return;
  }
  r.texts!.forEach((t, i) => {
    const score = r.sequenceScores ? ` (score ${fmt(r.sequenceScores[i])})` : '';
    io.write(`[${i + 1}]${score} ${prompt}${t}\n`);
  });
}

/** Options of `mode`. */
export interface ModeOptions {
  maxNewTokens: number;
  minNewTokens?: number;
  exactLength?: number;
  budgetNodes?: number;
  budgetMs?: number;
}

/** Exact mode search for a prompt, with greedy's output beside it; returns the report lines / JSON. */
export async function runMode(l: Loaded, prompt: string, o: ModeOptions, signal?: AbortSignal): Promise<Record<string, unknown>> {
  const cfg = resolveGenerationConfig({ max_new_tokens: o.maxNewTokens }, { modelConfig: l.model.config, generationConfigJson: l.generationConfig });
  const eos = eosIds(cfg);
  if (eos.length === 0) throw new ConfigError('mode search needs an EOS token id (a complete sequence ends with one)', 'set eos_token_id in config.json or generation_config.json');
  let ids = l.tokenizer.encode(prompt).ids;
  if (ids.length === 0 && l.tokenizer.bosTokenId !== undefined) ids = [l.tokenizer.bosTokenId];
  const budget = { nodes: o.budgetNodes, ms: o.budgetMs };
  const r = await exactModeSearch(l.model, ids, { eosTokenIds: eos, maxNewTokens: o.maxNewTokens, minNewTokens: o.minNewTokens, exactLength: o.exactLength, budget, signal });
  const greedy = await generate(l.model, [ids], { max_new_tokens: o.maxNewTokens, eos_token_id: eos, output_scores: true, signal });
  const text = (t: number[] | null) => (t === null ? null : l.tokenizer.decode(t.filter((x) => !eos.includes(x)), { skipSpecialTokens: true }));
  const greedyLp = greedy.tokenLogprobs![0].reduce((a, b) => a + b, 0);
  return {
    prompt,
    mode: { text: text(r.tokens), tokens: r.tokens, logprob: r.logprob, empty: r.tokens !== null && r.tokens.length === 1 && eos.includes(r.tokens[0]), proven_optimal: r.provenOptimal, stop_reason: r.stopReason, nodes_expanded: r.nodesExpanded, ms: Math.round(r.ms) },
    greedy: { text: text(greedy.newTokens[0]), tokens: greedy.newTokens[0], logprob: greedyLp, finish_reason: greedy.finishReason[0] },
  };
}

/** Human-readable `mode` report. */
export function formatMode(r: Record<string, unknown>): string {
  const m = r.mode as Record<string, unknown>;
  const g = r.greedy as Record<string, unknown>;
  const show = (t: unknown) => (t === null ? '(nothing better than the bound)' : t === '' ? '(empty)' : JSON.stringify(t));
  return [
    `mode:   ${show(m.text)}  log p = ${fmt(m.logprob as number)}${m.proven_optimal ? '  [proven optimal]' : `  [NOT proven: ${m.stop_reason}]`}`,
    `        ${m.nodes_expanded} nodes, ${m.ms} ms`,
    `greedy: ${show(g.text)}  log p = ${fmt(g.logprob as number)} (${g.finish_reason})`,
  ].join('\n');
}
