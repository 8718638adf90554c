/**
 * Truncation and padding as pure functions over token lists. Truncation follows HF tokenizers'
 * `truncate_encodings` (utils/truncation.rs, strategy LongestFirst); padding follows
 * `PreTrainedTokenizerBase._pad` (pad ids, attention mask 0, token type id 0 on the padding side).
 */

/** Which end loses tokens (truncation) or receives padding. */
export type Side = 'left' | 'right';

function keep<T>(items: T[], n: number, side: Side): T[] {
  if (items.length <= n) return items;
  return side === 'right' ? items.slice(0, n) : items.slice(items.length - n);
}

/**
 * Cuts `a` (and `b`) so that together they hold at most `maxLength` items. With a pair, only the longer
 * one is cut while that suffices; otherwise both get half, the second one the odd item (LongestFirst).
 */
export function truncateLongestFirst<T>(a: T[], b: T[] | null, maxLength: number, side: Side): [T[], T[] | null] {
  if (b === null) return [keep(a, maxLength, side), null];
  if (a.length + b.length <= maxLength) return [a, b];
  let n1 = Math.min(a.length, b.length);
  let n2 = n1 > maxLength ? n1 : Math.max(n1, maxLength - n1);
  if (n1 + n2 > maxLength) {
    n1 = Math.floor(maxLength / 2);
    n2 = n1 + (maxLength % 2);
  }
  // n1 belongs to the shorter sequence; tokenizers swaps back so the first input gets its own share.
  const [nA, nB] = a.length > b.length ? [n2, n1] : [n1, n2];
  return [keep(a, nA, side), keep(b, nB, side)];
}

/** One encoded row before padding. */
export interface Row {
  ids: number[];
  attentionMask: number[];
  tokenTypeIds?: number[];
}

/** Pads every row to `length` (rows already that long or longer are left as they are). */
export function padRows(rows: Row[], length: number, padId: number, side: Side): Row[] {
  return rows.map((row) => {
    const n = Math.max(0, length - row.ids.length);
    const fill = (values: number[], value: number): number[] => {
      const pad = new Array<number>(n).fill(value);
      return side === 'right' ? [...values, ...pad] : [...pad, ...values];
    };
    const out: Row = { ids: fill(row.ids, padId), attentionMask: fill(row.attentionMask, 0) };
    if (row.tokenTypeIds) out.tokenTypeIds = fill(row.tokenTypeIds, 0);
    return out;
  });
}
