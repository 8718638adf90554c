/**
 * What every sequence-classification head shares (HF `PretrainedConfig`'s label fields, the
 * `*ForSequenceClassification` forward contract and its loss): `num_labels` / `id2label` / `label2id` /
 * `problem_type` with HF's defaults, the pooling index of decoder heads (last non-padding token), and
 * the loss HF picks from `problem_type` (MSE, cross-entropy, or BCE with logits).
 */
import * as tf from '@tensorflow/tfjs-core';
import { ConfigError, ShapeError } from '../errors.js';
import type { Module } from '../nn/module.js';
import type { RawConfig } from './common.js';
import type { ForwardCommon, Ids, ModelDims } from './types.js';

/** HF's `problem_type` values. */
export type ProblemType = 'regression' | 'single_label_classification' | 'multi_label_classification';

const PROBLEM_TYPES: ProblemType[] = ['regression', 'single_label_classification', 'multi_label_classification'];

/** The label fields of config.json after HF's defaults. */
export interface ClassificationFields {
  num_labels: number;
  /** JSON keys are strings ("0", "1", …), as HF writes them. */
  id2label: Record<string, string>;
  label2id: Record<string, number>;
  problem_type: ProblemType | null;
}

/**
 * HF's rules: `id2label` decides the label count when present (`num_labels` must then agree), else
 * `num_labels` (default 2) with labels `LABEL_i`; `label2id` defaults to the inverse of `id2label`.
 */
export function classificationFields(raw: RawConfig): ClassificationFields {
  const where = `config.json (${String(raw.model_type)})`;
  const given = raw.num_labels;
  if (given !== undefined && given !== null && !(typeof given === 'number' && Number.isInteger(given) && given >= 1)) {
    throw new ConfigError(`${where} field 'num_labels' must be a positive integer, found ${JSON.stringify(given)}`, 'use 1 for regression, 2 or more for classification');
  }
  let id2label: Record<string, string>;
  if (raw.id2label !== undefined && raw.id2label !== null) {
    if (typeof raw.id2label !== 'object' || Array.isArray(raw.id2label)) throw new ConfigError(`${where} field 'id2label' must be an object {"0": "name", …}`);
    const entries = Object.entries(raw.id2label as Record<string, unknown>);
    const keys = entries.map(([k]) => Number(k)).sort((a, b) => a - b);
    if (!entries.length || keys.some((k, i) => k !== i)) throw new ConfigError(`${where} 'id2label' keys must be 0..n-1, found ${JSON.stringify(entries.map(([k]) => k))}`, 'number the labels from 0 without gaps');
    if (typeof given === 'number' && given !== entries.length) {
      throw new ConfigError(`${where}: num_labels (${given}) disagrees with id2label (${entries.length} labels)`, 'remove num_labels or make id2label list exactly that many labels');
    }
    id2label = Object.fromEntries(keys.map((k) => [String(k), String((raw.id2label as Record<string, unknown>)[String(k)])]));
  } else {
    const n = typeof given === 'number' ? given : 2;
    id2label = Object.fromEntries(Array.from({ length: n }, (_, i) => [String(i), `LABEL_${i}`]));
  }
  let label2id: Record<string, number>;
  if (raw.label2id !== undefined && raw.label2id !== null) {
    if (typeof raw.label2id !== 'object' || Array.isArray(raw.label2id) || Object.values(raw.label2id).some((v) => !Number.isInteger(v))) {
      throw new ConfigError(`${where} field 'label2id' must be an object {"name": id, …} with integer ids`);
    }
    label2id = { ...(raw.label2id as Record<string, number>) };
  } else {
    label2id = Object.fromEntries(Object.entries(id2label).map(([k, v]) => [v, Number(k)]));
  }
  const pt = raw.problem_type;
  if (pt !== undefined && pt !== null && !PROBLEM_TYPES.includes(pt as ProblemType)) {
    throw new ConfigError(`${where} field 'problem_type' is ${JSON.stringify(pt)}`, `use one of ${PROBLEM_TYPES.join(', ')}, or leave it out`);
  }
  return { num_labels: Object.keys(id2label).length, id2label, label2id, problem_type: (pt ?? null) as ProblemType | null };
}

/** A family config with the label fields filled, as written back to config.json (no `num_labels`, as HF). */
export function withClassificationFields<C extends RawConfig>(config: C): C & Omit<ClassificationFields, 'num_labels' | 'problem_type'> & { problem_type?: ProblemType } {
  const f = classificationFields(config);
  const { num_labels: _n, problem_type: _p, ...rest } = config as RawConfig;
  const out = { ...rest, id2label: f.id2label, label2id: f.label2id } as C & Omit<ClassificationFields, 'num_labels' | 'problem_type'> & { problem_type?: ProblemType };
  if (f.problem_type) out.problem_type = f.problem_type;
  return out;
}

/** Options of a sequence-classification forward pass. */
export interface SequenceClassificationOptions extends ForwardCommon {
  /** Encoders only: int32 [B, T] segment ids. */
  tokenTypeIds?: Ids;
  /** int32 [B, T]; defaults as the base model's. */
  positionIds?: Ids;
  returnHidden?: boolean;
}

/** Result of a sequence-classification forward pass; the caller owns every tensor. */
export interface SequenceClassifierOutput {
  /** [B, num_labels] */
  logits: tf.Tensor;
  /** [B, T, D] of the base model. */
  lastHiddenState: tf.Tensor;
  hidden?: tf.Tensor[];
}

/** Any `*ForSequenceClassification` model. */
export interface SequenceClassifier extends Module {
  readonly modelType: string;
  readonly className: string;
  readonly config: Record<string, unknown>;
  readonly numLabels: number;
  readonly problemType: ProblemType | null;
  dims(): ModelDims;
  forward(inputIds: Ids, opts?: SequenceClassificationOptions): SequenceClassifierOutput;
}

/**
 * The position each decoder row is classified at. With a mask: the rightmost position whose mask is 1
 * (HF uses `pad_token_id` instead; the two agree whenever the pads are exactly the masked positions, and
 * the mask is right when the pad id is also a real token, e.g. GPT-2's eos). Without a mask: HF's rule,
 * the rightmost token that is not `pad_token_id` (0 if a row is all padding), or the last position when
 * no pad id is defined, which HF allows only for a batch of one.
 * @param ids int32 [B, T] @param mask [B, T] or undefined
 */
export function lastTokenIndices(ids: tf.Tensor, mask: tf.Tensor | undefined, padTokenId: number | null | undefined): number[] {
  const [B, T] = ids.shape as number[];
  const rightmost = (vals: ArrayLike<number>, keep: (v: number) => boolean): number[] =>
    Array.from({ length: B }, (_, b) => {
      for (let t = T - 1; t >= 0; t--) if (keep(vals[b * T + t])) return t;
      return 0;
    });
  if (mask) {
    if (mask.shape[0] !== B || mask.shape[1] !== T) throw new ShapeError(`attention mask has shape [${mask.shape.join(', ')}], expected [${B}, ${T}] like the input ids`, 'pass one mask entry per input token');
    return rightmost(mask.dataSync(), (m) => m !== 0);
  }
  if (padTokenId !== null && padTokenId !== undefined) return rightmost(ids.dataSync(), (v) => v !== padTokenId);
  if (B !== 1) {
    throw new ConfigError(`cannot find the last token of ${B} rows: no attention mask was given and config.json has no pad_token_id`, 'pass attentionMask, or set "pad_token_id" in config.json (HF: "Cannot handle batch sizes > 1 if no padding token is defined")');
  }
  return [T - 1];
}

/** Read config.json's optional `pad_token_id` (HF's default: none). */
export function padTokenId(config: Record<string, unknown>): number | null {
  const p = config.pad_token_id;
  return typeof p === 'number' && Number.isInteger(p) ? p : null;
}

/** A decoder classifier's result from its base output (the cache is not returned, so tidy frees it). */
export function classifierOutput(logits: tf.Tensor, out: { lastHiddenState: tf.Tensor; hidden?: tf.Tensor[] }): SequenceClassifierOutput {
  return out.hidden ? { logits, lastHiddenState: out.lastHiddenState, hidden: out.hidden } : { logits, lastHiddenState: out.lastHiddenState };
}

/** Rows `h[b, index[b]]`: [B, T, D] → [B, D]. */
export function gatherPositions(h: tf.Tensor, index: number[]): tf.Tensor {
  return tf.tidy(() => {
    const [B, T, D] = h.shape as number[];
    const flat = tf.tensor1d(index.map((t, b) => b * T + t), 'int32');
    return tf.gather(h.reshape([B * T, D]), flat);
  });
}

/** HF's choice when `problem_type` is unset: one label → regression; integer labels → single-label; else multi-label. */
export function resolveProblemType(problemType: ProblemType | null, numLabels: number, labels: tf.Tensor): ProblemType {
  if (problemType) return problemType;
  if (numLabels === 1) return 'regression';
  return labels.dtype === 'int32' ? 'single_label_classification' : 'multi_label_classification';
}

/**
 * The mean loss HF's `*ForSequenceClassification` computes: MSE (regression), cross-entropy over labels
 * (int32 [B]; -100 is ignored, as torch's default ignore_index), or BCE with logits (float [B, C]).
 * @param logits [B, C]
 */
export function sequenceClassificationLoss(logits: tf.Tensor, labels: tf.Tensor, problemType: ProblemType | null): tf.Tensor {
  const [B, C] = logits.shape as number[];
  const kind = resolveProblemType(problemType, C, labels);
  if (kind === 'regression') {
    const want = C === 1 ? [B] : [B, C];
    if (labels.size !== want.reduce((a, b) => a * b, 1)) throw new ShapeError(`regression labels have shape [${labels.shape.join(', ')}], expected [${want.join(', ')}]`, 'give one float target per example (per output for num_labels > 1)');
    return tf.tidy(() => tf.mean(tf.square(tf.sub(logits.reshape(want), tf.cast(labels, 'float32').reshape(want)))));
  }
  if (kind === 'multi_label_classification') {
    if (labels.size !== B * C) throw new ShapeError(`multi-label targets have shape [${labels.shape.join(', ')}], expected [${B}, ${C}]`, 'give a 0/1 (or probability) vector of num_labels entries per example');
    // BCE with logits, in the stable form max(x, 0) − x·y + log(1 + e^−|x|).
    return tf.tidy(() => {
      const y = tf.cast(labels, 'float32').reshape([B, C]);
      return tf.mean(tf.add(tf.sub(tf.relu(logits), tf.mul(logits, y)), tf.log1p(tf.exp(tf.neg(tf.abs(logits))))));
    });
  }
  if (labels.size !== B) throw new ShapeError(`class labels have shape [${labels.shape.join(', ')}], expected [${B}]`, 'give one class id per example');
  const ids = Array.from(labels.dataSync());
  const bad = ids.findIndex((v) => v !== -100 && !(Number.isInteger(v) && v >= 0 && v < C));
  if (bad >= 0) throw new ShapeError(`label ${ids[bad]} of example ${bad} is outside [0, ${C})`, `labels must be class ids below num_labels = ${C} (or -100 to skip an example)`);
  const kept = ids.filter((v) => v !== -100).length;
  return tf.tidy(() => {
    const target = tf.oneHot(tf.tensor1d(ids.map((v) => (v === -100 ? 0 : v)), 'int32'), C);
    const keep = tf.tensor1d(ids.map((v) => (v === -100 ? 0 : 1)), 'float32');
    const nll = tf.neg(tf.sum(tf.mul(tf.logSoftmax(logits), target), -1));
    // torch returns NaN when every label is ignored (0/0); so do we.
    return tf.div(tf.sum(tf.mul(nll, keep)), kept);
  });
}
