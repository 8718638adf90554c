/**
 * Legacy tokenizer files → the tokenizer.json structure, in memory. Follows transformers'
 * `convert_slow_tokenizer.py` (GPT2Converter, RobertaConverter, BertConverter) and the slow tokenizers'
 * file readers (`load_vocab` in tokenization_bert.py, the merges reader of tokenization_gpt2.py), plus
 * LlamaTokenizerFast.update_post_processor. Browser-safe: every function takes already-read text/JSON.
 */
import { ConfigError } from '../errors.js';
import type { JsonObject, SpecialTokens, TokenizerFamily, TokenizerJson } from './special_tokens.js';
import { modelVocab, registerAddedTokens } from './special_tokens.js';

/** vocab.txt (one token per line, id = line number) → token → id. */
export function parseVocabTxt(text: string): Record<string, number> {
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  const vocab: Record<string, number> = {};
  // Python's text mode turns \r\n into \n before load_vocab strips the newline.
  lines.forEach((line, i) => { vocab[line.endsWith('\r') ? line.slice(0, -1) : line] = i; });
  return vocab;
}

/** merges.txt ("#version" header, then one "left right" pair per line, best first) → pairs. */
export function parseMergesTxt(text: string): [string, string][] {
  const merges: [string, string][] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (line.length === 0 || (i === 0 && line.startsWith('#version'))) return;
    const parts = line.split(' ');
    if (parts.length !== 2 || parts[0] === '' || parts[1] === '') {
      throw new ConfigError(
        `merges.txt line ${i + 1}: expected two tokens separated by one space, found ${JSON.stringify(line)}.`,
        'Each line after the "#version" header must read "left right" (byte-level symbols, no spaces).');
    }
    merges.push([parts[0]!, parts[1]!]);
  });
  return merges;
}

/** vocab.json → token → id, checked. */
export function parseVocabJson(value: unknown): Record<string, number> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new ConfigError('vocab.json: expected an object {token: id}.', 'Use the vocab.json written by HF.');
  }
  for (const [token, id] of Object.entries(value as JsonObject)) {
    if (!Number.isInteger(id) || (id as number) < 0) {
      throw new ConfigError(`vocab.json: token ${JSON.stringify(token)} has id ${JSON.stringify(id)}; ` +
        'expected a non-negative integer.', 'Use the vocab.json written by HF.');
    }
  }
  return value as Record<string, number>;
}

/**
 * TemplateProcessing from HF's template syntax, e.g. single "[CLS]:0 $A:0 [SEP]:0"; special tokens take
 * their ids from `ids`.
 */
export function templateProcessing(single: string, pair: string, ids: Map<string, number>): JsonObject {
  const specialTokens: JsonObject = {};
  const parse = (template: string): JsonObject[] => template.split(' ').filter((p) => p !== '').map((piece) => {
    const m = /^(.*):(\d+)$/.exec(piece);
    const name = m ? m[1]! : piece;
    const typeId = m ? Number(m[2]) : 0;
    if (name === '$A' || name === '$B') return { Sequence: { id: name.slice(1), type_id: typeId } };
    const id = ids.get(name);
    if (id === undefined) {
      throw new ConfigError(`post-processor template "${template}": special token ${name} has no id.`,
        'Add the token to the vocabulary or set the special token in tokenizer_config.json.');
    }
    specialTokens[name] = { id: name, ids: [id], tokens: [name] };
    return { SpecialToken: { id: name, type_id: typeId } };
  });
  return { type: 'TemplateProcessing', single: parse(single), pair: parse(pair), special_tokens: specialTokens };
}

/** Token → id over the model vocab and the added tokens. */
export function tokenIds(json: TokenizerJson): Map<string, number> {
  const ids = modelVocab(json.model);
  for (const t of json.added_tokens ?? []) ids.set(t.content, t.id);
  return ids;
}

function flag(config: JsonObject, key: string, fallback: boolean): boolean {
  const v = config[key];
  return typeof v === 'boolean' ? v : fallback;
}

/** Which legacy files a folder offered (already read). */
export interface LegacyFiles {
  vocabJson?: unknown;
  mergesTxt?: string;
  vocabTxt?: string;
}

/** Builds tokenizer.json from vocab.json + merges.txt (byte-level BPE) or vocab.txt (WordPiece). */
export function legacyTokenizerJson(
  files: LegacyFiles, family: TokenizerFamily, specials: SpecialTokens, tokenizerConfig: JsonObject,
  addedTokensFile: JsonObject = {},
): TokenizerJson {
  let json: TokenizerJson;
  if (files.vocabJson !== undefined && files.mergesTxt !== undefined) {
    const byteLevel = { add_prefix_space: flag(tokenizerConfig, 'add_prefix_space', false), trim_offsets: true, use_regex: true };
    json = {
      version: '1.0', truncation: null, padding: null, added_tokens: [], normalizer: null,
      pre_tokenizer: { type: 'ByteLevel', ...byteLevel },
      post_processor: { type: 'ByteLevel', ...byteLevel, trim_offsets: false },
      decoder: { type: 'ByteLevel', ...byteLevel },
      model: {
        type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: '', end_of_word_suffix: '',
        fuse_unk: false, byte_fallback: false,
        vocab: parseVocabJson(files.vocabJson), merges: parseMergesTxt(files.mergesTxt),
      },
    };
  } else if (files.vocabTxt !== undefined) {
    const strip = tokenizerConfig.strip_accents;
    json = {
      version: '1.0', truncation: null, padding: null, added_tokens: [],
      normalizer: {
        type: 'BertNormalizer', clean_text: true,
        handle_chinese_chars: flag(tokenizerConfig, 'tokenize_chinese_chars', true),
        strip_accents: typeof strip === 'boolean' ? strip : null,
        lowercase: flag(tokenizerConfig, 'do_lower_case', true),
      },
      pre_tokenizer: { type: 'BertPreTokenizer' },
      post_processor: null,
      decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
      model: {
        type: 'WordPiece', unk_token: specials.named.unk_token?.content ?? '[UNK]',
        continuing_subword_prefix: '##', max_input_chars_per_word: 100, vocab: parseVocabTxt(files.vocabTxt),
      },
    };
  } else {
    throw new ConfigError('legacy tokenizer: need vocab.json + merges.txt or vocab.txt.',
      'Provide tokenizer.json, or the legacy files of a GPT-2/RoBERTa (vocab.json, merges.txt) or BERT (vocab.txt) tokenizer.');
  }
  json = registerAddedTokens(json, specials, tokenizerConfig, addedTokensFile);
  const ids = tokenIds(json);
  const name = (key: 'bos_token' | 'cls_token' | 'sep_token'): string => {
    const spec = specials.named[key];
    if (spec === undefined) {
      throw new ConfigError(`legacy ${family} tokenizer: no ${key} is set, but its post-processor needs one.`,
        `Set "${key}" in tokenizer_config.json.`);
    }
    return spec.content;
  };
  if (files.vocabTxt !== undefined && files.vocabJson === undefined) {
    const cls = name('cls_token');
    const sep = name('sep_token');
    json.post_processor = templateProcessing(`${cls}:0 $A:0 ${sep}:0`, `${cls}:0 $A:0 ${sep}:0 $B:1 ${sep}:1`, ids);
  } else if (family === 'roberta') {
    const sep = name('sep_token');
    const cls = name('cls_token');
    json.post_processor = {
      type: 'RobertaProcessing', sep: [sep, ids.get(sep)], cls: [cls, ids.get(cls)], trim_offsets: true,
      add_prefix_space: flag(tokenizerConfig, 'add_prefix_space', false),
    };
  } else if (flag(tokenizerConfig, 'add_bos_token', false)) {
    const bos = name('bos_token');
    json.post_processor = templateProcessing(`${bos}:0 $A:0`, `${bos}:0 $A:0 $B:1`, ids);
  }
  return json;
}

/** LlamaTokenizerFast's post-processor from `add_bos_token` (default true) and `add_eos_token` (false). */
export function llamaPostProcessor(json: TokenizerJson, specials: SpecialTokens, tokenizerConfig: JsonObject): JsonObject {
  const addBos = flag(tokenizerConfig, 'add_bos_token', true);
  const addEos = flag(tokenizerConfig, 'add_eos_token', false);
  const bos = specials.named.bos_token?.content;
  const eos = specials.named.eos_token?.content;
  if ((addBos && bos === undefined) || (addEos && eos === undefined)) {
    throw new ConfigError('tokenizer_config.json: add_bos_token/add_eos_token is on but the token is not set.',
      'Set "bos_token"/"eos_token" in tokenizer_config.json, or turn the flag off.');
  }
  const single = `${addBos ? `${bos}:0 ` : ''}$A:0${addEos ? ` ${eos}:0` : ''}`;
  const pair = `${single}${addBos ? ` ${bos}:1` : ''} $B:1${addEos ? ` ${eos}:1` : ''}`;
  return templateProcessing(single, pair, tokenIds(json));
}
