/**
 * LlamaConfig: config.json's keys verbatim with HF's defaults (transformers `configuration_llama.py`),
 * and the rope settings of `modeling_rope_utils.py` — legacy `rope_theta` + `rope_scaling` (with `type`
 * or `rope_type`), or transformers v5's `rope_parameters` which holds both.
 */
import { ConfigError, UnsupportedError } from '../../errors.js';
import { bool, divisible, num, posInt, str, type RawConfig } from '../common.js';
import type { ModelDims } from '../types.js';
import { SUPPORTED_ROPE_TYPES, type RopeScaling } from './rope.js';

/** The fields of a Llama config.json that change the computation. */
export interface LlamaConfig {
  model_type: 'llama';
  vocab_size: number;
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads: number;
  /** hidden_size / num_attention_heads unless given (Llama 3.2 style configs give it). */
  head_dim: number;
  hidden_act: string;
  /** The trained context; not enforced (HF lets rotary run past it). */
  max_position_embeddings: number;
  initializer_range: number;
  rms_norm_eps: number;
  tie_word_embeddings: boolean;
  rope_theta: number;
  /** null = plain RoPE. */
  rope_scaling: RopeScaling | null;
  attention_bias: boolean;
  attention_dropout: number;
  mlp_bias: boolean;
  /** Tensor-parallel slicing used in pretraining; the same matrix products, so it has no effect here. */
  pretraining_tp: number;
  bos_token_id: number | null;
  /** Llama 3 instruct configs list several. */
  eos_token_id: number | number[] | null;
  pad_token_id: number | null;
  [key: string]: unknown;
}

const WHERE = "config.json (llama) field 'rope_scaling'";

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function scalingNum(s: Record<string, unknown>, key: string, type: string, where: string): number {
  const v = s[key];
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) {
    throw new ConfigError(`${where}: rope_type '${type}' needs a positive number '${key}', found ${JSON.stringify(v)}`, `add "${key}": <number> to that object`);
  }
  return v;
}

/** Parse `rope_scaling` (or v5 `rope_parameters`) the way HF's `ROPE_INIT_FUNCTIONS` reads it. */
export function parseRopeScaling(raw: unknown, where = WHERE): RopeScaling | null {
  if (raw === undefined || raw === null) return null;
  if (!isObject(raw)) throw new ConfigError(`${where} must be an object or null, found ${JSON.stringify(raw)}`);
  const a = raw.rope_type;
  const b = raw.type;
  // HF renamed `type` to `rope_type`; a file carrying both with different values is ambiguous.
  if (a !== undefined && b !== undefined && a !== b) throw new ConfigError(`${where} has both rope_type=${JSON.stringify(a)} and type=${JSON.stringify(b)}`, 'keep only rope_type');
  const type = String(a ?? b ?? 'default');
  switch (type) {
    case 'default':
      return { rope_type: 'default' };
    case 'linear':
      return { rope_type: 'linear', factor: scalingNum(raw, 'factor', type, where) };
    case 'llama3': {
      const s = {
        rope_type: 'llama3' as const,
        factor: scalingNum(raw, 'factor', type, where),
        low_freq_factor: scalingNum(raw, 'low_freq_factor', type, where),
        high_freq_factor: scalingNum(raw, 'high_freq_factor', type, where),
        original_max_position_embeddings: scalingNum(raw, 'original_max_position_embeddings', type, where),
      };
      if (s.high_freq_factor <= s.low_freq_factor) {
        throw new ConfigError(`${where}: high_freq_factor (${s.high_freq_factor}) must be greater than low_freq_factor (${s.low_freq_factor})`, 'Llama 3.1 uses low_freq_factor 1 and high_freq_factor 4');
      }
      return s;
    }
    default:
      throw new UnsupportedError(`${where}: rope_type ${JSON.stringify(type)} is not supported`, `supported: ${SUPPORTED_ROPE_TYPES.join(', ')} (or rope_scaling null)`);
  }
}

function optionalId(raw: RawConfig, key: string, dflt: number | null): number | null {
  const v = raw[key];
  if (v === undefined) return dflt;
  if (v === null) return null;
  if (typeof v !== 'number' || !Number.isInteger(v)) throw new ConfigError(`config.json (llama) field '${key}' must be an integer or null, found ${JSON.stringify(v)}`);
  return v;
}

/** Fill HF's defaults and check invariants; unknown extra keys are kept for saving. */
export function parseLlamaConfig(raw: RawConfig): LlamaConfig {
  if (raw.model_type !== 'llama') throw new ConfigError(`expected model_type 'llama', found ${JSON.stringify(raw.model_type)}`, 'load this folder with the architecture its config.json names');
  const hidden_size = posInt(raw, 'hidden_size', 4096);
  const num_attention_heads = posInt(raw, 'num_attention_heads', 32);
  const num_key_value_heads = posInt(raw, 'num_key_value_heads', num_attention_heads);
  divisible('llama', 'num_attention_heads', num_attention_heads, 'num_key_value_heads', num_key_value_heads);
  let head_dim: number;
  if (raw.head_dim === undefined || raw.head_dim === null) {
    divisible('llama', 'hidden_size', hidden_size, 'num_attention_heads', num_attention_heads);
    head_dim = hidden_size / num_attention_heads;
  } else {
    head_dim = posInt(raw, 'head_dim');
  }
  if (head_dim % 2 !== 0) throw new ConfigError(`config.json (llama): head_dim (${head_dim}) must be even for rotary embeddings`);
  const partial = num(raw, 'partial_rotary_factor', 1);
  if (partial !== 1) throw new UnsupportedError(`config.json (llama) field 'partial_rotary_factor' = ${partial} is not supported`, 'Llama rotates the whole head; remove the field or set it to 1.0');

  // transformers v5 folds rope_theta and the scaling into `rope_parameters`; it wins when present.
  let rope_theta: number;
  let rope_scaling: RopeScaling | null;
  if (isObject(raw.rope_parameters)) {
    const p = raw.rope_parameters;
    rope_theta = num(p, 'rope_theta', num(raw, 'rope_theta', 10000), 'llama rope_parameters');
    rope_scaling = parseRopeScaling(p, "config.json (llama) field 'rope_parameters'");
  } else {
    rope_theta = num(raw, 'rope_theta', 10000);
    rope_scaling = parseRopeScaling(raw.rope_scaling);
  }
  if (!(rope_theta > 0)) throw new ConfigError(`config.json (llama) field 'rope_theta' must be positive, found ${rope_theta}`);

  const attention_dropout = num(raw, 'attention_dropout', 0);
  if (attention_dropout < 0 || attention_dropout >= 1) throw new ConfigError(`config.json (llama) field 'attention_dropout' must lie in [0, 1), found ${attention_dropout}`);
  const eos = raw.eos_token_id;
  const eos_token_id = Array.isArray(eos) && eos.every((e) => Number.isInteger(e)) ? (eos as number[]) : optionalId(raw, 'eos_token_id', 2);
  return {
    ...raw,
    model_type: 'llama',
    vocab_size: posInt(raw, 'vocab_size', 32000),
    hidden_size,
    intermediate_size: posInt(raw, 'intermediate_size', 11008),
    num_hidden_layers: posInt(raw, 'num_hidden_layers', 32),
    num_attention_heads,
    num_key_value_heads,
    head_dim,
    hidden_act: str(raw, 'hidden_act', 'silu'),
    max_position_embeddings: posInt(raw, 'max_position_embeddings', 2048),
    initializer_range: num(raw, 'initializer_range', 0.02),
    rms_norm_eps: num(raw, 'rms_norm_eps', 1e-6),
    tie_word_embeddings: bool(raw, 'tie_word_embeddings', false),
    rope_theta,
    rope_scaling,
    attention_bias: bool(raw, 'attention_bias', false),
    attention_dropout,
    mlp_bias: bool(raw, 'mlp_bias', false),
    // HF's TP path splits the weight rows and concatenates the products: the same numbers, so any value is accepted.
    pretraining_tp: posInt(raw, 'pretraining_tp', 1),
    bos_token_id: optionalId(raw, 'bos_token_id', 1),
    eos_token_id,
    pad_token_id: optionalId(raw, 'pad_token_id', null),
  };
}

/** The numbers generic code needs; rotary imposes no length limit, so maxPositions is Infinity. */
export function llamaDims(c: LlamaConfig): ModelDims {
  return { layers: c.num_hidden_layers, hidden: c.hidden_size, heads: c.num_attention_heads, kvHeads: c.num_key_value_heads, headDim: c.head_dim, vocab: c.vocab_size, maxPositions: Infinity };
}
