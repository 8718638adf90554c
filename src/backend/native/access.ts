/**
 * How native kernels reach tensor memory on each TF.js backend, without copies: on wasm a tensor is a
 * range of the module's heap (`HEAPF32` plus the tensor's byte offset / 4); on cpu it is the tensor's own
 * typed array. Outputs are allocated by the backend itself (`makeOutput` / `makeTensorInfo`), so the
 * kernel writes straight into the memory the returned tensor owns.
 */
import type * as tf from '@tensorflow/tfjs-core';

/** Element access for one backend instance. */
export interface Access {
  /** The float32 array holding the tensor's elements, and the index of its first element. */
  view(x: tf.TensorInfo): [Float32Array, number];
  /** The int32 array holding the tensor's elements, and the index of its first element. */
  viewInt(x: tf.TensorInfo): [Int32Array, number];
  /** A new uninitialised float32 tensor. On wasm, call `view` only after the last allocation of a kernel. */
  alloc(shape: number[]): tf.TensorInfo;
}

interface WasmBackend {
  wasm: { HEAPF32: Float32Array; HEAP32: Int32Array };
  dataIdMap: { get(id: tf.DataId): { memoryOffset: number } };
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
}

interface CpuBackend {
  data: { get(id: tf.DataId): { values?: unknown } };
  makeTensorInfo(shape: number[], dtype: tf.DataType, values?: tf.backend_util.BackendValues): tf.TensorInfo;
}

function wasmAccess(b: WasmBackend): Access {
  return {
    view: (x) => [b.wasm.HEAPF32, b.dataIdMap.get(x.dataId).memoryOffset >>> 2],
    viewInt: (x) => [b.wasm.HEAP32, b.dataIdMap.get(x.dataId).memoryOffset >>> 2],
    alloc: (shape) => b.makeOutput(shape, 'float32'),
  };
}

function cpuAccess(b: CpuBackend): Access {
  const values = (x: tf.TensorInfo) => b.data.get(x.dataId).values;
  return {
    view: (x) => [values(x) as Float32Array, 0],
    viewInt: (x) => [values(x) as Int32Array, 0],
    alloc: (shape) => b.makeTensorInfo(shape, 'float32', new Float32Array(shape.reduce((p, d) => p * d, 1))),
  };
}

/** Access for a backend by name; `undefined` for backends whose memory we cannot reach. */
export function accessFor(backendName: string, backend: tf.KernelBackend): Access | undefined {
  if (backendName === 'wasm') return wasmAccess(backend as unknown as WasmBackend);
  if (backendName === 'cpu') return cpuAccess(backend as unknown as CpuBackend);
  return undefined;
}

/** True when a cpu-backend tensor's values are a plain Float32Array we may read (not complex, not strings). */
export function isFloatArray(backendName: string, backend: tf.KernelBackend, x: tf.TensorInfo): boolean {
  if (x.dtype !== 'float32') return false;
  if (backendName !== 'cpu') return true;
  return (backend as unknown as CpuBackend).data.get(x.dataId).values instanceof Float32Array;
}
