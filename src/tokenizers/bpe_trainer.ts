/**
 * Byte-level BPE training, as HF `tokenizers`' BpeTrainer with a ByteLevel pre-tokenizer (GPT-2's scheme):
 * texts are split by GPT-2's regex, each piece is mapped byte by byte to printable stand-ins, and the most
 * frequent adjacent pair of symbols is merged until the vocabulary is full. Ties go to the pair whose
 * (left, right) strings sort first, so training is deterministic. The result is a `tokenizer.json` that
 * `@huggingface/tokenizers` (and so `AutoTokenizer`) loads.
 */
import type { TokenizerJson } from './special_tokens.js';

/** GPT-2's pre-tokenizer regex (HF ByteLevel with use_regex). */
export const GPT2_SPLIT = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

/** GPT-2's byte → printable-character table: entry b stands for byte b (space is 'Ġ'). */
export function byteLevelAlphabet(): string[] {
  const printable: number[] = [];
  for (let b = 33; b <= 126; b++) printable.push(b);
  for (let b = 161; b <= 172; b++) printable.push(b);
  for (let b = 174; b <= 255; b++) printable.push(b);
  const table: string[] = new Array(256);
  for (const b of printable) table[b] = String.fromCodePoint(b);
  let n = 0;
  for (let b = 0; b < 256; b++) if (table[b] === undefined) table[b] = String.fromCodePoint(256 + n++);
  return table;
}

const ALPHABET = byteLevelAlphabet();
const ENCODER = new TextEncoder();

/** A text's pre-tokenized pieces in byte-level form (what BPE then merges inside). */
export function byteLevelPieces(text: string): string[] {
  return (text.match(GPT2_SPLIT) ?? []).map((p) => Array.from(ENCODER.encode(p), (b) => ALPHABET[b]).join(''));
}

/** Options of {@link trainByteLevelBpe}. */
export interface BpeTrainOptions {
  /** Total vocabulary: 256 bytes + merges + special tokens. */
  vocabSize: number;
  /** Appended after the merged tokens, in order (e.g. ['<|endoftext|>']). */
  specialTokens?: readonly string[];
  /** Pairs seen fewer times than this are never merged (default 2). */
  minFrequency?: number;
}

/** A trained byte-level BPE: vocabulary (token → id) and merges in rank order. */
export interface BpeModel {
  vocab: Record<string, number>;
  merges: [string, string][];
}

/** Counts of each distinct pre-tokenized piece over `texts`. */
export function countPieces(texts: Iterable<string>): Map<string, number> {
  const counts = new Map<string, number>();
  for (const t of texts) for (const p of byteLevelPieces(t)) counts.set(p, (counts.get(p) ?? 0) + 1);
  return counts;
}

/** Trains a byte-level BPE on piece counts (from {@link countPieces}). */
export function trainByteLevelBpe(pieceCounts: Map<string, number>, opts: BpeTrainOptions): BpeModel {
  const specials = opts.specialTokens ?? [];
  const minFreq = opts.minFrequency ?? 2;
  const symbols: string[] = ALPHABET.slice();
  const symbolId = new Map(symbols.map((s, i) => [s, i]));
  const words: number[][] = [];
  const freq: number[] = [];
  for (const [piece, c] of [...pieceCounts].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))) {
    words.push(Array.from(piece, (ch) => symbolId.get(ch)!));
    freq.push(c);
  }
  // Pair (a, b) as one number: ids stay below 2^20, so a * 2^20 + b is exact.
  const K = 1 << 20;
  const pairCount = new Map<number, number>();
  const where = new Map<number, Set<number>>();
  const add = (w: number, sign: number) => {
    const s = words[w];
    for (let i = 0; i + 1 < s.length; i++) {
      const k = s[i] * K + s[i + 1];
      pairCount.set(k, (pairCount.get(k) ?? 0) + sign * freq[w]);
      if (sign > 0) {
        let set = where.get(k);
        if (!set) where.set(k, (set = new Set()));
        set.add(w);
      }
    }
  };
  for (let w = 0; w < words.length; w++) add(w, 1);
  const merges: [string, string][] = [];
  const target = opts.vocabSize - specials.length;
  while (symbols.length < target) {
    let best = -1;
    let bestCount = 0;
    for (const [k, c] of pairCount) {
      if (c > bestCount) {
        best = k;
        bestCount = c;
      } else if (c === bestCount && c > 0) {
        const [a, b] = [Math.floor(k / K), k % K];
        const [ba, bb] = [Math.floor(best / K), best % K];
        if (symbols[a] < symbols[ba] || (symbols[a] === symbols[ba] && symbols[b] < symbols[bb])) best = k;
      }
    }
    if (best < 0 || bestCount < minFreq) break;
    const a = Math.floor(best / K);
    const b = best % K;
    const merged = symbols.length;
    symbols.push(symbols[a] + symbols[b]);
    merges.push([symbols[a], symbols[b]]);
    for (const w of where.get(best) ?? []) {
      add(w, -1);
      const s = words[w];
      const next: number[] = [];
      for (let i = 0; i < s.length; i++) {
        if (i + 1 < s.length && s[i] === a && s[i + 1] === b) {
          next.push(merged);
          i++;
        } else next.push(s[i]);
      }
      words[w] = next;
      add(w, 1);
    }
    where.delete(best);
    pairCount.delete(best);
  }
  const vocab: Record<string, number> = {};
  symbols.forEach((s, i) => (vocab[s] = i));
  for (const t of specials) vocab[t] = Object.keys(vocab).length;
  return { vocab, merges };
}

/** Applies ranked merges to one byte-level piece, lowest rank first (BPE encoding without caches). */
export function applyMerges(piece: string, merges: readonly [string, string][]): string[] {
  const rank = new Map(merges.map(([a, b], i) => [`${a} ${b}`, i]));
  let parts = Array.from(piece);
  for (;;) {
    let bestI = -1;
    let bestR = Infinity;
    for (let i = 0; i + 1 < parts.length; i++) {
      const r = rank.get(`${parts[i]} ${parts[i + 1]}`);
      if (r !== undefined && r < bestR) [bestR, bestI] = [r, i];
    }
    if (bestI < 0) return parts;
    const [a, b] = merges[bestR];
    const next: string[] = [];
    for (let i = 0; i < parts.length; i++) {
      if (i + 1 < parts.length && parts[i] === a && parts[i + 1] === b) {
        next.push(a + b);
        i++;
      } else next.push(parts[i]);
    }
    parts = next;
  }
}

/** The tokenizer.json of a trained model: ByteLevel pre-tokenizer/decoder, BPE model, special tokens added. */
export function bpeTokenizerJson(model: BpeModel, specialTokens: readonly string[]): TokenizerJson {
  const byteLevel = { add_prefix_space: false, trim_offsets: true, use_regex: true };
  return {
    version: '1.0', truncation: null, padding: null,
    added_tokens: specialTokens.map((t) => ({ id: model.vocab[t], content: t, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', ...byteLevel },
    post_processor: { type: 'ByteLevel', ...byteLevel, trim_offsets: false },
    decoder: { type: 'ByteLevel', ...byteLevel },
    model: {
      type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: '', end_of_word_suffix: '',
      fuse_unk: false, byte_fallback: false, ignore_merges: false,
      vocab: model.vocab, merges: model.merges.map(([a, b]) => [a, b]),
    },
  } as unknown as TokenizerJson;
}
