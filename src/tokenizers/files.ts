/**
 * Node-only: reads a Hugging Face checkpoint folder's tokenizer files (the file names of
 * transformers' `from_pretrained`) and builds the tokenizer with auto.ts. Browsers call
 * `tokenizerFromFiles` with the files they fetched themselves.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CheckpointError, ConfigError } from '../errors.js';
import { hasTokenizerFiles, tokenizerFromFiles, type TokenizerFiles, type TokenizerLoadOptions } from './auto.js';
import type { PreTrainedTokenizer } from './tokenizer.js';

const JSON_FILES = {
  tokenizerJson: 'tokenizer.json',
  tokenizerConfig: 'tokenizer_config.json',
  specialTokensMap: 'special_tokens_map.json',
  config: 'config.json',
  addedTokens: 'added_tokens.json',
} as const;

async function listDir(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir)).sort();
  } catch (e) {
    throw new CheckpointError(`tokenizer folder ${dir} cannot be read: ${(e as Error).message}`,
      'Pass the path of a checkpoint folder (the one holding config.json and tokenizer.json).');
  }
}

async function readText(dir: string, name: string): Promise<string> {
  try {
    return await readFile(join(dir, name), 'utf8');
  } catch (e) {
    throw new CheckpointError(`${join(dir, name)} cannot be read: ${(e as Error).message}`, 'Check the file permissions.');
  }
}

async function readJson(dir: string, name: string): Promise<unknown> {
  const text = await readText(dir, name);
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new ConfigError(`${join(dir, name)} is not valid JSON: ${(e as Error).message}`,
      'Re-download or re-save the file (transformers: tokenizer.save_pretrained(dir)).');
  }
}

/** Reads the tokenizer files present in `dir` (the legacy vocab files only when tokenizer.json is absent). */
export async function readTokenizerFiles(dir: string): Promise<TokenizerFiles> {
  const present = new Set(await listDir(dir));
  const files: TokenizerFiles = {};
  for (const [key, name] of Object.entries(JSON_FILES) as [keyof typeof JSON_FILES, string][]) {
    if (present.has(name)) files[key] = await readJson(dir, name);
  }
  if (files.tokenizerJson === undefined) {
    if (present.has('vocab.json') && present.has('merges.txt')) {
      files.vocabJson = await readJson(dir, 'vocab.json');
      files.mergesTxt = await readText(dir, 'merges.txt');
    } else if (present.has('vocab.txt')) {
      files.vocabTxt = await readText(dir, 'vocab.txt');
    }
  }
  if (!hasTokenizerFiles(files)) {
    const found = [...present];
    const shown = found.length === 0 ? '(empty folder)'
      : found.slice(0, 30).join(', ') + (found.length > 30 ? `, … (${found.length} entries)` : '');
    const sentencePiece = present.has('tokenizer.model')
      ? ' tokenizer.model (SentencePiece) is not read here; convert it in Python with ' +
        'AutoTokenizer.from_pretrained(dir).save_pretrained(dir), which writes tokenizer.json.'
      : '';
    throw new CheckpointError(
      `no tokenizer in ${dir}: found ${shown}; needed tokenizer.json, or vocab.json + merges.txt ` +
      '(GPT-2/RoBERTa byte-level BPE), or vocab.txt (BERT WordPiece).',
      `Copy the tokenizer files of the checkpoint into this folder.${sentencePiece}`);
  }
  return files;
}

/** Loads the tokenizer of a checkpoint folder, as transformers' AutoTokenizer.from_pretrained. */
export class AutoTokenizer {
  /** Reads `dir` and builds its tokenizer (tokenizer.json preferred, legacy files converted otherwise). */
  static async fromPretrained(dir: string, options: TokenizerLoadOptions = {}): Promise<PreTrainedTokenizer> {
    return tokenizerFromFiles(await readTokenizerFiles(dir), options);
  }
}
