/**
 * Hard constraints on which token may come next: HF's NoBadWordsLogitsProcessor (a −∞ SequenceBias),
 * MinLengthLogitsProcessor and MinNewTokensLengthLogitsProcessor (transformers/generation/logits_process.py).
 * Unlike HF, lengths are each row's real length (no padding), so a row behaves the same alone or in a batch.
 */
import type { LogitsProcessor } from '../types.js';
import { banTokens, named, promptOfRow } from './rows.js';

/**
 * Forbid token sequences: a one-token entry is never generated; a longer entry's last token is banned when
 * the row ends with the rest of it. Entries equal to a single EOS id are dropped, as HF does.
 */
export function badWords(badWordsIds: number[][], eosTokenIds: number[] = []): LogitsProcessor {
  const words = badWordsIds.filter((w) => !(w.length === 1 && eosTokenIds.includes(w[0])));
  const single = words.filter((w) => w.length === 1).map((w) => w[0]);
  const multi = words.filter((w) => w.length > 1);
  return named('NoBadWordsLogitsProcessor', (ids, scores) => banTokens(scores, ids.map((row) => {
    const banned = single.slice();
    for (const w of multi) {
      // HF skips entries longer than the sequence so far (SequenceBiasLogitsProcessor).
      if (w.length > row.length) continue;
      const start = row.length - (w.length - 1);
      if (w.slice(0, -1).every((t, j) => row[start + j] === t)) banned.push(w[w.length - 1]);
    }
    return banned;
  })));
}

/** EOS is banned while a row (prompt + new tokens) is shorter than `minLength`. */
export function minLength(minLen: number, eosTokenIds: number[]): LogitsProcessor {
  return named('MinLengthLogitsProcessor', (ids, scores) => banTokens(scores, ids.map((row) => (row.length < minLen ? eosTokenIds : []))));
}

/**
 * EOS is banned while a row has fewer than `minNew` new tokens. `promptLengths[i]` is prompt i's length;
 * rows are grouped by prompt (prompt i owns N / prompts consecutive rows: samples or beams).
 */
export function minNewTokens(promptLengths: number[], minNew: number, eosTokenIds: number[]): LogitsProcessor {
  return named('MinNewTokensLengthLogitsProcessor', (ids, scores) => banTokens(scores, ids.map((row, r) => {
    const prompt = promptLengths[promptOfRow(r, ids.length, promptLengths.length)];
    return row.length - prompt < minNew ? eosTokenIds : [];
  })));
}
