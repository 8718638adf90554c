/**
 * Safetensors reader and writer (format: huggingface/safetensors README — 8-byte little-endian header
 * length, a JSON header of `{name: {dtype, shape, data_offsets}}` plus optional `__metadata__`, then raw
 * little-endian data). The reader validates the whole header before touching data and then reads one
 * tensor's bytes per `read()`. Browser-safe: no Node imports (files are opened in `hf_folder.ts`).
 */
import { CheckpointError, ShapeError } from '../errors.js';
import { bufferByteSource, readBytes, type ByteSource, type TensorSource } from './bytes.js';
import { DTYPE_BYTES, SUPPORTED_DTYPES, f32ToF16, isDtype, readWidened, type Dtype } from './dtypes.js';

/** Largest JSON header we accept; real headers are well under 1 MB even for 70B models. */
export const MAX_HEADER_BYTES = 100 * 1024 * 1024;

interface Entry {
  dtype: Dtype;
  shape: number[];
  numel: number;
  /** Byte range relative to the start of the data area. */
  begin: number;
  end: number;
}

function numelOf(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function isShape(v: unknown): v is number[] {
  return Array.isArray(v) && v.every((d) => Number.isSafeInteger(d) && d >= 0);
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const HINT_CORRUPT = 'the file is truncated or not a safetensors file; re-download or re-save it';

/** A parsed safetensors file: header in memory, tensor data read on demand. */
export class SafetensorsReader implements TensorSource {
  private constructor(
    private readonly src: ByteSource,
    private readonly entries: Map<string, Entry>,
    private readonly dataStart: number,
    /** The `__metadata__` string map ({} when absent). */
    readonly metadata: Readonly<Record<string, string>>,
  ) {}

  /** Parse and validate the header of `src`; throws CheckpointError naming the file and the problem. */
  static open(src: ByteSource): SafetensorsReader {
    const fail = (problem: string, hint = HINT_CORRUPT): never => {
      throw new CheckpointError(`safetensors file '${src.name}': ${problem}`, hint);
    };
    if (src.size < 8) fail(`file is ${src.size} bytes, shorter than the 8-byte header length`);
    const lenBytes = new DataView(readBytes(src, 0, 8).buffer);
    const headerLen = lenBytes.getUint32(0, true) + lenBytes.getUint32(4, true) * 2 ** 32;
    if (headerLen > MAX_HEADER_BYTES) {
      fail(`header length ${headerLen} bytes exceeds the ${MAX_HEADER_BYTES}-byte limit (file is ${src.size} bytes)`);
    }
    if (8 + headerLen > src.size) fail(`header length ${headerLen} bytes runs past the end of the file (${src.size} bytes)`);
    let header: unknown;
    try {
      header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(readBytes(src, 8, headerLen)));
    } catch (e) {
      fail(`header is not valid UTF-8 JSON (${(e as Error).message})`);
    }
    if (!isPlainObject(header)) fail(`header is not a JSON object (found ${Array.isArray(header) ? 'array' : typeof header})`);
    const dataStart = 8 + headerLen;
    const dataSize = src.size - dataStart;
    const entries = new Map<string, Entry>();
    let metadata: Record<string, string> = {};
    for (const [key, v] of Object.entries(header as Record<string, unknown>)) {
      if (key === '__metadata__') {
        if (!isPlainObject(v) || !Object.values(v).every((x) => typeof x === 'string')) {
          fail(`__metadata__ must be an object of strings, found ${JSON.stringify(v).slice(0, 200)}`);
        }
        metadata = { ...(v as Record<string, string>) };
        continue;
      }
      const at = `tensor '${key}'`;
      if (!isPlainObject(v)) fail(`${at}: entry is not an object`);
      const { dtype, shape, data_offsets: offs } = v as Record<string, unknown>;
      if (!isDtype(dtype)) {
        fail(`${at}: unknown dtype ${JSON.stringify(dtype)}; supported: ${SUPPORTED_DTYPES.join(', ')}`,
          'convert the tensor to one of the supported dtypes before saving');
      }
      if (!isShape(shape)) fail(`${at}: shape must be a list of non-negative integers, found ${JSON.stringify(shape)}`);
      if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((o) => Number.isSafeInteger(o) && o >= 0)) {
        fail(`${at}: data_offsets must be two non-negative integers, found ${JSON.stringify(offs)}`);
      }
      const [begin, end] = offs as number[];
      if (begin > end) fail(`${at}: data_offsets [${begin}, ${end}] are reversed`);
      if (end > dataSize) fail(`${at}: data_offsets [${begin}, ${end}] lie outside the data area (${dataSize} bytes)`);
      const numel = numelOf(shape as number[]);
      const want = numel * DTYPE_BYTES[dtype as Dtype];
      if (want !== end - begin) {
        fail(`${at}: holds ${end - begin} bytes but shape [${(shape as number[]).join(', ')}] × ${dtype} ` +
          `(${DTYPE_BYTES[dtype as Dtype]} bytes) needs ${want}`);
      }
      entries.set(key, { dtype: dtype as Dtype, shape: shape as number[], numel, begin, end });
    }
    const byStart = [...entries].filter(([, e]) => e.end > e.begin).sort((a, b) => a[1].begin - b[1].begin);
    for (let i = 1; i < byStart.length; i++) {
      const [pk, p] = byStart[i - 1];
      const [ck, c] = byStart[i];
      if (c.begin < p.end) {
        fail(`tensor '${ck}' data_offsets [${c.begin}, ${c.end}] overlap tensor '${pk}' [${p.begin}, ${p.end}]`);
      }
    }
    return new SafetensorsReader(src, entries, dataStart, metadata);
  }

  /** File name or path, as given by the byte source. */
  get name(): string {
    return this.src.name;
  }

  keys(): string[] {
    return [...this.entries.keys()];
  }

  has(key: string): boolean {
    return this.entries.has(key);
  }

  shape(key: string): number[] {
    return this.entry(key).shape.slice();
  }

  /** The stored element type (before widening). */
  dtype(key: string): Dtype {
    return this.entry(key).dtype;
  }

  /** Read one tensor (only its bytes), widened to float32 or int32. */
  read(key: string): Float32Array | Int32Array {
    const e = this.entry(key);
    return readWidened(this.src, this.dataStart + e.begin, e.numel, e.dtype, `safetensors file '${this.src.name}' tensor '${key}'`);
  }

  private entry(key: string): Entry {
    const e = this.entries.get(key);
    if (!e) {
      const some = this.keys().slice(0, 5).join(', ');
      const more = this.entries.size > 5 ? ', …' : '';
      throw new CheckpointError(`safetensors file '${this.src.name}' has no tensor '${key}' (it has ${this.entries.size}: ${some}${more})`);
    }
    return e;
  }
}

/** Open a safetensors file over any random-access byte source. */
export function openSafetensors(src: ByteSource): SafetensorsReader {
  return SafetensorsReader.open(src);
}

/** Open safetensors bytes already in memory (browsers: the result of `fetch(...).arrayBuffer()`). */
export function safetensorsFromBuffer(buf: ArrayBuffer | Uint8Array, name = '<buffer>'): SafetensorsReader {
  return SafetensorsReader.open(bufferByteSource(buf, name));
}

/** Element types the writer stores; float16 rounds float32 data to nearest even. */
export type SaveDtype = 'float32' | 'int32' | 'float16';

/** One tensor to save: row-major data of length product(shape). */
export interface SaveTensor {
  shape: number[];
  dtype: SaveDtype;
  data: Float32Array | Int32Array;
}

/** Tensors to save, by name. */
export type SaveTensors = ReadonlyMap<string, SaveTensor> | Readonly<Record<string, SaveTensor>>;

const SAVE_DTYPE: Record<SaveDtype, Dtype> = { float32: 'F32', int32: 'I32', float16: 'F16' };

function checkSaveTensor(name: string, t: SaveTensor): void {
  if (name === '' || name === '__metadata__') {
    throw new CheckpointError(`cannot save a tensor named ${JSON.stringify(name)}`, 'rename the tensor');
  }
  if (!(t.dtype in SAVE_DTYPE)) {
    throw new ShapeError(`tensor '${name}': cannot save dtype '${t.dtype}'; supported: ${Object.keys(SAVE_DTYPE).join(', ')}`);
  }
  if (!isShape(t.shape)) throw new ShapeError(`tensor '${name}': shape must be non-negative integers, found ${JSON.stringify(t.shape)}`);
  const wantArray = t.dtype === 'int32' ? Int32Array : Float32Array;
  if (!(t.data instanceof wantArray)) {
    throw new ShapeError(`tensor '${name}': dtype ${t.dtype} needs a ${wantArray.name}, found ${t.data.constructor.name}`);
  }
  if (t.data.length !== numelOf(t.shape)) {
    throw new ShapeError(`tensor '${name}': shape [${t.shape.join(', ')}] needs ${numelOf(t.shape)} values, data has ${t.data.length}`);
  }
}

function rawBytes(t: SaveTensor): Uint8Array {
  const arr = t.dtype === 'float16' ? f32ToF16(t.data as Float32Array) : t.data;
  return new Uint8Array(arr.buffer, arr.byteOffset, arr.byteLength);
}

/**
 * The bytes of a safetensors file as a sequence of chunks (header first, then each tensor), so a writer
 * can stream them without building the file in memory. Tensors are sorted by name; `__metadata__` has
 * `format: "pt"` (HF's loader requires it) plus `metadata`. Validates everything before returning.
 */
export function safetensorsChunks(tensors: SaveTensors, metadata: Record<string, string> = {}): Iterable<Uint8Array> {
  if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) throw new ShapeError('saving safetensors needs a little-endian host');
  const list = (tensors instanceof Map ? [...tensors] : Object.entries(tensors)) as [string, SaveTensor][];
  list.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  for (const [name, t] of list) checkSaveTensor(name, t);
  for (const [k, v] of Object.entries(metadata)) {
    if (typeof v !== 'string') throw new CheckpointError(`safetensors metadata '${k}' must be a string, found ${typeof v}`);
  }
  const header: Record<string, unknown> = { __metadata__: { format: 'pt', ...metadata } };
  let offset = 0;
  for (const [name, t] of list) {
    const dtype = SAVE_DTYPE[t.dtype];
    const n = numelOf(t.shape) * DTYPE_BYTES[dtype];
    header[name] = { dtype, shape: t.shape, data_offsets: [offset, offset + n] };
    offset += n;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  // Pad with spaces so the data area starts on an 8-byte boundary, as the reference writer does.
  const padded = Math.ceil(json.length / 8) * 8;
  const head = new Uint8Array(8 + padded).fill(0x20, 8 + json.length);
  const view = new DataView(head.buffer);
  view.setUint32(0, padded % 2 ** 32, true);
  view.setUint32(4, Math.floor(padded / 2 ** 32), true);
  head.set(json, 8);
  return (function* () {
    yield head;
    for (const [, t] of list) yield rawBytes(t);
  })();
}

/** A whole safetensors file in one buffer (for browsers; Node code should stream via `saveSafetensors`). */
export function serializeSafetensors(tensors: SaveTensors, metadata: Record<string, string> = {}): Uint8Array {
  const chunks = [...safetensorsChunks(tensors, metadata)];
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.byteLength, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.byteLength;
  }
  return out;
}
