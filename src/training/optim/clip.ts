/**
 * Gradient clipping by global norm with `torch.nn.utils.clip_grad_norm_` semantics: the norm of all
 * gradients taken together (the p-norm of the per-tensor p-norms), coefficient max_norm / (norm + 1e-6)
 * clamped at 1, every gradient multiplied by it. The norm is returned even when nothing is clipped, and a
 * non-finite norm is returned as it is (the trainer refuses to apply such an update).
 */
import * as tf from '@tensorflow/tfjs-core';
import { ConfigError } from '../../errors.js';

/** Result of {@link clipGradNorm}. */
export interface ClipResult {
  /** Norm of all gradients before clipping (float32, as torch returns it). */
  totalNorm: number;
  /** The clipped gradients; the caller owns them. */
  grads: Map<string, tf.Tensor>;
}

/** The global p-norm of a set of gradients (torch: norm of the stacked per-tensor norms). */
export function globalGradNorm(grads: ReadonlyMap<string, tf.Tensor>, normType = 2): number {
  if (!(normType > 0)) throw new ConfigError(`gradient norm type must be > 0 or Infinity, got ${normType}`);
  if (grads.size === 0) return 0;
  const per = tf.tidy(() => {
    const norms = [...grads.values()].map((g) => {
      const a = tf.abs(g);
      if (normType === Infinity) return tf.max(a);
      if (normType === 2) return tf.sqrt(tf.sum(tf.square(a)));
      return tf.pow(tf.sum(tf.pow(a, normType)), 1 / normType);
    });
    return tf.stack(norms);
  });
  const values = per.dataSync() as Float32Array;
  per.dispose();
  let total: number;
  if (normType === Infinity) total = Math.max(...values);
  else if (normType === 2) total = Math.sqrt(values.reduce((s, x) => s + x * x, 0));
  else total = values.reduce((s, x) => s + x ** normType, 0) ** (1 / normType);
  return Math.fround(total);
}

/**
 * Clip `grads` to a global norm of at most `maxNorm`. Takes ownership of `grads`: the returned map holds
 * either the same tensors (no clipping needed) or scaled copies, the originals then being disposed.
 */
export function clipGradNorm(grads: Map<string, tf.Tensor>, maxNorm: number, normType = 2): ClipResult {
  if (!(maxNorm >= 0)) throw new ConfigError(`max_grad_norm must be >= 0, got ${maxNorm}`);
  const totalNorm = globalGradNorm(grads, normType);
  // float32 arithmetic, as torch computes the coefficient on tensors.
  const coef = Math.min(Math.fround(maxNorm / Math.fround(totalNorm + 1e-6)), 1);
  // Multiplying by exactly 1 changes no bit, so it is skipped; a NaN coefficient propagates as in torch.
  if (coef === 1) return { totalNorm, grads };
  const out = new Map<string, tf.Tensor>();
  for (const [n, g] of grads) {
    out.set(n, tf.mul(g, coef));
    g.dispose();
  }
  return { totalNorm, grads: out };
}
