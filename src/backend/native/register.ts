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

/** Register the native kernels (idempotent). Returns what is now in effect; never throws. */
export function enableNativeKernels(opts: { threads?: number } = {}): NativeKernelsInfo {
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
  const { isa, threads } = addon.info();
  info = { ...info, isa, threads };
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

/** The native kernels' state. */
export function nativeKernelsInfo(): NativeKernelsInfo {
  return { ...info, kernels: info.kernels.slice() };
}
