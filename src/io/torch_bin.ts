/**
 * A restricted reader for PyTorch's zip checkpoints (`pytorch_model.bin`, `torch.save` since 1.6): the
 * pickle `<archive>/data.pkl` names each tensor's storage, offset, size and stride, and the storages are
 * raw little-endian files `<archive>/data/<key>`. Follows `torch/serialization.py` (`_load`,
 * persistent_load) and `torch/_utils.py` (`_rebuild_tensor_v2`), but only rebuilds tensors: any other
 * pickle global is refused, so nothing in the file is executed. Node-only (zip inflate uses node:zlib).
 */
import { CheckpointError } from '../errors.js';
import { readBytes, type ByteSource, type TensorSource } from './bytes.js';
import { DTYPE_BYTES, isFloatDtype, readWidened, type Dtype } from './dtypes.js';
import { PyCallable, unpickle } from './pickle.js';
import { ZipReader, type ZipEntry } from './zip.js';

/** The fix we suggest for any .bin we refuse: convert it once, in Python, to safetensors. */
export const CONVERT_HINT =
  'convert it to safetensors in Python (only if you trust the file): python -c "import torch; ' +
  "from safetensors.torch import save_file; sd = torch.load('pytorch_model.bin', map_location='cpu', weights_only=True); " +
  "save_file({k: v.contiguous().clone() for k, v in sd.items()}, 'model.safetensors', metadata={'format': 'pt'})\"";

/** data.pkl of a state dict is a few hundred bytes per tensor; anything larger than this is not one. */
const MAX_PICKLE_BYTES = 100 * 1024 * 1024;

/** Largest tensor we materialise from a smaller storage (an expanded view with zero strides). */
const MAX_EXPANDED = 1 << 26;

const STORAGE_DTYPES: Readonly<Record<string, Dtype>> = {
  FloatStorage: 'F32', DoubleStorage: 'F64', HalfStorage: 'F16', BFloat16Storage: 'BF16', LongStorage: 'I64',
  IntStorage: 'I32', ShortStorage: 'I16', CharStorage: 'I8', ByteStorage: 'U8', BoolStorage: 'BOOL',
};

class StorageClass {
  constructor(readonly dtype: Dtype) {}
}

class StorageRef {
  constructor(readonly dtype: Dtype, readonly key: string, readonly numel: number) {}
}

class TensorRef {
  constructor(readonly storage: StorageRef, readonly offset: number, readonly size: number[], readonly stride: number[]) {}
}

const isIndex = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;
const isIndexList = (v: unknown): v is number[] => Array.isArray(v) && v.every(isIndex);

/** The whitelist: an OrderedDict, the tensor/parameter rebuild functions and the typed storage classes. */
function whitelist(module: string, name: string, fail: (p: string) => never): unknown {
  if (module === 'collections' && name === 'OrderedDict') {
    return new PyCallable('collections.OrderedDict', ([items]) => {
      if (items === undefined) return new Map();
      if (!Array.isArray(items) || !items.every((kv) => Array.isArray(kv) && kv.length === 2)) fail('OrderedDict called with bad items');
      return new Map(items as [unknown, unknown][]);
    });
  }
  if (module === 'torch' && Object.prototype.hasOwnProperty.call(STORAGE_DTYPES, name)) return new StorageClass(STORAGE_DTYPES[name]);
  if (module === 'torch._utils' && name === '_rebuild_tensor_v2') {
    return new PyCallable('torch._utils._rebuild_tensor_v2', ([storage, offset, size, stride]) => {
      if (!(storage instanceof StorageRef) || !isIndex(offset) || !isIndexList(size) || !isIndexList(stride) || size.length !== stride.length) {
        fail(`_rebuild_tensor_v2 called with bad arguments (offset ${String(offset)}, ` +
          `size ${JSON.stringify(size)}, stride ${JSON.stringify(stride)})`);
      }
      return new TensorRef(storage as StorageRef, offset as number, size as number[], stride as number[]);
    });
  }
  if (module === 'torch._utils' && (name === '_rebuild_parameter' || name === '_rebuild_parameter_with_state')) {
    return new PyCallable(`torch._utils.${name}`, ([data]) => data);
  }
  return undefined;
}

function numelOf(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function isContiguous(size: number[], stride: number[]): boolean {
  let expect = 1;
  for (let d = size.length - 1; d >= 0; d--) {
    if (size[d] !== 1 && stride[d] !== expect) return false;
    expect *= size[d];
  }
  return true;
}

/** A PyTorch zip checkpoint opened for reading; tensors are read one at a time. */
export class TorchBinReader implements TensorSource {
  private lastStorage?: { key: string; src: ByteSource };

  private constructor(
    private readonly src: ByteSource,
    private readonly zip: ZipReader,
    private readonly storages: Map<string, ZipEntry>,
    private readonly tensors: Map<string, TensorRef>,
  ) {}

  /** Parse the archive and its pickle; throws CheckpointError for legacy, malformed or unsafe files. */
  static open(src: ByteSource): TorchBinReader {
    const fail = (problem: string, hint = 'the file is corrupt or not a PyTorch checkpoint; re-save it'): never => {
      throw new CheckpointError(`PyTorch checkpoint '${src.name}': ${problem}`, hint);
    };
    const magic = readBytes(src, 0, Math.min(src.size, 4));
    const isZip = magic.length === 4 && magic[0] === 0x50 && magic[1] === 0x4b && magic[2] === 0x03 && magic[3] === 0x04;
    if (!isZip) {
      const legacy = magic[0] === 0x80 || (src.size > 262 && new TextDecoder().decode(readBytes(src, 257, 5)) === 'ustar');
      fail(legacy ? 'legacy (pre-1.6, non-zip) torch.save format is not supported' : 'not a zip archive', CONVERT_HINT);
    }
    const zip = ZipReader.open(src);
    const pkl = zip.entries().find((e) => e.name === 'data.pkl' || e.name.endsWith('/data.pkl'));
    if (!pkl) fail(`no data.pkl in the archive (entries: ${zip.entries().slice(0, 8).map((e) => e.name).join(', ')})`);
    const prefix = pkl!.name.slice(0, -'data.pkl'.length);
    const order = zip.get(`${prefix}byteorder`);
    if (order && new TextDecoder().decode(readBytes(zip.open(order), 0, Math.min(order.size, 16))) !== 'little') {
      fail('storages are big-endian', CONVERT_HINT);
    }
    if (pkl!.size > MAX_PICKLE_BYTES) fail(`data.pkl is ${pkl!.size} bytes, more than a state dict's pickle can be`);
    const storages = new Map<string, ZipEntry>();
    const persistentLoad = (pid: unknown): StorageRef => {
      if (!Array.isArray(pid) || pid[0] !== 'storage' || pid.length !== 5) fail(`unsupported persistent id ${JSON.stringify(pid)}`, CONVERT_HINT);
      const [, cls, key, , numel] = pid as unknown[];
      if (!(cls instanceof StorageClass)) fail(`persistent id names an unsupported storage type`, CONVERT_HINT);
      if (typeof key !== 'string' || !isIndex(numel)) fail(`bad storage id ${JSON.stringify([key, numel])}`);
      const entry = zip.get(`${prefix}data/${key}`);
      if (!entry) fail(`storage '${key}' is missing from the archive (expected entry ${prefix}data/${key})`);
      const dtype = (cls as StorageClass).dtype;
      if (entry!.size < (numel as number) * DTYPE_BYTES[dtype]) {
        fail(`storage '${key}' holds ${entry!.size} bytes but ${numel} × ${dtype} needs ${(numel as number) * DTYPE_BYTES[dtype]}`);
      }
      storages.set(key as string, entry!);
      return new StorageRef(dtype, key as string, numel as number);
    };
    const root = unpickle(readBytes(zip.open(pkl!), 0, pkl!.size),
      { global: (m, n) => whitelist(m, n, fail), persistentLoad }, `PyTorch checkpoint '${src.name}'`, CONVERT_HINT);
    if (!(root instanceof Map)) fail('the pickled object is not a state dict (a dict of tensors)', CONVERT_HINT);
    const tensors = new Map<string, TensorRef>();
    for (const [k, t] of root as Map<unknown, unknown>) {
      if (typeof k !== 'string') fail(`state dict key ${String(k)} is not a string`);
      if (!(t instanceof TensorRef)) {
        fail(`'${String(k)}' is not a tensor; expected a flat state dict of tensors`,
          'save model.state_dict() itself, not a dict that contains it (or other objects)');
      }
      const { storage, offset, size, stride } = t as TensorRef;
      const last = offset + size.reduce((s, n, d) => s + (n - 1) * stride[d], 0);
      if (numelOf(size) > 0 && last >= storage.numel) {
        fail(`tensor '${k}' (offset ${offset}, size [${size.join(', ')}], stride [${stride.join(', ')}]) ` +
          `reaches element ${last} of a ${storage.numel}-element storage`);
      }
      // Only zero strides (an expanded view) give more elements than the storage; bound what read() allocates.
      if (numelOf(size) > Math.max(storage.numel, MAX_EXPANDED)) {
        fail(`tensor '${k}' expands a ${storage.numel}-element storage to size [${size.join(', ')}]`, CONVERT_HINT);
      }
      tensors.set(k as string, t as TensorRef);
    }
    return new TorchBinReader(src, zip, storages, tensors);
  }

  keys(): string[] {
    return [...this.tensors.keys()];
  }

  shape(key: string): number[] {
    return this.ref(key).size.slice();
  }

  /** The storage's element type (before widening). */
  dtype(key: string): Dtype {
    return this.ref(key).storage.dtype;
  }

  /** Read one tensor — only the span of its storage it covers — widened, in row-major order. */
  read(key: string): Float32Array | Int32Array {
    const { storage, offset, size, stride } = this.ref(key);
    const n = numelOf(size);
    if (n === 0) return isFloatDtype(storage.dtype) ? new Float32Array(0) : new Int32Array(0);
    const span = size.reduce((s, len, d) => s + (len - 1) * stride[d], 0) + 1;
    const region = readWidened(this.storageSource(storage.key), offset * DTYPE_BYTES[storage.dtype], span, storage.dtype,
      `PyTorch checkpoint '${this.src.name}' tensor '${key}'`);
    if (isContiguous(size, stride)) return region;
    // A view (a transpose, a slice of a shared storage): walk its strides.
    const out = region instanceof Float32Array ? new Float32Array(n) : new Int32Array(n);
    const idx = new Array<number>(size.length).fill(0);
    let at = 0;
    for (let j = 0; j < n; j++) {
      out[j] = region[at];
      for (let d = size.length - 1; d >= 0; d--) {
        idx[d]++;
        at += stride[d];
        if (idx[d] < size[d]) break;
        at -= stride[d] * size[d];
        idx[d] = 0;
      }
    }
    return out;
  }

  private storageSource(key: string): ByteSource {
    // Tied and sliced tensors share a storage; a deflated one is inflated once for consecutive reads.
    if (this.lastStorage?.key !== key) this.lastStorage = { key, src: this.zip.open(this.storages.get(key)!) };
    return this.lastStorage.src;
  }

  private ref(key: string): TensorRef {
    const t = this.tensors.get(key);
    if (!t) throw new CheckpointError(`PyTorch checkpoint '${this.src.name}' has no tensor '${key}' (it has ${this.tensors.size})`);
    return t;
  }
}

/** Open a PyTorch zip checkpoint over a random-access byte source. */
export function openTorchBin(src: ByteSource): TorchBinReader {
  return TorchBinReader.open(src);
}
