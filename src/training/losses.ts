/**
 * The loss functions `train` takes, one per task, with HF's semantics: causal LM (`ForCausalLMLoss`:
 * logits at t predict the token at t+1, labels -100 are ignored, the mean is over scored tokens), masked
 * LM (cross-entropy at the masked positions only) and sequence classification
 * (`sequenceClassificationLoss`: cross-entropy, or MSE for regression).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { Rng } from '../backend/rng.js';
import { fusedCrossEntropyAvailable, softmaxCrossEntropy } from '../backend/fused.js';
import { sequenceClassificationLoss, type ProblemType, type SequenceClassifier } from '../models/classification.js';
import type { CausalLM, EncoderModel } from '../models/types.js';
import { ShapeError } from '../errors.js';
import type { Batch } from './data_batches.js';
import type { LossFn } from './trainer.js';

/** Label that is never scored (torch's default ignore_index). */
export const IGNORE_INDEX = -100;

/**
 * Summed negative log-likelihood of the labelled positions, and how many there are.
 * @param logits [B, T, V] @param labels [B][T], -100 where nothing is scored
 */
export function tokenNll(logits: tf.Tensor, labels: readonly number[][]): { sum: tf.Scalar; count: number } {
  const [B, T, V] = logits.shape as number[];
  if (labels.length !== B || labels.some((r) => r.length !== T)) throw new ShapeError(`token labels must be [${B}][${T}] like the logits`, 'give one label per input token, -100 where nothing is scored');
  const rows: number[] = [];
  const targets: number[] = [];
  labels.forEach((r, b) => r.forEach((y, t) => {
    if (y === IGNORE_INDEX) return;
    if (!(Number.isInteger(y) && y >= 0 && y < V)) throw new ShapeError(`token label ${y} at [${b}, ${t}] is outside the vocabulary [0, ${V})`, 'labels are token ids, or -100 to skip a position');
    rows.push(b * T + t);
    targets.push(y);
  }));
  if (!rows.length) return { sum: tf.scalar(0), count: 0 };
  const sum = tf.tidy(() => {
    const picked = tf.gather(logits.reshape([B * T, V]), tf.tensor1d(rows, 'int32'));
    // One kernel (and one for its gradient) with the native kernels; else logsumexp minus the gold logit.
    if (fusedCrossEntropyAvailable()) return tf.sum(softmaxCrossEntropy(picked, tf.tensor1d(targets, 'int32'))) as tf.Scalar;
    const lse = tf.logSumExp(picked, -1);
    const flat = tf.tensor1d(targets.map((y, k) => k * V + y), 'int32');
    const gold = tf.gather(picked.reshape([-1]), flat);
    return tf.sum(tf.sub(lse, gold)) as tf.Scalar;
  });
  return { sum, count: rows.length };
}

/** Labels moved one step left (position t is scored on the token at t+1), -100 at the end: HF's shift. */
export function shiftLabels(labels: readonly number[][]): number[][] {
  return labels.map((r) => [...r.slice(1), IGNORE_INDEX]);
}

/** Dropout switch and stream of a forward pass. */
export interface ForwardCtx {
  training?: boolean;
  rng?: Rng;
}

// Only a batch that has padding needs the mask; packed LM blocks run without one.
function maskOf(batch: Batch): number[][] | undefined {
  return batch.attentionMask.some((r) => r.includes(0)) ? batch.attentionMask : undefined;
}

function needTokenLabels(batch: Batch): number[][] {
  if (!batch.tokenLabels) throw new ShapeError('this loss needs per-token labels (tokenLabels)', "build batches with kind 'lm' or 'mlm'");
  return batch.tokenLabels;
}

/** Causal-LM summed NLL and count for one batch (no gradient bookkeeping). */
export function causalLmNll(model: CausalLM, batch: Batch, ctx: ForwardCtx = {}): { sum: tf.Scalar; count: number } {
  const labels = shiftLabels(needTokenLabels(batch));
  let count = 0;
  const sum = tf.tidy(() => {
    const out = model.forward(batch.inputIds, { attentionMask: maskOf(batch), training: ctx.training, rng: ctx.rng });
    const r = tokenNll(out.logits, labels);
    count = r.count;
    return r.sum;
  });
  return { sum, count };
}

/** Masked-LM summed NLL over the masked positions, and their count. */
export function maskedLmNll(model: EncoderModel, batch: Batch, ctx: ForwardCtx = {}): { sum: tf.Scalar; count: number } {
  const labels = needTokenLabels(batch);
  let count = 0;
  const sum = tf.tidy(() => {
    const out = model.forward(batch.inputIds, { attentionMask: maskOf(batch), tokenTypeIds: batch.tokenTypeIds, training: ctx.training, rng: ctx.rng });
    if (!out.logits) throw new ShapeError('the model has no masked-LM head', "load it with task 'masked-lm' (a *ForMaskedLM model)");
    const r = tokenNll(out.logits, labels);
    count = r.count;
    return r.sum;
  });
  return { sum, count };
}

/** Mean NLL over scored tokens (torch returns NaN when none is scored; so do we). */
function mean(r: { sum: tf.Scalar; count: number }): tf.Scalar {
  return tf.tidy(() => tf.div(r.sum, r.count) as tf.Scalar);
}

/** HF causal-LM loss: shift by one, ignore -100 (padding), mean over the scored tokens. */
export const causalLmLoss: LossFn<CausalLM, Batch> = (model, batch, ctx) => tf.tidy(() => mean(causalLmNll(model, batch, ctx)));

/** HF masked-LM loss: cross-entropy at the masked positions, mean over them. */
export const maskedLmLoss: LossFn<EncoderModel, Batch> = (model, batch, ctx) => tf.tidy(() => mean(maskedLmNll(model, batch, ctx)));

/** Class ids as int32 (float32 targets for regression), as HF's loss expects them. */
export function labelsTensor(labels: readonly number[], problemType: ProblemType | null, numLabels: number): tf.Tensor {
  const regression = problemType === 'regression' || (problemType === null && numLabels === 1);
  return tf.tensor1d(labels as number[], regression ? 'float32' : 'int32');
}

/** Classifier logits [B, num_labels] of a batch. */
export function classifierLogits(model: SequenceClassifier, batch: Batch, ctx: ForwardCtx = {}): tf.Tensor {
  return tf.tidy(() => model.forward(batch.inputIds, { attentionMask: batch.attentionMask, tokenTypeIds: batch.tokenTypeIds, training: ctx.training, rng: ctx.rng }).logits);
}

/** HF sequence-classification loss (cross-entropy, or MSE when problem_type is regression). */
export const classificationLoss: LossFn<SequenceClassifier, Batch> = (model, batch, ctx) => tf.tidy(() => {
  if (!batch.labels) throw new ShapeError('classification batches need labels', "build batches with kind 'classification'");
  const logits = classifierLogits(model, batch, ctx);
  return sequenceClassificationLoss(logits, labelsTensor(batch.labels, model.problemType, model.numLabels), model.problemType) as tf.Scalar;
});
