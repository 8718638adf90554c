/**
 * Derives the RoBERTa-style tokenizer of `models/makemost-bert-tiny` from the byte-level BPE of
 * scripts/train_tokenizer.ts, deterministically (same input files, same bytes out). The layout is
 * roberta-base's: `<s>`=0, `<pad>`=1, `</s>`=2, `<unk>`=3, the BPE's tokens in their order from 4,
 * `<mask>` last; merges are unchanged (BPE merges name strings, not ids). `<|endoftext|>` is dropped:
 * `</s>` ends every document instead, as in RoBERTa. The post-processor is tokenizers'
 * RobertaProcessing (`<s> A </s>`, pairs `<s> A </s></s> B </s>`), and the config files name
 * RobertaTokenizer, so transformers and our AutoTokenizer give the mask/pad/cls/sep ids the MLM code needs.
 * `<pad>` = 1 matters beyond padding: RoBERTa numbers positions from padding_idx + 1.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError } from '../src/errors.js';
import type { AddedTokenJson, TokenizerJson } from '../src/tokenizers/special_tokens.js';

/** RoBERTa's special tokens, in roberta-base's id order (`<mask>` is appended after the BPE's tokens). */
export const ROBERTA_SPECIALS = { bos: '<s>', pad: '<pad>', eos: '</s>', unk: '<unk>', mask: '<mask>' } as const;

/** The GPT tokenizer's document separator, which the RoBERTa tokenizer replaces by `</s>`. */
export const GPT_EOT = '<|endoftext|>';

/** The three files of the derived tokenizer, as parsed JSON. */
export interface RobertaTokenizerFiles {
  tokenizerJson: TokenizerJson;
  tokenizerConfig: Record<string, unknown>;
  specialTokensMap: Record<string, unknown>;
}

function added(id: number, content: string, lstrip = false): AddedTokenJson {
  return { id, content, single_word: false, lstrip, rstrip: false, normalized: false, special: true };
}

/** The RoBERTa-style tokenizer files derived from a byte-level BPE tokenizer.json. */
export function robertaTokenizerFromBpe(bpe: TokenizerJson, opts: { modelMaxLength: number }): RobertaTokenizerFiles {
  const model = bpe.model as { type?: string; vocab?: Record<string, number>; merges?: unknown[] };
  if (model.type !== 'BPE' || !model.vocab || !Array.isArray(model.merges)) throw new ConfigError(`tokenizer.json: expected a BPE model with vocab and merges, found type ${JSON.stringify(model.type)}`, 'pass the folder written by scripts/train_tokenizer.ts');
  if (bpe.pre_tokenizer?.type !== 'ByteLevel') throw new ConfigError(`tokenizer.json: expected pre_tokenizer ByteLevel, found ${JSON.stringify(bpe.pre_tokenizer?.type)}`, 'the RoBERTa layout assumes a byte-level BPE (scripts/train_tokenizer.ts)');
  const S = ROBERTA_SPECIALS;
  const ordinary = Object.entries(model.vocab).filter(([t]) => t !== GPT_EOT).sort((a, b) => a[1] - b[1]).map(([t]) => t);
  for (const t of Object.values(S)) if (ordinary.includes(t)) throw new ConfigError(`tokenizer.json: the BPE vocabulary already holds ${t}`, 'train the BPE without RoBERTa\'s special tokens; they are added here');
  const vocab: Record<string, number> = { [S.bos]: 0, [S.pad]: 1, [S.eos]: 2, [S.unk]: 3 };
  ordinary.forEach((t, i) => { vocab[t] = i + 4; });
  const maskId = ordinary.length + 4;
  vocab[S.mask] = maskId;
  const tokenizerJson: TokenizerJson = {
    version: '1.0',
    truncation: null,
    padding: null,
    // roberta-base's flags: `<mask>` strips the space before it, so "The <mask> is" predicts "Ġword".
    added_tokens: [added(0, S.bos), added(1, S.pad), added(2, S.eos), added(3, S.unk), added(maskId, S.mask, true)],
    normalizer: null,
    pre_tokenizer: { ...bpe.pre_tokenizer, add_prefix_space: false },
    post_processor: { type: 'RobertaProcessing', sep: [S.eos, 2], cls: [S.bos, 0], trim_offsets: true, add_prefix_space: false },
    decoder: bpe.decoder ?? { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    model: { ...model, unk_token: null, vocab, merges: model.merges },
  };
  const mask = { content: S.mask, single_word: false, lstrip: true, rstrip: false, normalized: false };
  const specialTokensMap = { bos_token: S.bos, eos_token: S.eos, unk_token: S.unk, sep_token: S.eos, pad_token: S.pad, cls_token: S.bos, mask_token: mask };
  const tokenizerConfig = {
    tokenizer_class: 'RobertaTokenizer', model_max_length: opts.modelMaxLength, add_prefix_space: false, trim_offsets: true,
    errors: 'replace', clean_up_tokenization_spaces: false, ...specialTokensMap,
  };
  return { tokenizerJson, tokenizerConfig, specialTokensMap };
}

/** Reads `srcDir`/tokenizer.json, derives the RoBERTa tokenizer and writes its three files into `outDir`. */
export function writeRobertaTokenizer(srcDir: string, outDir: string, opts: { modelMaxLength: number }): RobertaTokenizerFiles {
  const files = robertaTokenizerFromBpe(JSON.parse(readFileSync(join(srcDir, 'tokenizer.json'), 'utf8')) as TokenizerJson, opts);
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, 'tokenizer.json'), JSON.stringify(files.tokenizerJson));
  writeFileSync(join(outDir, 'tokenizer_config.json'), JSON.stringify(files.tokenizerConfig, null, 2) + '\n');
  writeFileSync(join(outDir, 'special_tokens_map.json'), JSON.stringify(files.specialTokensMap, null, 2) + '\n');
  return files;
}
