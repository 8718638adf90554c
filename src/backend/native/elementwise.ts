/**
 * Element-wise kernels through the addon: vectorised with AVX2 when the CPU has it and spread over the
 * addon's threads. TF.js wasm evaluates `tanh` with a scalar libm call per element, which made it the
 * second most expensive kernel of a GPT-2 forward pass (gelu_new) once matmuls were fast.
 */
import type * as tf from '@tensorflow/tfjs-core';
import { isFloatArray, type Access } from './access.js';
import type { NativeAddon } from './addon.js';

type KernelArgs = { inputs: tf.NamedTensorInfoMap; backend: tf.KernelBackend; attrs?: tf.NamedAttrMap };

/** Tanh for `backendName` (float32; anything else goes to `fallback`). */
export function tanhKernel(addon: NativeAddon, backendName: string, access: (b: tf.KernelBackend) => Access, fallback: tf.KernelFunc): tf.KernelFunc {
  return ((args: KernelArgs) => {
    const { x } = args.inputs as { x: tf.TensorInfo };
    if (!isFloatArray(backendName, args.backend, x)) return fallback(args as Parameters<tf.KernelFunc>[0]);
    const acc = access(args.backend);
    const out = acc.alloc(x.shape);
    const n = x.shape.reduce((p, d) => p * d, 1);
    if (n === 0) return out;
    const [xv, xo] = acc.view(x);
    const [ov, oo] = acc.view(out);
    addon.tanh(xv, xo, ov, oo, n);
    return out;
  }) as tf.KernelFunc;
}
