/**
 * Turns a parsed tokenizer.json into what the tokenizer runs: checked, with every special token
 * registered as an added token, and with the changes the fast classes' `__init__` make from
 * tokenizer_config.json (GPT2TokenizerFast/RobertaTokenizerFast: `add_prefix_space`; BertTokenizerFast:
 * `do_lower_case`, `strip_accents`, `tokenize_chinese_chars`; LlamaTokenizerFast: the BOS/EOS template).
 */
import { ConfigError } from '../errors.js';
import type { Side } from './batch.js';
import { llamaPostProcessor } from './legacy.js';
import {
  registerAddedTokens, type JsonObject, type SpecialTokens, type TokenizerFamily, type TokenizerJson,
} from './special_tokens.js';

/** `padding_side` / `truncation_side` from tokenizer_config.json (default right). */
export function sideOf(config: JsonObject, key: string): Side {
  const v = config[key];
  if (v === undefined || v === null) return 'right';
  if (v === 'left' || v === 'right') return v;
  throw new ConfigError(`tokenizer_config.json "${key}": expected "left" or "right", found ${JSON.stringify(v)}.`,
    `Set "${key}" to "left" or "right".`);
}

function checkJson(value: unknown): TokenizerJson {
  const model = (value as JsonObject | null)?.model;
  if (value === null || typeof value !== 'object' || model === null || typeof model !== 'object') {
    throw new ConfigError('tokenizer.json: expected an object with a "model" object.',
      'Pass the parsed tokenizer.json written by HF tokenizers (or use AutoTokenizer.fromPretrained).');
  }
  return value as TokenizerJson;
}

/** The tokenizer.json the tokenizer runs, built from the parsed file and the resolved special tokens. */
export function prepareTokenizerJson(
  value: unknown, family: TokenizerFamily, specials: SpecialTokens, config: JsonObject, addedTokensFile?: JsonObject,
): TokenizerJson {
  const json = registerAddedTokens(checkJson(value), specials, config, addedTokensFile);
  // @huggingface/tokenizers wants every component key present (null = none).
  const out: TokenizerJson = {
    ...json, normalizer: json.normalizer ?? null, pre_tokenizer: json.pre_tokenizer ?? null,
    post_processor: json.post_processor ?? null, decoder: json.decoder ?? null,
  };
  const pre = out.pre_tokenizer;
  if ((family === 'gpt2' || family === 'roberta') && pre?.type === 'ByteLevel'
    && typeof config.add_prefix_space === 'boolean') {
    out.pre_tokenizer = { ...pre, add_prefix_space: config.add_prefix_space };
  }
  const norm = out.normalizer;
  if (family === 'bert' && norm?.type === 'BertNormalizer') {
    const n = { ...norm };
    if (typeof config.do_lower_case === 'boolean') n.lowercase = config.do_lower_case;
    if ('strip_accents' in config) n.strip_accents = config.strip_accents;
    if (typeof config.tokenize_chinese_chars === 'boolean') n.handle_chinese_chars = config.tokenize_chinese_chars;
    out.normalizer = n;
  }
  if (family === 'llama') out.post_processor = llamaPostProcessor(out, specials, config);
  return out;
}
