/**
 * Loading the optional native addon (`native/`, built from source by `npm install` when a C++ compiler
 * is present). Node only: this module is reached through a dynamic import that browsers never take, so
 * bundles leave it out. Loading never throws: a missing or broken addon is reported as a reason.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The addon's functions (see native/src/addon.cc). Arrays are typed arrays with element offsets. */
export interface NativeAddon {
  matmul(
    a: Float32Array, aOff: number, b: Float32Array, bOff: number, out: Float32Array, outOff: number,
    batch: number, m: number, n: number, k: number, transposeA: boolean, transposeB: boolean,
    aBatchStride: number, bBatchStride: number, aIndex: Int32Array | null, bIndex: Int32Array | null,
    bias: Float32Array | null, biasOff: number, act: number, alpha: number,
  ): void;
  tanh(x: Float32Array, xOff: number, out: Float32Array, outOff: number, n: number): void;
  adamw(
    p: Float32Array, pOff: number, g: Float32Array, gOff: number, m: Float32Array, mOff: number, v: Float32Array, vOff: number,
    pOut: Float32Array, pOutOff: number, mOut: Float32Array, mOutOff: number, vOut: Float32Array, vOutOff: number, n: number,
    decay: boolean, keep: number, b1: number, oneMinusB1: number, b2: number, oneMinusB2: number, bc2Sqrt: number, eps: number, negStep: number,
  ): void;
  softmaxXent(logits: Float32Array, lOff: number, targets: Int32Array, tOff: number, nll: Float32Array, nOff: number, lse: Float32Array, lseOff: number, rows: number, v: number): void;
  softmaxXentGrad(logits: Float32Array, lOff: number, targets: Int32Array, tOff: number, lse: Float32Array, lseOff: number, dnll: Float32Array, dOff: number, dlogits: Float32Array, dlOff: number, rows: number, v: number): void;
  layerNorm(x: Float32Array, xOff: number, w: Float32Array, wOff: number, b: Float32Array, bOff: number, y: Float32Array, yOff: number, mean: Float32Array, mOff: number, rstd: Float32Array, rOff: number, rows: number, d: number, eps: number): void;
  layerNormGrad(x: Float32Array, xOff: number, w: Float32Array, wOff: number, mean: Float32Array, mOff: number, rstd: Float32Array, rOff: number, dy: Float32Array, dyOff: number, dx: Float32Array, dxOff: number, dw: Float32Array, dwOff: number, db: Float32Array, dbOff: number, rows: number, d: number): void;
  gelu(x: Float32Array, xOff: number, y: Float32Array, yOff: number, n: number): void;
  geluGrad(x: Float32Array, xOff: number, dy: Float32Array, dyOff: number, dx: Float32Array, dxOff: number, n: number): void;
  dropout(x: Float32Array, xOff: number, u: Float32Array, uOff: number, y: Float32Array, yOff: number, n: number, keep: number): void;
  attention(
    q: Float32Array, qOff: number, k: Float32Array, kOff: number, v: Float32Array, vOff: number,
    pastK: Float32Array | null, pkOff: number, pastV: Float32Array | null, pvOff: number, bias: Float32Array | null, bOff: number,
    key: Float32Array, keyOff: number, value: Float32Array, valueOff: number, out: Float32Array, outOff: number,
    B: number, H: number, Hkv: number, T: number, S: number, Dh: number, biasBatch: number, scale: number, packed: boolean,
  ): void;
  preLnBlock(
    x: Float32Array, xOff: number, y: Float32Array, yOff: number, ...weightsAndCache: (Float32Array | number | null)[]
  ): void;
  rmsNorm(x: Float32Array, xOff: number, w: Float32Array, wOff: number, y: Float32Array, yOff: number, rows: number, d: number, eps: number): void;
  rotary(x: Float32Array, xOff: number, cos: Float32Array, cOff: number, sin: Float32Array, sOff: number, y: Float32Array, yOff: number, B: number, H: number, T: number, Dh: number, rotBatch: number): void;
  siluMul(g: Float32Array, gOff: number, u: Float32Array, uOff: number, out: Float32Array, outOff: number, n: number): void;
  llamaBlock(
    x: Float32Array, xOff: number, y: Float32Array, yOff: number, ...weightsAndCache: (Float32Array | number | null)[]
  ): void;
  info(): { isa: string; threads: number; workerTasks: number; kernelSeconds: number; kernelCalls: number };
  setThreads(n: number): void;
  /** madvise(MADV_HUGEPAGE) over `bytes` from the start of the array's buffer: 0, or an errno (-1 off Linux). */
  adviseHugePages(array: Float32Array, bytes: number): number;
}

/** The addon, or why it is not available. */
export type AddonResult = { addon: NativeAddon; path: string } | { addon?: undefined; reason: string };

const BINARY = join('native', 'build', 'Release', 'makemost_native.node');

/** The package root: the nearest folder above this file holding `native/binding.gyp`. */
function packageRoot(): string | undefined {
  let d = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(d, 'native', 'binding.gyp'))) return d;
    const up = dirname(d);
    if (up === d) return undefined;
    d = up;
  }
}

let cached: AddonResult | undefined;

/** Load the addon once (later calls return the same result). */
export function loadAddon(): AddonResult {
  if (cached) return cached;
  const root = packageRoot();
  // MAKEMOST_NATIVE_BINARY points at another build of the addon (comparing builds while developing).
  const override = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env?.MAKEMOST_NATIVE_BINARY;
  const path = override || (root ? join(root, BINARY) : undefined);
  if (!path || !existsSync(path)) {
    cached = { reason: `not built (${BINARY} is missing; run \`npm run build:native\`, which needs a C++ compiler and python3)` };
    return cached;
  }
  try {
    const addon = createRequire(import.meta.url)(path) as NativeAddon;
    for (const f of ['matmul', 'tanh', 'adamw', 'softmaxXent', 'softmaxXentGrad', 'layerNorm', 'layerNormGrad', 'gelu', 'geluGrad', 'dropout', 'attention', 'preLnBlock', 'info', 'setThreads'] as const) {
      if (typeof addon[f] !== 'function') throw new Error(`it has no function '${f}' (stale build? run \`npm run build:native\`)`);
    }
    cached = { addon, path };
  } catch (e) {
    cached = { reason: `failed to load ${path}: ${(e as Error).message}` };
  }
  return cached;
}
