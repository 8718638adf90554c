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
  attention: 'MakemostAttention',
  attentionPacked: 'MakemostAttentionPacked',
  linear: 'MakemostLinear',
  linearNoBias: 'MakemostLinearNoBias',
  preLNBlock: 'MakemostPreLNBlock',
  llamaBlock: 'MakemostLlamaBlock',
  rmsNorm: 'MakemostRMSNorm',
  rotary: 'MakemostRotary',
  siluMul: 'MakemostSiluMul',
} as const;

/** Whether the active backend has kernel `name` (the native kernels registered it). */
export function kernelHere(name: string): boolean {
  return tf.getKernel(name, tf.getBackend()) !== undefined;
}

/** Run kernel `name` through the engine (recorded on a gradient tape like any op). */
export const run = (name: string, inputs: tf.NamedTensorMap, attrs: tf.NamedAttrMap = {}) => tf.engine().runKernel(name, inputs, attrs);

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

/**
 * `x W + b` over the last axis as one kernel with no reshapes around it (a decoding step makes ~50 such
 * products; the op form adds five reshapes to each). x [..., K]; w [K, N], or [N, K] with `transposeW`
 * (torch's Linear layout); bias [N] or none. Returns [..., N], or undefined when the kernel is absent or
 * the inputs are outside what it takes (the caller then uses `tf.fused.matMul`).
 */
export function fusedLinear(x: tf.Tensor, w: tf.Tensor, bias: tf.Tensor | undefined, transposeW: boolean): tf.Tensor | undefined {
  if (!kernelHere(FUSED.linear) || x.rank < 1 || w.rank !== 2 || x.dtype !== 'float32' || w.dtype !== 'float32') return undefined;
  const K = x.shape[x.rank - 1];
  const N = transposeW ? w.shape[0] : w.shape[1];
  if ((transposeW ? w.shape[1] : w.shape[0]) !== K || (bias && (bias.dtype !== 'float32' || bias.rank !== 1 || bias.shape[0] !== N))) return undefined;
  return (bias ? run(FUSED.linear, { x, w, bias }, { transposeW }) : run(FUSED.linearNoBias, { x, w }, { transposeW })) as tf.Tensor;
}

/** Whether {@link fusedAttention} runs as one kernel on the active backend (native kernels on). */
export function fusedAttentionAvailable(): boolean {
  return kernelHere(FUSED.attention);
}

/** Whether an additive attention bias is absent or float32 [1 or B, 1, T, L], as the attention kernels take it. */
export function biasFits(bias: tf.Tensor | undefined, B: number, T: number, L: number): boolean {
  return !bias || (bias.dtype === 'float32' && bias.rank === 4 && (bias.shape[0] === 1 || bias.shape[0] === B) && bias.shape[1] === 1 && bias.shape[2] === T && bias.shape[3] === L);
}

/**
 * One layer's attention with its cache as one kernel: the T new keys and values appended to the S
 * cached ones, then softmax(scale · q kᵀ + bias) v with grouped-query heads (query head h reads
 * key/value head h / (H / Hkv)), heads merged. Replaces ~20 TF.js ops per layer of a decoding step.
 * @param q [B, H, T, Dh] @param k,v [B, Hkv, T, Dh] @param pastK,pastV [B, Hkv, S, Dh] or undefined
 * @param bias [B|1, 1, T, S+T] additive, or undefined
 * @returns [out [B, T, H·Dh], key [B, Hkv, S+T, Dh], value], or undefined when the kernel is absent or the
 * inputs are outside what it takes (the caller then composes the same computation from TF.js ops)
 */
export function fusedAttention(q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, pastK: tf.Tensor | undefined, pastV: tf.Tensor | undefined, bias: tf.Tensor | undefined, scale: number): [tf.Tensor, tf.Tensor, tf.Tensor] | undefined {
  if (!kernelHere(FUSED.attention) || q.rank !== 4 || k.rank !== 4) return undefined;
  const [B, H, T, Dh] = q.shape;
  const Hkv = k.shape[1] as number;
  const S = pastK ? (pastK.shape[2] as number) : 0;
  const kvShape = [B, Hkv, T, Dh];
  const fits = (t: tf.Tensor | undefined, shape: number[]) => !t || (t.dtype === 'float32' && tf.util.arraysEqual(t.shape, shape));
  const ok = [q, k, v].every((t) => t.dtype === 'float32') && Hkv > 0 && H % Hkv === 0 && fits(k, kvShape) && fits(v, kvShape) &&
    !pastK === !pastV && fits(pastK, [B, Hkv, S, Dh]) && fits(pastV, [B, Hkv, S, Dh]) &&
    biasFits(bias, B, T, S + T);
  if (!ok) return undefined;
  // Without a bias, q stands in for it (hasBias false), so that the gradient can always save one.
  const inputs: tf.NamedTensorMap = { q, k, v, bias: bias ?? q };
  if (pastK && pastV) Object.assign(inputs, { pastK, pastV });
  return run(FUSED.attention, inputs, { scale, hasBias: bias !== undefined }) as [tf.Tensor, tf.Tensor, tf.Tensor];
}

/**
 * {@link fusedAttention} reading queries, keys and values from one fused projection (GPT-2's `c_attn`
 * output): qkv [B, T, (H + 2 Hkv)·Dh], per token all query heads, then the key heads, then the value
 * heads. Saves the split and the three head transposes. Same returns.
 */
export function fusedAttentionPacked(qkv: tf.Tensor, heads: number, kvHeads: number, pastK: tf.Tensor | undefined, pastV: tf.Tensor | undefined, bias: tf.Tensor | undefined, scale: number): [tf.Tensor, tf.Tensor, tf.Tensor] | undefined {
  if (!kernelHere(FUSED.attentionPacked) || qkv.rank !== 3 || qkv.dtype !== 'float32' || !(kvHeads > 0) || heads % kvHeads !== 0) return undefined;
  const [B, T, W] = qkv.shape;
  const Dh = W / (heads + 2 * kvHeads);
  const S = pastK ? (pastK.shape[2] as number) : 0;
  const fits = (t: tf.Tensor | undefined) => !t || (t.dtype === 'float32' && tf.util.arraysEqual(t.shape, [B, kvHeads, S, Dh]));
  const ok = Number.isInteger(Dh) && !pastK === !pastV && fits(pastK) && fits(pastV) &&
    biasFits(bias, B, T, S + T);
  if (!ok) return undefined;
  const inputs: tf.NamedTensorMap = { qkv, bias: bias ?? qkv };
  if (pastK && pastV) Object.assign(inputs, { pastK, pastV });
  return run(FUSED.attentionPacked, inputs, { scale, hasBias: bias !== undefined, heads, kvHeads }) as [tf.Tensor, tf.Tensor, tf.Tensor];
}

/** The weights of one pre-LayerNorm block in GPT-2's layout ([in, out] matrices, fused q/k/v), each [weight, bias]. */
export interface PreLNBlockWeights {
  ln1: [tf.Tensor, tf.Tensor];
  attn: [tf.Tensor, tf.Tensor];
  proj: [tf.Tensor, tf.Tensor];
  ln2: [tf.Tensor, tf.Tensor];
  fc: [tf.Tensor, tf.Tensor];
  fcProj: [tf.Tensor, tf.Tensor];
}

/** The block kernel's weight inputs, in the order the addon takes them. */
export const BLOCK_INPUTS = ['ln1W', 'ln1B', 'attnW', 'attnB', 'projW', 'projB', 'ln2W', 'ln2B', 'fcW', 'fcB', 'fcProjW', 'fcProjB'] as const;

/**
 * A whole pre-LayerNorm block (GPT-2's: h = x + proj(attention(ln_1 x)), y = h + fc_proj(gelu_tanh(fc(ln_2 h))))
 * as one kernel, for inference: the same native kernels as the separate ops, bit for bit, without ~10 TF.js
 * dispatches per layer. Has no gradient, so it declines (returns undefined) while a gradient tape records,
 * as it does when the kernel is absent or the inputs do not fit; the caller then runs the ops.
 * @param x [B, T, D] with T >= 1 @param pastK,pastV [B, H, S, D/H] or undefined @param bias [B|1, 1, T, S+T] or undefined
 * @returns [y [B, T, D], key, value [B, H, S+T, D/H]]
 */
export function fusedPreLNBlock(x: tf.Tensor, w: PreLNBlockWeights, heads: number, eps: number, scale: number, pastK: tf.Tensor | undefined, pastV: tf.Tensor | undefined, bias: tf.Tensor | undefined): [tf.Tensor, tf.Tensor, tf.Tensor] | undefined {
  if (!kernelHere(FUSED.preLNBlock) || tf.engine().isTapeOn() || x.rank !== 3 || x.dtype !== 'float32') return undefined;
  const [B, T, D] = x.shape;
  const inner = w.fc[0].shape[1] as number;
  const Dh = D / heads;
  const S = pastK ? (pastK.shape[2] as number) : 0;
  const shapes: [tf.Tensor, number[]][] = [
    [w.ln1[0], [D]], [w.ln1[1], [D]], [w.attn[0], [D, 3 * D]], [w.attn[1], [3 * D]], [w.proj[0], [D, D]], [w.proj[1], [D]],
    [w.ln2[0], [D]], [w.ln2[1], [D]], [w.fc[0], [D, inner]], [w.fc[1], [inner]], [w.fcProj[0], [inner, D]], [w.fcProj[1], [D]],
  ];
  const kv = (t: tf.Tensor | undefined) => !t || (t.dtype === 'float32' && tf.util.arraysEqual(t.shape, [B, heads, S, Dh]));
  const ok = T >= 1 && Number.isInteger(Dh) && shapes.every(([t, s]) => t.dtype === 'float32' && tf.util.arraysEqual(t.shape, s)) &&
    !pastK === !pastV && kv(pastK) && kv(pastV) &&
    biasFits(bias, B, T, S + T);
  if (!ok) return undefined;
  const inputs: tf.NamedTensorMap = { x };
  BLOCK_INPUTS.forEach((name, i) => (inputs[name] = shapes[i][0]));
  if (pastK && pastV) Object.assign(inputs, { pastK, pastV });
  if (bias) inputs.bias = bias;
  return run(FUSED.preLNBlock, inputs, { heads, eps, scale }) as [tf.Tensor, tf.Tensor, tf.Tensor];
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

function linearGrad(dy: tf.Tensor, x: tf.Tensor, w: tf.Tensor, transposeW: boolean): Record<string, () => tf.Tensor> {
  const K = x.shape[x.rank - 1];
  const dy2 = () => dy.reshape([-1, dy.shape[dy.rank - 1]]);
  return {
    x: () => tf.tidy(() => tf.matMul(dy2(), w, false, !transposeW).reshape(x.shape)),
    w: () => tf.tidy(() => (transposeW ? tf.matMul(dy2(), x.reshape([-1, K]), true, false) : tf.matMul(x.reshape([-1, K]), dy2(), true, false))),
    bias: () => tf.tidy(() => tf.sum(dy2(), 0)),
  };
}
for (const kernelName of [FUSED.linear, FUSED.linearNoBias]) {
  tf.registerGradient({
    kernelName,
    inputsToSave: ['x', 'w'],
    gradFunc: (dy, saved, attrs) => linearGrad(dy as tf.Tensor, saved[0], saved[1], (attrs as unknown as { transposeW: boolean }).transposeW),
  });
}

/** Gradients of attention (q [B, H, T, Dh] against the cache key/value [B, Hkv, L, Dh]) split into new and past positions. */
function attentionGrads(q: tf.Tensor, key: tf.Tensor, value: tf.Tensor, bias: tf.Tensor | undefined, scale: number, dOut: tf.Tensor, dKey: tf.Tensor, dValue: tf.Tensor) {
  const [B, H, T, Dh] = q.shape;
  const [, Hkv, L] = key.shape;
  const S = L - T;
  const G = H / Hkv;
  return tf.tidy(() => {
    const qg = q.reshape([B, Hkv, G * T, Dh]);
    let scores = tf.mul(tf.matMul(qg, key, false, true), scale);
    if (bias) scores = tf.add(scores.reshape([B, Hkv, G, T, L]), bias.reshape([bias.shape[0], 1, 1, T, L])).reshape([B, Hkv, G * T, L]);
    const p = tf.softmax(scores, -1);
    const dO = dOut.reshape([B, T, H, Dh]).transpose([0, 2, 1, 3]).reshape([B, Hkv, G * T, Dh]);
    const dV = tf.add(tf.matMul(p, dO, true, false), dValue);
    const dP = tf.matMul(dO, value, false, true);
    const dS = tf.mul(p, tf.sub(dP, tf.sum(tf.mul(dP, p), -1, true)));
    const dQ = tf.mul(tf.matMul(dS, key), scale).reshape([B, H, T, Dh]);
    const dK = tf.add(tf.mul(tf.matMul(dS, qg, true, false), scale), dKey);
    const part = (x: tf.Tensor, from: number, len: number) => tf.slice(x, [0, 0, from, 0], [B, Hkv, len, Dh]);
    return { dQ, dk: part(dK, S, T), dv: part(dV, S, T), dpk: part(dK, 0, S), dpv: part(dV, 0, S) };
  });
}

// The attention kernels' gradients are composed from TF.js ops: they recompute the probabilities from q
// and the saved cache, then dV = Pᵀ dO, dS = P ⊙ (dP − Σ dP ⊙ P), dQ = s dS K, dK = s dSᵀ Q, with the
// gradients arriving at the returned cache added to those of the keys and values.
tf.registerGradient({
  kernelName: FUSED.attention,
  inputsToSave: ['q', 'bias'],
  outputsToSave: [false, true, true],
  gradFunc: (dy, saved, attrs) => {
    const [q, bias, key, value] = saved;
    const [dOut, dKey, dValue] = dy as tf.Tensor[];
    const { scale, hasBias } = attrs as unknown as { scale: number; hasBias: boolean };
    const g = attentionGrads(q, key, value, hasBias ? bias : undefined, scale, dOut, dKey, dValue);
    return { q: () => g.dQ, k: () => g.dk, v: () => g.dv, pastK: () => g.dpk, pastV: () => g.dpv, bias: () => tf.zerosLike(bias) };
  },
});

tf.registerGradient({
  kernelName: FUSED.attentionPacked,
  inputsToSave: ['qkv', 'bias'],
  outputsToSave: [false, true, true],
  gradFunc: (dy, saved, attrs) => {
    const [qkv, bias, key, value] = saved;
    const [dOut, dKey, dValue] = dy as tf.Tensor[];
    const { scale, hasBias, heads, kvHeads } = attrs as unknown as { scale: number; hasBias: boolean; heads: number; kvHeads: number };
    const [B, T, W] = qkv.shape;
    const Dh = W / (heads + 2 * kvHeads);
    const q = tf.tidy(() => tf.slice(qkv, [0, 0, 0], [B, T, heads * Dh]).reshape([B, T, heads, Dh]).transpose([0, 2, 1, 3]));
    const g = attentionGrads(q, key, value, hasBias ? bias : undefined, scale, dOut, dKey, dValue);
    q.dispose();
    const merge = (x: tf.Tensor) => x.transpose([0, 2, 1, 3]).reshape([B, T, -1]);
    return {
      qkv: () => tf.tidy(() => tf.concat([merge(g.dQ), merge(g.dk), merge(g.dv)], -1)),
      pastK: () => g.dpk, pastV: () => g.dpv, bias: () => tf.zerosLike(bias),
    };
  },
});

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
