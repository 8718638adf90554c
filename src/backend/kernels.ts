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
  wasm: { HEAPU8: Uint8Array };
  dataIdMap: { get(id: tf.DataId): { memoryOffset: number } };
};

const BYTES: Partial<Record<tf.DataType, number>> = { float32: 4, int32: 4, bool: 1 };
const prod = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);
type Args = { inputs: tf.NamedTensorInfoMap; backend: tf.KernelBackend; attrs?: tf.NamedAttrMap };

/** GatherV2 (batchDims 0, any axis) on wasm: one block copy per (outer index, gathered index). */
function gatherBlocks(fallback: tf.KernelFunc): tf.KernelFunc {
  return ((args: Args) => {
    const backend = args.backend as WasmLike;
    const { x, indices } = args.inputs as { x: tf.TensorInfo; indices: tf.TensorInfo };
    const { axis, batchDims } = args.attrs as unknown as { axis: number; batchDims: number };
    const bytes = BYTES[x.dtype];
    if (!bytes || batchDims !== 0 || indices.dtype !== 'int32') return fallback(args as Parameters<tf.KernelFunc>[0]);
    const ax = tf.util.parseAxisParam(axis, x.shape)[0];
    const dim = x.shape[ax];
    const ids = backend.readSync(indices.dataId) as Int32Array;
    for (let i = 0; i < ids.length; i++) {
      tf.util.assert(ids[i] <= dim - 1 && ids[i] >= 0, () => `GatherV2: the index value ${ids[i]} is not in [0, ${dim - 1}]`);
    }
    const out = backend.makeOutput([...x.shape.slice(0, ax), ...indices.shape, ...x.shape.slice(ax + 1)], x.dtype);
    const outer = prod(x.shape.slice(0, ax));
    const block = prod(x.shape.slice(ax + 1)) * bytes;
    if (block === 0 || ids.length === 0 || outer === 0) return out;
    const heap = backend.wasm.HEAPU8;
    const src = backend.dataIdMap.get(x.dataId).memoryOffset;
    let dst = backend.dataIdMap.get(out.dataId).memoryOffset;
    for (let o = 0; o < outer; o++) {
      const base = src + o * dim * block;
      for (let i = 0; i < ids.length; i++, dst += block) heap.copyWithin(dst, base + ids[i] * block, base + (ids[i] + 1) * block);
    }
    return out;
  }) as tf.KernelFunc;
}

/** SplitV on wasm: each output is `outer` contiguous runs of the input. */
function splitBlocks(fallback: tf.KernelFunc): tf.KernelFunc {
  return ((args: Args) => {
    const backend = args.backend as WasmLike;
    const { x } = args.inputs as { x: tf.TensorInfo };
    const { numOrSizeSplits, axis } = args.attrs as unknown as { numOrSizeSplits: number | number[]; axis: number };
    const bytes = BYTES[x.dtype];
    if (!bytes) return fallback(args as Parameters<tf.KernelFunc>[0]);
    const ax = tf.util.parseAxisParam(axis, x.shape)[0];
    const sizes = tf.backend_util.prepareSplitSize(x as unknown as tf.Tensor, numOrSizeSplits, ax);
    const outer = prod(x.shape.slice(0, ax));
    const inner = prod(x.shape.slice(ax + 1)) * bytes;
    const outs = sizes.map((s) => backend.makeOutput(x.shape.map((d, i) => (i === ax ? s : d)), x.dtype));
    const heap = backend.wasm.HEAPU8;
    const src = backend.dataIdMap.get(x.dataId).memoryOffset;
    const row = x.shape[ax] * inner;
    let begin = 0;
    sizes.forEach((s, k) => {
      const run = s * inner;
      let dst = backend.dataIdMap.get(outs[k].dataId).memoryOffset;
      if (run > 0) for (let o = 0; o < outer; o++, dst += run) heap.copyWithin(dst, src + o * row + begin, src + o * row + begin + run);
      begin += run;
    });
    return outs;
  }) as tf.KernelFunc;
}

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

interface RefCounted {
  incRef(dataId: tf.DataId): void;
}

function identityShared(args: { inputs: tf.NamedTensorInfoMap; backend: tf.KernelBackend }): tf.TensorInfo {
  const { x } = args.inputs as { x: tf.TensorInfo };
  (args.backend as unknown as RefCounted).incRef(x.dataId);
  return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
}

/** Whether permuting by `perm` leaves the row-major order of the elements unchanged. */
export function orderPreserving(shape: readonly number[], perm: readonly number[]): boolean {
  const kept = perm.filter((axis) => shape[axis] !== 1);
  return kept.every((axis, i) => i === 0 || kept[i - 1] < axis);
}

function transposeSharing(fallback: tf.KernelFunc): tf.KernelFunc {
  return ((args: { inputs: tf.NamedTensorInfoMap; backend: tf.KernelBackend; attrs?: tf.NamedAttrMap }) => {
    const { x } = args.inputs as { x: tf.TensorInfo };
    const { perm } = args.attrs as unknown as { perm: number[] };
    if (!orderPreserving(x.shape, perm)) return fallback(args as Parameters<tf.KernelFunc>[0]);
    (args.backend as unknown as RefCounted).incRef(x.dataId);
    return { dataId: x.dataId, shape: perm.map((axis) => x.shape[axis]), dtype: x.dtype };
  }) as tf.KernelFunc;
}

/** Concat on wasm: for each index of the dimensions before `axis`, each input's block in turn. */
function concatBlocks(fallback: tf.KernelFunc): tf.KernelFunc {
  return ((args: Args) => {
    const backend = args.backend as WasmLike;
    const xs = args.inputs as unknown as tf.TensorInfo[];
    const { axis } = args.attrs as unknown as { axis: number };
    const list = Array.isArray(xs) ? xs : Object.values(xs as unknown as Record<string, tf.TensorInfo>);
    const bytes = list.length ? BYTES[list[0].dtype] : undefined;
    if (!bytes || list.some((x) => x.dtype !== list[0].dtype)) return fallback(args as Parameters<tf.KernelFunc>[0]);
    const ax = tf.util.parseAxisParam(axis, list[0].shape)[0];
    const outShape = tf.backend_util.computeOutShape(list.map((x) => x.shape), ax);
    const out = backend.makeOutput(outShape, list[0].dtype);
    const outer = prod(outShape.slice(0, ax));
    const heap = backend.wasm.HEAPU8;
    let dst = backend.dataIdMap.get(out.dataId).memoryOffset;
    const blocks = list.map((x) => ({ src: backend.dataIdMap.get(x.dataId).memoryOffset, len: prod(x.shape.slice(ax)) * bytes }));
    for (let o = 0; o < outer; o++) {
      for (const b of blocks) {
        if (b.len > 0) heap.copyWithin(dst, b.src + o * b.len, b.src + (o + 1) * b.len);
        dst += b.len;
      }
    }
    return out;
  }) as tf.KernelFunc;
}

let registered = false;

/** Register our kernels for every backend that lacks them (idempotent). */
export function registerMissingKernels(): void {
  if (registered) return;
  registered = true;
  if (!tf.getKernel('UnsortedSegmentSum', 'wasm')) {
    tf.registerKernel({ kernelName: 'UnsortedSegmentSum', backendName: 'wasm', kernelFunc: unsortedSegmentSumWasm as tf.KernelFunc });
  }
  if (tf.getKernel('Identity', 'wasm')) tf.unregisterKernel('Identity', 'wasm');
  tf.registerKernel({ kernelName: 'Identity', backendName: 'wasm', kernelFunc: identityShared as tf.KernelFunc });
  const wrap: [string, (f: tf.KernelFunc) => tf.KernelFunc][] = [['Transpose', transposeSharing], ['GatherV2', gatherBlocks], ['SplitV', splitBlocks], ['Concat', concatBlocks]];
  for (const [name, make] of wrap) {
    const orig = tf.getKernel(name, 'wasm');
    if (!orig) continue;
    tf.unregisterKernel(name, 'wasm');
    tf.registerKernel({ ...orig, kernelFunc: make(orig.kernelFunc) });
  }
}
