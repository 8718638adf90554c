/**
 * The two small autodiff pieces HSO needs: per-token log-probabilities of targets under logits, and the
 * gradient of a loss together with auxiliary outputs of the same forward pass (the window's log-probs and
 * its new keys/values), so scoring, differentiating and extending the cache cost one forward and one
 * backward pass instead of two forwards and a backward.
 */
import * as tf from '@tensorflow/tfjs-core';
import { tidy } from '../../backend/memory.js';
import { ShapeError } from '../../errors.js';

/** log p(targets[b][t]) under logits [B, T, V] → [B, T] (differentiable). */
export function pickLogProbs(logits: tf.Tensor, targets: number[][]): tf.Tensor {
  return tf.tidy(() => {
    const [B, T, V] = logits.shape as number[];
    if (targets.length !== B || targets.some((r) => r.length !== T)) throw new ShapeError(`targets must be [${B}][${T}] to match logits [${B}, ${T}, ${V}]`);
    const lp = tf.logSoftmax(logits.reshape([B * T, V])).reshape([B * T * V]);
    const flat = targets.flatMap((row, b) => row.map((id, t) => (b * T + t) * V + id));
    return tf.gather(lp, tf.tensor1d(flat, 'int32')).reshape([B, T]);
  });
}

/** A loss value, its gradients and the auxiliary outputs of the same pass (the caller owns the tensors). */
export interface GradsWithAux {
  loss: number;
  /** One per input, same shapes. */
  grads: tf.Tensor[];
  /** Shaped as `auxShapes`. */
  aux: tf.Tensor[];
}

/**
 * Gradients of the scalar `loss` that `f` returns with respect to `xs`, plus `f`'s auxiliary outputs
 * (not differentiated). Works by differentiating concat([loss, …aux]) against a cotangent that is 1 on the
 * loss and 0 on the rest: the zero cotangents only ever add exact zeros, so the gradients are bit-identical
 * to those of the loss alone. `auxShapes` must be known up front because the cotangent is.
 */
export async function lossGradsWithAux(f: (xs: tf.Tensor[]) => { loss: tf.Tensor; aux: tf.Tensor[] }, xs: tf.Tensor[], auxShapes: number[][]): Promise<GradsWithAux> {
  const sizes = auxShapes.map((s) => s.reduce((a, b) => a * b, 1));
  const dyData = new Float32Array(1 + sizes.reduce((a, b) => a + b, 0));
  dyData[0] = 1;
  const dy = tf.tensor1d(dyData);
  let result: { value: tf.Tensor; grads: tf.Tensor[] };
  try {
    result = tf.valueAndGrads((...args: tf.Tensor[]) => {
      const { loss, aux } = f(args);
      aux.forEach((a, i) => {
        if (a.size !== sizes[i]) throw new ShapeError(`lossGradsWithAux: auxiliary output ${i} has shape [${a.shape.join(', ')}], declared [${auxShapes[i].join(', ')}]`);
      });
      return tf.concat([loss.reshape([1]), ...aux.map((a) => a.reshape([-1]))]);
    })(xs, dy);
  } finally {
    dy.dispose();
  }
  const [lossT, ...aux] = tidy(() => tf.split(result.value, [1, ...sizes]).map((t, i) => (i === 0 ? t : t.reshape(auxShapes[i - 1]))));
  result.value.dispose();
  const loss = (await lossT.data())[0];
  lossT.dispose();
  return { loss, grads: result.grads, aux };
}
