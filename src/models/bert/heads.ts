/**
 * Masked-LM heads (HF `BertForMaskedLM`, `RobertaForMaskedLM`). Both transform the last hidden state
 * (dense → activation → LayerNorm) and decode with the word embedding matrix plus a free bias. The
 * decoder weight is the tied `*.embeddings.word_embeddings.weight`, registered once in the encoder, so
 * `cls.predictions.decoder.*` / `lm_head.decoder.*` are never parameters here (checkpoint.ts drops them).
 */
import * as tf from '@tensorflow/tfjs-core';
import { tidy } from '../../backend/memory.js';
import { Rng } from '../../backend/rng.js';
import { activation, LayerNorm, Linear, type InitOptions, matMulWT } from '../../nn/layers.js';
import { Module } from '../../nn/module.js';
import { PreTrainedModel } from '../pretrained_model.js';
import type { EncoderForwardOptions, EncoderModel, EncoderOutput, Ids, ModelDims } from '../types.js';
import { bertDims, type BertConfig } from './config.js';
import { BertModel, RobertaModel } from './model.js';

/** What a masked-LM head offers beyond its logits, so other code (e.g. MLM→NAR) can reuse the parts. */
export interface MaskedLMHead {
  /** [B, T, D] encoder output → [B, T, D] transformed features the decoder reads. */
  transform(x: tf.Tensor): tf.Tensor;
  /** [B, T, D] transformed features → [B, T, V] logits (tied decoder + bias). */
  decode(h: tf.Tensor): tf.Tensor;
  /** transform then decode. */
  forward(x: tf.Tensor): tf.Tensor;
}

/** h Wᵀ + b with W the tied word embedding [V, D]. */
function tiedDecode(h: tf.Tensor, weight: tf.Variable, bias: tf.Variable): tf.Tensor {
  return tf.tidy(() => {
    const [V, D] = weight.shape as number[];
    const lead = h.shape.slice(0, -1);
    return tf.add(matMulWT(h.reshape([-1, D]), weight), bias).reshape([...lead, V]);
  });
}

/** `cls.predictions.transform`: dense → hidden_act → LayerNorm. */
export class BertPredictionHeadTransform extends Module {
  readonly dense: Linear;
  readonly LayerNorm: LayerNorm;
  private readonly act: (x: tf.Tensor) => tf.Tensor;
  constructor(cfg: BertConfig, init: InitOptions) {
    super();
    this.dense = this.child('dense', new Linear(cfg.hidden_size, cfg.hidden_size, init));
    this.act = activation(cfg.hidden_act, 'hidden_act');
    this.LayerNorm = this.child('LayerNorm', new LayerNorm(cfg.hidden_size, cfg.layer_norm_eps));
  }
  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => this.LayerNorm.forward(this.act(this.dense.forward(x))));
  }
}

/** `cls.predictions`: the transform, then the tied decoder with its own `bias` [V]. */
export class BertLMPredictionHead extends Module implements MaskedLMHead {
  readonly bias: tf.Variable;
  /** Registered as `transform` (HF's name); the field is renamed so `transform()` can be the shared method. */
  readonly transformer: BertPredictionHeadTransform;
  constructor(cfg: BertConfig, init: InitOptions, private readonly decoderWeight: tf.Variable) {
    super();
    this.transformer = this.child('transform', new BertPredictionHeadTransform(cfg, init));
    this.bias = this.param('bias', tf.zeros([cfg.vocab_size]));
  }
  transform(x: tf.Tensor): tf.Tensor {
    return this.transformer.forward(x);
  }
  decode(h: tf.Tensor): tf.Tensor {
    return tiedDecode(h, this.decoderWeight, this.bias);
  }
  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => this.decode(this.transform(x)));
  }
}

/** `cls`: HF's BertOnlyMLMHead, a wrapper that only fixes the name `cls.predictions`. */
export class BertOnlyMLMHead extends Module {
  readonly predictions: BertLMPredictionHead;
  constructor(cfg: BertConfig, init: InitOptions, decoderWeight: tf.Variable) {
    super();
    this.predictions = this.child('predictions', new BertLMPredictionHead(cfg, init, decoderWeight));
  }
}

/** `lm_head`: dense → exact GELU (fixed, whatever hidden_act says) → layer_norm, tied decoder + `bias`. */
export class RobertaLMHead extends Module implements MaskedLMHead {
  readonly dense: Linear;
  readonly layer_norm: LayerNorm;
  readonly bias: tf.Variable;
  private readonly gelu = activation('gelu', 'lm_head activation');
  constructor(cfg: BertConfig, init: InitOptions, private readonly decoderWeight: tf.Variable) {
    super();
    this.dense = this.child('dense', new Linear(cfg.hidden_size, cfg.hidden_size, init));
    this.layer_norm = this.child('layer_norm', new LayerNorm(cfg.hidden_size, cfg.layer_norm_eps));
    this.bias = this.param('bias', tf.zeros([cfg.vocab_size]));
  }
  transform(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => this.layer_norm.forward(this.gelu(this.dense.forward(x))));
  }
  decode(h: tf.Tensor): tf.Tensor {
    return tiedDecode(h, this.decoderWeight, this.bias);
  }
  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => this.decode(this.transform(x)));
  }
}

/** Run a pooler-less encoder and a masked-LM head; `logits` [B, T, V]. */
function maskedLMForward(base: BertModel, head: MaskedLMHead, inputIds: Ids, opts: EncoderForwardOptions): EncoderOutput {
  return tidy(() => {
    const out = base.forward(inputIds, opts);
    const logits = head.forward(out.lastHiddenState);
    return out.hidden ? { lastHiddenState: out.lastHiddenState, logits, hidden: out.hidden } : { lastHiddenState: out.lastHiddenState, logits };
  });
}

// HF builds the head after the encoder with the same initializer; a split stream keeps it seeded and distinct.
function headInit(cfg: BertConfig, seed: number | null): InitOptions {
  return { rng: seed === null ? undefined : new Rng(seed).split(), std: cfg.initializer_range };
}

/** BERT with its masked-LM head: `bert.*` (no pooler) and `cls.predictions.*`. */
export class BertForMaskedLM extends PreTrainedModel implements EncoderModel {
  readonly modelType = 'bert';
  readonly className = 'BertForMaskedLM';
  readonly bert: BertModel;
  readonly cls: BertOnlyMLMHead;
  constructor(readonly config: BertConfig, seed: number | null = 0) {
    super();
    this.bert = this.child('bert', new BertModel(config, seed, false));
    this.cls = this.child('cls', new BertOnlyMLMHead(config, headInit(config, seed), this.bert.embeddings.word_embeddings.weight));
  }
  /** The encoder under the head. */
  get base(): BertModel {
    return this.bert;
  }
  /** The masked-LM head (transform + tied decoder). */
  get head(): MaskedLMHead {
    return this.cls.predictions;
  }
  dims(): ModelDims {
    return bertDims(this.config);
  }
  /** ids [B, T] → last hidden state [B, T, D] and logits [B, T, V]. */
  forward(inputIds: Ids, opts: EncoderForwardOptions = {}): EncoderOutput {
    return maskedLMForward(this.bert, this.head, inputIds, opts);
  }
}

/** RoBERTa with its masked-LM head: `roberta.*` (no pooler) and `lm_head.*`. */
export class RobertaForMaskedLM extends PreTrainedModel implements EncoderModel {
  readonly modelType = 'roberta';
  readonly className = 'RobertaForMaskedLM';
  readonly roberta: RobertaModel;
  readonly lm_head: RobertaLMHead;
  constructor(readonly config: BertConfig, seed: number | null = 0) {
    super();
    this.roberta = this.child('roberta', new RobertaModel(config, seed, false));
    this.lm_head = this.child('lm_head', new RobertaLMHead(config, headInit(config, seed), this.roberta.embeddings.word_embeddings.weight));
  }
  /** The encoder under the head. */
  get base(): RobertaModel {
    return this.roberta;
  }
  /** The masked-LM head (transform + tied decoder). */
  get head(): MaskedLMHead {
    return this.lm_head;
  }
  dims(): ModelDims {
    return bertDims(this.config);
  }
  /** ids [B, T] → last hidden state [B, T, D] and logits [B, T, V]. */
  forward(inputIds: Ids, opts: EncoderForwardOptions = {}): EncoderOutput {
    return maskedLMForward(this.roberta, this.lm_head, inputIds, opts);
  }
}
