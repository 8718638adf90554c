/**
 * Switching the native kernels on and off. `enableNativeKernels` registers, for the wasm and cpu
 * backends, native versions of the kernels that dominate transformer workloads, keeping each
 * backend's own kernel as the fallback for cases the addon does not cover, plus the fused kernels of
 * `../fused.ts`; `disableNativeKernels` puts the originals back and removes the fused ones (tests
 * compare both in one process). Gradients need nothing: TF.js gradients are
 * written in terms of kernels, so a replaced kernel is used by the backward pass too.
 */
import * as tf from '@tensorflow/tfjs-core';
import { accessFor, type Access } from './access.js';
import { loadAddon, type NativeAddon } from './addon.js';
import { tanhKernel } from './elementwise.js';
import { FUSED_KERNELS } from './fused_kernels.js';
import { batchMatMulKernel, fusedMatMulKernel } from './matmul.js';

/** What {@link nativeKernelsInfo} reports. */
export interface NativeKernelsInfo {
  /** Whether native kernels are registered now. */
  enabled: boolean;
  /** Instruction set the addon chose at run time (`avx2-fma` or `generic`). */
  isa?: string;
  /** Threads the addon runs a kernel on (the caller's included). */
  threads?: number;
  /** Kernels replaced, as `name/backend`. */
  kernels: string[];
  /** Why they are off, when they are. */
  reason?: string;
  /** Whether Linux was asked for transparent huge pages over the wasm heap (see enableNativeKernels). */
  hugePages?: boolean;
}

type Factory = (addon: NativeAddon, backendName: string, access: (b: tf.KernelBackend) => Access, fallback: tf.KernelFunc) => tf.KernelFunc;

const FACTORIES: Record<string, Factory> = {
  BatchMatMul: batchMatMulKernel,
  _FusedMatMul: fusedMatMulKernel,
  Tanh: tanhKernel,
};
const BACKENDS = ['wasm', 'cpu'];

const originals = new Map<string, tf.KernelConfig>();
const added = new Set<string>();
let info: NativeKernelsInfo = { enabled: false, kernels: [], reason: 'not requested' };

function accessGetter(backendName: string): (b: tf.KernelBackend) => Access {
  let last: tf.KernelBackend | undefined;
  let acc: Access | undefined;
  return (b) => {
    if (b !== last) {
      last = b;
      acc = accessFor(backendName, b);
    }
    return acc!;
  };
}

let hugePages = false;

/**
 * Ask for transparent huge pages over the wasm heap's whole reservation (once, when the wasm backend is
 * up): a decoding step streams every weight once, and with 4 KiB pages the page walks cost ~10% of the
 * memory bandwidth. Memory touched before the call keeps small pages, so this runs before weights load.
 */
function adviseHugePages(addon: NativeAddon): void {
  // The engine's registry holds started backends only (tf.findBackend would start the wasm one).
  const started = (tf.engine() as unknown as { registry: Record<string, unknown> }).registry;
  const wasm = started.wasm as { wasm?: { HEAPF32: Float32Array } } | undefined;
  if (hugePages || !wasm?.wasm) return;
  hugePages = addon.adviseHugePages(wasm.wasm.HEAPF32, 4 * 2 ** 30) === 0;
}

/**
 * Register the native kernels (idempotent). Returns what is now in effect; never throws.
 * `hugePages: false` leaves the wasm heap's pages as they are.
 */
export function enableNativeKernels(opts: { threads?: number; hugePages?: boolean } = {}): NativeKernelsInfo {
  const loaded = loadAddon();
  if (!loaded.addon) {
    info = { enabled: false, kernels: [], reason: loaded.reason };
    return info;
  }
  const addon = loaded.addon;
  if (opts.threads !== undefined) addon.setThreads(opts.threads);
  if (!info.enabled) {
    const kernels: string[] = [];
    for (const backendName of BACKENDS) {
      for (const [name, make] of Object.entries(FACTORIES)) {
        const orig = tf.getKernel(name, backendName);
        if (!orig) continue;
        originals.set(`${name}/${backendName}`, orig);
        tf.unregisterKernel(name, backendName);
        tf.registerKernel({ ...orig, kernelFunc: make(addon, backendName, accessGetter(backendName), orig.kernelFunc) });
        kernels.push(`${name}/${backendName}`);
      }
      for (const [name, make] of Object.entries(FUSED_KERNELS)) {
        if (tf.getKernel(name, backendName)) tf.unregisterKernel(name, backendName);
        tf.registerKernel({ kernelName: name, backendName, kernelFunc: make(addon, accessGetter(backendName)) });
        added.add(`${name}/${backendName}`);
        kernels.push(`${name}/${backendName}`);
      }
    }
    info = { enabled: true, kernels, isa: '', threads: 0 };
  }
  if (opts.hugePages !== false) adviseHugePages(addon);
  const { isa, threads } = addon.info();
  info = { ...info, isa, threads, hugePages };
  return info;
}

/** Put every backend's own kernels back. */
export function disableNativeKernels(reason = 'switched off'): void {
  for (const [key, orig] of originals) {
    const [name, backendName] = key.split('/');
    tf.unregisterKernel(name, backendName);
    tf.registerKernel(orig);
  }
  originals.clear();
  for (const key of added) {
    const [name, backendName] = key.split('/');
    tf.unregisterKernel(name, backendName);
  }
  added.clear();
  info = { enabled: false, kernels: [], reason };
}

/** Whether the native kernels are registered now (cheap: called on every Linear forward). */
export function nativeKernelsEnabled(): boolean {
  return info.enabled;
}

/** The native kernels' state. */
export function nativeKernelsInfo(): NativeKernelsInfo {
  return { ...info, kernels: info.kernels.slice() };
}

/** The constants of one AdamW update, as `../fused.ts` AdamWConstants. */
interface AdamWHostConstants { lr: number; weightDecay: number; beta1: number; beta2: number; eps: number; bc2Sqrt: number; stepSize: number }

/**
 * Whether {@link adamwHost} can run now: native kernels on, a wasm or cpu backend. Moments then live in
 * host memory (JS typed arrays), outside the wasm heap, whose 4 GB would otherwise hold parameters,
 * gradients, both moments and the activations of a step.
 */
export function adamwHostAvailable(): boolean {
  const name = tf.getBackend();
  return info.enabled && (name === 'wasm' || name === 'cpu') && loadAddon().addon !== undefined;
}

/**
 * One AdamW step with the moments `m`, `v` in host memory, updated in place: returns p' (a new tensor),
 * computed by the same kernel as the fused tensor form, so both agree bit for bit.
 */
export function adamwHost(p: tf.Tensor, g: tf.Tensor, m: Float32Array, v: Float32Array, c: AdamWHostConstants): tf.Tensor {
  const addon = loadAddon().addon;
  const name = tf.getBackend();
  const n = p.size;
  if (!adamwHostAvailable() || !addon || p.dtype !== 'float32' || g.dtype !== 'float32' || g.size !== n || m.length !== n || v.length !== n) {
    throw new Error(`adamwHost: needs native kernels on wasm or cpu and float32 p, g and moments of ${n} elements`);
  }
  const acc = accessFor(name, tf.backend())!;
  const out = acc.alloc(p.shape);
  if (n > 0) {
    // Views after the allocation: growing the wasm heap replaces its buffer.
    addon.adamw(...acc.view(p), ...acc.view(g), m, 0, v, 0, ...acc.view(out), m, 0, v, 0, n,
      c.weightDecay !== 0, 1 - c.lr * c.weightDecay, c.beta1, 1 - c.beta1, c.beta2, 1 - c.beta2, c.bc2Sqrt, c.eps, -c.stepSize);
  }
  return tf.engine().makeTensorFromTensorInfo(out);
}
