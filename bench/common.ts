/**
 * Pieces the bench scripts share: the causal-LM loss HF's `GPT2LMHeadModel` computes (mean cross
 * entropy of each position against the next token, `logits[:, :-1]` vs `labels[:, 1:]`), through the
 * fused softmax cross-entropy (the last position of each row gets target -1, i.e. ignored), and greedy's
 * next token.
 */
import * as tf from '@tensorflow/tfjs-core';
import { softmaxCrossEntropy } from '../src/backend/fused.js';
import type { Rng } from '../src/backend/rng.js';
import type { CausalLM } from '../src/models/types.js';

/** Mean next-token cross entropy of `ids` [B][T] under `model` (dropout on when `rng` is given). */
export function causalLmLoss(model: CausalLM, ids: number[][], rng?: Rng): tf.Scalar {
  return tf.tidy(() => {
    const B = ids.length;
    const T = ids[0].length;
    const { logits } = model.forward(ids, rng ? { training: true, rng } : {});
    const V = logits.shape[2] as number;
    const targets = tf.tensor1d(ids.flatMap((row) => [...row.slice(1), -1]), 'int32');
    const nll = softmaxCrossEntropy(logits.reshape([B * T, V]), targets);
    return tf.div(tf.sum(nll), B * (T - 1)) as tf.Scalar;
  });
}

/** The greedy next token: argmax of the last position's logits of the first row (read back to JS). */
export async function argmaxLast(logits: tf.Tensor): Promise<number> {
  const T = logits.shape[1] as number;
  const id = tf.tidy(() => tf.argMax(logits.slice([0, T - 1, 0], [1, 1, -1]).reshape([-1])));
  const v = (await id.data())[0];
  id.dispose();
  return v;
}
