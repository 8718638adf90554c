/**
 * Fused operations for the hot paths of transformer inference and training: LayerNorm, GELU (tanh
 * form), dropout, softmax cross-entropy over rows, and AdamW's update. Each runs as one kernel (with a one-kernel
 * gradient) when the backend has it — the native addon registers them for wasm and cpu — and otherwise
 * as the composition of TF.js ops it replaces, written here once, so results without the addon are
 * exactly what they were before. One kernel instead of 8-15 saves dispatch time in decoding and, in
 * training, the [tokens, vocabulary] intermediates that overflowed the 4 GB wasm heap.
 */
import * as tf from '@tensorflow/tfjs-core';

/** Kernel names (registered by src/backend/native for wasm and cpu). */
export const FUSED = {
  layerNorm: 'MakemostLayerNorm',
  layerNormGrad: 'MakemostLayerNormGrad',
  gelu: 'MakemostGeluTanh',
  geluGrad: 'MakemostGeluTanhGrad',
  xent: 'MakemostSoftmaxXent',
  xentGrad: 'MakemostSoftmaxXentGrad',
  adamw: 'MakemostAdamW',
  dropout: 'MakemostDropout',
} as const;

function kernelHere(name: string): boolean {
  return tf.getKernel(name, tf.getBackend()) !== undefined;
}

const run = (name: string, inputs: tf.NamedTensorMap, attrs: tf.NamedAttrMap = {}) => tf.engine().runKernel(name, inputs, attrs);

/** LayerNorm over the last axis with PyTorch's biased variance: x [..., D], gamma and beta [D]. */
export function layerNorm(x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor, eps: number): tf.Tensor {
  if (x.dtype === 'float32' && x.rank >= 1 && kernelHere(FUSED.layerNorm)) {
    return (run(FUSED.layerNorm, { x, gamma, beta }, { eps }) as tf.Tensor[])[0];
  }
  return tf.tidy(() => {
    const mean = tf.mean(x, -1, true);
    const xc = tf.sub(x, mean);
    const variance = tf.mean(tf.square(xc), -1, true);
    return tf.add(tf.mul(tf.mul(xc, tf.rsqrt(tf.add(variance, eps))), gamma), beta);
  });
}

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);

/** GELU, tanh approximation (HF `gelu_new`, `gelu_pytorch_tanh`): 0.5 x (1 + tanh(√(2/π)(x + 0.044715 x³))). */
export function geluTanh(x: tf.Tensor): tf.Tensor {
  if (x.dtype === 'float32' && kernelHere(FUSED.gelu)) return run(FUSED.gelu, { x }) as tf.Tensor;
  return tf.tidy(() => {
    const inner = tf.mul(tf.add(x, tf.mul(tf.mul(tf.mul(x, x), x), 0.044715)), SQRT_2_OVER_PI);
    return tf.mul(tf.mul(x, 0.5), tf.add(1, tf.tanh(inner)));
  });
}

/** Whether {@link softmaxCrossEntropy} runs as one kernel on the active backend (native kernels on). */
export function fusedCrossEntropyAvailable(): boolean {
  return kernelHere(FUSED.xent);
}

/**
 * Per-row negative log-likelihood −log softmax(logits[n])[targets[n]], 0 where the target is negative
 * (ignored, as torch's ignore_index).
 * @param logits [N, V] @param targets int32 [N] @returns [N]
 */
export function softmaxCrossEntropy(logits: tf.Tensor, targets: tf.Tensor): tf.Tensor {
  if (logits.dtype === 'float32' && logits.rank === 2 && targets.dtype === 'int32' && targets.rank === 1 && kernelHere(FUSED.xent)) {
    return (run(FUSED.xent, { logits, targets }) as tf.Tensor[])[0];
  }
  return tf.tidy(() => {
    const V = logits.shape[1] as number;
    const scored = tf.cast(tf.greaterEqual(targets, 0), 'float32');
    const gold = tf.sum(tf.mul(logits, tf.oneHot(tf.maximum(targets, tf.scalar(0, 'int32')), V)), -1);
    return tf.mul(tf.sub(tf.logSumExp(logits, -1), gold), scored);
  });
}

/**
 * `tf.dropout(x, rate, undefined, seed)` exactly — the same uniform draws, x · floor(u + keep) / keep —
 * as one kernel that keeps only the draws for its gradient (tf.dropout's four ops keep three tensors
 * the size of x alive until the backward pass ends).
 */
export function dropoutFused(x: tf.Tensor, rate: number, seed?: number): tf.Tensor {
  if (rate === 0 || x.dtype !== 'float32' || !kernelHere(FUSED.dropout)) return tf.dropout(x, rate, undefined, seed);
  return tf.tidy(() => run(FUSED.dropout, { x, u: tf.randomUniform(x.shape, 0, 1, 'float32', seed) }, { keep: 1 - rate }) as tf.Tensor);
}

/** Constants of one AdamW update (torch's `_single_tensor_adamw`). */
export interface AdamWConstants {
  lr: number;
  weightDecay: number;
  beta1: number;
  beta2: number;
  eps: number;
  /** √(1 − β₂ᵗ) */
  bc2Sqrt: number;
  /** lr / (1 − β₁ᵗ) */
  stepSize: number;
}

/**
 * One AdamW step of a parameter: returns [p', m', v'] (new tensors; the inputs are untouched), with the
 * operation order of torch's kernels so that the fused and composed forms agree bit for bit.
 */
export function adamwUpdate(p: tf.Tensor, m: tf.Tensor, v: tf.Tensor, g: tf.Tensor, c: AdamWConstants): [tf.Tensor, tf.Tensor, tf.Tensor] {
  const same = [m, v, g].every((t) => t.dtype === 'float32' && tf.util.arraysEqual(t.shape, p.shape));
  if (p.dtype === 'float32' && same && kernelHere(FUSED.adamw)) {
    return run(FUSED.adamw, { p, m, v, g }, { ...c }) as [tf.Tensor, tf.Tensor, tf.Tensor];
  }
  const { lr, weightDecay: wd, beta1: b1, beta2: b2 } = c;
  return tf.tidy(() => {
    // torch's kernels in order: mul_, add_(alpha), addcmul_(value), addcdiv_(value).
    const decayed = wd !== 0 ? tf.mul(p, 1 - lr * wd) : p;
    const mNew = tf.add(tf.mul(m, b1), tf.mul(g, 1 - b1));
    const vNew = tf.add(tf.mul(v, b2), tf.mul(tf.mul(g, 1 - b2), g));
    const denom = tf.add(tf.div(tf.sqrt(vNew), c.bc2Sqrt), c.eps);
    return [tf.add(decayed, tf.div(tf.mul(mNew, -c.stepSize), denom)), mNew, vNew];
  });
}

// Gradients of the fused kernels, each one more fused kernel (present whenever the forward one is).
tf.registerGradient({
  kernelName: FUSED.layerNorm,
  inputsToSave: ['x', 'gamma'],
  outputsToSave: [false, true, true],
  gradFunc: (dy, saved) => {
    const [x, gamma, mean, rstd] = saved;
    const [dx, dgamma, dbeta] = run(FUSED.layerNormGrad, { x, gamma, mean, rstd, dy: (dy as tf.Tensor[])[0] }) as tf.Tensor[];
    return { x: () => dx, gamma: () => dgamma, beta: () => dbeta };
  },
});

tf.registerGradient({
  kernelName: FUSED.gelu,
  inputsToSave: ['x'],
  gradFunc: (dy, saved) => ({ x: () => run(FUSED.geluGrad, { x: saved[0], dy: dy as tf.Tensor }) as tf.Tensor }),
});

tf.registerGradient({
  kernelName: FUSED.dropout,
  inputsToSave: ['u'],
  gradFunc: (dy, saved, attrs) => ({
    x: () => run(FUSED.dropout, { x: dy as tf.Tensor, u: saved[0] }, attrs as unknown as tf.NamedAttrMap) as tf.Tensor,
    u: () => tf.zerosLike(saved[0]),
  }),
});

tf.registerGradient({
  kernelName: FUSED.xent,
  inputsToSave: ['logits', 'targets'],
  outputsToSave: [false, true],
  gradFunc: (dy, saved) => {
    const [logits, targets, lse] = saved;
    return {
      logits: () => run(FUSED.xentGrad, { logits, targets, lse, dnll: (dy as tf.Tensor[])[0] }) as tf.Tensor,
      targets: () => tf.zerosLike(targets),
    };
  },
});
