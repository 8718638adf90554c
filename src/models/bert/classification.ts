/**
 * Sequence-classification heads for encoders (HF `BertForSequenceClassification`,
 * `RobertaForSequenceClassification`). BERT classifies the pooler output (tanh(dense(h[:, 0]))) with
 * `classifier` [num_labels, D]; RoBERTa has no pooler and its `classifier` is a two-layer head
 * (`dense`, tanh, `out_proj`) over the `<s>` token. Dropout before each projection follows
 * `classifier_dropout`, else `hidden_dropout_prob`.
 */
import * as tf from '@tensorflow/tfjs-core';
import { tidy } from '../../backend/memory.js';
import { Rng } from '../../backend/rng.js';
import { dropout, Linear, type InitOptions } from '../../nn/layers.js';
import { Module } from '../../nn/module.js';
import { classificationFields, withClassificationFields, type ProblemType, type SequenceClassificationOptions, type SequenceClassifier, type SequenceClassifierOutput } from '../classification.js';
import type { KeyRules } from '../common.js';
import { PreTrainedModel } from '../pretrained_model.js';
import type { Ids, ModelDims } from '../types.js';
import { bertKeyRules, robertaKeyRules } from './checkpoint.js';
import { bertDims, type BertConfig } from './config.js';
import { BertModel, RobertaModel, type Ctx } from './model.js';

/** BERT checkpoints into BertForSequenceClassification: pretraining heads (`cls.*`) are not part of it. */
export const bertSeqClsKeyRules: KeyRules = { ...bertKeyRules, dropped: [...bertKeyRules.dropped, /^cls\./] };

/** RoBERTa checkpoints into RobertaForSequenceClassification: no pooler, no masked-LM head. */
export const robertaSeqClsKeyRules: KeyRules = { ...robertaKeyRules, dropped: [...robertaKeyRules.dropped, /^lm_head\./, /^(roberta\.)?pooler\./] };

// The head is drawn even when the encoder is left at zeros (seed null): HF initialises head weights a
// checkpoint lacks, and a zero RoBERTa head would pass no gradient at all.
function headInit(cfg: BertConfig, seed: number | null): InitOptions {
  return { rng: new Rng(seed ?? 0).split(), std: cfg.initializer_range };
}

function classifierDropout(cfg: BertConfig): number {
  return cfg.classifier_dropout ?? cfg.hidden_dropout_prob;
}

/** RoBERTa's `classifier`: dropout, dense, tanh, dropout, out_proj on the first token. */
export class RobertaClassificationHead extends Module {
  readonly dense: Linear;
  readonly out_proj: Linear;
  constructor(private readonly cfg: BertConfig, numLabels: number, init: InitOptions) {
    super();
    this.dense = this.child('dense', new Linear(cfg.hidden_size, cfg.hidden_size, init));
    this.out_proj = this.child('out_proj', new Linear(cfg.hidden_size, numLabels, init));
  }
  /** [B, T, D] → [B, num_labels] */
  forward(h: tf.Tensor, ctx: Ctx): tf.Tensor {
    return tf.tidy(() => {
      const [B, , D] = h.shape as number[];
      const p = classifierDropout(this.cfg);
      const x = dropout(h.slice([0, 0, 0], [B, 1, D]).reshape([B, D]), p, ctx);
      return this.out_proj.forward(dropout(tf.tanh(this.dense.forward(x)), p, ctx));
    });
  }
}

abstract class EncoderClassifier extends PreTrainedModel implements SequenceClassifier {
  abstract override readonly config: BertConfig;
  readonly numLabels: number;
  readonly problemType: ProblemType | null;
  constructor(config: BertConfig) {
    super();
    const f = classificationFields(config);
    this.numLabels = f.num_labels;
    this.problemType = f.problem_type;
  }
  protected abstract get encoder(): BertModel;
  protected abstract head(out: { lastHiddenState: tf.Tensor; poolerOutput?: tf.Tensor }, ctx: Ctx): tf.Tensor;
  dims(): ModelDims {
    return bertDims(this.config);
  }
  /** ids [B, T] → logits [B, num_labels] and the encoder's last hidden state [B, T, D]. */
  forward(inputIds: Ids, opts: SequenceClassificationOptions = {}): SequenceClassifierOutput {
    return tidy(() => {
      const out = this.encoder.forward(inputIds, opts);
      const logits = this.head(out, { training: opts.training, rng: opts.rng });
      return out.hidden ? { logits, lastHiddenState: out.lastHiddenState, hidden: out.hidden } : { logits, lastHiddenState: out.lastHiddenState };
    });
  }
}

/** BERT with a linear classifier on the pooler: `bert.*` (with pooler) and `classifier.{weight,bias}`. */
export class BertForSequenceClassification extends EncoderClassifier {
  readonly modelType = 'bert';
  readonly className = 'BertForSequenceClassification';
  readonly config: BertConfig;
  readonly bert: BertModel;
  readonly classifier: Linear;
  constructor(config: BertConfig, seed: number | null = 0) {
    super(config);
    this.config = withClassificationFields(config);
    this.bert = this.child('bert', new BertModel(config, seed, true));
    this.classifier = this.child('classifier', new Linear(config.hidden_size, this.numLabels, headInit(config, seed)));
  }
  protected get encoder(): BertModel {
    return this.bert;
  }
  protected head(out: { poolerOutput?: tf.Tensor }, ctx: Ctx): tf.Tensor {
    return this.classifier.forward(dropout(out.poolerOutput!, classifierDropout(this.config), ctx));
  }
}

/** RoBERTa with its two-layer head on `<s>`: `roberta.*` (no pooler) and `classifier.{dense,out_proj}.*`. */
export class RobertaForSequenceClassification extends EncoderClassifier {
  readonly modelType = 'roberta';
  readonly className = 'RobertaForSequenceClassification';
  readonly config: BertConfig;
  readonly roberta: RobertaModel;
  readonly classifier: RobertaClassificationHead;
  constructor(config: BertConfig, seed: number | null = 0) {
    super(config);
    this.config = withClassificationFields(config);
    this.roberta = this.child('roberta', new RobertaModel(config, seed, false));
    this.classifier = this.child('classifier', new RobertaClassificationHead(config, this.numLabels, headInit(config, seed)));
  }
  protected get encoder(): BertModel {
    return this.roberta;
  }
  protected head(out: { lastHiddenState: tf.Tensor }, ctx: Ctx): tf.Tensor {
    return this.classifier.forward(out.lastHiddenState, ctx);
  }
}
