/**
 * Trains the default models' byte-level BPE tokenizer on the corpus's training split and writes
 * `tokenizer.json`, `tokenizer_config.json` and `special_tokens_map.json` into a folder.
 *
 *   node dist/scripts/train_tokenizer.js [--corpus .cache/corpus] [--out .cache/tokenizer] [--vocab-size 4096]
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { bpeTokenizerJson, countPieces, trainByteLevelBpe } from '../src/tokenizers/bpe_trainer.js';

/** The one special token: document separator, BOS, EOS and padding at once, as GPT-2's. */
export const EOT = '<|endoftext|>';

function flag(argv: string[], name: string, fallback: string): string {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : fallback;
}

/** The texts of a corpus JSONL file. */
export function readTexts(path: string): string[] {
  return readFileSync(path, 'utf8').split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { text: string }).text);
}

function main(): void {
  const argv = process.argv.slice(2);
  const corpus = resolve(flag(argv, '--corpus', '.cache/corpus'));
  const out = resolve(flag(argv, '--out', '.cache/tokenizer'));
  const vocabSize = Number(flag(argv, '--vocab-size', '4096'));
  const t0 = performance.now();
  const counts = countPieces(readTexts(join(corpus, 'train.jsonl')));
  const model = trainByteLevelBpe(counts, { vocabSize, specialTokens: [EOT] });
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'tokenizer.json'), JSON.stringify(bpeTokenizerJson(model, [EOT])));
  writeFileSync(join(out, 'tokenizer_config.json'), JSON.stringify({ tokenizer_class: 'GPT2Tokenizer', model_max_length: 128, add_prefix_space: false, bos_token: EOT, eos_token: EOT, unk_token: EOT, pad_token: EOT }, null, 2) + '\n');
  writeFileSync(join(out, 'special_tokens_map.json'), JSON.stringify({ bos_token: EOT, eos_token: EOT, unk_token: EOT, pad_token: EOT }, null, 2) + '\n');
  process.stdout.write(`${counts.size} distinct pieces; ${model.merges.length} merges; vocabulary ${Object.keys(model.vocab).length}; ${((performance.now() - t0) / 1000).toFixed(1)} s -> ${out}\n`);
}

main();
