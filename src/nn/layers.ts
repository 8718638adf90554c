/**
 * Basic layers with PyTorch's parameter names and layouts: Linear (`weight` [out, in], `bias` [out]),
 * GPT-2's Conv1D (`weight` [in, out]), Embedding, LayerNorm, RMSNorm, and the activations HF names in
 * config.json. Initialisation follows HF's `_init_weights` (normal(0, std), zero bias, unit norm weight).
 */
import * as tf from '@tensorflow/tfjs-core';
import { dropoutFused, fusedLinear, geluTanh, layerNorm } from '../backend/fused.js';
import { rmsNorm } from '../backend/fused_llama.js';
import { transposedMatMulIsFast } from '../backend/index.js';
import { Rng } from '../backend/rng.js';
import { UnsupportedError } from '../errors.js';
import { Module } from './module.js';

/** Normal(0, std) initial values from a seeded stream; zeros without one (weights about to be loaded). */
export function normalInit(rng: Rng | undefined, shape: number[], std: number): tf.Tensor {
  if (!rng) return tf.zeros(shape);
  return tf.tensor(rng.normalArray(shape.reduce((a, b) => a * b, 1), std), shape);
}

/** Initialisation of every Linear/Conv1D/Embedding of a model through one seeded stream. */
export interface InitOptions {
  /** Absent: zeros, skipping the random draws when a checkpoint will overwrite them. */
  rng?: Rng;
  /** Standard deviation of weight matrices (HF `initializer_range`). */
  std: number;
}

/**
 * x Wᵀ for x [N, in] and W [out, in]. With the native kernels every transpose is fast, so it is one
 * matmul; otherwise it is computed as (W xᵀ)ᵀ, because plain TF.js wasm takes its fast matmul path only
 * when neither operand is transposed, and moving the small activation is ~20× cheaper than the slow path.
 */
export function matMulWT(x: tf.Tensor, w: tf.Tensor): tf.Tensor {
  if (transposedMatMulIsFast()) return tf.matMul(x, w, false, true);
  return tf.tidy(() => tf.transpose(tf.matMul(w, tf.transpose(x))));
}

/** `y = x Wᵀ + b`, weight [out, in] as in `torch.nn.Linear`. */
export class Linear extends Module {
  readonly weight: tf.Variable;
  readonly bias?: tf.Variable;
  /** Optional additive term on the output, set from outside (LoRA): x [N, in] → [N, out]. */
  delta?: (x: tf.Tensor) => tf.Tensor;
  constructor(readonly inFeatures: number, readonly outFeatures: number, init: InitOptions, bias = true) {
    super();
    this.weight = this.param('weight', normalInit(init.rng, [outFeatures, inFeatures], init.std));
    if (bias) this.bias = this.param('bias', tf.zeros([outFeatures]));
  }
  /** x: [..., in] → [..., out] */
  forward(x: tf.Tensor): tf.Tensor {
    const fused = this.delta ? undefined : fusedLinear(x, this.weight, this.bias, true);
    if (fused) return fused;
    return tf.tidy(() => {
      const lead = x.shape.slice(0, -1);
      const x2 = x.reshape([-1, this.inFeatures]);
      let y: tf.Tensor;
      if (this.bias && transposedMatMulIsFast()) y = tf.fused.matMul({ a: x2, b: this.weight, transposeB: true, bias: this.bias });
      else {
        y = matMulWT(x2, this.weight);
        if (this.bias) y = tf.add(y, this.bias);
      }
      if (this.delta) y = tf.add(y, this.delta(x2));
      return y.reshape([...lead, this.outFeatures]);
    });
  }
}

/** GPT-2's Conv1D: `y = x W + b` with weight [in, out] (the transpose of Linear's layout). */
export class Conv1D extends Module {
  readonly weight: tf.Variable;
  readonly bias: tf.Variable;
  /** Optional additive term on the output, set from outside (LoRA): x [N, in] → [N, out]. */
  delta?: (x: tf.Tensor) => tf.Tensor;
  constructor(readonly inFeatures: number, readonly outFeatures: number, init: InitOptions) {
    super();
    this.weight = this.param('weight', normalInit(init.rng, [inFeatures, outFeatures], init.std));
    this.bias = this.param('bias', tf.zeros([outFeatures]));
  }
  /** x: [..., in] → [..., out] */
  forward(x: tf.Tensor): tf.Tensor {
    const fused = this.delta ? undefined : fusedLinear(x, this.weight, this.bias, false);
    if (fused) return fused;
    return tf.tidy(() => {
      const lead = x.shape.slice(0, -1);
      const x2 = x.reshape([-1, this.inFeatures]);
      // With the native kernels the bias is added inside the matmul (one kernel instead of two).
      let y = transposedMatMulIsFast() ? tf.fused.matMul({ a: x2, b: this.weight, bias: this.bias }) : tf.add(tf.matMul(x2, this.weight), this.bias);
      if (this.delta) y = tf.add(y, this.delta(x2));
      return y.reshape([...lead, this.outFeatures]);
    });
  }
}

/** A lookup table, weight [num, dim]. */
export class Embedding extends Module {
  readonly weight: tf.Variable;
  constructor(readonly num: number, readonly dim: number, init: InitOptions) {
    super();
    this.weight = this.param('weight', normalInit(init.rng, [num, dim], init.std));
  }
  /** ids: int32 [...] → [..., dim] */
  forward(ids: tf.Tensor): tf.Tensor {
    return tf.gather(this.weight, ids);
  }
}

/** LayerNorm over the last axis (`weight`, `bias`), biased variance as in PyTorch. */
export class LayerNorm extends Module {
  readonly weight: tf.Variable;
  readonly bias: tf.Variable;
  constructor(readonly dim: number, readonly eps: number) {
    super();
    this.weight = this.param('weight', tf.ones([dim]));
    this.bias = this.param('bias', tf.zeros([dim]));
  }
  forward(x: tf.Tensor): tf.Tensor {
    return layerNorm(x, this.weight, this.bias, this.eps);
  }
}

/** RMSNorm (Llama): `x / sqrt(mean(x²) + eps) * weight`, no bias, no centring. */
export class RMSNorm extends Module {
  readonly weight: tf.Variable;
  constructor(readonly dim: number, readonly eps: number) {
    super();
    this.weight = this.param('weight', tf.ones([dim]));
  }
  forward(x: tf.Tensor): tf.Tensor {
    return rmsNorm(x, this.weight, this.eps);
  }
}

/** SiLU (swish): x · sigmoid(x). One function for both names, so models can tell it by identity. */
export function silu(x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.mul(x, tf.sigmoid(x)));
}

/** The activations HF config.json names (`hidden_act`, `activation_function`). */
export const ACTIVATIONS: Record<string, (x: tf.Tensor) => tf.Tensor> = {
  // Exact GELU: x·Φ(x) with the error function.
  gelu: (x) => tf.tidy(() => tf.mul(tf.mul(x, 0.5), tf.add(1, tf.erf(tf.mul(x, Math.SQRT1_2))))),
  // The tanh approximation used by GPT-2 (`gelu_new`) and Gemma (`gelu_pytorch_tanh`).
  gelu_new: geluTanh,
  gelu_pytorch_tanh: geluTanh,
  gelu_fast: geluTanh,
  relu: (x) => tf.relu(x),
  silu,
  swish: silu,
  tanh: (x) => tf.tanh(x),
};


/** Look up an activation by its HF name, or fail naming the supported ones. */
export function activation(name: string, field: string): (x: tf.Tensor) => tf.Tensor {
  const f = ACTIVATIONS[name];
  if (!f) throw new UnsupportedError(`${field} '${name}' is not supported`, `use one of: ${Object.keys(ACTIVATIONS).join(', ')}`);
  return f;
}

/** Dropout that is the identity unless training; draws its mask from the seeded stream. */
export function dropout(x: tf.Tensor, rate: number, ctx: { training?: boolean; rng?: Rng }): tf.Tensor {
  if (!ctx.training || rate <= 0) return x;
  const seed = ctx.rng ? ctx.rng.nextUint32() : undefined;
  return dropoutFused(x, rate, seed);
}
