/**
 * Llama (HF `modeling_llama.py`): pre-norm decoder with RMSNorm, rotary positions, grouped-query
 * attention and a SwiGLU MLP. Module names are the checkpoint's (`model.layers.3.self_attn.q_proj.weight`).
 * The cache stores keys after rotation, as HF does, so a cached key never needs its position again.
 * No length limit: rotary extrapolates past `max_position_embeddings` exactly as HF lets it.
 */
import * as tf from '@tensorflow/tfjs-core';
import { fusedLlamaBlock, type LlamaBlockWeights, siluMul } from '../../backend/fused_llama.js';
import { tidy } from '../../backend/memory.js';
import { Rng } from '../../backend/rng.js';
import { ShapeError } from '../../errors.js';
import { attendWithCache, attentionBias, cacheLength, splitHeads, type KVCache, type LayerKV } from '../../nn/attention.js';
import { activation, Embedding, Linear, RMSNorm, silu, type InitOptions } from '../../nn/layers.js';
import { Module, ModuleList } from '../../nn/module.js';
import { checkKvDelta, idsTensor, lmHeadLogits, runDecoderLayers } from '../common.js';
import { PreTrainedModel } from '../pretrained_model.js';
import type { CausalLM, DecoderForwardOptions, DecoderOutput, Ids, ModelDims } from '../types.js';
import { llamaDims, type LlamaConfig } from './config.js';
import { applyRotary, ropeInvFreq, rotaryTables, type RotaryTables } from './rope.js';

/** Dropout switches for one forward pass. */
interface Ctx {
  training?: boolean;
  rng?: Rng;
}

class LlamaAttention extends Module {
  readonly q_proj: Linear;
  readonly k_proj: Linear;
  readonly v_proj: Linear;
  readonly o_proj: Linear;
  private readonly scale: number;
  constructor(private readonly cfg: LlamaConfig, init: InitOptions) {
    super();
    const { hidden_size: D, num_attention_heads: H, num_key_value_heads: Hkv, head_dim: Dh, attention_bias: bias } = cfg;
    this.q_proj = this.child('q_proj', new Linear(D, H * Dh, init, bias));
    this.k_proj = this.child('k_proj', new Linear(D, Hkv * Dh, init, bias));
    this.v_proj = this.child('v_proj', new Linear(D, Hkv * Dh, init, bias));
    this.o_proj = this.child('o_proj', new Linear(H * Dh, D, init, bias));
    this.scale = Dh ** -0.5;
  }
  /** x [B, T, D] → ([B, T, D], this layer's cache with the new rotated keys and values appended) */
  forward(x: tf.Tensor, rot: RotaryTables, past: LayerKV | undefined, bias: tf.Tensor | undefined, ctx: Ctx, delta?: LayerKV): [tf.Tensor, LayerKV] {
    const { num_attention_heads: H, num_key_value_heads: Hkv, head_dim: Dh } = this.cfg;
    const q = applyRotary(splitHeads(this.q_proj.forward(x), H, Dh), rot);
    const k = applyRotary(splitHeads(this.k_proj.forward(x), Hkv, Dh), rot);
    const v = splitHeads(this.v_proj.forward(x), Hkv, Dh);
    // kvDelta offsets the rotated keys, i.e. the keys exactly as the cache stores them. Query head h
    // reads kv head floor(h / (H/Hkv)): HF's repeat_kv without the copy.
    const [a, kv] = attendWithCache(q, k, v, past, bias, this.scale, { rate: this.cfg.attention_dropout, ...ctx }, delta);
    return [this.o_proj.forward(a), kv];
  }
}

class LlamaMLP extends Module {
  readonly gate_proj: Linear;
  readonly up_proj: Linear;
  readonly down_proj: Linear;
  private readonly act: (x: tf.Tensor) => tf.Tensor;
  /** Whether the activation is SiLU, which the SwiGLU kernels compute. */
  readonly silu: boolean;
  constructor(cfg: LlamaConfig, init: InitOptions) {
    super();
    const { hidden_size: D, intermediate_size: I, mlp_bias: bias } = cfg;
    this.gate_proj = this.child('gate_proj', new Linear(D, I, init, bias));
    this.up_proj = this.child('up_proj', new Linear(D, I, init, bias));
    this.down_proj = this.child('down_proj', new Linear(I, D, init, bias));
    this.act = activation(cfg.hidden_act, 'hidden_act');
    this.silu = this.act === silu;
  }
  /** SwiGLU: down(act(gate(x)) · up(x)) */
  forward(x: tf.Tensor): tf.Tensor {
    const gate = this.gate_proj.forward(x);
    const up = this.up_proj.forward(x);
    return this.down_proj.forward(this.silu ? siluMul(gate, up) : tf.mul(this.act(gate), up));
  }
}

class LlamaDecoderLayer extends Module {
  readonly self_attn: LlamaAttention;
  readonly mlp: LlamaMLP;
  readonly input_layernorm: RMSNorm;
  readonly post_attention_layernorm: RMSNorm;
  constructor(private readonly cfg: LlamaConfig, init: InitOptions) {
    super();
    // Registration order is HF's, so parameter listings and seeded init follow the checkpoint's order.
    this.self_attn = this.child('self_attn', new LlamaAttention(cfg, init));
    this.mlp = this.child('mlp', new LlamaMLP(cfg, init));
    this.input_layernorm = this.child('input_layernorm', new RMSNorm(cfg.hidden_size, cfg.rms_norm_eps));
    this.post_attention_layernorm = this.child('post_attention_layernorm', new RMSNorm(cfg.hidden_size, cfg.rms_norm_eps));
  }
  forward(x: tf.Tensor, rot: RotaryTables, past: LayerKV | undefined, bias: tf.Tensor | undefined, ctx: Ctx, delta?: LayerKV): [tf.Tensor, LayerKV] {
    const fast = ctx.training || delta ? undefined : this.fused(x, rot, past, bias);
    if (fast) return fast;
    const [a, kv] = this.self_attn.forward(this.input_layernorm.forward(x), rot, past, bias, ctx, delta);
    const h = tf.add(x, a);
    return [tf.add(h, this.mlp.forward(this.post_attention_layernorm.forward(h))), kv];
  }
  /** The whole layer as one native kernel (inference with SiLU, no LoRA), or undefined. */
  private fused(x: tf.Tensor, rot: RotaryTables, past: LayerKV | undefined, bias: tf.Tensor | undefined): [tf.Tensor, LayerKV] | undefined {
    const { self_attn: a, mlp: m, cfg } = this;
    const linears = [a.q_proj, a.k_proj, a.v_proj, a.o_proj, m.gate_proj, m.up_proj, m.down_proj];
    if (!m.silu || linears.some((l) => l.delta)) return undefined;
    const wb = (l: Linear): [tf.Tensor, tf.Tensor?] => [l.weight, l.bias];
    const w: LlamaBlockWeights = {
      norm1: this.input_layernorm.weight, q: wb(a.q_proj), k: wb(a.k_proj), v: wb(a.v_proj), o: wb(a.o_proj),
      norm2: this.post_attention_layernorm.weight, gate: wb(m.gate_proj), up: wb(m.up_proj), down: wb(m.down_proj),
    };
    const out = fusedLlamaBlock(x, w, cfg.num_attention_heads, cfg.num_key_value_heads, cfg.rms_norm_eps, cfg.head_dim ** -0.5, rot.cos, rot.sin, past?.key, past?.value, bias);
    return out && [out[0], { key: out[1], value: out[2] }];
  }
}


/** Output of the bare decoder. */
export interface LlamaModelOutput {
  /** [B, T, D] after the final norm */
  lastHiddenState: tf.Tensor;
  cache: KVCache;
  hidden?: tf.Tensor[];
}

function dimsOf(t: tf.Tensor): string {
  return `[${t.shape.join(', ')}]`;
}

/** The bare Llama decoder (`embed_tokens`, `layers.N`, `norm`). */
export class LlamaModel extends PreTrainedModel {
  readonly modelType = 'llama';
  readonly className = 'LlamaModel';
  readonly embed_tokens: Embedding;
  readonly layers: ModuleList<LlamaDecoderLayer>;
  readonly norm: RMSNorm;
  /** [Dh/2] rotary inverse frequencies: derived from the config, never a checkpoint tensor. */
  readonly invFreq: Float32Array;
  constructor(readonly config: LlamaConfig, seed: number | null = 0) {
    super();
    const init = { rng: seed === null ? undefined : new Rng(seed), std: config.initializer_range };
    this.embed_tokens = this.child('embed_tokens', new Embedding(config.vocab_size, config.hidden_size, init));
    this.layers = this.child('layers', new ModuleList(Array.from({ length: config.num_hidden_layers }, () => new LlamaDecoderLayer(config, init))));
    this.norm = this.child('norm', new RMSNorm(config.hidden_size, config.rms_norm_eps));
    this.invFreq = ropeInvFreq(config.head_dim, config.rope_theta, config.rope_scaling);
  }

  /** ids [B, T] → hidden states [B, T, D] and the cache extended by T positions. */
  forward(inputIds: Ids, opts: DecoderForwardOptions = {}): LlamaModelOutput {
    const { vocab_size, num_hidden_layers, num_key_value_heads, head_dim } = this.config;
    const past = cacheLength(opts.cache);
    if (opts.cache && opts.cache.length !== num_hidden_layers) throw new ShapeError(`cache has ${opts.cache.length} layers, the model has ${num_hidden_layers}`, 'pass the cache this model returned');
    return tidy(() => {
      const ids = idsTensor(inputIds, 'input ids', vocab_size);
      const [B, T] = ids.shape as number[];
      if (opts.cache) {
        const k = opts.cache[0].key;
        const [cb, ch, , cd] = k.shape as number[];
        if (cb !== B || ch !== num_key_value_heads || cd !== head_dim) {
          throw new ShapeError(`cache keys have shape ${dimsOf(k)}, expected [${B}, ${num_key_value_heads}, S, ${head_dim}] (batch, kv heads, past, head size)`, 'pass the cache returned for this batch (reorder it with a gather on axis 0 for beams)');
        }
      }
      // Any integer position is valid for rotary, negative ones included (pads of cumsum(mask) - 1).
      const pos = opts.positionIds ? idsTensor(opts.positionIds, 'position ids') : tf.range(past, past + T, 1, 'int32').expandDims(0);
      const [pb, pt] = pos.shape as number[];
      if ((pb !== B && pb !== 1) || pt !== T) throw new ShapeError(`position ids have shape ${dimsOf(pos)}, expected [${B}, ${T}] (or [1, ${T}])`);
      const mask = opts.attentionMask ? idsTensor(opts.attentionMask, 'attention mask') : undefined;
      if (mask && (mask.shape[0] !== B || mask.shape[1] !== past + T)) {
        throw new ShapeError(`attention mask has shape ${dimsOf(mask)}, expected [${B}, ${past + T}] (batch, cached + new tokens)`);
      }
      checkKvDelta(opts.kvDelta, num_hidden_layers, [B, num_key_value_heads, T, head_dim]);
      const bias = attentionBias(B, T, past, mask, true);
      const rot = rotaryTables(this.invFreq, pos);
      const ctx: Ctx = { training: opts.training, rng: opts.rng };
      const x = this.embed_tokens.forward(ids);
      const { x: top, cache, hidden } = runDecoderLayers(x, this.layers.items, (layer, h, past, i) => layer.forward(h, rot, past, bias, ctx, opts.kvDelta?.[i]), opts.cache, opts.returnHidden);
      const last = this.norm.forward(top);
      if (opts.returnHidden) hidden.push(last);
      return opts.returnHidden ? { lastHiddenState: last, cache, hidden } : { lastHiddenState: last, cache };
    });
  }
}

/** Llama with its LM head (`model.*` + `lm_head`; when tied, the head is `model.embed_tokens.weight`, registered once). */
export class LlamaForCausalLM extends PreTrainedModel implements CausalLM {
  readonly modelType = 'llama';
  readonly className = 'LlamaForCausalLM';
  readonly model: LlamaModel;
  /** Absent when `tie_word_embeddings`. */
  readonly lm_head?: Linear;
  constructor(readonly config: LlamaConfig, seed: number | null = 0) {
    super();
    this.model = this.child('model', new LlamaModel(config, seed));
    if (!config.tie_word_embeddings) {
      // Its own stream, so the decoder's weights are the same whether or not the head exists.
      const init = { rng: seed === null ? undefined : new Rng(seed).split(), std: config.initializer_range };
      this.lm_head = this.child('lm_head', new Linear(config.hidden_size, config.vocab_size, init, false));
    }
  }
  dims(): ModelDims {
    return llamaDims(this.config);
  }
  forward(inputIds: Ids, opts: DecoderForwardOptions = {}): DecoderOutput {
    return tidy(() => {
      const out = this.model.forward(inputIds, opts);
      const head = this.lm_head ? this.lm_head.weight : this.model.embed_tokens.weight;
      const logits = lmHeadLogits(out.lastHiddenState, head, opts.logitsToKeep);
      return out.hidden ? { logits, cache: out.cache, hidden: out.hidden } : { logits, cache: out.cache };
    });
  }
}
