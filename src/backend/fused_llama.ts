/**
 * Fused operations of the Llama family: RMSNorm, rotary position embedding (HF's rotate_half pairing) and
 * SwiGLU's silu(gate) · up, each one kernel when the native kernels are on (gradients composed from TF.js ops)
 * and otherwise the TF.js composition it replaces, written here once; and a whole decoder layer as one kernel
 * for inference, built from the same native kernels as the separate ops, so the two agree bit for bit.
 */
import * as tf from '@tensorflow/tfjs-core';
import { biasFits, FUSED, kernelHere, run } from './fused.js';

/** x · rsqrt(mean(x², -1) + eps) · w (HF LlamaRMSNorm in float32): x [..., D], w [D]. */
export function rmsNorm(x: tf.Tensor, w: tf.Tensor, eps: number): tf.Tensor {
  const D = x.shape[x.rank - 1];
  if (x.dtype === 'float32' && w.dtype === 'float32' && w.rank === 1 && w.shape[0] === D && kernelHere(FUSED.rmsNorm)) return run(FUSED.rmsNorm, { x, w }, { eps }) as tf.Tensor;
  return tf.tidy(() => {
    const ms = tf.mean(tf.square(x), -1, true);
    return tf.mul(tf.mul(x, tf.rsqrt(tf.add(ms, eps))), w);
  });
}

/** `cat(-x2, x1)` on the last axis: the 90° turn of every (x_i, x_{i+Dh/2}) pair. */
function rotateHalf(x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const [x1, x2] = tf.split(x, 2, -1);
    return tf.concat([tf.neg(x2), x1], -1);
  });
}

/** The transpose of rotateHalf: `cat(z2, -z1)` (rotary's gradient). */
function rotateHalfT(z: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const [z1, z2] = tf.split(z, 2, -1);
    return tf.concat([z2, tf.neg(z1)], -1);
  });
}

/** x·cos + rotate_half(x)·sin. @param x [B, H, T, Dh] @param cos,sin [B|1, 1, T, Dh] @returns [B, H, T, Dh] */
export function rotary(x: tf.Tensor, cos: tf.Tensor, sin: tf.Tensor): tf.Tensor {
  const [B, , T, Dh] = x.shape;
  const table = (t: tf.Tensor) => t.dtype === 'float32' && t.rank === 4 && (t.shape[0] === 1 || t.shape[0] === B) && t.shape[1] === 1 && t.shape[2] === T && t.shape[3] === Dh;
  if (x.dtype === 'float32' && x.rank === 4 && Dh % 2 === 0 && table(cos) && table(sin) && cos.shape[0] === sin.shape[0] && kernelHere(FUSED.rotary)) {
    return run(FUSED.rotary, { x, cos, sin }) as tf.Tensor;
  }
  return tf.tidy(() => tf.add(tf.mul(x, cos), tf.mul(rotateHalf(x), sin)));
}

/** SwiGLU's product silu(g) · u = g · sigmoid(g) · u, g and u of one shape. */
export function siluMul(g: tf.Tensor, u: tf.Tensor): tf.Tensor {
  if (g.dtype === 'float32' && u.dtype === 'float32' && tf.util.arraysEqual(g.shape, u.shape) && kernelHere(FUSED.siluMul)) return run(FUSED.siluMul, { g, u }) as tf.Tensor;
  return tf.tidy(() => tf.mul(tf.mul(g, tf.sigmoid(g)), u));
}

// Gradients, composed from TF.js ops. RMSNorm (r = rsqrt(mean(x²) + eps), g = dy·w): dx = r·g − x·r³·mean(g·x),
// dw = Σ dy·x·r over every axis but the last.
tf.registerGradient({
  kernelName: FUSED.rmsNorm,
  inputsToSave: ['x', 'w'],
  gradFunc: (dy, saved, attrs) => {
    const [x, w] = saved;
    const { eps } = attrs as unknown as { eps: number };
    const d = dy as tf.Tensor;
    const r = () => tf.rsqrt(tf.add(tf.mean(tf.square(x), -1, true), eps));
    return {
      x: () => tf.tidy(() => {
        const rr = r();
        const g = tf.mul(d, w);
        return tf.sub(tf.mul(g, rr), tf.mul(tf.mul(x, tf.pow(rr, 3)), tf.mean(tf.mul(g, x), -1, true)));
      }),
      // (TF.js wasm's Sum over an empty axis returns stale memory, hence the explicit zeros.)
      w: () => (x.size === 0 ? tf.zerosLike(w) : tf.tidy(() => tf.sum(tf.mul(tf.mul(d, x), r()).reshape([-1, x.shape[x.rank - 1]]), 0))),
    };
  },
});

// Rotary is linear in x: dx = dy·cos + rotate_halfᵀ(dy·sin). The tables are constants of the positions.
tf.registerGradient({
  kernelName: FUSED.rotary,
  inputsToSave: ['cos', 'sin'],
  gradFunc: (dy, saved) => {
    const [cos, sin] = saved;
    const d = dy as tf.Tensor;
    return {
      x: () => tf.tidy(() => tf.add(tf.mul(d, cos), rotateHalfT(tf.mul(d, sin)))),
      cos: () => tf.zerosLike(cos),
      sin: () => tf.zerosLike(sin),
    };
  },
});

// silu(g)·u with s = sigmoid(g): dg = dy·u·s·(1 + g·(1 − s)), du = dy·g·s.
tf.registerGradient({
  kernelName: FUSED.siluMul,
  inputsToSave: ['g', 'u'],
  gradFunc: (dy, saved) => {
    const [g, u] = saved;
    const d = dy as tf.Tensor;
    return {
      g: () => tf.tidy(() => {
        const s = tf.sigmoid(g);
        return tf.mul(tf.mul(d, u), tf.mul(s, tf.add(1, tf.mul(g, tf.sub(1, s)))));
      }),
      u: () => tf.tidy(() => tf.mul(d, tf.mul(g, tf.sigmoid(g)))),
    };
  },
});

/** The weights of one Llama decoder layer: HF Linear's [out, in] matrices, each with its bias when the config has one. */
export interface LlamaBlockWeights {
  norm1: tf.Tensor;
  q: [tf.Tensor, tf.Tensor?];
  k: [tf.Tensor, tf.Tensor?];
  v: [tf.Tensor, tf.Tensor?];
  o: [tf.Tensor, tf.Tensor?];
  norm2: tf.Tensor;
  gate: [tf.Tensor, tf.Tensor?];
  up: [tf.Tensor, tf.Tensor?];
  down: [tf.Tensor, tf.Tensor?];
}

/** The Llama block kernel's weight inputs, in the order the addon takes them (biases may be absent). */
export const LLAMA_BLOCK_INPUTS = ['norm1W', 'qW', 'qB', 'kW', 'kB', 'vW', 'vB', 'oW', 'oB', 'norm2W', 'gateW', 'gateB', 'upW', 'upB', 'downW', 'downB'] as const;

/**
 * A whole Llama decoder layer as one kernel, for inference: h = x + o(attention(rotary(q(n)), rotary(k(n)),
 * v(n))) with n = RMSNorm(x), then y = h + down(silu(gate(m)) · up(m)) with m = RMSNorm(h). The rotary tables
 * come from the caller (so every rope scaling works). Declines (undefined) under a gradient tape, without the
 * kernel, or when the inputs do not fit; the caller then runs the ops (the same native kernels as
 * rmsNorm, rotary, siluMul and the attention kernel, so the results are the same bits).
 * @param x [B, T, D] @param cos,sin [B|1, 1, T, Dh] @param pastK,pastV [B, Hkv, S, Dh] or undefined
 * @param bias [B|1, 1, T, S+T] or undefined @returns [y [B, T, D], key, value [B, Hkv, S+T, Dh]]
 */
export function fusedLlamaBlock(x: tf.Tensor, w: LlamaBlockWeights, heads: number, kvHeads: number, eps: number, scale: number, cos: tf.Tensor, sin: tf.Tensor, pastK: tf.Tensor | undefined, pastV: tf.Tensor | undefined, bias: tf.Tensor | undefined): [tf.Tensor, tf.Tensor, tf.Tensor] | undefined {
  if (!kernelHere(FUSED.llamaBlock) || tf.engine().isTapeOn() || x.rank !== 3 || x.dtype !== 'float32' || cos.rank !== 4) return undefined;
  const [B, T, D] = x.shape;
  const Dh = cos.shape[3] as number;
  const I = w.gate[0].shape[0] as number;
  const S = pastK ? (pastK.shape[2] as number) : 0;
  const [q, k, o] = [heads * Dh, kvHeads * Dh, D];
  const expect: [tf.Tensor | undefined, number[]][] = [
    [w.norm1, [D]], [w.q[0], [q, D]], [w.q[1], [q]], [w.k[0], [k, D]], [w.k[1], [k]], [w.v[0], [k, D]], [w.v[1], [k]], [w.o[0], [o, q]], [w.o[1], [o]],
    [w.norm2, [D]], [w.gate[0], [I, D]], [w.gate[1], [I]], [w.up[0], [I, D]], [w.up[1], [I]], [w.down[0], [D, I]], [w.down[1], [D]],
  ];
  const fits = (t: tf.Tensor | undefined, s: number[]) => !t || (t.dtype === 'float32' && tf.util.arraysEqual(t.shape, s));
  const rot = (t: tf.Tensor) => t.dtype === 'float32' && (t.shape[0] === 1 || t.shape[0] === B) && t.shape[1] === 1 && t.shape[2] === T && t.shape[3] === Dh;
  const ok = T >= 1 && Dh % 2 === 0 && heads % kvHeads === 0 && rot(cos) && rot(sin) && cos.shape[0] === sin.shape[0] &&
    expect.every(([t, s]) => fits(t, s)) && !pastK === !pastV && fits(pastK, [B, kvHeads, S, Dh]) && fits(pastV, [B, kvHeads, S, Dh]) &&
    biasFits(bias, B, T, S + T);
  if (!ok) return undefined;
  const inputs: tf.NamedTensorMap = { x, cos, sin };
  LLAMA_BLOCK_INPUTS.forEach((name, i) => {
    const t = expect[i][0];
    if (t) inputs[name] = t;
  });
  if (pastK && pastV) Object.assign(inputs, { pastK, pastV });
  if (bias) inputs.bias = bias;
  return run(FUSED.llamaBlock, inputs, { heads, kvHeads, eps, scale }) as [tf.Tensor, tf.Tensor, tf.Tensor];
}
