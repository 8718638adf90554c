/**
 * Test fixture for the trainer tests (no tests of its own): a tiny BERT with a linear head on the pooled
 * output, and the synthetic task "does token 5 occur in the sequence", which a randomly initialised
 * model answers at chance.
 */
import * as tf from '@tensorflow/tfjs-core';
import { Rng } from '../backend/rng.js';
import { parseBertConfig } from '../models/bert/config.js';
import { BertModel } from '../models/bert/model.js';
import { Linear } from '../nn/layers.js';
import { Module } from '../nn/module.js';
import type { LossFn } from './trainer.js';

/** One batch: ids [B][T] starting with [CLS] = 2, labels 0/1. */
export interface Batch {
  ids: number[][];
  labels: number[];
  /** Make the loss NaN (for the divergence test). */
  poison?: boolean;
}

export const TARGET = 5;

/** BertModel + `classifier` Linear on the pooler output (HF BertForSequenceClassification's names). */
export class TinyClassifier extends Module {
  readonly bert: BertModel;
  readonly classifier: Linear;
  constructor(seed: number, dropout = 0) {
    super();
    const config = parseBertConfig({
      model_type: 'bert', vocab_size: 16, hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 4, intermediate_size: 64,
      max_position_embeddings: 16, hidden_dropout_prob: dropout, attention_probs_dropout_prob: dropout,
    });
    this.bert = this.child('bert', new BertModel(config, seed));
    this.classifier = this.child('classifier', new Linear(32, 2, { rng: new Rng(seed + 1), std: 0.02 }));
  }
  /** ids [B, T] → logits [B, 2] */
  logits(ids: number[][], training = false, rng?: Rng): tf.Tensor {
    return tf.tidy(() => {
      const out = this.bert.forward(ids, { training, rng });
      return this.classifier.forward(out.poolerOutput!);
    });
  }
}

/** n examples of length T (after [CLS]); half contain TARGET somewhere, half never. */
export function containsTask(n: number, T: number, seed: number): { ids: number[]; label: number }[] {
  const rng = new Rng(seed);
  return Array.from({ length: n }, (_, i) => {
    const label = i % 2;
    const ids = Array.from({ length: T }, () => 6 + rng.int(10));
    if (label) ids[rng.int(T)] = TARGET;
    return { ids: [2, ...ids], label };
  });
}

/** Consecutive batches of `size` examples. */
export function batchesOf(examples: { ids: number[]; label: number }[], size: number): Batch[] {
  const out: Batch[] = [];
  for (let i = 0; i < examples.length; i += size) {
    const part = examples.slice(i, i + size);
    out.push({ ids: part.map((e) => e.ids), labels: part.map((e) => e.label) });
  }
  return out;
}

/** Mean cross-entropy of the head's logits. */
export const ceLoss: LossFn<TinyClassifier, Batch> = (model, batch, { training, rng }) =>
  tf.tidy(() => {
    const logits = model.logits(batch.ids, training, rng);
    const onehot = tf.oneHot(tf.tensor1d(batch.labels, 'int32'), 2);
    const loss = tf.neg(tf.mean(tf.sum(tf.mul(onehot, tf.logSoftmax(logits)), -1))) as tf.Scalar;
    return batch.poison ? (tf.mul(loss, NaN) as tf.Scalar) : loss;
  });

/** Fraction of correct predictions (dropout off). */
export function accuracy(model: TinyClassifier, batches: Batch[]): number {
  let right = 0;
  let n = 0;
  for (const b of batches) {
    const pred = tf.tidy(() => tf.argMax(model.logits(b.ids), -1).arraySync() as number[]);
    pred.forEach((p, i) => (right += Number(p === b.labels[i])));
    n += pred.length;
  }
  return right / n;
}

/** Copies of every parameter's values. */
export function snapshot(model: Module): Map<string, Float32Array> {
  return new Map([...model.namedParameters()].map(([n, v]) => [n, (v.dataSync() as Float32Array).slice()]));
}

/** Names whose values differ between two snapshots (bitwise). */
export function changed(a: Map<string, Float32Array>, b: Map<string, Float32Array>): string[] {
  const out: string[] = [];
  for (const [n, x] of a) {
    const y = b.get(n)!;
    const bx = new Uint32Array(x.buffer, x.byteOffset, x.length);
    const by = new Uint32Array(y.buffer, y.byteOffset, y.length);
    if (bx.some((w, i) => w !== by[i])) out.push(n);
  }
  return out;
}
