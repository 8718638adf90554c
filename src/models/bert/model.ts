/**
 * BERT and RoBERTa encoders (HF `modeling_bert.py`, `modeling_roberta.py`). Module names are the
 * checkpoint's (`encoder.layer.3.attention.self.query.weight`), LayerNorm keeps TF's capitalised name.
 * RoBERTa differs only in its position ids (counted over non-pad tokens, starting after padding_idx)
 * and in the zeroed padding row of its position table, so it is this code with model_type 'roberta'.
 */
import * as tf from '@tensorflow/tfjs-core';
import { tidy } from '../../backend/memory.js';
import { Rng } from '../../backend/rng.js';
import { ConfigError, ShapeError } from '../../errors.js';
import { attendWithCache, attentionBias, splitHeads } from '../../nn/attention.js';
import { activation, dropout, Embedding, LayerNorm, Linear, type InitOptions } from '../../nn/layers.js';
import { Module, ModuleList } from '../../nn/module.js';
import { idsTensor } from '../common.js';
import { PreTrainedModel } from '../pretrained_model.js';
import type { EncoderForwardOptions, EncoderModel, EncoderOutput, Ids, ModelDims } from '../types.js';
import { bertDims, maxSequenceLength, type BertConfig, type BertModelType } from './config.js';

/** Dropout switch and mask stream threaded through one forward pass. */
export interface Ctx {
  training?: boolean;
  rng?: Rng;
}

/** HF's `_init_weights` keeps an Embedding's padding_idx row at zero. */
function zeroRow(w: tf.Variable, row: number): void {
  const z = tf.tidy(() => {
    const rows = (w.shape as number[])[0];
    const keep = tf.cast(tf.notEqual(tf.range(0, rows, 1, 'int32'), row), 'float32').reshape([rows, 1]);
    return tf.mul(w, keep);
  });
  w.assign(z);
  z.dispose();
}

/**
 * RoBERTa's position ids (HF `create_position_ids_from_input_ids`): real tokens are numbered
 * padding_idx+1, padding_idx+2, … in order, pads get padding_idx, so padding never shifts positions.
 * @param ids int32 [B, T] @returns int32 [B, T]
 */
export function robertaPositionIds(ids: tf.Tensor, paddingIdx: number): tf.Tensor {
  return tf.tidy(() => {
    const real = tf.cast(tf.notEqual(ids, paddingIdx), 'int32');
    return tf.add(tf.mul(tf.cumsum(real, 1), real), tf.scalar(paddingIdx, 'int32'));
  });
}

/** `embeddings`: word + position + token type, then LayerNorm and dropout. */
export class BertEmbeddings extends Module {
  readonly word_embeddings: Embedding;
  readonly position_embeddings: Embedding;
  readonly token_type_embeddings: Embedding;
  readonly LayerNorm: LayerNorm;
  constructor(private readonly cfg: BertConfig, init: InitOptions) {
    super();
    const { vocab_size, hidden_size, max_position_embeddings, type_vocab_size, pad_token_id } = cfg;
    this.word_embeddings = this.child('word_embeddings', new Embedding(vocab_size, hidden_size, init));
    this.position_embeddings = this.child('position_embeddings', new Embedding(max_position_embeddings, hidden_size, init));
    this.token_type_embeddings = this.child('token_type_embeddings', new Embedding(type_vocab_size, hidden_size, init));
    this.LayerNorm = this.child('LayerNorm', new LayerNorm(hidden_size, cfg.layer_norm_eps));
    if (pad_token_id !== null) {
      zeroRow(this.word_embeddings.weight, pad_token_id);
      if (cfg.model_type === 'roberta') zeroRow(this.position_embeddings.weight, pad_token_id);
    }
  }
  /** Default position ids [B, T] for `ids` [B, T]; fails past the position table. */
  positionIds(ids: tf.Tensor): tf.Tensor {
    const T = (ids.shape as number[])[1];
    const limit = maxSequenceLength(this.cfg);
    if (T > limit) {
      const why = this.cfg.model_type === 'roberta' ? `max_position_embeddings=${this.cfg.max_position_embeddings} minus padding_idx ${this.cfg.pad_token_id} + 1` : `max_position_embeddings=${limit}`;
      throw new ShapeError(`sequence of ${T} tokens exceeds ${this.cfg.model_type}'s limit of ${limit} positions (${why})`, `truncate the input to ${limit} tokens or split it into windows`);
    }
    if (this.cfg.model_type === 'roberta') return robertaPositionIds(ids, this.cfg.pad_token_id!);
    return tf.range(0, T, 1, 'int32').expandDims(0);
  }
  /** ids, token types [B, T], positions [B|1, T] → [B, T, D] */
  forward(ids: tf.Tensor, tokenTypes: tf.Tensor, positions: tf.Tensor, ctx: Ctx): tf.Tensor {
    return tf.tidy(() => {
      const e = tf.add(tf.add(this.word_embeddings.forward(ids), this.token_type_embeddings.forward(tokenTypes)), this.position_embeddings.forward(positions));
      return dropout(this.LayerNorm.forward(e), this.cfg.hidden_dropout_prob, ctx);
    });
  }
}

/** `attention.self`: bidirectional multi-head attention with separate query/key/value projections. */
export class BertSelfAttention extends Module {
  readonly query: Linear;
  readonly key: Linear;
  readonly value: Linear;
  private readonly headDim: number;
  constructor(private readonly cfg: BertConfig, init: InitOptions) {
    super();
    const D = cfg.hidden_size;
    this.query = this.child('query', new Linear(D, D, init));
    this.key = this.child('key', new Linear(D, D, init));
    this.value = this.child('value', new Linear(D, D, init));
    this.headDim = D / cfg.num_attention_heads;
  }
  /** x [B, T, D], bias [B, 1, T, T] additive → context [B, T, D] (before the output projection) */
  forward(x: tf.Tensor, bias: tf.Tensor | undefined, ctx: Ctx): tf.Tensor {
    return tf.tidy(() => {
      const H = this.cfg.num_attention_heads;
      const [q, k, v] = [this.query, this.key, this.value].map((p) => splitHeads(p.forward(x), H, this.headDim));
      const scale = 1 / Math.sqrt(this.headDim);
      // One native kernel when available (the "cache" it also returns, k and v themselves, is dropped).
      return attendWithCache(q, k, v, undefined, bias, scale, { rate: this.cfg.attention_probs_dropout_prob, ...ctx })[0];
    });
  }
}

/** `attention.output` and `output`: dense, dropout, then LayerNorm over the residual sum (post-norm). */
export class BertSelfOutput extends Module {
  readonly dense: Linear;
  readonly LayerNorm: LayerNorm;
  constructor(private readonly cfg: BertConfig, inFeatures: number, init: InitOptions) {
    super();
    this.dense = this.child('dense', new Linear(inFeatures, cfg.hidden_size, init));
    this.LayerNorm = this.child('LayerNorm', new LayerNorm(cfg.hidden_size, cfg.layer_norm_eps));
  }
  /** x [B, T, in], residual [B, T, D] → [B, T, D] */
  forward(x: tf.Tensor, residual: tf.Tensor, ctx: Ctx): tf.Tensor {
    return tf.tidy(() => this.LayerNorm.forward(tf.add(dropout(this.dense.forward(x), this.cfg.hidden_dropout_prob, ctx), residual)));
  }
}

/** `attention`: self-attention followed by its output block. */
export class BertAttention extends Module {
  readonly self: BertSelfAttention;
  readonly output: BertSelfOutput;
  constructor(cfg: BertConfig, init: InitOptions) {
    super();
    this.self = this.child('self', new BertSelfAttention(cfg, init));
    this.output = this.child('output', new BertSelfOutput(cfg, cfg.hidden_size, init));
  }
  forward(x: tf.Tensor, bias: tf.Tensor | undefined, ctx: Ctx): tf.Tensor {
    return tf.tidy(() => this.output.forward(this.self.forward(x, bias, ctx), x, ctx));
  }
}

/** `intermediate`: dense to intermediate_size, then hidden_act. */
export class BertIntermediate extends Module {
  readonly dense: Linear;
  private readonly act: (x: tf.Tensor) => tf.Tensor;
  constructor(cfg: BertConfig, init: InitOptions) {
    super();
    this.dense = this.child('dense', new Linear(cfg.hidden_size, cfg.intermediate_size, init));
    this.act = activation(cfg.hidden_act, 'hidden_act');
  }
  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => this.act(this.dense.forward(x)));
  }
}

/** `encoder.layer.N`: attention, then the feed-forward block with its own residual LayerNorm. */
export class BertLayer extends Module {
  readonly attention: BertAttention;
  readonly intermediate: BertIntermediate;
  readonly output: BertSelfOutput;
  constructor(cfg: BertConfig, init: InitOptions) {
    super();
    this.attention = this.child('attention', new BertAttention(cfg, init));
    this.intermediate = this.child('intermediate', new BertIntermediate(cfg, init));
    this.output = this.child('output', new BertSelfOutput(cfg, cfg.intermediate_size, init));
  }
  /** x [B, T, D] → [B, T, D] */
  forward(x: tf.Tensor, bias: tf.Tensor | undefined, ctx: Ctx): tf.Tensor {
    return tf.tidy(() => {
      const a = this.attention.forward(x, bias, ctx);
      return this.output.forward(this.intermediate.forward(a), a, ctx);
    });
  }
}

/** `encoder`: the stack of layers (`encoder.layer.N`). */
export class BertEncoder extends Module {
  readonly layer: ModuleList<BertLayer>;
  constructor(cfg: BertConfig, init: InitOptions) {
    super();
    this.layer = this.child('layer', new ModuleList(Array.from({ length: cfg.num_hidden_layers }, () => new BertLayer(cfg, init))));
  }
}

/** `pooler`: tanh(dense(first token)), the sentence vector BERT's NSP head was trained on. */
export class BertPooler extends Module {
  readonly dense: Linear;
  constructor(cfg: BertConfig, init: InitOptions) {
    super();
    this.dense = this.child('dense', new Linear(cfg.hidden_size, cfg.hidden_size, init));
  }
  /** [B, T, D] → [B, D] */
  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const [B, , D] = x.shape as number[];
      return tf.tanh(this.dense.forward(x.slice([0, 0, 0], [B, 1, D]).reshape([B, D])));
    });
  }
}

/** Output of the bare encoder; `poolerOutput` is absent when built without a pooler. */
export interface BertModelOutput extends EncoderOutput {
  poolerOutput?: tf.Tensor;
}

/** Validate an optional [B, T] integer input (mask, token types, positions) against the ids' shape. */
function sideInput(x: Ids, what: string, bound: number, B: number, T: number, allowBroadcast = false): tf.Tensor {
  const t = idsTensor(x, what, bound);
  const [b, n] = t.shape as number[];
  if (n !== T || (b !== B && !(allowBroadcast && b === 1))) {
    t.dispose();
    throw new ShapeError(`${what} has shape [${b}, ${n}], expected [${B}, ${T}] like the input ids`, `pass one ${what} entry per input token`);
  }
  return t;
}

/** The bare encoder (`embeddings`, `encoder.layer.N`, `pooler`) for model_type 'bert'. */
export class BertModel extends PreTrainedModel implements EncoderModel {
  /** The config.model_type this class accepts. */
  static readonly modelType: BertModelType = 'bert';
  readonly modelType: BertModelType;
  get className(): string {
    return this.modelType === 'roberta' ? 'RobertaModel' : 'BertModel';
  }
  readonly embeddings: BertEmbeddings;
  readonly encoder: BertEncoder;
  readonly pooler?: BertPooler;
  constructor(readonly config: BertConfig, seed: number | null = 0, addPoolingLayer = true) {
    super();
    const expected = (new.target as typeof BertModel).modelType;
    if (config.model_type !== expected) {
      throw new ConfigError(`${new.target.name} needs a config with model_type '${expected}', found '${config.model_type}'`, `use ${config.model_type === 'roberta' ? 'RobertaModel' : 'BertModel'} for this config`);
    }
    this.modelType = expected;
    const init = { rng: seed === null ? undefined : new Rng(seed), std: config.initializer_range };
    this.embeddings = this.child('embeddings', new BertEmbeddings(config, init));
    this.encoder = this.child('encoder', new BertEncoder(config, init));
    if (addPoolingLayer) this.pooler = this.child('pooler', new BertPooler(config, init));
  }

  dims(): ModelDims {
    return bertDims(this.config);
  }

  /** ids [B, T] → last hidden state [B, T, D], pooled first token [B, D], and optionally all L+1 layer inputs/outputs. */
  forward(inputIds: Ids, opts: EncoderForwardOptions = {}): BertModelOutput {
    const c = this.config;
    return tidy(() => {
      const ids = idsTensor(inputIds, 'input ids', c.vocab_size);
      const [B, T] = ids.shape as number[];
      const mask = opts.attentionMask ? sideInput(opts.attentionMask, 'attention mask', 2, B, T) : undefined;
      const types = opts.tokenTypeIds ? sideInput(opts.tokenTypeIds, 'token type ids', c.type_vocab_size, B, T) : tf.zeros([B, T], 'int32');
      const pos = opts.positionIds ? sideInput(opts.positionIds, 'position ids', c.max_position_embeddings, B, T, true) : this.embeddings.positionIds(ids);
      const ctx: Ctx = { training: opts.training, rng: opts.rng };
      // The mask hides padded keys only; padded queries still get (ignored) outputs, as in HF.
      const bias = attentionBias(B, T, 0, mask, false);
      let x = this.embeddings.forward(ids, types, pos, ctx);
      const hidden: tf.Tensor[] = [x];
      for (const layer of this.encoder.layer.items) {
        x = layer.forward(x, bias, ctx);
        hidden.push(x);
      }
      const out: BertModelOutput = { lastHiddenState: x };
      if (this.pooler) out.poolerOutput = this.pooler.forward(x);
      if (opts.returnHidden) out.hidden = hidden;
      return out;
    });
  }
}

/** The bare RoBERTa encoder: BertModel for model_type 'roberta' (position ids skip padding). */
export class RobertaModel extends BertModel {
  static override readonly modelType: BertModelType = 'roberta';
}
