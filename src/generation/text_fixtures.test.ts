/** Fixtures for the text tests (no tests here): a byte-level GPT-2 tokenizer and a scripted table model. */
import { tidy } from '../backend/memory.js';
import type { DecoderForwardOptions, DecoderOutput, Ids } from '../models/types.js';
import { tokenizerFromFiles, type PreTrainedTokenizer } from '../tokenizers/index.js';
import { TableLM as LeakyTableLM, type NextFn } from '../../test/support/table_model.js';

/** test/support's TableLM leaves reshape intermediates behind; tidy them so leak counts see only ours. */
export class TableLM extends LeakyTableLM {
  override forward(inputIds: Ids, opts: DecoderForwardOptions = {}): DecoderOutput {
    return tidy(() => super.forward(inputIds, opts));
  }
}

export const EOS = 256;
/** A merged token that decodes to "ld. a" (GPT-2's byte alphabet writes the space as Ġ). */
export const LD_DOT_A = 257;

/** GPT-2's byte → printable-character table (openai/gpt-2 encoder.py bytes_to_unicode). */
function byteChars(): string[] {
  const printable: number[] = [];
  for (let b = 33; b <= 126; b++) printable.push(b);
  for (let b = 161; b <= 172; b++) printable.push(b);
  for (let b = 174; b <= 255; b++) printable.push(b);
  const table: string[] = new Array(256);
  let n = 0;
  for (let b = 0; b < 256; b++) table[b] = printable.includes(b) ? String.fromCodePoint(b) : String.fromCodePoint(256 + n++);
  return table;
}

/** Byte-level tokenizer: token id b is byte b, 256 is <|endoftext|> (BOS/EOS), 257 is "ld. a". */
export function byteTokenizer(): PreTrainedTokenizer {
  const chars = byteChars();
  const vocab: Record<string, number> = {};
  chars.forEach((ch, b) => (vocab[ch] = b));
  vocab['<|endoftext|>'] = EOS;
  vocab[['l', 'd', '.', chars[32], 'a'].join('')] = LD_DOT_A;
  return tokenizerFromFiles({
    vocabJson: vocab,
    mergesTxt: '#version: 0.2\n',
    tokenizerConfig: { tokenizer_class: 'GPT2Tokenizer', bos_token: '<|endoftext|>', eos_token: '<|endoftext|>', unk_token: '<|endoftext|>' },
  });
}

/** UTF-8 bytes of a string, as token ids of the byte tokenizer. */
export function bytesOf(text: string): number[] {
  return Array.from(new TextEncoder().encode(text));
}

/** A table model that, after a prompt of `promptLength` tokens, says `script` token by token, then EOS. */
export function scriptedModel(script: number[], promptLength: number, vocab = 258): TableLM {
  const next: NextFn = (prefix) => {
    const i = prefix.length - promptLength;
    const target = i >= 0 && i < script.length ? script[i] : EOS;
    return Array.from({ length: vocab }, (_, v) => (v === target ? -0.01 : -8));
  };
  return new TableLM(vocab, next, EOS);
}
