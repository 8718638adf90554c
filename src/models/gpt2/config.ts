/**
 * GPT2Config: config.json's keys verbatim with HF's defaults (transformers `configuration_gpt2.py`).
 */
import { ConfigError } from '../../errors.js';
import { bool, divisible, num, posInt, str, type RawConfig } from '../common.js';
import type { ModelDims } from '../types.js';

/** The fields of a GPT-2 config.json that change the computation. */
export interface GPT2Config {
  model_type: 'gpt2';
  vocab_size: number;
  n_positions: number;
  n_embd: number;
  n_layer: number;
  n_head: number;
  /** MLP width; null means 4·n_embd. */
  n_inner: number | null;
  activation_function: string;
  resid_pdrop: number;
  embd_pdrop: number;
  attn_pdrop: number;
  layer_norm_epsilon: number;
  initializer_range: number;
  scale_attn_weights: boolean;
  scale_attn_by_inverse_layer_idx: boolean;
  tie_word_embeddings: boolean;
  bos_token_id: number | null;
  eos_token_id: number | null;
  [key: string]: unknown;
}

/** Fill HF's defaults and check invariants; unknown extra keys are kept for saving. */
export function parseGPT2Config(raw: RawConfig): GPT2Config {
  if (raw.model_type !== 'gpt2') throw new ConfigError(`expected model_type 'gpt2', found ${JSON.stringify(raw.model_type)}`);
  const n_embd = posInt(raw, 'n_embd', 768);
  const n_head = posInt(raw, 'n_head', 12);
  divisible('gpt2', 'n_embd', n_embd, 'n_head', n_head);
  const n_inner = raw.n_inner === undefined || raw.n_inner === null ? null : posInt(raw, 'n_inner');
  if (raw.reorder_and_upcast_attn === true) {
    // Only changes float16 numerics; we compute in float32 throughout, where it is the identity.
  }
  if (bool(raw, 'add_cross_attention', false)) throw new ConfigError('GPT-2 with add_cross_attention (an encoder-decoder) is not supported', 'use a decoder-only GPT-2 checkpoint');
  const tied = bool(raw, 'tie_word_embeddings', true);
  if (!tied) throw new ConfigError('GPT-2 with tie_word_embeddings=false is not supported', 'GPT-2 checkpoints tie lm_head to wte; set tie_word_embeddings to true');
  return {
    ...raw,
    model_type: 'gpt2',
    vocab_size: posInt(raw, 'vocab_size', 50257),
    // Old configs call the context `n_ctx`.
    n_positions: posInt(raw, 'n_positions', typeof raw.n_ctx === 'number' ? raw.n_ctx : 1024),
    n_embd,
    n_layer: posInt(raw, 'n_layer', 12),
    n_head,
    n_inner,
    activation_function: str(raw, 'activation_function', 'gelu_new'),
    resid_pdrop: num(raw, 'resid_pdrop', 0.1),
    embd_pdrop: num(raw, 'embd_pdrop', 0.1),
    attn_pdrop: num(raw, 'attn_pdrop', 0.1),
    layer_norm_epsilon: num(raw, 'layer_norm_epsilon', 1e-5),
    initializer_range: num(raw, 'initializer_range', 0.02),
    scale_attn_weights: bool(raw, 'scale_attn_weights', true),
    scale_attn_by_inverse_layer_idx: bool(raw, 'scale_attn_by_inverse_layer_idx', false),
    tie_word_embeddings: tied,
    bos_token_id: typeof raw.bos_token_id === 'number' ? raw.bos_token_id : 50256,
    eos_token_id: typeof raw.eos_token_id === 'number' ? raw.eos_token_id : 50256,
  };
}

/** The numbers generic code needs. */
export function gpt2Dims(c: GPT2Config): ModelDims {
  return { layers: c.n_layer, hidden: c.n_embd, heads: c.n_head, kvHeads: c.n_head, headDim: c.n_embd / c.n_head, vocab: c.vocab_size, maxPositions: c.n_positions };
}
