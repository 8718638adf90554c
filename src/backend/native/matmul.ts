/**
 * `BatchMatMul` and `_FusedMatMul` through the native GEMM, for every transpose and batch layout
 * TF.js allows (tfjs-core `matMul`/`fused.matMul` semantics: rank >= 2, inner dimensions equal, batch
 * dimensions broadcast numpy-style). Cases the addon does not cover (non-float32, prelu, a bias that is
 * not a vector over the output columns) go to the backend's own kernel, so results never change kind.
 */
import * as tf from '@tensorflow/tfjs-core';
import { isFloatArray, type Access } from './access.js';
import type { NativeAddon } from './addon.js';

/** How one batched product maps onto the addon's arguments. */
export interface MatMulPlan {
  outShape: number[];
  batch: number;
  m: number;
  n: number;
  k: number;
  aStride: number;
  bStride: number;
  aIndex: Int32Array | null;
  bIndex: Int32Array | null;
}

const size = (s: readonly number[]) => s.reduce((p, d) => p * d, 1);

/** Batch item of each operand for every output batch item, when broadcasting is more than "one or all". */
function broadcastIndex(outer: number[], own: number[]): Int32Array {
  const total = size(outer);
  const idx = new Int32Array(total);
  const offset = outer.length - own.length;
  for (let o = 0; o < total; o++) {
    let rem = o;
    let flat = 0;
    let mul = 1;
    for (let d = outer.length - 1; d >= offset; d--) {
      const coord = rem % outer[d];
      rem = Math.floor(rem / outer[d]);
      const dim = own[d - offset];
      flat += (dim === 1 ? 0 : coord) * mul;
      mul *= dim;
    }
    idx[o] = flat;
  }
  return idx;
}

/** Shapes → plan, with tfjs-core's checks and messages. */
export function planMatMul(aShape: number[], bShape: number[], transposeA: boolean, transposeB: boolean): MatMulPlan {
  const aRank = aShape.length;
  const bRank = bShape.length;
  const innerA = transposeA ? aShape[aRank - 2] : aShape[aRank - 1];
  const innerB = transposeB ? bShape[bRank - 1] : bShape[bRank - 2];
  const m = transposeA ? aShape[aRank - 1] : aShape[aRank - 2];
  const n = transposeB ? bShape[bRank - 2] : bShape[bRank - 1];
  tf.util.assert(innerA === innerB, () => `Error in matMul: inner shapes (${innerA}) and (${innerB}) of Tensors with shapes ${aShape} and ${bShape} and transposeA=${transposeA} and transposeB=${transposeB} must match.`);
  const aOuter = aShape.slice(0, -2);
  const bOuter = bShape.slice(0, -2);
  const outer = tf.broadcast_util.assertAndGetBroadcastShape(aOuter, bOuter);
  const batch = size(outer);
  const batchA = size(aOuter);
  const batchB = size(bOuter);
  const aItem = m * innerA;
  const bItem = innerA * n;
  const plan: MatMulPlan = { outShape: [...outer, m, n], batch, m, n, k: innerA, aStride: aItem, bStride: bItem, aIndex: null, bIndex: null };
  // Broadcasting only ever repeats size-1 dimensions, so equal sizes mean equal layouts.
  if (batchA === 1) plan.aStride = 0;
  else if (batchA !== batch) plan.aIndex = broadcastIndex(outer, aOuter);
  if (batchB === 1) plan.bStride = 0;
  else if (batchB !== batch) plan.bIndex = broadcastIndex(outer, bOuter);
  return plan;
}

/** Activation codes of native/src/kernels.h. */
const ACT: Record<string, number> = { linear: 0, relu: 1, relu6: 2, leakyrelu: 3, elu: 4, sigmoid: 5 };

/** Runs a plan; `bias` must have exactly n elements. */
export function runMatMul(addon: NativeAddon, access: Access, a: tf.TensorInfo, b: tf.TensorInfo, plan: MatMulPlan, transposeA: boolean, transposeB: boolean, bias?: tf.TensorInfo, act = 0, alpha = 0): tf.TensorInfo {
  const out = access.alloc(plan.outShape);
  if (size(plan.outShape) === 0) return out;
  // Views only after the allocation: growing the wasm heap replaces its buffer.
  const [av, ao] = access.view(a);
  const [bv, bo] = access.view(b);
  const [ov, oo] = access.view(out);
  const [biasV, biasO] = bias ? access.view(bias) : [null, 0];
  addon.matmul(av, ao, bv, bo, ov, oo, plan.batch, plan.m, plan.n, plan.k, transposeA, transposeB, plan.aStride, plan.bStride, plan.aIndex, plan.bIndex, biasV, biasO, act, alpha);
  return out;
}

type KernelArgs = { inputs: tf.NamedTensorInfoMap; backend: tf.KernelBackend; attrs?: tf.NamedAttrMap };

/** BatchMatMul for `backendName`, deferring to `fallback` for what the addon does not cover. */
export function batchMatMulKernel(addon: NativeAddon, backendName: string, access: (b: tf.KernelBackend) => Access, fallback: tf.KernelFunc): tf.KernelFunc {
  return ((args: KernelArgs) => {
    const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
    const { transposeA, transposeB } = args.attrs as unknown as { transposeA: boolean; transposeB: boolean };
    if (!isFloatArray(backendName, args.backend, a) || !isFloatArray(backendName, args.backend, b)) return fallback(args as Parameters<tf.KernelFunc>[0]);
    const plan = planMatMul(a.shape, b.shape, transposeA, transposeB);
    return runMatMul(addon, access(args.backend), a, b, plan, transposeA, transposeB);
  }) as tf.KernelFunc;
}

/** _FusedMatMul (bias over output columns, activations other than prelu) for `backendName`. */
export function fusedMatMulKernel(addon: NativeAddon, backendName: string, access: (b: tf.KernelBackend) => Access, fallback: tf.KernelFunc): tf.KernelFunc {
  return ((args: KernelArgs) => {
    const { a, b, bias, preluActivationWeights } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo; bias?: tf.TensorInfo; preluActivationWeights?: tf.TensorInfo };
    const { transposeA, transposeB, activation, leakyreluAlpha } = args.attrs as unknown as { transposeA: boolean; transposeB: boolean; activation: string; leakyreluAlpha?: number };
    const act = ACT[activation ?? 'linear'];
    const ok = act !== undefined && !preluActivationWeights && isFloatArray(backendName, args.backend, a) && isFloatArray(backendName, args.backend, b);
    if (!ok) return fallback(args as Parameters<tf.KernelFunc>[0]);
    const plan = planMatMul(a.shape, b.shape, transposeA, transposeB);
    if (bias) {
      // A bias broadcasts against [..., m, n]; only one that varies along n alone maps onto the GEMM epilogue.
      const vectorOverColumns = size(bias.shape) === plan.n && (bias.shape.length === 0 ? plan.n === 1 : bias.shape[bias.shape.length - 1] === plan.n);
      const sameShape = tf.util.arraysEqual(tf.broadcast_util.assertAndGetBroadcastShape(plan.outShape, bias.shape), plan.outShape);
      if (!vectorOverColumns || !sameShape || !isFloatArray(backendName, args.backend, bias)) return fallback(args as Parameters<tf.KernelFunc>[0]);
    }
    return runMatMul(addon, access(args.backend), a, b, plan, transposeA, transposeB, bias, act, leakyreluAlpha ?? 0.2);
  }) as tf.KernelFunc;
}
