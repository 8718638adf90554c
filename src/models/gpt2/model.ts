/**
 * GPT-2 (HF `modeling_gpt2.py`; nanoGPT's `model.py` is the readable twin). Module names are the
 * checkpoint's: `transformer.h.3.attn.c_attn.weight`. Conv1D keeps HF's [in, out] layout, so no
 * transpose at load; the LM head is the token embedding itself (tied), registered once.
 */
import * as tf from '@tensorflow/tfjs-core';
import { fusedPreLNBlock, geluTanh, type PreLNBlockWeights } from '../../backend/fused.js';
import { tidy } from '../../backend/memory.js';
import { Rng } from '../../backend/rng.js';
import { ShapeError } from '../../errors.js';
import { attendPackedWithCache, attentionBias, cacheLength, type KVCache, type LayerKV } from '../../nn/attention.js';
import { ACTIVATIONS, activation, Conv1D, dropout, Embedding, LayerNorm, type InitOptions } from '../../nn/layers.js';
import { Module, ModuleList } from '../../nn/module.js';
import { checkKvDelta, idsTensor, lmHeadLogits, runDecoderLayers } from '../common.js';
import { PreTrainedModel } from '../pretrained_model.js';
import type { CausalLM, DecoderForwardOptions, DecoderOutput, Ids, ModelDims } from '../types.js';
import { gpt2Dims, type GPT2Config } from './config.js';

interface Ctx {
  training?: boolean;
  rng?: Rng;
}

class GPT2Attention extends Module {
  readonly c_attn: Conv1D;
  readonly c_proj: Conv1D;
  private readonly headDim: number;
  readonly scale: number;
  constructor(private readonly cfg: GPT2Config, layerIdx: number, init: InitOptions, projInit: InitOptions) {
    super();
    this.c_attn = this.child('c_attn', new Conv1D(cfg.n_embd, 3 * cfg.n_embd, init));
    this.c_proj = this.child('c_proj', new Conv1D(cfg.n_embd, cfg.n_embd, projInit));
    this.headDim = cfg.n_embd / cfg.n_head;
    let scale = cfg.scale_attn_weights ? 1 / Math.sqrt(this.headDim) : 1;
    if (cfg.scale_attn_by_inverse_layer_idx) scale /= layerIdx + 1;
    this.scale = scale;
  }
  /** x [B, T, D] → ([B, T, D], this layer's cache with the new keys and values appended) */
  forward(x: tf.Tensor, past: LayerKV | undefined, bias: tf.Tensor | undefined, ctx: Ctx, delta?: LayerKV): [tf.Tensor, LayerKV] {
    const { n_head } = this.cfg;
    const [a, kv] = attendPackedWithCache(this.c_attn.forward(x), n_head, n_head, past, bias, this.scale, { rate: this.cfg.attn_pdrop, ...ctx }, delta);
    const out = dropout(this.c_proj.forward(a), this.cfg.resid_pdrop, ctx);
    return [out, kv];
  }
}

class GPT2MLP extends Module {
  readonly c_fc: Conv1D;
  readonly c_proj: Conv1D;
  private readonly act: (x: tf.Tensor) => tf.Tensor;
  constructor(private readonly cfg: GPT2Config, init: InitOptions, projInit: InitOptions) {
    super();
    const inner = cfg.n_inner ?? 4 * cfg.n_embd;
    this.c_fc = this.child('c_fc', new Conv1D(cfg.n_embd, inner, init));
    this.c_proj = this.child('c_proj', new Conv1D(inner, cfg.n_embd, projInit));
    this.act = activation(cfg.activation_function, 'activation_function');
  }
  forward(x: tf.Tensor, ctx: Ctx): tf.Tensor {
    return dropout(this.c_proj.forward(this.act(this.c_fc.forward(x))), this.cfg.resid_pdrop, ctx);
  }
}

class GPT2Block extends Module {
  readonly ln_1: LayerNorm;
  readonly attn: GPT2Attention;
  readonly ln_2: LayerNorm;
  readonly mlp: GPT2MLP;
  constructor(private readonly cfg: GPT2Config, layerIdx: number, init: InitOptions) {
    super();
    // HF scales residual projections by 1/sqrt(2·n_layer) at init (GPT-2 paper, §2.3).
    const projInit = { rng: init.rng, std: init.std / Math.sqrt(2 * cfg.n_layer) };
    this.ln_1 = this.child('ln_1', new LayerNorm(cfg.n_embd, cfg.layer_norm_epsilon));
    this.attn = this.child('attn', new GPT2Attention(cfg, layerIdx, init, projInit));
    this.ln_2 = this.child('ln_2', new LayerNorm(cfg.n_embd, cfg.layer_norm_epsilon));
    this.mlp = this.child('mlp', new GPT2MLP(cfg, init, projInit));
  }
  forward(x: tf.Tensor, past: LayerKV | undefined, bias: tf.Tensor | undefined, ctx: Ctx, delta?: LayerKV): [tf.Tensor, LayerKV] {
    const fast = ctx.training || delta ? undefined : this.fused(x, past, bias);
    if (fast) return fast;
    const [a, kv] = this.attn.forward(this.ln_1.forward(x), past, bias, ctx, delta);
    const h = tf.add(x, a);
    return [tf.add(h, this.mlp.forward(this.ln_2.forward(h), ctx)), kv];
  }
  /** The whole block as one native kernel (inference with the tanh GELU, no LoRA), or undefined. */
  private fused(x: tf.Tensor, past: LayerKV | undefined, bias: tf.Tensor | undefined): [tf.Tensor, LayerKV] | undefined {
    const { attn, mlp } = this;
    // The kernel computes GELU's tanh form: only for the activation names that map to it.
    if (ACTIVATIONS[this.cfg.activation_function] !== geluTanh || attn.c_attn.delta || attn.c_proj.delta || mlp.c_fc.delta || mlp.c_proj.delta) return undefined;
    const w = {
      ln1: [this.ln_1.weight, this.ln_1.bias], attn: [attn.c_attn.weight, attn.c_attn.bias], proj: [attn.c_proj.weight, attn.c_proj.bias],
      ln2: [this.ln_2.weight, this.ln_2.bias], fc: [mlp.c_fc.weight, mlp.c_fc.bias], fcProj: [mlp.c_proj.weight, mlp.c_proj.bias],
    } as PreLNBlockWeights;
    const out = fusedPreLNBlock(x, w, this.cfg.n_head, this.cfg.layer_norm_epsilon, attn.scale, past?.key, past?.value, bias);
    return out && [out[0], { key: out[1], value: out[2] }];
  }
}

/** Output of the bare transformer. */
export interface GPT2ModelOutput {
  /** [B, T, D] after ln_f */
  lastHiddenState: tf.Tensor;
  cache: KVCache;
  hidden?: tf.Tensor[];
}

/** The bare GPT-2 transformer (`wte`, `wpe`, `h.N`, `ln_f`). */
export class GPT2Model extends PreTrainedModel {
  readonly modelType = 'gpt2';
  readonly className = 'GPT2Model';
  readonly wte: Embedding;
  readonly wpe: Embedding;
  readonly h: ModuleList<GPT2Block>;
  readonly ln_f: LayerNorm;
  /** `seed` null: zero weights, to be overwritten by a checkpoint. */
  constructor(readonly config: GPT2Config, seed: number | null = 0) {
    super();
    const init = { rng: seed === null ? undefined : new Rng(seed), std: config.initializer_range };
    this.wte = this.child('wte', new Embedding(config.vocab_size, config.n_embd, init));
    this.wpe = this.child('wpe', new Embedding(config.n_positions, config.n_embd, init));
    this.h = this.child('h', new ModuleList(Array.from({ length: config.n_layer }, (_, i) => new GPT2Block(config, i, init))));
    this.ln_f = this.child('ln_f', new LayerNorm(config.n_embd, config.layer_norm_epsilon));
  }

  /** ids [B, T] → hidden states [B, T, D] and the cache extended by T positions. */
  forward(inputIds: Ids, opts: DecoderForwardOptions = {}): GPT2ModelOutput {
    const { n_positions, vocab_size, n_layer } = this.config;
    const past = cacheLength(opts.cache);
    if (opts.cache && opts.cache.length !== n_layer) throw new ShapeError(`cache has ${opts.cache.length} layers, the model has ${n_layer}`);
    return tidy(() => {
      const ids = idsTensor(inputIds, 'input ids', vocab_size);
      const [B, T] = ids.shape as number[];
      if (past + T > n_positions) {
        throw new ShapeError(`sequence of ${past + T} tokens (${past} cached + ${T} new) exceeds GPT-2's context of n_positions=${n_positions}`, 'truncate the input or score long texts with a sliding window');
      }
      const pos = opts.positionIds ? idsTensor(opts.positionIds, 'position ids', n_positions) : tf.range(past, past + T, 1, 'int32').expandDims(0);
      const mask = opts.attentionMask ? idsTensor(opts.attentionMask, 'attention mask') : undefined;
      if (mask && (mask.shape[0] !== B || mask.shape[1] !== past + T)) {
        throw new ShapeError(`attention mask has shape [${mask.shape.join(', ')}], expected [${B}, ${past + T}] (batch, cached + new tokens)`);
      }
      checkKvDelta(opts.kvDelta, n_layer, [B, this.config.n_head, T, this.config.n_embd / this.config.n_head]);
      const bias = attentionBias(B, T, past, mask, true);
      const ctx: Ctx = { training: opts.training, rng: opts.rng };
      const x = dropout(tf.add(this.wte.forward(ids), this.wpe.forward(pos)), this.config.embd_pdrop, ctx);
      const { x: top, cache, hidden } = runDecoderLayers(x, this.h.items, (block, h, past, i) => block.forward(h, past, bias, ctx, opts.kvDelta?.[i]), opts.cache, opts.returnHidden);
      const last = this.ln_f.forward(top);
      if (opts.returnHidden) hidden.push(last);
      return opts.returnHidden ? { lastHiddenState: last, cache, hidden } : { lastHiddenState: last, cache };
    });
  }
}

/** GPT-2 with its language-model head (`transformer.*`; `lm_head.weight` tied to `transformer.wte.weight`). */
export class GPT2LMHeadModel extends PreTrainedModel implements CausalLM {
  readonly modelType = 'gpt2';
  readonly className = 'GPT2LMHeadModel';
  readonly transformer: GPT2Model;
  /** `seed` null: zero weights, to be overwritten by a checkpoint. */
  constructor(readonly config: GPT2Config, seed: number | null = 0) {
    super();
    this.transformer = this.child('transformer', new GPT2Model(config, seed));
  }
  dims(): ModelDims {
    return gpt2Dims(this.config);
  }
  forward(inputIds: Ids, opts: DecoderForwardOptions = {}): DecoderOutput {
    return tidy(() => {
      const out = this.transformer.forward(inputIds, opts);
      const logits = lmHeadLogits(out.lastHiddenState, this.transformer.wte.weight, opts.logitsToKeep);
      return out.hidden ? { logits, cache: out.cache, hidden: out.hidden } : { logits, cache: out.cache };
    });
  }
}
