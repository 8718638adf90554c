/**
 * The attribute classifier of ACBS, design (a) of methods.md §5.3: a next-token head that reads the frozen
 * LM's final hidden state h_z at prefix z and gives, for every candidate next token v at once,
 *
 *     logit_a(z + v) = out.weight[v] · tanh(dense(h_z) + length[|z|]) + out.bias[v],   q = sigmoid(logit)
 *
 * so scoring all V continuations costs one [N, D]×[D, K] and one [N, K]×[K, V] product — small next to
 * the LM step, which is why ACBS runs at beam-search cost. `length` is an optional embedding of the
 * number of tokens generated so far (clamped to the last bucket): length attributes depend on it, and
 * the hidden state only knows positions counted from the prompt's start. For v = EOS the output is
 * complete, so when the labeller is known ACBS uses the exact indicator instead of the head (§5.3).
 * Saved as `attribute_classifier.json` (config below) + `attribute_classifier.safetensors`.
 */
import * as tf from '@tensorflow/tfjs-core';
import { Rng } from '../../backend/rng.js';
import { ConfigError } from '../../errors.js';
import type { SaveTensor } from '../../io/safetensors.js';
import { Embedding, Linear } from '../../nn/layers.js';
import { Module, type TensorSource } from '../../nn/module.js';
import { attributeFromSpec, type Attribute, type AttributeSpec } from './attributes.js';

/** attribute_classifier.json (snake_case: it is a file format). */
export interface ClassifierConfig {
  model_type: 'attribute_classifier';
  /** Only the next-token head (design (a)) is implemented. */
  design: 'next-token';
  /** D: width of the LM's final hidden state. */
  hidden_size: number;
  /** K: width of the head's tanh layer. */
  inner_size: number;
  /** V: the LM's vocabulary. */
  vocab_size: number;
  /** Buckets of the generated-length embedding (0: none). */
  length_buckets: number;
  /** The LM's end-of-sequence ids (the "done" columns). */
  eos_token_ids: number[];
  attribute: AttributeSpec;
  /** Free-form record of how it was trained (samples, epochs, loss). */
  training?: Record<string, unknown>;
}

/** What ACBS needs from a classifier: log q(a | x, z + v) for every row and next token. */
export interface AttributeScorer {
  /** Whether `scoreNext` reads `ctx.hidden` (then the search must keep hidden states). */
  readonly usesHidden: boolean;
  /** The exact labeller, used for finished outputs (v = EOS) when present. */
  readonly attribute?: Attribute;
  /** [N, V] log-probabilities that the output will have the attribute after appending v. */
  scoreNext(ctx: ScoreContext): tf.Tensor;
}

/** The rows being scored. */
export interface ScoreContext {
  /** [N, D] final hidden state at each row's last token. */
  hidden?: tf.Tensor;
  /** Each row's generated tokens so far (prompt excluded). */
  outputs: number[][];
}

function int(v: unknown, what: string, min: number): number {
  if (!Number.isInteger(v) || (v as number) < min) {
    throw new ConfigError(`attribute_classifier.json: '${what}' must be an integer ≥ ${min}, found ${JSON.stringify(v)}`,
      'the file is damaged or was not written by makemost; retrain the classifier');
  }
  return v as number;
}

/** Validate a parsed attribute_classifier.json. */
export function parseClassifierConfig(raw: unknown): ClassifierConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new ConfigError('attribute_classifier.json must hold a JSON object', 'retrain and save the classifier');
  }
  const r = raw as Record<string, unknown>;
  if (r.model_type !== 'attribute_classifier') {
    throw new ConfigError(`attribute_classifier.json: model_type must be "attribute_classifier", found ${JSON.stringify(r.model_type)}`,
      'pass the folder holding attribute_classifier.json, not the model\'s config.json');
  }
  if (r.design !== 'next-token') {
    throw new ConfigError(`attribute_classifier.json: design ${JSON.stringify(r.design)} is not supported`, 'only "next-token" heads exist');
  }
  const eos = r.eos_token_ids;
  if (!Array.isArray(eos) || !eos.every((e) => Number.isInteger(e) && e >= 0)) {
    throw new ConfigError(`attribute_classifier.json: eos_token_ids must be a list of token ids, found ${JSON.stringify(eos)}`);
  }
  const vocab = int(r.vocab_size, 'vocab_size', 1);
  if (eos.some((e: number) => e >= vocab)) throw new ConfigError(`attribute_classifier.json: eos_token_ids ${JSON.stringify(eos)} outside vocab_size ${vocab}`);
  attributeFromSpec(r.attribute as AttributeSpec, () => true); // throws on an unknown kind
  return {
    model_type: 'attribute_classifier', design: 'next-token',
    hidden_size: int(r.hidden_size, 'hidden_size', 1), inner_size: int(r.inner_size, 'inner_size', 1),
    vocab_size: vocab, length_buckets: int(r.length_buckets ?? 0, 'length_buckets', 0),
    eos_token_ids: eos as number[], attribute: r.attribute as AttributeSpec,
    ...(r.training !== undefined ? { training: r.training as Record<string, unknown> } : {}),
  };
}

/** The next-token attribute head. */
export class AttributeClassifier extends Module implements AttributeScorer {
  readonly usesHidden = true;
  readonly dense: Linear;
  readonly length?: Embedding;
  readonly out: Linear;
  /** The labeller (absent for a loaded custom attribute whose function was not passed). */
  attribute?: Attribute;

  /** `seed`: random initial weights; omitted, zeros (weights about to be loaded). */
  constructor(readonly config: ClassifierConfig, seed?: number, attribute?: Attribute) {
    super();
    const rng = seed === undefined ? undefined : new Rng(seed);
    const { hidden_size: D, inner_size: K, vocab_size: V, length_buckets: P } = config;
    this.dense = this.child('dense', new Linear(D, K, { rng, std: 1 / Math.sqrt(D) }));
    if (P > 0) this.length = this.child('length', new Embedding(P, K, { rng, std: 0.1 }));
    this.out = this.child('out', new Linear(K, V, { rng, std: 1 / Math.sqrt(K) }));
    this.attribute = attribute ?? attributeFromSpec(config.attribute);
  }

  /** [N, K] tanh features of hidden [N, D] after `genLens[i]` generated tokens. */
  private features(hidden: tf.Tensor, genLens: number[]): tf.Tensor {
    return tf.tidy(() => {
      let pre = this.dense.forward(hidden);
      if (this.length) {
        const last = this.config.length_buckets - 1;
        const idx = tf.tensor1d(genLens.map((n) => Math.min(n, last)), 'int32');
        pre = tf.add(pre, this.length.forward(idx));
      }
      return tf.tanh(pre);
    });
  }

  /** [N, V] attribute logits for every next token, from hidden [N, D]. */
  logits(hidden: tf.Tensor, genLens: number[]): tf.Tensor {
    return tf.tidy(() => this.out.forward(this.features(hidden, genLens)));
  }

  /** [N] attribute logit of one next token per row (training: avoids the [N, V] product). */
  pickedLogits(hidden: tf.Tensor, genLens: number[], tokens: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const u = this.features(hidden, genLens);
      const w = tf.gather(this.out.weight, tokens);
      return tf.add(tf.sum(tf.mul(u, w), 1), tf.gather(this.out.bias!, tokens));
    });
  }

  /** [N, V] log q(a | x, z + v); the EOS columns are the head's guess (ACBS may replace them). */
  scoreNext(ctx: ScoreContext): tf.Tensor {
    if (!ctx.hidden) {
      throw new ConfigError('the attribute classifier needs the LM\'s hidden states, but the search did not keep them',
        'call prefill/advance with { hidden: true } (conditionalBeamSearch does)');
    }
    const hidden = ctx.hidden;
    return tf.tidy(() => tf.logSigmoid(this.logits(hidden, ctx.outputs.map((o) => o.length))));
  }

  /** The config and float32 tensors to write (browser-safe; Node writes them with saveClassifier). */
  async toFiles(): Promise<{ config: ClassifierConfig; tensors: Map<string, SaveTensor> }> {
    const tensors = new Map<string, SaveTensor>();
    for (const [name, v] of this.namedParameters()) {
      tensors.set(name, { shape: v.shape.slice(), dtype: 'float32', data: Float32Array.from(await v.data() as Float32Array) });
    }
    return { config: { ...this.config }, tensors };
  }

  /** Build from a parsed config and its tensors; `label` restores a custom attribute's function. */
  static fromFiles(rawConfig: unknown, weights: TensorSource, opts: { label?: (tokens: number[]) => boolean; origin?: string } = {}): AttributeClassifier {
    const config = parseClassifierConfig(rawConfig);
    const clf = new AttributeClassifier(config, undefined, attributeFromSpec(config.attribute, opts.label));
    try {
      clf.loadStateDict(weights, { origin: opts.origin });
    } catch (e) {
      clf.dispose();
      throw e;
    }
    return clf;
  }
}
