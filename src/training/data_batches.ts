/**
 * Batches for `train`: padding to the longest row of each batch, length bucketing (HF
 * `LengthGroupedSampler`: a seeded permutation cut into mega-batches of 50 batches, each sorted by
 * length, so a batch holds rows of similar length; the batch order is then shuffled by the same rng),
 * and dynamic masked-LM masking (HF `DataCollatorForLanguageModeling`: each real, non-special token is
 * chosen with probability 15%; a chosen token becomes the mask token 80% of the time, a random token
 * 10%, and stays 10%; labels are -100 except at chosen positions).
 *
 * Determinism and resuming: an epoch's order and masks come only from the rng `train` passes in. Each
 * batch's masks are drawn from its own stream, seeded by one draw taken after the order and by the
 * batch's index, so skipping the first `start` batches leaves the later batches exactly as they were.
 */
import { Rng } from '../backend/rng.js';
import { ConfigError } from '../errors.js';
import type { TokenDataset } from './data.js';
import type { BatchFactory } from './trainer.js';

/** One padded batch (right padding). */
export interface Batch {
  /** [B][T] */
  inputIds: number[][];
  /** [B][T]: 1 for tokens, 0 for padding. */
  attentionMask: number[][];
  /** [B][T], when the tokenizer gives segment ids (BERT). */
  tokenTypeIds?: number[][];
  /** Classification: a class id (or regression target) per row. */
  labels?: number[];
  /** LM and MLM: [B][T] targets, -100 where nothing is scored (padding, unmasked tokens). */
  tokenLabels?: number[][];
}

/** What the rows are for: decides the labels a batch carries. */
export type BatchKind = 'classification' | 'lm' | 'mlm';

/** Masked-LM masking (HF DataCollatorForLanguageModeling's parameters). */
export interface MlmOptions {
  maskTokenId: number;
  /** Random replacements are drawn from [0, vocabSize). */
  vocabSize: number;
  /** Never masked (CLS, SEP, PAD, …). */
  specialIds: readonly number[];
  /** mlm_probability (default 0.15). */
  probability?: number;
}

/** How to batch. */
export interface BatchOptions {
  kind: BatchKind;
  batchSize: number;
  padId: number;
  /** Required for 'mlm'. */
  mlm?: MlmOptions;
  /** Group rows of similar length (default true). */
  bucket?: boolean;
  /** Batches per mega-batch when bucketing (HF's megabatch_mult, default 50). */
  megabatchMult?: number;
}

function shuffle<T>(items: T[], rng: Rng): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [items[i], items[j]] = [items[j], items[i]];
  }
  return items;
}

function chunk<T>(items: T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** Batches of row indices, similar lengths together, in an order drawn from `rng`. */
export function lengthGroupedBatches(lengths: readonly number[], batchSize: number, rng: Rng, megabatchMult = 50): number[][] {
  const perm = shuffle(lengths.map((_, i) => i), rng);
  const batches = chunk(perm, batchSize * megabatchMult).flatMap((mega) => chunk(mega.sort((a, b) => lengths[b] - lengths[a]), batchSize));
  return shuffle(batches, rng);
}

/** Mask tokens of padded rows in place of a copy; returns the masked ids and the labels. */
export function maskTokens(ids: readonly number[][], attentionMask: readonly number[][], opts: MlmOptions, rng: Rng): { inputIds: number[][]; labels: number[][] } {
  const p = opts.probability ?? 0.15;
  const special = new Set(opts.specialIds);
  const inputIds = ids.map((r) => r.slice());
  const labels = ids.map((r) => r.map(() => -100));
  const candidates: [number, number][] = [];
  const chosen: [number, number][] = [];
  ids.forEach((row, b) => row.forEach((id, t) => {
    if (!attentionMask[b][t] || special.has(id)) return;
    candidates.push([b, t]);
    if (rng.random() < p) chosen.push([b, t]);
  }));
  // A batch with no chosen token has a 0/0 loss; choose one, so training never sees NaN from masking alone.
  if (!chosen.length && candidates.length) chosen.push(candidates[rng.int(candidates.length)]);
  for (const [b, t] of chosen) {
    labels[b][t] = ids[b][t];
    const r = rng.random();
    if (r < 0.8) inputIds[b][t] = opts.maskTokenId;
    else if (r < 0.9) inputIds[b][t] = rng.int(opts.vocabSize);
  }
  return { inputIds, labels };
}

/** Pad the rows `index` of `data` into one batch; `maskRng` draws the MLM masks. */
export function makeBatch(data: TokenDataset, index: readonly number[], opts: BatchOptions, maskRng?: Rng): Batch {
  const rows = index.map((i) => data.rows[i]);
  const T = Math.max(...rows.map((r) => r.ids.length));
  const pad = (v: number[], fill: number) => (v.length < T ? [...v, ...new Array<number>(T - v.length).fill(fill)] : v);
  const inputIds = rows.map((r) => pad(r.ids, opts.padId));
  const attentionMask = rows.map((r) => pad(r.ids.map(() => 1), 0));
  const batch: Batch = { inputIds, attentionMask };
  if (rows.every((r) => r.typeIds)) batch.tokenTypeIds = rows.map((r) => pad(r.typeIds!, 0));
  if (opts.kind === 'classification') {
    if (!data.labels) throw new ConfigError('classification batches need labels', 'build the dataset with classificationDataset');
    batch.labels = index.map((i) => data.labels![i]);
  } else if (opts.kind === 'lm') {
    batch.tokenLabels = inputIds.map((r, b) => r.map((id, t) => (attentionMask[b][t] ? id : -100)));
  } else {
    if (!opts.mlm || !maskRng) throw new ConfigError('masked-LM batches need mask options (mask token, vocabulary size)', 'pass mlm options to the batch factory');
    const m = maskTokens(inputIds, attentionMask, opts.mlm, maskRng);
    batch.inputIds = m.inputIds;
    batch.tokenLabels = m.labels;
  }
  return batch;
}

function check(opts: BatchOptions): void {
  if (!(Number.isInteger(opts.batchSize) && opts.batchSize >= 1)) throw new ConfigError(`batch size must be a positive integer, found ${opts.batchSize}`);
  if (opts.kind === 'mlm' && !opts.mlm) throw new ConfigError('masked-LM batches need mask options (mask token, vocabulary size)', 'pass mlm options to the batch factory');
}

function batchSeed(seed: number, index: number): number {
  return (seed ^ Math.imul(index + 1, 0x9e3779b1)) | 0;
}

/** The training batches of a tokenised dataset, reshuffled (and re-masked) every epoch. */
export function batchFactory(opts: BatchOptions): BatchFactory<TokenDataset, Batch> {
  check(opts);
  return {
    count: (data) => Math.ceil(data.rows.length / opts.batchSize),
    *iterate(data, _epoch, start, rng) {
      const lengths = data.rows.map((r) => r.ids.length);
      const order = opts.bucket === false
        ? chunk(shuffle(lengths.map((_, i) => i), rng), opts.batchSize)
        : lengthGroupedBatches(lengths, opts.batchSize, rng, opts.megabatchMult);
      const maskSeed = rng.nextUint32();
      for (let b = start; b < order.length; b++) {
        yield makeBatch(data, order[b], opts, opts.kind === 'mlm' ? new Rng(batchSeed(maskSeed, b)) : undefined);
      }
    },
  };
}

/** Evaluation batches: rows sorted by length (less padding), fixed order, MLM masks from `seed`. */
export function evalBatches(data: TokenDataset, opts: BatchOptions, seed = 0): Batch[] {
  check(opts);
  const order = data.rows.map((_, i) => i).sort((a, b) => data.rows[b].ids.length - data.rows[a].ids.length || a - b);
  return chunk(order, opts.batchSize).map((idx, b) => makeBatch(data, idx, opts, opts.kind === 'mlm' ? new Rng(batchSeed(seed, b)) : undefined));
}

/** Real tokens in a batch (for tokens/s). */
export function countTokens(batch: Batch): number {
  return batch.attentionMask.reduce((s, r) => s + r.reduce((a, b) => a + b, 0), 0);
}
