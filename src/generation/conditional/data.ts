/**
 * Training data and training for the attribute classifier (methods.md §5.3 "Classifier data"): draw S
 * completions per prompt from the frozen LM by ancestral sampling (temperature 1, no truncation, so the
 * prefix marginals are unbiased), label each complete output with the attribute, and make every prefix
 * one example (hidden state at the prefix, the token that followed, the output's label). The head is fit
 * with binary cross-entropy by Adam; the LM only ever runs forward, outside any gradient tape.
 */
import * as tf from '@tensorflow/tfjs-core';
import { Rng } from '../../backend/rng.js';
import { ConfigError, ShapeError } from '../../errors.js';
import type { CausalLM } from '../../models/types.js';
import { advance, disposeState, prefill, selectRows, type DecoderState } from '../state.js';
import type { Attribute } from './attributes.js';
import { AttributeClassifier } from './classifier.js';

/** How to draw the samples. */
export interface AttributeSampleOptions {
  /** S: completions per prompt. */
  samplesPerPrompt: number;
  maxNewTokens: number;
  eosTokenIds: number[];
  padTokenId?: number;
  seed: number;
  /** Rows decoded at once (default 64). Results do not depend on it. */
  batchSize?: number;
  signal?: AbortSignal;
  /** Called after each batch of samples. */
  onSamples?: (done: number, total: number) => void;
}

/** Every prefix of every sample, as flat arrays. */
export interface AttributeExamples {
  /** D */
  dim: number;
  /** [count, D] LM final hidden state at the prefix. */
  hidden: Float32Array;
  /** [count] the token that followed the prefix (EOS included). */
  tokens: Int32Array;
  /** [count] tokens generated before it. */
  genLens: Int32Array;
  /** [count] 1 when the sample it came from has the attribute. */
  labels: Uint8Array;
  count: number;
  /** The sampled outputs (EOS removed) and their labels. */
  outputs: number[][];
  outputLabels: boolean[];
}

/** Draw one token from softmax(logits) by inverse CDF (float64 accumulation). */
function draw(logits: Float32Array, offset: number, V: number, u: number): number {
  let max = -Infinity;
  for (let v = 0; v < V; v++) max = Math.max(max, logits[offset + v]);
  let total = 0;
  for (let v = 0; v < V; v++) total += Math.exp(logits[offset + v] - max);
  let target = u * total;
  let last = 0;
  for (let v = 0; v < V; v++) {
    const p = Math.exp(logits[offset + v] - max);
    if (p === 0) continue;
    last = v;
    target -= p;
    if (target < 0) return v;
  }
  return last; // rounding left a hair of mass: the last token that has any takes it
}

function checkSampling(model: CausalLM, prompts: number[][], opts: AttributeSampleOptions): void {
  const { vocab, maxPositions } = model.dims();
  if (!Number.isInteger(opts.samplesPerPrompt) || opts.samplesPerPrompt < 1) {
    throw new ConfigError(`samplesPerPrompt must be a positive integer, got ${opts.samplesPerPrompt}`);
  }
  if (!Number.isInteger(opts.maxNewTokens) || opts.maxNewTokens < 1) {
    throw new ConfigError(`maxNewTokens must be a positive integer, got ${opts.maxNewTokens}`);
  }
  const bad = opts.eosTokenIds.filter((e) => !Number.isInteger(e) || e < 0 || e >= vocab);
  if (opts.eosTokenIds.length === 0 || bad.length) {
    throw new ConfigError(`eosTokenIds ${JSON.stringify(opts.eosTokenIds)} must be non-empty ids below the vocabulary ${vocab}`,
      'pass the model\'s eos_token_id: an attribute is a property of complete outputs');
  }
  const longest = Math.max(...prompts.map((p) => p.length));
  if (longest + opts.maxNewTokens > maxPositions) {
    throw new ShapeError(`prompt (${longest} tokens) + maxNewTokens (${opts.maxNewTokens}) exceeds the model's context of ${maxPositions}`,
      'lower maxNewTokens or shorten the prompts');
  }
}

/** Sample rows to completion; per row: the outputs and, per step, the hidden state before the token. */
async function sampleBatch(model: CausalLM, rows: number[][], rngs: Rng[], opts: AttributeSampleOptions, D: number): Promise<{ out: number[]; hid: Float32Array[] }[]> {
  const eos = new Set(opts.eosTokenIds);
  const V = model.dims().vocab;
  const rec = rows.map(() => ({ out: [] as number[], hid: [] as Float32Array[] }));
  let live = rows.map((_, i) => i); // state row r holds sample live[r]
  let state: DecoderState = prefill(model, rows, opts.padTokenId ?? 0, { hidden: true });
  try {
    for (let t = 0; t < opts.maxNewTokens; t++) {
      if (opts.signal?.aborted) throw opts.signal.reason ?? new Error('aborted');
      if (!state.hidden) throw new ShapeError(`model ${model.modelType} returned no hidden states`, 'the attribute classifier needs a CausalLM that supports returnHidden');
      const [logits, hidden] = await Promise.all([state.logits.data() as Promise<Float32Array>, state.hidden.data() as Promise<Float32Array>]);
      const tokens = live.map((s, r) => {
        const v = draw(logits, r * V, V, rngs[s].random());
        rec[s].hid.push(hidden.slice(r * D, (r + 1) * D));
        rec[s].out.push(v);
        return v;
      });
      const keep = tokens.flatMap((v, r) => (eos.has(v) ? [] : [r]));
      if (keep.length === 0 || t === opts.maxNewTokens - 1) break;
      if (keep.length < live.length) state = selectRows(state, keep);
      live = keep.map((r) => live[r]);
      state = advance(model, state, keep.map((r) => tokens[r]), { hidden: true });
    }
  } finally {
    disposeState(state);
  }
  return rec;
}

/** Sample S completions per prompt and turn every prefix into a labelled example. */
export async function collectExamples(model: CausalLM, prompts: number[][], attribute: Attribute, opts: AttributeSampleOptions): Promise<AttributeExamples> {
  if (prompts.length === 0) throw new ShapeError('no prompts to sample from', 'pass at least one tokenised prompt');
  checkSampling(model, prompts, opts);
  const D = model.dims().hidden;
  const base = new Rng(opts.seed);
  const jobs = prompts.flatMap((p) => Array.from({ length: opts.samplesPerPrompt }, () => ({ prompt: p, rng: base.split() })));
  const eos = new Set(opts.eosTokenIds);
  const batch = opts.batchSize ?? 64;
  const hid: Float32Array[] = [];
  const toks: number[] = [];
  const lens: number[] = [];
  const labs: number[] = [];
  const outputs: number[][] = [];
  const outputLabels: boolean[] = [];
  for (let at = 0; at < jobs.length; at += batch) {
    const chunk = jobs.slice(at, at + batch);
    const rec = await sampleBatch(model, chunk.map((j) => j.prompt), chunk.map((j) => j.rng), opts, D);
    for (const r of rec) {
      const ended = r.out.length > 0 && eos.has(r.out[r.out.length - 1]);
      const output = ended ? r.out.slice(0, -1) : r.out;
      const y = attribute.label(output);
      outputs.push(output);
      outputLabels.push(y);
      r.out.forEach((v, t) => {
        hid.push(r.hid[t]);
        toks.push(v);
        lens.push(t);
        labs.push(y ? 1 : 0);
      });
    }
    opts.onSamples?.(Math.min(at + batch, jobs.length), jobs.length);
  }
  const hidden = new Float32Array(hid.length * D);
  hid.forEach((h, i) => hidden.set(h, i * D));
  return { dim: D, hidden, tokens: Int32Array.from(toks), genLens: Int32Array.from(lens), labels: Uint8Array.from(labs), count: toks.length, outputs, outputLabels };
}

/** Head size and optimisation. */
export interface ClassifierTrainOptions {
  /** K (default 64). */
  innerSize?: number;
  /** Generated-length buckets (default: longest prefix seen + 2; 0 disables the feature). */
  lengthBuckets?: number;
  /** Passes over the examples (default 10). */
  epochs?: number;
  /** Examples per step (default 256). */
  batchSize?: number;
  /** Adam step size (default 1e-2). */
  learningRate?: number;
  seed: number;
  signal?: AbortSignal;
  /** Called after every optimiser step with that step's mean loss. */
  onProgress?: (p: { epoch: number; step: number; steps: number; loss: number }) => void;
}

/** Binary cross-entropy from logits, mean over the batch (stable form). */
function bceWithLogits(logits: tf.Tensor, labels: tf.Tensor): tf.Scalar {
  return tf.tidy(() => tf.mean(tf.add(tf.sub(tf.relu(logits), tf.mul(logits, labels)), tf.log1p(tf.exp(tf.neg(tf.abs(logits)))))) as tf.Scalar);
}

/** Fit a fresh head to `examples`; returns it and the mean loss of each epoch. */
export async function trainClassifier(examples: AttributeExamples, attribute: Attribute, meta: { vocab: number; eosTokenIds: number[] }, opts: ClassifierTrainOptions): Promise<{ classifier: AttributeClassifier; losses: number[] }> {
  if (examples.count === 0) throw new ShapeError('no training examples', 'sample more completions');
  const epochs = opts.epochs ?? 10;
  const bs = opts.batchSize ?? 256;
  const D = examples.dim;
  const clf = new AttributeClassifier({
    model_type: 'attribute_classifier', design: 'next-token', hidden_size: D, inner_size: opts.innerSize ?? 64,
    vocab_size: meta.vocab, length_buckets: opts.lengthBuckets ?? examples.genLens.reduce((a, b) => Math.max(a, b), 0) + 2,
    eos_token_ids: meta.eosTokenIds.slice(), attribute: attribute.spec,
  }, opts.seed, attribute);
  const rng = new Rng(opts.seed ^ 0x2545f491);
  const vars = [...clf.namedParameters()].map(([, v]) => v);
  const optimizer = tf.train.adam(opts.learningRate ?? 1e-2);
  const losses: number[] = [];
  const steps = Math.ceil(examples.count / bs);
  try {
    for (let epoch = 0; epoch < epochs; epoch++) {
      const order = Array.from({ length: examples.count }, (_, i) => i);
      for (let i = order.length - 1; i > 0; i--) {
        const j = rng.int(i + 1);
        [order[i], order[j]] = [order[j], order[i]];
      }
      let sum = 0;
      for (let s = 0; s < steps; s++) {
        if (opts.signal?.aborted) throw opts.signal.reason ?? new Error('aborted');
        const idx = order.slice(s * bs, (s + 1) * bs);
        const h = new Float32Array(idx.length * D);
        idx.forEach((e, r) => h.set(examples.hidden.subarray(e * D, (e + 1) * D), r * D));
        const lens = idx.map((e) => examples.genLens[e]);
        const cost = tf.tidy(() => {
          const hidden = tf.tensor2d(h, [idx.length, D]);
          const tokens = tf.tensor1d(idx.map((e) => examples.tokens[e]), 'int32');
          const labels = tf.tensor1d(idx.map((e) => examples.labels[e]), 'float32');
          return optimizer.minimize(() => bceWithLogits(clf.pickedLogits(hidden, lens, tokens), labels), true, vars)!;
        });
        const loss = (await cost.data())[0];
        cost.dispose();
        sum += loss * idx.length;
        opts.onProgress?.({ epoch, step: epoch * steps + s + 1, steps: epochs * steps, loss });
      }
      losses.push(sum / examples.count);
    }
  } catch (e) {
    clf.dispose();
    throw e;
  } finally {
    optimizer.dispose();
  }
  clf.config.training = { examples: examples.count, samples: examples.outputs.length, positives: examples.outputLabels.filter(Boolean).length, epochs, final_loss: losses[losses.length - 1] };
  return { classifier: clf, losses };
}

/** Sample from the frozen LM, label with `attribute`, and train a next-token head on it. */
export async function trainAttributeClassifier(model: CausalLM, prompts: number[][], attribute: Attribute, opts: AttributeSampleOptions & Omit<ClassifierTrainOptions, 'seed' | 'signal'>): Promise<{ classifier: AttributeClassifier; losses: number[]; examples: AttributeExamples }> {
  const examples = await collectExamples(model, prompts, attribute, opts);
  const { classifier, losses } = await trainClassifier(examples, attribute, { vocab: model.dims().vocab, eosTokenIds: opts.eosTokenIds }, { ...opts, seed: opts.seed + 1 });
  return { classifier, losses, examples };
}
