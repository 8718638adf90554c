/**
 * The held-out measurement of the default masked LM (scripts/train_mlm_default.ts): a fixed,
 * documented mask set over heldout.txt, so anyone can recompute the number from the shipped files, and
 * the add-one-smoothed unigram baseline scored on the same masked positions.
 */
import { createHash } from 'node:crypto';
import { IGNORE_INDEX } from '../src/training/losses.js';
import type { Batch } from '../src/training/data_batches.js';

/** Mask sets per held-out line: each masks ≈ 1/7 ≈ 14 % of the tokens at once (training masks 15 %). */
export const HELDOUT_MASK_SETS = 7;

/** The rule, as the card and eval_results.json state it (tests re-implement it from this text). */
export const HELDOUT_MASK_RULE = 'each line i (0-based) of heldout.txt is encoded alone as <s> … </s>; each non-special position t (0-based, <s> at 0) '
  + 'belongs to mask set (first 4 bytes of SHA-256 of the UTF-8 string `${i}:${t}`, read big-endian) mod 7; for each set, its positions are '
  + 'replaced by <mask> at once and scored there (cross-entropy), so every non-special token is scored exactly once with about 1/7 of its line masked; '
  + 'perplexity = exp(mean)';

/** The mask set (0 … HELDOUT_MASK_SETS − 1) of position `t` of held-out line `i`. */
export function heldoutMaskSet(i: number, t: number): number {
  return createHash('sha256').update(`${i}:${t}`).digest().readUInt32BE(0) % HELDOUT_MASK_SETS;
}

/** Padded batches of the held-out rows, one row per (line, non-empty mask set); labels -100 off the set. */
export function heldoutBatches(rows: readonly number[][], opts: { maskId: number; padId: number; specialIds: readonly number[]; batchSize: number }): Batch[] {
  const special = new Set(opts.specialIds);
  const masked: { ids: number[]; labels: number[] }[] = [];
  rows.forEach((row, i) => {
    const set = row.map((id, t) => (special.has(id) ? -1 : heldoutMaskSet(i, t)));
    for (let r = 0; r < HELDOUT_MASK_SETS; r++) {
      if (!set.includes(r)) continue;
      masked.push({ ids: row.map((id, t) => (set[t] === r ? opts.maskId : id)), labels: row.map((id, t) => (set[t] === r ? id : IGNORE_INDEX)) });
    }
  });
  const out: Batch[] = [];
  for (let s = 0; s < masked.length; s += opts.batchSize) {
    const part = masked.slice(s, s + opts.batchSize);
    const T = Math.max(...part.map((m) => m.ids.length));
    const pad = (v: number[], fill: number) => [...v, ...new Array<number>(T - v.length).fill(fill)];
    out.push({ inputIds: part.map((m) => pad(m.ids, opts.padId)), attentionMask: part.map((m) => pad(m.ids.map(() => 1), 0)), tokenLabels: part.map((m) => pad(m.labels, IGNORE_INDEX)) });
  }
  return out;
}

/** The scored targets of batches (labels other than -100), in order. */
export function scoredTargets(batches: readonly Batch[]): number[] {
  return batches.flatMap((b) => (b.tokenLabels ?? []).flat().filter((y) => y !== IGNORE_INDEX));
}
