/**
 * The small model interface every workflow is written against (DESIGN "Contracts"): decoders return
 * logits and a cache value; encoders return their last hidden state and optional head logits.
 */
import type * as tf from '@tensorflow/tfjs-core';
import type { Rng } from '../backend/rng.js';
import type { KVCache, LayerKV } from '../nn/attention.js';
import type { Module } from '../nn/module.js';

/** Token ids as a tensor (int32 [B, T]) or nested arrays. */
export type Ids = tf.Tensor | number[][];

/** Options shared by every forward pass. */
export interface ForwardCommon {
  /** [B, T] (encoders) or [B, S+T] (decoders, covering the cache too): 1 = real token, 0 = padding. */
  attentionMask?: Ids;
  /** Dropout on (default off). */
  training?: boolean;
  /** Stream for dropout masks when training. */
  rng?: Rng;
}

/** Decoder forward options. */
export interface DecoderForwardOptions extends ForwardCommon {
  /** int32 [B, T]; default S..S+T-1 for every row (HF's default, whatever the mask). */
  positionIds?: Ids;
  /** Keys and values of the S earlier positions; not modified, not disposed. */
  cache?: KVCache;
  /** Also return every layer's residual-stream input and the final normed output. */
  returnHidden?: boolean;
  /**
   * Per layer, offsets [B, Hkv, T, Dh] added to the keys (after rotary) and values computed for the T new
   * tokens, before attention and before they enter the returned cache: HSO differentiates through them.
   */
  kvDelta?: LayerKV[];
  /**
   * HF's `logits_to_keep`: apply the LM head to the last n positions only, so logits are [B, min(n, T), V]
   * (generation's prefill asks for 1: the head over every prompt position is a quarter of GPT-2-small's
   * prefill). 0 or unset: every position.
   */
  logitsToKeep?: number;
}

/** Decoder forward result; the caller owns every tensor in it. */
export interface DecoderOutput {
  /** [B, T, V] */
  logits: tf.Tensor;
  /** S+T positions per layer. */
  cache: KVCache;
  /** L+1 tensors [B, T, D] when `returnHidden`. */
  hidden?: tf.Tensor[];
}

/** A causal language model (GPT-2, Llama). */
export interface CausalLM extends Module {
  readonly modelType: string;
  readonly config: Record<string, unknown>;
  /** Layers, heads, widths, vocabulary and context the generic code needs. */
  dims(): ModelDims;
  forward(inputIds: Ids, opts?: DecoderForwardOptions): DecoderOutput;
}

/** Encoder forward options. */
export interface EncoderForwardOptions extends ForwardCommon {
  /** int32 [B, T] segment ids (BERT); default zeros. */
  tokenTypeIds?: Ids;
  /** Override position ids [B, T]. */
  positionIds?: Ids;
  returnHidden?: boolean;
}

/** Encoder forward result; the caller owns every tensor in it. */
export interface EncoderOutput {
  /** [B, T, D] */
  lastHiddenState: tf.Tensor;
  /** [B, D] when the model has a pooler. */
  poolerOutput?: tf.Tensor;
  /** Head output: [B, T, V] for masked LM. */
  logits?: tf.Tensor;
  hidden?: tf.Tensor[];
}

/** A bidirectional encoder (BERT, RoBERTa), bare or with a head. */
export interface EncoderModel extends Module {
  readonly modelType: string;
  readonly config: Record<string, unknown>;
  dims(): ModelDims;
  forward(inputIds: Ids, opts?: EncoderForwardOptions): EncoderOutput;
}

/** The few numbers generic code needs (STYLE habit 1: no central normalising switch). */
export interface ModelDims {
  layers: number;
  hidden: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  vocab: number;
  /** Longest sequence the position scheme allows (Infinity for rotary without a limit). */
  maxPositions: number;
}
