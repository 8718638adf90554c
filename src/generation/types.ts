/**
 * The small pieces decoding is composed of (STYLE habit 4): logits processors and stopping criteria are
 * plain function types; strategies share one decoder state (state.ts) and return one output shape.
 */
import type * as tf from '@tensorflow/tfjs-core';

/**
 * Rewrites next-token scores. `ids` holds each row's real tokens so far (prompt without padding, then
 * the generated ones); `scores` is [N, V]. Returns a new tensor (the input is not disposed). Unlike HF,
 * pads never enter `ids`, so a row decodes the same alone or in a batch.
 */
export type LogitsProcessor = (ids: number[][], scores: tf.Tensor) => tf.Tensor;

/** Says, per row, whether that row is done (after the token just appended). */
export type StoppingCriterion = (ids: number[][], newTokens: number[][]) => boolean[];

/** What every strategy returns, one entry per returned sequence (batch-major, then rank). */
export interface GenerateOutput {
  /** Prompt tokens (without padding) followed by the generated ones. */
  sequences: number[][];
  /** Only the generated tokens (EOS included when it was generated). */
  newTokens: number[][];
  /** Why each sequence ended. */
  finishReason: ('eos' | 'length' | 'stop' | 'abort')[];
  /** Beam search: HF's `sequence_scores` (length-penalised sum of log-probs). */
  sequenceScores?: number[];
  /** With output_scores: log-probability of each generated token under the model (after processors). */
  tokenLogprobs?: number[][];
}

/** What greedy, sampling and beam search share (built by generate() from a GenerationConfig). */
export interface StrategyOptions {
  /** Tokens to generate at most per row. */
  maxNewTokens: number;
  /** Any of these ends a row (empty: never). */
  eosTokenIds: number[];
  /** Fills finished rows and padding. */
  padTokenId: number;
  /** Applied in order to each step's scores (HF order is built by buildProcessors). */
  processors: LogitsProcessor[];
  /** Extra stopping rules (stop strings, max time…); EOS and length are built in. */
  stopping: StoppingCriterion[];
  /** Record each generated token's log-probability (after processors). */
  outputScores?: boolean;
  /** Checked before every step: an aborted call stops within one step, frees everything, and returns what it has (finishReason 'abort'). */
  signal?: AbortSignal;
  /** Called after every step with each row's newly chosen token (−1 for rows already finished). */
  onStep?: (tokens: number[]) => void;
}
