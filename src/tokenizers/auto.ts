/**
 * Picks how to build a tokenizer from a checkpoint folder's (already read) files, as AutoTokenizer does:
 * tokenizer.json when present, else the legacy files converted in memory (see legacy.ts). Browser-safe;
 * files.ts reads a folder in Node and calls `tokenizerFromFiles`.
 */
import { ConfigError } from '../errors.js';
import { legacyTokenizerJson } from './legacy.js';
import { resolveSpecialTokens, tokenizerFamily, type JsonObject } from './special_tokens.js';
import { PreTrainedTokenizer } from './tokenizer.js';

/** The tokenizer files of a checkpoint folder: JSON parsed, text as read; absent files undefined. */
export interface TokenizerFiles {
  /** tokenizer.json */
  tokenizerJson?: unknown;
  /** tokenizer_config.json */
  tokenizerConfig?: unknown;
  /** special_tokens_map.json */
  specialTokensMap?: unknown;
  /** config.json of the model (for `model_type`). */
  config?: unknown;
  /** added_tokens.json */
  addedTokens?: unknown;
  /** vocab.json (byte-level BPE) */
  vocabJson?: unknown;
  /** merges.txt */
  mergesTxt?: string;
  /** vocab.txt (WordPiece) */
  vocabTxt?: string;
}

/** Options of `tokenizerFromFiles` / `AutoTokenizer.fromPretrained`. */
export interface TokenizerLoadOptions {
  /** Pad token to use instead of the files' one (e.g. the EOS token for GPT-2, which has none). */
  padToken?: string;
}

function object(value: unknown, file: string): JsonObject {
  if (value === undefined) return {};
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new ConfigError(`${file}: expected a JSON object.`, `Fix or remove ${file}.`);
  }
  return value as JsonObject;
}

/** True when the files are enough to build a tokenizer. */
export function hasTokenizerFiles(files: TokenizerFiles): boolean {
  return files.tokenizerJson !== undefined || files.vocabTxt !== undefined
    || (files.vocabJson !== undefined && files.mergesTxt !== undefined);
}

/** Builds the tokenizer from a folder's files (tokenizer.json first, else legacy vocab/merges files). */
export function tokenizerFromFiles(files: TokenizerFiles, options: TokenizerLoadOptions = {}): PreTrainedTokenizer {
  let tokenizerConfig = object(files.tokenizerConfig, 'tokenizer_config.json');
  const specialTokensMap = object(files.specialTokensMap, 'special_tokens_map.json');
  const modelConfig = object(files.config, 'config.json');
  const addedTokensFile = object(files.addedTokens, 'added_tokens.json');
  let tokenizerJson = files.tokenizerJson;
  if (tokenizerJson === undefined) {
    if (!hasTokenizerFiles(files)) {
      throw new ConfigError('tokenizer: no tokenizer.json, vocab.json + merges.txt, or vocab.txt was given.',
        'Provide tokenizer.json, or the legacy files of a GPT-2/RoBERTa (vocab.json, merges.txt) or BERT (vocab.txt) tokenizer.');
    }
    let family = tokenizerFamily(tokenizerConfig, modelConfig);
    if (family === 'generic') {
      // The legacy files themselves tell the class; record it so the tokenizer applies its defaults too.
      family = files.vocabJson !== undefined && files.mergesTxt !== undefined ? 'gpt2' : 'bert';
      tokenizerConfig = { ...tokenizerConfig, tokenizer_class: family === 'bert' ? 'BertTokenizer' : 'GPT2Tokenizer' };
    }
    const specials = resolveSpecialTokens(family, tokenizerConfig, specialTokensMap);
    tokenizerJson = legacyTokenizerJson(files, family, specials, tokenizerConfig, addedTokensFile);
  }
  const tokenizer = new PreTrainedTokenizer({
    tokenizerJson, tokenizerConfig, specialTokensMap, modelConfig, addedTokensFile,
  });
  if (options.padToken !== undefined) tokenizer.padToken = options.padToken;
  return tokenizer;
}
