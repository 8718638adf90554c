/**
 * Kernels TF.js leaves out that transformers need, registered per backend.
 *
 * - `UnsortedSegmentSum` on wasm: the gradient of `gather` (an embedding lookup) calls it, and the wasm
 *   backend has none, so without this training any embedding fails there. Written in plain JS over the
 *   wasm heap: it is O(N·D) and memory-bound, so the scalar loop costs little next to the matmuls.
 */
import * as tf from '@tensorflow/tfjs-core';

type WasmLike = tf.KernelBackend & {
  readSync(dataId: tf.DataId): tf.backend_util.BackendValues;
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  typedArrayFromHeap(info: tf.TensorInfo): tf.backend_util.TypedArray;
};

function unsortedSegmentSumWasm(args: { inputs: tf.NamedTensorInfoMap; backend: tf.KernelBackend; attrs?: tf.NamedAttrMap }): tf.TensorInfo {
  const backend = args.backend as WasmLike;
  const { x, segmentIds } = args.inputs as { x: tf.TensorInfo; segmentIds: tf.TensorInfo };
  const numSegments = (args.attrs as unknown as { numSegments: number }).numSegments;
  const idsShape = segmentIds.shape;
  const n = idsShape.reduce((a, b) => a * b, 1);
  const innerShape = x.shape.slice(idsShape.length);
  const inner = innerShape.reduce((a, b) => a * b, 1);
  const out = backend.makeOutput([numSegments, ...innerShape], x.dtype);
  const outVals = backend.typedArrayFromHeap(out);
  outVals.fill(0);
  // Read after allocating the output: allocation may grow the heap and detach earlier views.
  const xVals = backend.readSync(x.dataId) as tf.backend_util.TypedArray;
  const ids = backend.readSync(segmentIds.dataId) as tf.backend_util.TypedArray;
  const target = backend.typedArrayFromHeap(out);
  for (let i = 0; i < n; i++) {
    const s = ids[i];
    if (s < 0 || s >= numSegments) continue; // TF semantics: out-of-range ids are dropped
    const src = i * inner;
    const dst = s * inner;
    for (let j = 0; j < inner; j++) target[dst + j] += xVals[src + j];
  }
  return out;
}

let registered = false;

/** Register our kernels for every backend that lacks them (idempotent). */
export function registerMissingKernels(): void {
  if (registered) return;
  registered = true;
  if (!tf.getKernel('UnsortedSegmentSum', 'wasm')) {
    tf.registerKernel({ kernelName: 'UnsortedSegmentSum', backendName: 'wasm', kernelFunc: unsortedSegmentSumWasm as tf.KernelFunc });
  }
}
