/**
 * The fused kernels of `../fused.ts` (LayerNorm, GELU, softmax cross-entropy, each with its gradient,
 * and AdamW) on the native addon, for any backend that `Access` reaches. The ops in fused.ts check
 * dtypes and ranks before calling, so these kernels see float32 (int32 targets) only.
 */
import type * as tf from '@tensorflow/tfjs-core';
import { BLOCK_INPUTS, FUSED } from '../fused.js';
import { LLAMA_BLOCK_INPUTS } from '../fused_llama.js';
import type { Access } from './access.js';
import type { NativeAddon } from './addon.js';
import { runMatMul } from './matmul.js';

type KernelArgs = { inputs: tf.NamedTensorInfoMap; backend: tf.KernelBackend; attrs?: tf.NamedAttrMap };
type Make = (addon: NativeAddon, access: (b: tf.KernelBackend) => Access) => tf.KernelFunc;

const size = (s: readonly number[]) => s.reduce((p, d) => p * d, 1);

const layerNorm: Make = (addon, access) => ((args: KernelArgs) => {
  const { x, gamma, beta } = args.inputs as Record<string, tf.TensorInfo>;
  const { eps } = args.attrs as unknown as { eps: number };
  const acc = access(args.backend);
  const D = x.shape[x.shape.length - 1];
  const rows = D === 0 ? 0 : size(x.shape) / D;
  const y = acc.alloc(x.shape);
  const mean = acc.alloc(x.shape.slice(0, -1));
  const rstd = acc.alloc(x.shape.slice(0, -1));
  if (rows > 0) addon.layerNorm(...acc.view(x), ...acc.view(gamma), ...acc.view(beta), ...acc.view(y), ...acc.view(mean), ...acc.view(rstd), rows, D, eps);
  return [y, mean, rstd];
}) as tf.KernelFunc;

const layerNormGrad: Make = (addon, access) => ((args: KernelArgs) => {
  const { x, gamma, mean, rstd, dy } = args.inputs as Record<string, tf.TensorInfo>;
  const acc = access(args.backend);
  const D = x.shape[x.shape.length - 1];
  const rows = D === 0 ? 0 : size(x.shape) / D;
  const dx = acc.alloc(x.shape);
  const dgamma = acc.alloc([D]);
  const dbeta = acc.alloc([D]);
  if (rows > 0) addon.layerNormGrad(...acc.view(x), ...acc.view(gamma), ...acc.view(mean), ...acc.view(rstd), ...acc.view(dy), ...acc.view(dx), ...acc.view(dgamma), ...acc.view(dbeta), rows, D);
  else if (D > 0) {
    acc.view(dgamma)[0].fill(0, acc.view(dgamma)[1], acc.view(dgamma)[1] + D);
    acc.view(dbeta)[0].fill(0, acc.view(dbeta)[1], acc.view(dbeta)[1] + D);
  }
  return [dx, dgamma, dbeta];
}) as tf.KernelFunc;

const gelu: Make = (addon, access) => ((args: KernelArgs) => {
  const { x } = args.inputs as Record<string, tf.TensorInfo>;
  const acc = access(args.backend);
  const y = acc.alloc(x.shape);
  const n = size(x.shape);
  if (n > 0) addon.gelu(...acc.view(x), ...acc.view(y), n);
  return y;
}) as tf.KernelFunc;

const rmsNorm: Make = (addon, access) => ((args: KernelArgs) => {
  const { x, w } = args.inputs as Record<string, tf.TensorInfo>;
  const { eps } = args.attrs as unknown as { eps: number };
  const acc = access(args.backend);
  const y = acc.alloc(x.shape);
  const D = x.shape[x.shape.length - 1];
  if (size(x.shape) > 0) addon.rmsNorm(...acc.view(x), ...acc.view(w), ...acc.view(y), size(x.shape) / D, D, eps);
  return y;
}) as tf.KernelFunc;

const rotary: Make = (addon, access) => ((args: KernelArgs) => {
  const { x, cos, sin } = args.inputs as Record<string, tf.TensorInfo>;
  const acc = access(args.backend);
  const y = acc.alloc(x.shape);
  const [B, H, T, Dh] = x.shape;
  if (size(x.shape) > 0) addon.rotary(...acc.view(x), ...acc.view(cos), ...acc.view(sin), ...acc.view(y), B, H, T, Dh, cos.shape[0]);
  return y;
}) as tf.KernelFunc;

const siluMul: Make = (addon, access) => ((args: KernelArgs) => {
  const { g, u } = args.inputs as Record<string, tf.TensorInfo>;
  const acc = access(args.backend);
  const out = acc.alloc(g.shape);
  const n = size(g.shape);
  if (n > 0) addon.siluMul(...acc.view(g), ...acc.view(u), ...acc.view(out), n);
  return out;
}) as tf.KernelFunc;

const geluGrad: Make = (addon, access) => ((args: KernelArgs) => {
  const { x, dy } = args.inputs as Record<string, tf.TensorInfo>;
  const acc = access(args.backend);
  const dx = acc.alloc(x.shape);
  const n = size(x.shape);
  if (n > 0) addon.geluGrad(...acc.view(x), ...acc.view(dy), ...acc.view(dx), n);
  return dx;
}) as tf.KernelFunc;

const xent: Make = (addon, access) => ((args: KernelArgs) => {
  const { logits, targets } = args.inputs as Record<string, tf.TensorInfo>;
  const acc = access(args.backend);
  const [rows, V] = logits.shape;
  const nll = acc.alloc([rows]);
  const lse = acc.alloc([rows]);
  if (rows > 0) addon.softmaxXent(...acc.view(logits), ...acc.viewInt(targets), ...acc.view(nll), ...acc.view(lse), rows, V);
  return [nll, lse];
}) as tf.KernelFunc;

const xentGrad: Make = (addon, access) => ((args: KernelArgs) => {
  const { logits, targets, lse, dnll } = args.inputs as Record<string, tf.TensorInfo>;
  const acc = access(args.backend);
  const [rows, V] = logits.shape;
  const dlogits = acc.alloc(logits.shape);
  if (rows > 0) addon.softmaxXentGrad(...acc.view(logits), ...acc.viewInt(targets), ...acc.view(lse), ...acc.view(dnll), ...acc.view(dlogits), rows, V);
  return dlogits;
}) as tf.KernelFunc;

const adamw: Make = (addon, access) => ((args: KernelArgs) => {
  const { p, m, v, g } = args.inputs as Record<string, tf.TensorInfo>;
  const c = args.attrs as unknown as { lr: number; weightDecay: number; beta1: number; beta2: number; eps: number; bc2Sqrt: number; stepSize: number };
  const acc = access(args.backend);
  const outs = [acc.alloc(p.shape), acc.alloc(p.shape), acc.alloc(p.shape)];
  const n = size(p.shape);
  if (n > 0) {
    // The constants as the composed form's scalar tensors hold them (float32 of the same JS doubles).
    addon.adamw(...acc.view(p), ...acc.view(g), ...acc.view(m), ...acc.view(v), ...acc.view(outs[0]), ...acc.view(outs[1]), ...acc.view(outs[2]), n,
      c.weightDecay !== 0, 1 - c.lr * c.weightDecay, c.beta1, 1 - c.beta1, c.beta2, 1 - c.beta2, c.bc2Sqrt, c.eps, -c.stepSize);
  }
  return outs;
}) as tf.KernelFunc;

const dropout: Make = (addon, access) => ((args: KernelArgs) => {
  const { x, u } = args.inputs as Record<string, tf.TensorInfo>;
  const { keep } = args.attrs as unknown as { keep: number };
  const acc = access(args.backend);
  const y = acc.alloc(x.shape);
  const n = size(x.shape);
  if (n > 0) addon.dropout(...acc.view(x), ...acc.view(u), ...acc.view(y), n, keep);
  return y;
}) as tf.KernelFunc;

const attention = (packed: boolean): Make => (addon, access) => ((args: KernelArgs) => {
  const { qkv, pastK, pastV, bias } = args.inputs as Record<string, tf.TensorInfo | undefined>;
  const { q, k, v } = packed ? { q: qkv, k: qkv, v: qkv } : (args.inputs as Record<string, tf.TensorInfo | undefined>);
  const { scale, hasBias, heads, kvHeads } = args.attrs as unknown as { scale: number; hasBias: boolean; heads: number; kvHeads: number };
  const acc = access(args.backend);
  const [B, H, T, Dh] = packed ? [q!.shape[0], heads, q!.shape[1], q!.shape[2] / (heads + 2 * kvHeads)] : q!.shape;
  const Hkv = packed ? kvHeads : k!.shape[1];
  const S = pastK ? pastK.shape[2] : 0;
  const key = acc.alloc([B, Hkv, S + T, Dh]);
  const value = acc.alloc([B, Hkv, S + T, Dh]);
  const out = acc.alloc([B, T, H * Dh]);
  const none: [null, number] = [null, 0];
  const opt = (t: tf.TensorInfo | undefined): [Float32Array | null, number] => (t && t.shape.length === 4 ? acc.view(t) : none);
  addon.attention(...acc.view(q!), ...acc.view(k!), ...acc.view(v!), ...opt(pastK), ...opt(pastV),
    ...(hasBias ? opt(bias) : none), ...acc.view(key), ...acc.view(value), ...acc.view(out), B, H, Hkv, T, S, Dh, hasBias && bias ? bias.shape[0] : 1, scale, packed);
  return [out, key, value];
}) as tf.KernelFunc;

const linear: Make = (addon, access) => ((args: KernelArgs) => {
  const { x, w, bias } = args.inputs as Record<string, tf.TensorInfo | undefined> as { x: tf.TensorInfo; w: tf.TensorInfo; bias?: tf.TensorInfo };
  const { transposeW } = args.attrs as unknown as { transposeW: boolean };
  const K = x.shape[x.shape.length - 1];
  const N = transposeW ? w.shape[0] : w.shape[1];
  const m = K === 0 ? size(x.shape.slice(0, -1)) : size(x.shape) / K;
  const plan = { outShape: [...x.shape.slice(0, -1), N], batch: 1, m, n: N, k: K, aStride: 0, bStride: 0, aIndex: null, bIndex: null };
  return runMatMul(addon, access(args.backend), x, w, plan, false, transposeW, bias);
}) as tf.KernelFunc;

const preLNBlock: Make = (addon, access) => ((args: KernelArgs) => {
  const ins = args.inputs as Record<string, tf.TensorInfo | undefined>;
  const { heads, eps, scale } = args.attrs as unknown as { heads: number; eps: number; scale: number };
  const acc = access(args.backend);
  const x = ins.x!;
  const [B, T, D] = x.shape;
  const S = ins.pastK ? ins.pastK.shape[2] : 0;
  const inner = ins.fcW!.shape[1];
  const y = acc.alloc([B, T, D]);
  const key = acc.alloc([B, heads, S + T, D / heads]);
  const value = acc.alloc([B, heads, S + T, D / heads]);
  const opt = (t: tf.TensorInfo | undefined): [Float32Array | null, number] => (t ? acc.view(t) : [null, 0]);
  const weights = BLOCK_INPUTS.flatMap((n) => acc.view(ins[n]!));
  addon.preLnBlock(...acc.view(x), ...acc.view(y), ...weights, ...opt(ins.pastK), ...opt(ins.pastV), ...opt(ins.bias), ...acc.view(key), ...acc.view(value),
    B, T, S, D, heads, inner, eps, scale, ins.bias ? ins.bias.shape[0] : 1);
  return [y, key, value];
}) as tf.KernelFunc;

const llamaBlock: Make = (addon, access) => ((args: KernelArgs) => {
  const ins = args.inputs as Record<string, tf.TensorInfo | undefined>;
  const { heads, kvHeads, eps, scale } = args.attrs as unknown as { heads: number; kvHeads: number; eps: number; scale: number };
  const acc = access(args.backend);
  const [B, T, D] = ins.x!.shape;
  const Dh = ins.cos!.shape[3];
  const S = ins.pastK ? ins.pastK.shape[2] : 0;
  const inner = ins.gateW!.shape[0];
  const y = acc.alloc([B, T, D]);
  const key = acc.alloc([B, kvHeads, S + T, Dh]);
  const value = acc.alloc([B, kvHeads, S + T, Dh]);
  const opt = (t: tf.TensorInfo | undefined): [Float32Array | null, number] => (t ? acc.view(t) : [null, 0]);
  const weights = LLAMA_BLOCK_INPUTS.flatMap((n) => opt(ins[n]));
  addon.llamaBlock(...acc.view(ins.x!), ...acc.view(y), ...weights, ...acc.view(ins.cos!), ...acc.view(ins.sin!), ...opt(ins.pastK), ...opt(ins.pastV), ...opt(ins.bias),
    ...acc.view(key), ...acc.view(value), B, T, S, D, heads, kvHeads, Dh, inner, eps, scale, ins.bias ? ins.bias.shape[0] : 1, ins.cos!.shape[0]);
  return [y, key, value];
}) as tf.KernelFunc;

/** Kernel name → factory, for every fused kernel. */
export const FUSED_KERNELS: Record<string, Make> = {
  [FUSED.layerNorm]: layerNorm,
  [FUSED.layerNormGrad]: layerNormGrad,
  [FUSED.gelu]: gelu,
  [FUSED.geluGrad]: geluGrad,
  [FUSED.xent]: xent,
  [FUSED.xentGrad]: xentGrad,
  [FUSED.adamw]: adamw,
  [FUSED.dropout]: dropout,
  [FUSED.attention]: attention(false),
  [FUSED.attentionPacked]: attention(true),
  [FUSED.linear]: linear,
  [FUSED.linearNoBias]: linear,
  [FUSED.preLNBlock]: preLNBlock,
  [FUSED.llamaBlock]: llamaBlock,
  [FUSED.rmsNorm]: rmsNorm,
  [FUSED.rotary]: rotary,
  [FUSED.siluMul]: siluMul,
};
