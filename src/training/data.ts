/**
 * From a data table to training examples: column mapping, labels (HF run_glue: class ids as given, or
 * names mapped through the model's label2id or the sorted names of the training data), a seeded
 * train/validation split, tokenisation memoised per run, and the datasets of the three tasks —
 * classification rows, masked-LM rows, and causal-LM blocks packed as HF run_clm's `group_texts`
 * (texts concatenated, each ended with EOS, cut into `block_size` blocks, the remainder dropped).
 * Batching, length bucketing and MLM masking are in data_batches.ts.
 */
import { Rng } from '../backend/rng.js';
import { ConfigError } from '../errors.js';
import type { ProblemType } from '../models/classification.js';
import type { PreTrainedTokenizer } from '../tokenizers/tokenizer.js';
import { rowLocation, type DataTable } from './data_formats.js';

/** Which columns hold what (defaults: `text`, `label`). */
export interface ColumnMap {
  text?: string;
  /** Second text of a pair (e.g. premise / hypothesis). */
  textPair?: string;
  label?: string;
}

/** One example as read, with where it came from (for messages). */
export interface TextExample {
  text: string;
  pair?: string;
  label?: unknown;
  where: string;
}

function needColumn(table: DataTable, name: string, role: string, flag: string): void {
  if (!table.columns.includes(name)) {
    throw new ConfigError(`${table.source} has no column '${name}' (the ${role}); its columns are: ${table.columns.join(', ') || '(none)'}`, `pass ${flag} with one of these column names`);
  }
}

function textValue(table: DataTable, i: number, col: string): string {
  const v = table.rows[i][col];
  if (typeof v === 'string') return v;
  const found = v === undefined ? 'nothing' : `${JSON.stringify(v)} (${v === null ? 'null' : typeof v})`;
  throw new ConfigError(`${rowLocation(table, i)}: column '${col}' holds ${found}, expected a string`, 'every example needs its text as a string');
}

/** Pick the text (and pair, and label) columns of every row; fails on an empty table or a missing column. */
export function selectExamples(table: DataTable, map: ColumnMap, opts: { labels: boolean }): TextExample[] {
  if (!table.rows.length) throw new ConfigError(`the data file ${table.source} holds no examples`, 'check the file: it is empty, or holds only blank lines / a header');
  const text = map.text ?? 'text';
  needColumn(table, text, 'text column', '--text-column');
  if (map.textPair !== undefined) needColumn(table, map.textPair, 'text-pair column', '--text-pair-column');
  const label = map.label ?? 'label';
  if (opts.labels) needColumn(table, label, 'label column', '--label-column');
  return table.rows.map((row, i) => {
    const ex: TextExample = { text: textValue(table, i, text), where: rowLocation(table, i) };
    if (map.textPair !== undefined) ex.pair = textValue(table, i, map.textPair);
    if (opts.labels) {
      const v = row[label];
      if (v === undefined || v === null || v === '') throw new ConfigError(`${ex.where}: the label column '${label}' is empty`, 'give every training example a label');
      ex.label = v;
    }
    return ex;
  });
}

/** Labels of a classification run (HF config's id2label / label2id, plus how data labels are read). */
export interface LabelSpace {
  /** 'int': class ids as given; 'name': strings mapped by label2id; 'regression': float targets. */
  kind: 'int' | 'name' | 'regression';
  problemType: ProblemType;
  numLabels: number;
  id2label: Record<string, string>;
  label2id: Record<string, number>;
}

/** What the checkpoint already says about labels. */
export interface KnownLabels {
  numLabels: number;
  id2label: Record<string, string>;
  label2id: Record<string, number>;
  /** The checkpoint has a trained head for exactly these labels, so they cannot change. */
  fixed: boolean;
}

const INT = /^-?\d+$/;

function defaultNames(n: number): Record<string, string> {
  return Object.fromEntries(Array.from({ length: n }, (_, i) => [String(i), `LABEL_${i}`]));
}

function invert(id2label: Record<string, string>): Record<string, number> {
  return Object.fromEntries(Object.entries(id2label).map(([k, v]) => [v, Number(k)]));
}

/**
 * Decide the label space from the training labels: all integers → class ids (num_labels from the
 * checkpoint's trained head, `numLabels`, or max + 1); non-integer numbers → regression; strings →
 * names, through the checkpoint's label2id when it has every name, else sorted (HF run_glue).
 * Integer-looking strings (CSV) count as integers unless the checkpoint names them.
 */
export function resolveLabelSpace(train: readonly TextExample[], known?: KnownLabels, opts: { numLabels?: number } = {}): LabelSpace {
  const values = train.map((e) => e.label);
  const bad = train.find((e) => !(typeof e.label === 'number' || typeof e.label === 'string'));
  if (bad) throw new ConfigError(`${bad.where}: label ${JSON.stringify(bad.label)} is neither a number nor a string`, 'give one class id or class name per example (multi-label targets are not supported here)');
  const allNumbers = values.every((v) => typeof v === 'number');
  const allStrings = values.every((v) => typeof v === 'string');
  if (!allNumbers && !allStrings) {
    const first = train.find((e) => typeof e.label !== typeof train[0].label)!;
    throw new ConfigError(`the labels mix numbers and strings (${train[0].where}: ${JSON.stringify(train[0].label)}, ${first.where}: ${JSON.stringify(first.label)})`, 'use class ids everywhere, or class names everywhere');
  }
  const named = known && allStrings && values.every((v) => (v as string) in known.label2id);
  const nums = values.map((v) => (typeof v === 'number' ? v : String(v).trim() === '' ? NaN : Number(v)));
  const numeric = !named && nums.every((v) => Number.isFinite(v));
  if (numeric && (nums.some((v) => !Number.isInteger(v)) || (known?.fixed && known.numLabels === 1))) {
    if (known?.fixed && known.numLabels !== 1) throw new ConfigError(`the labels are real numbers (regression), but the checkpoint classifies into ${known.numLabels} classes`, 'use class ids, or start from a checkpoint without a classification head');
    return { kind: 'regression', problemType: 'regression', numLabels: 1, id2label: defaultNames(1), label2id: invert(defaultNames(1)) };
  }
  if (!named && (allNumbers || values.every((v) => INT.test((v as string).trim())))) {
    const ids = values.map((v) => Number(v));
    const numLabels = opts.numLabels ?? (known?.fixed ? known.numLabels : Math.max(2, ...ids.map((v) => v + 1)));
    const keep = known && known.numLabels === numLabels;
    const id2label = keep ? known.id2label : defaultNames(numLabels);
    return { kind: 'int', problemType: 'single_label_classification', numLabels, id2label, label2id: keep ? known.label2id : invert(id2label) };
  }
  if (named) return { kind: 'name', problemType: 'single_label_classification', numLabels: known.numLabels, id2label: known.id2label, label2id: known.label2id };
  const names = [...new Set(values as string[])].sort();
  if (known?.fixed) {
    const unknown = names.filter((n) => !(n in known.label2id));
    throw new ConfigError(`labels ${unknown.map((n) => JSON.stringify(n)).join(', ')} are not among the checkpoint's labels (${Object.keys(known.label2id).join(', ')})`, 'use the label names of the checkpoint, or start from a checkpoint without a classification head');
  }
  if (names.length < 2) throw new ConfigError(`the training data has a single label value (${JSON.stringify(names[0])}); classification needs at least two classes`, 'check the label column');
  if (opts.numLabels !== undefined && opts.numLabels !== names.length) throw new ConfigError(`num_labels is ${opts.numLabels}, but the training data names ${names.length} labels (${names.join(', ')})`, 'drop --num-labels, or fix the labels');
  const id2label = Object.fromEntries(names.map((n, i) => [String(i), n]));
  return { kind: 'name', problemType: 'single_label_classification', numLabels: names.length, id2label, label2id: invert(id2label) };
}

/** Class ids (or regression targets) of examples; a label outside the space fails, naming its row. */
export function labelIds(examples: readonly TextExample[], space: LabelSpace): number[] {
  return examples.map((e) => {
    const v = e.label;
    if (space.kind === 'regression') {
      const x = typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' ? Number(v) : NaN;
      if (!Number.isFinite(x)) throw new ConfigError(`${e.where}: regression target ${JSON.stringify(v)} is not a finite number`, 'give one number per example');
      return x;
    }
    if (space.kind === 'name') {
      const id = typeof v === 'string' ? space.label2id[v] : undefined;
      if (id === undefined) throw new ConfigError(`${e.where}: label ${JSON.stringify(v)} is not one of the labels (${Object.keys(space.label2id).join(', ')})`, 'the labels come from the training data (or the checkpoint\'s label2id); fix the example or add the label to the training data');
      return id;
    }
    const id = typeof v === 'number' ? v : typeof v === 'string' && INT.test(v.trim()) ? Number(v) : NaN;
    if (!(Number.isInteger(id) && id >= 0 && id < space.numLabels)) {
      throw new ConfigError(`${e.where}: label ${JSON.stringify(v)} is outside the ${space.numLabels} classes (ids 0..${space.numLabels - 1})`, 'class ids must lie below num_labels; pass --num-labels to change it (not possible for a checkpoint that already has a trained head)');
    }
    return id;
  });
}

/**
 * Split examples into train and validation by a seeded shuffle: ceil(ratio · n) examples for validation
 * (HF datasets' `train_test_split` rule), both parts kept in file order.
 */
export function splitTrainValidation<T>(items: readonly T[], ratio: number, seed: number): { train: T[]; validation: T[] } {
  if (!(ratio > 0 && ratio < 1)) throw new ConfigError(`the validation split must lie strictly between 0 and 1, found ${ratio}`, 'use e.g. 0.1 for 10%');
  const n = items.length;
  const nVal = Math.ceil(ratio * n);
  if (nVal >= n) throw new ConfigError(`a validation split of ${ratio} leaves no training examples out of ${n}`, 'use a smaller split, more data, or a separate validation file');
  const order = Array.from({ length: n }, (_, i) => i);
  const rng = new Rng(seed).split();
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [order[i], order[j]] = [order[j], order[i]];
  }
  const isVal = new Uint8Array(n);
  for (const i of order.slice(0, nVal)) isVal[i] = 1;
  return { train: items.filter((_, i) => !isVal[i]), validation: items.filter((_, i) => isVal[i]) };
}

/** One tokenised example. */
export interface EncodedRow {
  ids: number[];
  typeIds?: number[];
}

/** Tokenised examples, with one label per row for classification. */
export interface TokenDataset {
  rows: EncodedRow[];
  labels?: number[];
}

/** Tokenisation options that change the result (part of the memo key). */
export interface TokenizeOptions {
  /** Truncate to this many tokens, special tokens included. */
  maxLength?: number;
  addSpecialTokens?: boolean;
}

/** Memoised tokenisation for one run: each distinct (text, pair, options) is encoded once. */
export class TokenCache {
  private readonly memo = new Map<string, EncodedRow>();
  constructor(readonly tokenizer: PreTrainedTokenizer) {}
  /** Distinct encodings held. */
  get size(): number {
    return this.memo.size;
  }
  encode(text: string, pair: string | undefined, opts: TokenizeOptions = {}): EncodedRow {
    const key = JSON.stringify([opts.maxLength ?? null, opts.addSpecialTokens ?? true, pair ?? null, text]);
    let row = this.memo.get(key);
    if (!row) {
      const enc = this.tokenizer.encode(text, { pair, maxLength: opts.maxLength, truncation: opts.maxLength !== undefined, addSpecialTokens: opts.addSpecialTokens ?? true });
      row = enc.tokenTypeIds ? { ids: enc.ids, typeIds: enc.tokenTypeIds } : { ids: enc.ids };
      this.memo.set(key, row);
    }
    return row;
  }
}

/** Classification rows: each text (or pair) truncated to `maxLength`, with its class id. */
export function classificationDataset(examples: readonly TextExample[], cache: TokenCache, space: LabelSpace, opts: { maxLength: number }): TokenDataset {
  const labels = labelIds(examples, space);
  return { rows: examples.map((e) => cache.encode(e.text, e.pair, { maxLength: opts.maxLength })), labels };
}

/** Masked-LM rows: each text with its special tokens, truncated to `maxLength`; empty texts dropped. */
export function mlmDataset(examples: readonly TextExample[], cache: TokenCache, opts: { maxLength: number }): TokenDataset {
  const special = cache.tokenizer.numSpecialTokensToAdd(false);
  const rows = examples.map((e) => cache.encode(e.text, e.pair, { maxLength: opts.maxLength })).filter((r) => r.ids.length > special);
  if (!rows.length) throw new ConfigError('every example tokenises to nothing but special tokens', 'check the text column');
  return { rows };
}

/** HF `group_texts`: concatenate, cut into blocks of `blockSize`, drop the remainder. */
export function groupTexts(sequences: readonly number[][], blockSize: number): number[][] {
  const all = sequences.flat();
  const total = Math.floor(all.length / blockSize) * blockSize;
  const out: number[][] = [];
  for (let i = 0; i < total; i += blockSize) out.push(all.slice(i, i + blockSize));
  return out;
}

/** Each text's ids (the tokenizer's special tokens, e.g. Llama's BOS) ended by EOS, as LM training reads them. */
export function lmSequences(examples: readonly TextExample[], cache: TokenCache, eosId: number | undefined): number[][] {
  return examples.map((e) => {
    const ids = cache.encode(e.text, undefined).ids;
    return eosId !== undefined && ids.length && ids[ids.length - 1] !== eosId ? [...ids, eosId] : ids;
  }).filter((ids) => ids.length > 0);
}

/** Causal-LM rows: packed blocks of `blockSize` (default), or each text truncated to `blockSize`. */
export function lmDataset(examples: readonly TextExample[], cache: TokenCache, opts: { blockSize: number; packing?: boolean; eosId?: number }): TokenDataset {
  const seqs = lmSequences(examples, cache, opts.eosId);
  if (opts.packing ?? true) {
    const rows = groupTexts(seqs, opts.blockSize).map((ids) => ({ ids }));
    const total = seqs.reduce((s, r) => s + r.length, 0);
    if (!rows.length) throw new ConfigError(`the data gives ${total} tokens, fewer than one block of block_size ${opts.blockSize}`, 'lower --block-size, add data, or turn packing off (--no-packing)');
    return { rows };
  }
  const rows = seqs.map((ids) => ({ ids: ids.slice(0, opts.blockSize) })).filter((r) => r.ids.length >= 2);
  if (!rows.length) throw new ConfigError('no example has the two tokens needed to predict one', 'check the text column');
  return { rows };
}
