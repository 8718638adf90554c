/**
 * BertConfig: config.json's keys verbatim with HF's defaults (transformers `configuration_bert.py`,
 * `configuration_roberta.py`). RoBERTa is the same architecture with other defaults and position ids
 * that skip padding, so one config type serves both, told apart by `model_type`.
 */
import { ConfigError, UnsupportedError } from '../../errors.js';
import { activation } from '../../nn/layers.js';
import { bool, divisible, num, posInt, str, type RawConfig } from '../common.js';
import type { ModelDims } from '../types.js';

/** The encoder families this folder implements. */
export type BertModelType = 'bert' | 'roberta';

/** The fields of a BERT / RoBERTa config.json that change the computation. */
export interface BertConfig {
  model_type: BertModelType;
  vocab_size: number;
  hidden_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  intermediate_size: number;
  hidden_act: string;
  hidden_dropout_prob: number;
  attention_probs_dropout_prob: number;
  max_position_embeddings: number;
  type_vocab_size: number;
  initializer_range: number;
  layer_norm_eps: number;
  /** Row of word_embeddings kept at zero; for RoBERTa also the padding_idx of the position ids. */
  pad_token_id: number | null;
  bos_token_id: number | null;
  eos_token_id: number | null;
  position_embedding_type: 'absolute';
  /** Dropout before a classification head; null means hidden_dropout_prob. */
  classifier_dropout: number | null;
  [key: string]: unknown;
}

// HF RobertaConfig overrides only these of BertConfig's defaults.
const DEFAULTS: Record<BertModelType, { vocab: number; pad: number | null; bos: number | null; eos: number | null }> = {
  bert: { vocab: 30522, pad: 0, bos: null, eos: null },
  roberta: { vocab: 50265, pad: 1, bos: 0, eos: 2 },
};

function optId(raw: RawConfig, key: string, dflt: number | null): number | null {
  const v = raw[key];
  if (v === undefined) return dflt;
  if (v === null) return null;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw new ConfigError(`config.json (${String(raw.model_type)}) field '${key}' must be a non-negative integer or null, found ${JSON.stringify(v)}`);
  return v;
}

function prob(raw: RawConfig, key: string, dflt: number): number {
  const p = num(raw, key, dflt);
  if (p < 0 || p >= 1) throw new ConfigError(`config.json (${String(raw.model_type)}) field '${key}' must lie in [0, 1), found ${p}`);
  return p;
}

/** Fill HF's defaults for `model_type` 'bert' or 'roberta' and check invariants; extra keys are kept. */
export function parseBertConfig(raw: RawConfig): BertConfig {
  const mt = raw.model_type;
  if (mt !== 'bert' && mt !== 'roberta') throw new ConfigError(`expected model_type 'bert' or 'roberta', found ${JSON.stringify(mt)}`, 'pass the config.json of a BERT or RoBERTa checkpoint');
  const d = DEFAULTS[mt];
  const pet = str(raw, 'position_embedding_type', 'absolute');
  if (pet !== 'absolute') throw new UnsupportedError(`${mt} position_embedding_type '${pet}' is not supported`, "only 'absolute' position embeddings are implemented; use a checkpoint trained with them");
  if (bool(raw, 'is_decoder', false)) throw new UnsupportedError(`${mt} with is_decoder=true (a causal ${mt === 'bert' ? 'BertLMHeadModel' : 'RobertaForCausalLM'}) is not supported`, 'use the checkpoint as a bidirectional encoder (is_decoder=false), or a decoder-only model such as GPT-2');
  if (bool(raw, 'add_cross_attention', false)) throw new UnsupportedError(`${mt} with add_cross_attention=true (an encoder-decoder) is not supported`, 'use an encoder-only checkpoint');
  if (!bool(raw, 'tie_word_embeddings', true)) throw new UnsupportedError(`${mt} with tie_word_embeddings=false is not supported`, 'the masked-LM decoder is the word embedding matrix; set tie_word_embeddings to true');
  const hidden_size = posInt(raw, 'hidden_size', 768);
  const num_attention_heads = posInt(raw, 'num_attention_heads', 12);
  divisible(mt, 'hidden_size', hidden_size, 'num_attention_heads', num_attention_heads);
  const vocab_size = posInt(raw, 'vocab_size', d.vocab);
  const max_position_embeddings = posInt(raw, 'max_position_embeddings', 512);
  const pad_token_id = optId(raw, 'pad_token_id', d.pad);
  if (pad_token_id !== null && pad_token_id >= vocab_size) throw new ConfigError(`config.json (${mt}): pad_token_id (${pad_token_id}) must be below vocab_size (${vocab_size})`);
  if (mt === 'roberta') {
    if (pad_token_id === null) throw new ConfigError('config.json (roberta) needs pad_token_id: RoBERTa numbers positions from padding_idx + 1', 'add "pad_token_id": 1 (the <pad> id of RoBERTa tokenizers)');
    if (max_position_embeddings <= pad_token_id + 1) throw new ConfigError(`config.json (roberta): max_position_embeddings (${max_position_embeddings}) leaves no positions after padding_idx ${pad_token_id}`, 'RoBERTa checkpoints use max_position_embeddings = 514 with pad_token_id = 1');
  }
  const hidden_act = str(raw, 'hidden_act', 'gelu');
  activation(hidden_act, 'hidden_act');
  const layer_norm_eps = num(raw, 'layer_norm_eps', 1e-12);
  if (layer_norm_eps <= 0) throw new ConfigError(`config.json (${mt}) field 'layer_norm_eps' must be positive, found ${layer_norm_eps}`);
  const cd = raw.classifier_dropout;
  return {
    ...raw,
    model_type: mt,
    vocab_size,
    hidden_size,
    num_hidden_layers: posInt(raw, 'num_hidden_layers', 12),
    num_attention_heads,
    intermediate_size: posInt(raw, 'intermediate_size', 3072),
    hidden_act,
    hidden_dropout_prob: prob(raw, 'hidden_dropout_prob', 0.1),
    attention_probs_dropout_prob: prob(raw, 'attention_probs_dropout_prob', 0.1),
    max_position_embeddings,
    type_vocab_size: posInt(raw, 'type_vocab_size', 2),
    initializer_range: num(raw, 'initializer_range', 0.02),
    layer_norm_eps,
    pad_token_id,
    bos_token_id: optId(raw, 'bos_token_id', d.bos),
    eos_token_id: optId(raw, 'eos_token_id', d.eos),
    position_embedding_type: 'absolute',
    classifier_dropout: cd === undefined || cd === null ? null : prob(raw, 'classifier_dropout', 0),
  };
}

/**
 * Longest input the position table allows: BERT numbers positions 0..T-1; RoBERTa numbers real tokens
 * from padding_idx + 1, so two rows of its table (514 in released checkpoints) are never reached.
 */
export function maxSequenceLength(c: BertConfig): number {
  return c.model_type === 'roberta' ? c.max_position_embeddings - (c.pad_token_id ?? 0) - 1 : c.max_position_embeddings;
}

/** The numbers generic code needs. */
export function bertDims(c: BertConfig): ModelDims {
  const headDim = c.hidden_size / c.num_attention_heads;
  return { layers: c.num_hidden_layers, hidden: c.hidden_size, heads: c.num_attention_heads, kvHeads: c.num_attention_heads, headDim, vocab: c.vocab_size, maxPositions: maxSequenceLength(c) };
}
