/**
 * A causal LM whose next-token distribution is any JS function of the prefix: the ground truth for
 * brute-force checks of decoding (beam search, exact mode search, sampling frequencies). It implements
 * the real CausalLM interface, cache included: the "cache" is the prefix itself, one id per slot in a
 * [B, 1, S, 1] tensor (−1 for padding), so reordering and batching go through the same code as a
 * transformer's.
 */
import * as tf from '@tensorflow/tfjs-core';
import { tidy } from '../../src/backend/memory.js';
import { Module } from '../../src/nn/module.js';
import type { KVCache } from '../../src/nn/attention.js';
import type { CausalLM, DecoderForwardOptions, DecoderOutput, Ids, ModelDims } from '../../src/models/types.js';

/** Next-token log-probabilities (length V) for a prefix of real tokens. */
export type NextFn = (prefix: number[]) => number[];

/** A CausalLM defined by a table (function) of next-token log-probabilities. */
export class TableLM extends Module implements CausalLM {
  readonly modelType = 'table';
  readonly config: Record<string, unknown>;
  /** Number of forward calls (to check cache use). */
  calls = 0;
  /** Total positions computed (prefill counts each token). */
  positions = 0;
  constructor(readonly vocab: number, readonly next: NextFn, eos?: number) {
    super();
    this.config = { vocab_size: vocab, eos_token_id: eos };
  }
  dims(): ModelDims {
    return { layers: 1, hidden: 1, heads: 1, kvHeads: 1, headDim: 1, vocab: this.vocab, maxPositions: 1_000_000 };
  }
  forward(inputIds: Ids, opts: DecoderForwardOptions = {}): DecoderOutput {
    this.calls++;
    const ids = inputIds instanceof tf.Tensor ? (inputIds.arraySync() as number[][]) : inputIds;
    const B = ids.length;
    const T = ids[0].length;
    const past: number[][] = opts.cache ? tidy(() => opts.cache![0].key.reshape([B, -1]).arraySync() as number[][]) : ids.map(() => []);
    const S = past[0].length;
    const mask = opts.attentionMask ? (opts.attentionMask instanceof tf.Tensor ? (opts.attentionMask.arraySync() as number[][]) : opts.attentionMask) : undefined;
    const slots = ids.map((row, b) => row.map((v, t) => (mask && mask[b][S + t] === 0 ? -1 : v)));
    const logits: number[][][] = slots.map((row, b) => row.map((_, t) => {
      this.positions++;
      const prefix = [...past[b], ...row.slice(0, t + 1)].filter((v) => v >= 0);
      const lp = this.next(prefix);
      if (lp.length !== this.vocab) throw new Error(`table returned ${lp.length} scores for vocabulary ${this.vocab}`);
      return lp.map((x) => (x === -Infinity ? -1e30 : x));
    }));
    const all = past.map((p, b) => [...p, ...slots[b]]);
    return tidy(() => {
      const key = tf.tensor(all, [B, S + T]).reshape([B, 1, S + T, 1]);
      const cache: KVCache = [{ key, value: key.clone() }];
      return { logits: tf.tensor3d(logits), cache };
    });
  }
}

/** log of a probability vector (0 → −∞). */
export function logs(p: number[]): number[] {
  return p.map((x) => Math.log(x));
}
