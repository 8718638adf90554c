/**
 * Memory helpers without side effects (no backend import), usable from every layer.
 */
import * as tf from '@tensorflow/tfjs-core';

/**
 * `tf.tidy` for results typed as our own records (caches, outputs): tensors reachable from the returned
 * value survive, everything else made inside `fn` is freed.
 */
export function tidy<T>(fn: () => T): T {
  return tf.tidy(fn as unknown as () => tf.TensorContainer) as unknown as T;
}

/** Dispose every tensor inside a nested value of arrays / objects (caches, outputs). */
export function disposeAll(value: unknown): void {
  if (value instanceof tf.Tensor) {
    value.dispose();
  } else if (Array.isArray(value)) {
    for (const v of value) disposeAll(v);
  } else if (value && typeof value === 'object') {
    for (const v of Object.values(value)) disposeAll(v);
  }
}
